// Package vision holds the image models fertorch fine-tunes, with
// torchvision's parameter names so that torchvision state dicts load by name
// and fertorch's weights load in PyTorch: VGG16 with the seed tutorial's
// transfer head, torchvision's own classifier, or a global-average-pool
// head; layer freezing in Keras' terms; pretrained-weight loading; and a
// Keras-style model summary.
package vision

import (
	"fmt"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
)

// Head selects the classifier on top of a network's base: for VGG16 as
// described at each value, for the other architectures see heads.go.
type Head string

const (
	// HeadTransfer is the seed tutorial's head: Flatten -> Linear(features,
	// Hidden) -> ReLU -> Dropout -> Linear(Hidden, classes). At 224x224 the
	// flattened base output has 7*7*512 = 25088 features; other input sizes
	// change that count. Parameters: classifier.0.*, classifier.3.*.
	HeadTransfer Head = "transfer"
	// HeadTorchvision is torchvision's VGG16 classifier: AdaptiveAvgPool(7,7)
	// -> Flatten -> Linear(25088, 4096) -> ReLU -> Dropout -> Linear(4096,
	// 4096) -> ReLU -> Dropout -> Linear(4096, classes). Parameters:
	// classifier.0.*, classifier.3.*, classifier.6.*.
	HeadTorchvision Head = "torchvision"
	// HeadGAP is a small modern head: global average pooling -> Dropout ->
	// Linear(512, classes). Parameters: classifier.1.*.
	HeadGAP Head = "gap"
)

// VGG16Config describes a VGG16 model.
type VGG16Config struct {
	// InputSize is the square input side in pixels (224 by default; at least
	// 32, since the base halves it five times).
	InputSize int
	// NumClasses is the number of output classes.
	NumClasses int
	// Head is the classifier on top of the base (HeadTransfer by default).
	Head Head
	// Hidden is the transfer head's hidden width (1024 by default).
	Hidden int
	// Dropout is the heads' dropout probability; 0 means none (the seed's
	// is 0.5).
	Dropout float64
	// BatchNorm builds torchvision's vgg16_bn: a BatchNorm2d after every
	// convolution (features.1, .4, ...), which trains from scratch far more
	// readily than plain VGG16.
	BatchNorm bool
}

// Arch is the architecture name: "vgg16" or "vgg16_bn".
func (c VGG16Config) Arch() string {
	if c.BatchNorm {
		return "vgg16_bn"
	}
	return "vgg16"
}

func (c VGG16Config) withDefaults() VGG16Config {
	if c.InputSize == 0 {
		c.InputSize = 224
	}
	if c.Head == "" {
		c.Head = HeadTransfer
	}
	if c.Hidden == 0 {
		c.Hidden = 1024
	}
	return c
}

// vgg16Plan is torchvision's cfg "D": channel counts, "M" is a 2x2 pool.
var vgg16Plan = []int{64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0}

// VGG16 is torchvision's vgg16 (or vgg16_bn) with a choice of head.
type VGG16 struct {
	Config VGG16Config
	// Features is torchvision's `features`: 13 convolutions with ReLU (and
	// batch norm for vgg16_bn) and five max pools, modules 0..30 (0..43).
	Features *nn.Sequential
	// Pool runs between the base and the classifier (nil for HeadTransfer).
	Pool nn.Module
	// Classifier is the head's `classifier` Sequential.
	Classifier *nn.Sequential
	flatten    *nn.Flatten
}

// NamedChildren lists torchvision's modules, features, avgpool (for the
// heads that pool) and classifier, so that nn.Walk reaches every layer
// (the batch norms of vgg16_bn).
func (m *VGG16) NamedChildren() []nn.NamedModule {
	out := []nn.NamedModule{{Name: "features", Module: m.Features}}
	if m.Pool != nil {
		out = append(out, nn.NamedModule{Name: "avgpool", Module: m.Pool})
	}
	if m.Classifier != nil {
		out = append(out, nn.NamedModule{Name: "classifier", Module: m.Classifier})
	}
	return out
}

// NewVGG16 builds a VGG16 with torchvision's initialisation for the base
// (Kaiming-normal fan-out convolutions, zero biases) and for its own
// classifier (N(0, 0.01) weights, zero biases), and Keras' for the seed's
// transfer and GAP heads (Glorot-uniform weights, zero biases). Use
// torch.ManualSeed first for reproducible weights.
func NewVGG16(cfg VGG16Config) (*VGG16, error) {
	cfg = cfg.withDefaults()
	if cfg.InputSize < 32 {
		return nil, fmt.Errorf("vgg16: input size %d is below the minimum of 32 pixels", cfg.InputSize)
	}
	if cfg.NumClasses < 1 {
		return nil, fmt.Errorf("vgg16: need at least one class, got %d", cfg.NumClasses)
	}
	if cfg.Dropout < 0 || cfg.Dropout >= 1 {
		return nil, fmt.Errorf("vgg16: dropout %g is outside [0, 1)", cfg.Dropout)
	}
	m := &VGG16{Config: cfg, flatten: nn.NewFlatten()}
	ok := false
	defer func() {
		if !ok {
			m.Free()
		}
	}()
	m.Features = nn.NewSequential()
	in := int64(3)
	for _, ch := range vgg16Plan {
		if ch == 0 {
			m.Features.Children = append(m.Features.Children, nn.NewMaxPool2d(2, 2))
			continue
		}
		conv, err := nn.NewConv2d(in, int64(ch), 3, nn.Conv2dConfig{Padding: 1})
		if err != nil {
			return nil, fmt.Errorf("vgg16 base: %w", err)
		}
		if err := initialize(conv.Weight, torch.InitKaimingNormalFanOut()); err != nil {
			return nil, err
		}
		if err := initialize(conv.Bias, torch.InitConstant(0)); err != nil {
			return nil, err
		}
		m.Features.Children = append(m.Features.Children, conv)
		if cfg.BatchNorm {
			bn, err := nn.NewBatchNorm2d(int64(ch))
			if err != nil {
				nn.Free(conv)
				return nil, fmt.Errorf("vgg16 base: %w", err)
			}
			m.Features.Children = append(m.Features.Children, bn)
		}
		m.Features.Children = append(m.Features.Children, nn.ReLU{Inplace: true})
		in = int64(ch)
	}
	side := int64(cfg.InputSize) >> 5 // five 2x2 pools, floor each time
	var err error
	switch cfg.Head {
	case HeadTransfer:
		m.Classifier, err = denseStack(glorot, []int64{512 * side * side, int64(cfg.Hidden), int64(cfg.NumClasses)}, cfg.Dropout)
	case HeadTorchvision:
		m.Pool = &nn.AdaptiveAvgPool2d{H: 7, W: 7}
		m.Classifier, err = denseStack(torchvisionLinear, []int64{512 * 7 * 7, 4096, 4096, int64(cfg.NumClasses)}, cfg.Dropout)
	case HeadGAP:
		m.Pool = &nn.AdaptiveAvgPool2d{H: 1, W: 1}
		var lin *nn.Linear
		if lin, err = newDense(glorot, 512, int64(cfg.NumClasses)); err == nil {
			m.Classifier = nn.NewSequential(nn.NewDropout(cfg.Dropout), lin)
		}
	default:
		return nil, fmt.Errorf("vgg16: unknown head %q", cfg.Head)
	}
	if err != nil {
		return nil, fmt.Errorf("vgg16 %s head: %w", cfg.Head, err)
	}
	ok = true
	return m, nil
}

func initialize(t *torch.Tensor, init torch.Init) error {
	if err := torch.NoGrad(func() error { return t.Initialize(init) }); err != nil {
		return fmt.Errorf("vgg16 init: %w", err)
	}
	return nil
}

type linearInit func(l *nn.Linear) error

// glorot is Keras' Dense default: Glorot-uniform weights, zero bias.
func glorot(l *nn.Linear) error {
	if err := initialize(l.Weight, torch.InitXavierUniform(1)); err != nil {
		return err
	}
	return initialize(l.Bias, torch.InitConstant(0))
}

// torchvisionLinear is torchvision VGG's: N(0, 0.01) weights, zero bias.
func torchvisionLinear(l *nn.Linear) error {
	if err := initialize(l.Weight, torch.InitNormal(0, 0.01)); err != nil {
		return err
	}
	return initialize(l.Bias, torch.InitConstant(0))
}

func newDense(init linearInit, in, out int64) (*nn.Linear, error) {
	l, err := nn.NewLinear(in, out, true)
	if err != nil {
		return nil, err
	}
	if err := init(l); err != nil {
		nn.Free(l)
		return nil, err
	}
	return l, nil
}

// denseStack is Linear, ReLU, Dropout repeated, ending with a Linear: the
// layout of torchvision's VGG classifier (and of the seed's head).
func denseStack(init linearInit, sizes []int64, dropout float64) (*nn.Sequential, error) {
	seq := nn.NewSequential()
	for i := 0; i+1 < len(sizes); i++ {
		l, err := newDense(init, sizes[i], sizes[i+1])
		if err != nil {
			nn.Free(seq)
			return nil, err
		}
		seq.Children = append(seq.Children, l)
		if i+2 < len(sizes) {
			seq.Children = append(seq.Children, nn.ReLU{Inplace: true}, nn.NewDropout(dropout))
		}
	}
	return seq, nil
}

// Forward computes class logits for an NCHW float batch normalised as the
// weights expect (see Normalization). Apply Softmax for probabilities.
func (m *VGG16) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	if got := x.Shape(); len(got) != 4 || got[1] != 3 || got[2] != int64(m.Config.InputSize) || got[3] != int64(m.Config.InputSize) {
		return nil, fmt.Errorf("vgg16: input shape %v, want [N 3 %d %d]", got, m.Config.InputSize, m.Config.InputSize)
	}
	f, err := m.Features.Forward(x)
	if err != nil {
		return nil, fmt.Errorf("vgg16 features: %w", err)
	}
	if m.Pool != nil {
		p, err := m.Pool.Forward(f)
		f.Free()
		if err != nil {
			return nil, fmt.Errorf("vgg16 pool: %w", err)
		}
		f = p
	}
	flat, err := m.flatten.Forward(f)
	f.Free()
	if err != nil {
		return nil, fmt.Errorf("vgg16 flatten: %w", err)
	}
	out, err := m.Classifier.Forward(flat)
	flat.Free()
	if err != nil {
		return nil, fmt.Errorf("vgg16 classifier: %w", err)
	}
	return out, nil
}

// Parameters lists every parameter with its torchvision name.
func (m *VGG16) Parameters() []torch.NamedTensor {
	ps := nn.Prefixed("features", m.Features.Parameters())
	if m.Classifier != nil {
		ps = append(ps, nn.Prefixed("classifier", m.Classifier.Parameters())...)
	}
	return ps
}

// StateTensors lists parameters and buffers (batch-norm statistics) with
// torchvision's names and state_dict order: what checkpoints hold.
func (m *VGG16) StateTensors() []torch.NamedTensor {
	ps := nn.Prefixed("features", m.Features.StateTensors())
	if m.Classifier != nil {
		ps = append(ps, nn.Prefixed("classifier", m.Classifier.StateTensors())...)
	}
	return ps
}

// SetTraining switches dropout and batch statistics on (training) or off
// (evaluation). Batch-norm layers of frozen base layers keep using their
// running statistics, as Keras does for non-trainable layers, so that
// fine-tuning does not disturb what the frozen layers learned.
func (m *VGG16) SetTraining(training bool) {
	for _, c := range m.Features.Children {
		if bn, ok := c.(*nn.BatchNorm2d); ok {
			bn.SetTraining(training && bn.Weight.RequiresGrad())
			continue
		}
		c.SetTraining(training)
	}
	if m.Classifier != nil {
		m.Classifier.SetTraining(training)
	}
}

// Free releases every parameter.
func (m *VGG16) Free() {
	if m.Features != nil {
		nn.Free(m.Features)
	}
	if m.Classifier != nil {
		nn.Free(m.Classifier)
	}
}

// Normalization is the per-channel mean and standard deviation that inputs
// in [0, 1] RGB must be normalised with for a set of weights.
type Normalization struct {
	Mean, Std [3]float32
}

// ImageNetNormalization is what torchvision's ImageNet weights expect.
func ImageNetNormalization() Normalization {
	return Normalization{Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225}}
}
