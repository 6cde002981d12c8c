// Package nn holds neural-network layers over package torch with PyTorch's
// parameter names and default initialisations: Conv2d, Linear, MaxPool2d,
// AdaptiveAvgPool2d, Dropout, ReLU, Flatten and Sequential.
//
// Layers own their parameters (created outside any torch.Scope) until Free.
// Forward results follow torch's scope rule: run a forward pass with an input
// that belongs to a per-step scope and everything it creates is released
// with that scope.
package nn

import (
	"fmt"
	"math"

	"github.com/fertorch/fertorch/torch"
)

// Module is a layer or a composition of layers.
type Module interface {
	// Forward computes the module's output for x.
	Forward(x *torch.Tensor) (*torch.Tensor, error)
	// Parameters lists the trainable tensors with names relative to the
	// module ("weight", "0.bias", ...), in registration order.
	Parameters() []torch.NamedTensor
	// SetTraining switches between training and evaluation behaviour.
	SetTraining(training bool)
}

// Prefixed returns params with prefix+"." prepended to every name.
func Prefixed(prefix string, params []torch.NamedTensor) []torch.NamedTensor {
	out := make([]torch.NamedTensor, len(params))
	for i, p := range params {
		out[i] = torch.NamedTensor{Name: prefix + "." + p.Name, Tensor: p.Tensor}
	}
	return out
}

// Stateful is implemented by modules whose state dict holds more than their
// parameters: buffers such as BatchNorm's running statistics.
type Stateful interface {
	// StateTensors lists parameters and buffers in PyTorch's state_dict
	// order.
	StateTensors() []torch.NamedTensor
}

// StateDict lists every tensor of m's state: its parameters and buffers,
// with PyTorch's names and order.
func StateDict(m Module) []torch.NamedTensor {
	if s, ok := m.(Stateful); ok {
		return s.StateTensors()
	}
	return m.Parameters()
}

// Free releases every parameter and buffer of m.
func Free(m Module) {
	for _, p := range StateDict(m) {
		p.Tensor.Free()
	}
}

// MoveTo converts every parameter and floating-point buffer of m in place
// to dtype on dev (channelsLast: NHWC order for 4-D weights), as
// module.to() does; integer buffers keep their type.
func MoveTo(m Module, dev torch.Device, dtype torch.DType, channelsLast bool) error {
	for _, p := range StateDict(m) {
		dt := dtype
		if !p.Tensor.DType().IsFloat() {
			dt = p.Tensor.DType()
		}
		if err := p.Tensor.ConvertInPlace(dev, dt, channelsLast); err != nil {
			return fmt.Errorf("moving %s to %s: %w", p.Name, dev, err)
		}
	}
	return nil
}

// CountParameters returns the number of parameter elements: all of them and
// those that require grad.
func CountParameters(m Module) (total, trainable int64) {
	for _, p := range m.Parameters() {
		n := p.Tensor.Numel()
		total += n
		if p.Tensor.RequiresGrad() {
			trainable += n
		}
	}
	return total, trainable
}

// newParameter allocates a float32 CPU tensor that requires grad and
// initialises it.
func newParameter(shape []int64, init torch.Init) (*torch.Tensor, error) {
	t, err := torch.Empty(shape, torch.Options{})
	if err != nil {
		return nil, err
	}
	if err := t.Initialize(init); err != nil {
		t.Free()
		return nil, err
	}
	if err := t.SetRequiresGrad(true); err != nil {
		t.Free()
		return nil, err
	}
	return t, nil
}

// defaultWeightAndBias creates a weight with PyTorch's default
// kaiming_uniform_(a=sqrt(5)) and, when wanted, a bias drawn from
// U(-1/sqrt(fanIn), 1/sqrt(fanIn)), as Linear and Conv2d's reset_parameters do.
func defaultWeightAndBias(weightShape []int64, fanIn int64, bias bool) (w, b *torch.Tensor, err error) {
	w, err = newParameter(weightShape, torch.InitKaimingUniform(math.Sqrt(5)))
	if err != nil || !bias {
		return w, nil, err
	}
	bound := 0.0
	if fanIn > 0 {
		bound = 1 / math.Sqrt(float64(fanIn))
	}
	b, err = newParameter([]int64{weightShape[0]}, torch.InitUniform(-bound, bound))
	if err != nil {
		w.Free()
		return nil, nil, err
	}
	return w, b, nil
}

func weightAndBias(w, b *torch.Tensor) []torch.NamedTensor {
	ps := []torch.NamedTensor{{Name: "weight", Tensor: w}}
	if b != nil {
		ps = append(ps, torch.NamedTensor{Name: "bias", Tensor: b})
	}
	return ps
}

// ---- Conv2d -------------------------------------------------------------------

// Conv2d is a 2-D convolution layer (torch.nn.Conv2d).
type Conv2d struct {
	InChannels, OutChannels int64
	Kernel                  [2]int64
	Options                 torch.Conv2dOptions
	Weight, Bias            *torch.Tensor
}

// Conv2dConfig are the optional settings of NewConv2d.
type Conv2dConfig struct {
	Stride, Padding int64 // 0 stride means 1
	NoBias          bool
	// Groups splits the channels into groups convolved separately (0 means
	// 1); Groups equal to the input channels is a depthwise convolution.
	Groups int64
	// Dilation spaces the kernel's taps (0 means 1).
	Dilation int64
}

// NewConv2d creates a square-kernel convolution with PyTorch's default
// initialisation.
func NewConv2d(in, out, kernel int64, cfg Conv2dConfig) (*Conv2d, error) {
	if in <= 0 || out <= 0 || kernel <= 0 {
		return nil, fmt.Errorf("nn: conv2d needs positive channels and kernel, got in=%d out=%d kernel=%d", in, out, kernel)
	}
	groups := max(cfg.Groups, 1)
	if in%groups != 0 || out%groups != 0 {
		return nil, fmt.Errorf("nn: conv2d channels in=%d and out=%d must be divisible by groups=%d", in, out, groups)
	}
	w, b, err := defaultWeightAndBias([]int64{out, in / groups, kernel, kernel}, in/groups*kernel*kernel, !cfg.NoBias)
	if err != nil {
		return nil, fmt.Errorf("nn: conv2d parameters: %w", err)
	}
	stride := max(cfg.Stride, 1)
	dilation := max(cfg.Dilation, 1)
	return &Conv2d{
		InChannels: in, OutChannels: out, Kernel: [2]int64{kernel, kernel},
		Options: torch.Conv2dOptions{Stride: [2]int64{stride, stride}, Padding: [2]int64{cfg.Padding, cfg.Padding},
			Dilation: [2]int64{dilation, dilation}, Groups: groups},
		Weight: w, Bias: b,
	}, nil
}

// Forward convolves x (NCHW).
func (c *Conv2d) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	return x.Conv2d(c.Weight, c.Bias, c.Options)
}

// Parameters are "weight" and, if present, "bias".
func (c *Conv2d) Parameters() []torch.NamedTensor { return weightAndBias(c.Weight, c.Bias) }

// SetTraining has no effect on a convolution.
func (c *Conv2d) SetTraining(bool) {}

// ---- Linear --------------------------------------------------------------------

// Linear is a fully connected layer (torch.nn.Linear).
type Linear struct {
	InFeatures, OutFeatures int64
	Weight, Bias            *torch.Tensor
}

// NewLinear creates a fully connected layer with PyTorch's default
// initialisation.
func NewLinear(in, out int64, bias bool) (*Linear, error) {
	if in <= 0 || out <= 0 {
		return nil, fmt.Errorf("nn: linear needs positive sizes, got in=%d out=%d", in, out)
	}
	w, b, err := defaultWeightAndBias([]int64{out, in}, in, bias)
	if err != nil {
		return nil, fmt.Errorf("nn: linear parameters: %w", err)
	}
	return &Linear{InFeatures: in, OutFeatures: out, Weight: w, Bias: b}, nil
}

// Forward computes x·Wᵀ + b.
func (l *Linear) Forward(x *torch.Tensor) (*torch.Tensor, error) { return x.Linear(l.Weight, l.Bias) }

// Parameters are "weight" and, if present, "bias".
func (l *Linear) Parameters() []torch.NamedTensor { return weightAndBias(l.Weight, l.Bias) }

// SetTraining has no effect on a linear layer.
func (l *Linear) SetTraining(bool) {}

// ---- parameter-free layers -------------------------------------------------------

// MaxPool2d is 2-D max pooling (torch.nn.MaxPool2d).
type MaxPool2d struct{ Options torch.MaxPool2dOptions }

// NewMaxPool2d pools with a square kernel and stride.
func NewMaxPool2d(kernel, stride int64) *MaxPool2d {
	return &MaxPool2d{Options: torch.MaxPool2dOptions{Kernel: [2]int64{kernel, kernel}, Stride: [2]int64{stride, stride}}}
}

// Forward pools x.
func (m *MaxPool2d) Forward(x *torch.Tensor) (*torch.Tensor, error) { return x.MaxPool2d(m.Options) }

// Parameters is empty.
func (m *MaxPool2d) Parameters() []torch.NamedTensor { return nil }

// SetTraining has no effect.
func (m *MaxPool2d) SetTraining(bool) {}

// AdaptiveAvgPool2d averages to a fixed output size (torch.nn.AdaptiveAvgPool2d).
type AdaptiveAvgPool2d struct{ H, W int64 }

// Forward pools x to H x W.
func (m *AdaptiveAvgPool2d) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	return x.AdaptiveAvgPool2d(m.H, m.W)
}

// Parameters is empty.
func (m *AdaptiveAvgPool2d) Parameters() []torch.NamedTensor { return nil }

// SetTraining has no effect.
func (m *AdaptiveAvgPool2d) SetTraining(bool) {}

// ReLU is max(x, 0) (torch.nn.ReLU). With Inplace it overwrites its input,
// as ReLU(inplace=True) in torchvision's VGG: use it only where the input is
// an intermediate result nothing else reads.
type ReLU struct{ Inplace bool }

// Forward applies ReLU.
func (r ReLU) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	if r.Inplace {
		return x.ReluInPlace()
	}
	return x.Relu()
}

// Parameters is empty.
func (ReLU) Parameters() []torch.NamedTensor { return nil }

// SetTraining has no effect.
func (ReLU) SetTraining(bool) {}

// Dropout zeroes activations with probability P in training mode
// (torch.nn.Dropout). New layers start in training mode, as in PyTorch.
type Dropout struct {
	P        float64
	training bool
}

// NewDropout creates a dropout layer in training mode.
func NewDropout(p float64) *Dropout { return &Dropout{P: p, training: true} }

// Forward applies dropout in training mode and the identity otherwise.
func (d *Dropout) Forward(x *torch.Tensor) (*torch.Tensor, error) { return x.Dropout(d.P, d.training) }

// Parameters is empty.
func (d *Dropout) Parameters() []torch.NamedTensor { return nil }

// SetTraining switches dropout on (true) or off.
func (d *Dropout) SetTraining(training bool) { d.training = training }

// Flatten merges dimensions Start..End (torch.nn.Flatten: 1..-1 by default).
type Flatten struct{ Start, End int64 }

// NewFlatten flattens everything but the batch dimension.
func NewFlatten() *Flatten { return &Flatten{Start: 1, End: -1} }

// Forward flattens x.
func (f *Flatten) Forward(x *torch.Tensor) (*torch.Tensor, error) { return x.Flatten(f.Start, f.End) }

// Parameters is empty.
func (f *Flatten) Parameters() []torch.NamedTensor { return nil }

// SetTraining has no effect.
func (f *Flatten) SetTraining(bool) {}

// ---- Sequential ---------------------------------------------------------------------

// Sequential chains modules; children are named by index as in
// torch.nn.Sequential, so parameters are "0.weight", "3.bias", ...
type Sequential struct{ Children []Module }

// NewSequential chains the given modules.
func NewSequential(children ...Module) *Sequential { return &Sequential{Children: children} }

// Forward runs the children in order. Intermediate handles are released as
// soon as the next child has consumed them (autograd keeps what it needs).
func (s *Sequential) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	cur := x
	for i, m := range s.Children {
		y, err := m.Forward(cur)
		if cur != x {
			cur.Free()
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d (%T): %w", i, m, err)
		}
		cur = y
	}
	if cur == x {
		return x.Share()
	}
	return cur, nil
}

// StateTensors lists the children's parameters and buffers prefixed by
// their index.
func (s *Sequential) StateTensors() []torch.NamedTensor {
	var ps []torch.NamedTensor
	for i, m := range s.Children {
		ps = append(ps, Prefixed(fmt.Sprint(i), StateDict(m))...)
	}
	return ps
}

// Parameters lists the children's parameters prefixed by their index.
func (s *Sequential) Parameters() []torch.NamedTensor {
	var ps []torch.NamedTensor
	for i, m := range s.Children {
		ps = append(ps, Prefixed(fmt.Sprint(i), m.Parameters())...)
	}
	return ps
}

// NamedChildren lists the children under their indices ("0", "1", ...).
func (s *Sequential) NamedChildren() []NamedModule {
	out := make([]NamedModule, len(s.Children))
	for i, m := range s.Children {
		out[i] = NamedModule{Name: fmt.Sprint(i), Module: m}
	}
	return out
}

// SetTraining sets the mode of every child.
func (s *Sequential) SetTraining(training bool) {
	for _, m := range s.Children {
		m.SetTraining(training)
	}
}

// ---- output shapes (for model summaries) ------------------------------------------

// Shaper is implemented by modules that can compute their output shape from
// an input shape without running, as model summaries need.
type Shaper interface {
	OutputShape(in []int64) ([]int64, error)
}

func convOut(size, kernel, stride, pad, dil int64, ceil bool) int64 {
	span := dil*(kernel-1) + 1
	num := size + 2*pad - span
	if num < 0 {
		return 0
	}
	out := num/stride + 1
	if ceil && num%stride != 0 {
		out++
		// PyTorch: the last window must start inside the padded input.
		if (out-1)*stride >= size+pad {
			out--
		}
	}
	return out
}

func need4D(what string, in []int64) error {
	if len(in) != 4 {
		return fmt.Errorf("%s expects an NCHW shape, got %v", what, in)
	}
	return nil
}

// OutputShape of a convolution.
func (c *Conv2d) OutputShape(in []int64) ([]int64, error) {
	if err := need4D("conv2d", in); err != nil {
		return nil, err
	}
	if in[1] != c.InChannels {
		return nil, fmt.Errorf("conv2d expects %d input channels, got shape %v", c.InChannels, in)
	}
	o := c.Options
	d := orOne(o.Dilation)
	s := orOne(o.Stride)
	h := convOut(in[2], c.Kernel[0], s[0], o.Padding[0], d[0], false)
	w := convOut(in[3], c.Kernel[1], s[1], o.Padding[1], d[1], false)
	if h <= 0 || w <= 0 {
		return nil, fmt.Errorf("conv2d: input %v is too small for a %v kernel", in, c.Kernel)
	}
	return []int64{in[0], c.OutChannels, h, w}, nil
}

func orOne(v [2]int64) [2]int64 {
	for i := range v {
		if v[i] == 0 {
			v[i] = 1
		}
	}
	return v
}

// OutputShape of a max pooling.
func (m *MaxPool2d) OutputShape(in []int64) ([]int64, error) {
	if err := need4D("max_pool2d", in); err != nil {
		return nil, err
	}
	o := m.Options
	s := o.Stride
	if s == [2]int64{} {
		s = o.Kernel
	}
	d := orOne(o.Dilation)
	h := convOut(in[2], o.Kernel[0], s[0], o.Padding[0], d[0], o.CeilMode)
	w := convOut(in[3], o.Kernel[1], s[1], o.Padding[1], d[1], o.CeilMode)
	if h <= 0 || w <= 0 {
		return nil, fmt.Errorf("max_pool2d: input %v is smaller than the %v window", in, o.Kernel)
	}
	return []int64{in[0], in[1], h, w}, nil
}

// OutputShape of an adaptive average pooling.
func (m *AdaptiveAvgPool2d) OutputShape(in []int64) ([]int64, error) {
	if err := need4D("adaptive_avg_pool2d", in); err != nil {
		return nil, err
	}
	return []int64{in[0], in[1], m.H, m.W}, nil
}

// OutputShape of a linear layer.
func (l *Linear) OutputShape(in []int64) ([]int64, error) {
	if len(in) == 0 || in[len(in)-1] != l.InFeatures {
		return nil, fmt.Errorf("linear expects %d input features, got shape %v", l.InFeatures, in)
	}
	out := append([]int64(nil), in...)
	out[len(out)-1] = l.OutFeatures
	return out, nil
}

// OutputShape of ReLU is its input shape.
func (ReLU) OutputShape(in []int64) ([]int64, error) { return in, nil }

// OutputShape of dropout is its input shape.
func (d *Dropout) OutputShape(in []int64) ([]int64, error) { return in, nil }

// OutputShape of Flatten.
func (f *Flatten) OutputShape(in []int64) ([]int64, error) {
	n := int64(len(in))
	start, end := f.Start, f.End
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	if start < 0 || end >= n || start > end {
		return nil, fmt.Errorf("flatten(%d, %d) of shape %v", f.Start, f.End, in)
	}
	out := append([]int64(nil), in[:start]...)
	p := int64(1)
	for _, d := range in[start : end+1] {
		p *= d
	}
	out = append(out, p)
	return append(out, in[end+1:]...), nil
}
