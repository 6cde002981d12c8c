package vision

import (
	"fmt"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
)

// builder collects the first error of a chain of layer constructions, so
// that an architecture reads as torchvision's does, and remembers every
// tensor it made, so that a failed build releases them (release).
type builder struct {
	err  error
	made []*torch.Tensor
}

// own records a new module's tensors.
func (b *builder) own(m nn.Module) {
	for _, p := range nn.StateDict(m) {
		b.made = append(b.made, p.Tensor)
	}
}

// release frees everything the builder made (after a failed build).
func (b *builder) release() {
	for _, t := range b.made {
		t.Free()
	}
	b.made = nil
}

// conv is a square convolution initialised as torchvision's CNNs do:
// Kaiming-normal weights (fan_out, ReLU gain), zero bias.
func (b *builder) conv(in, out, kernel, stride, padding, groups int64, bias bool) *nn.Conv2d {
	if b.err != nil {
		return nil
	}
	c, err := nn.NewConv2d(in, out, kernel, nn.Conv2dConfig{Stride: stride, Padding: padding, Groups: groups, NoBias: !bias})
	if err != nil {
		b.err = err
		return nil
	}
	b.own(c)
	b.init(c.Weight, torch.InitKaimingNormalFanOut())
	if c.Bias != nil {
		b.init(c.Bias, torch.InitConstant(0))
	}
	return c
}

// bn is a BatchNorm2d with the given eps and momentum (weight 1, bias 0).
func (b *builder) bn(ch int64, eps, momentum float64) *nn.BatchNorm2d {
	if b.err != nil {
		return nil
	}
	n, err := nn.NewBatchNorm2d(ch)
	if err != nil {
		b.err = err
		return nil
	}
	b.own(n)
	n.Eps, n.Momentum = eps, momentum
	return n
}

// linear is a Linear with PyTorch's default initialisation; inits, when
// given, then set its weight and bias.
func (b *builder) linear(in, out int64, weightInit, biasInit *torch.Init) *nn.Linear {
	if b.err != nil {
		return nil
	}
	l, err := nn.NewLinear(in, out, true)
	if err != nil {
		b.err = err
		return nil
	}
	b.own(l)
	if weightInit != nil {
		b.init(l.Weight, *weightInit)
	}
	if biasInit != nil {
		b.init(l.Bias, *biasInit)
	}
	return l
}

func (b *builder) layerNorm(features int64, eps float64, channelsFirst bool) *nn.LayerNorm {
	if b.err != nil {
		return nil
	}
	l, err := nn.NewLayerNorm(features, eps)
	if err != nil {
		b.err = err
		return nil
	}
	b.own(l)
	l.ChannelsFirst = channelsFirst
	return l
}

func (b *builder) init(t *torch.Tensor, init torch.Init) {
	if b.err != nil {
		return
	}
	if err := torch.NoGrad(func() error { return t.Initialize(init) }); err != nil {
		b.err = fmt.Errorf("initialising: %w", err)
	}
}

// addAndFree is x + y as a new tensor, releasing x (an intermediate).
func addAndFree(x, y *torch.Tensor) (*torch.Tensor, error) {
	s, err := x.Add(y)
	x.Free()
	return s, err
}

// then applies f to x and releases x (an intermediate result).
func then(x *torch.Tensor, f func(*torch.Tensor) (*torch.Tensor, error)) (*torch.Tensor, error) {
	y, err := f(x)
	x.Free()
	return y, err
}
