package nn

import (
	"fmt"

	"github.com/fertorch/fertorch/torch"
)

// ActivationKind names an element-wise activation.
type ActivationKind int

// Activations, as the torch.nn modules of the same names.
const (
	ActReLU ActivationKind = iota
	ActSiLU
	ActHardswish
	ActHardsigmoid
	ActSigmoid
	ActGELU
	ActGELUTanh
)

var activationNames = [...]string{"ReLU", "SiLU", "Hardswish", "Hardsigmoid", "Sigmoid", "GELU", "GELU(tanh)"}

// String is the torch.nn module's name.
func (k ActivationKind) String() string {
	if int(k) < len(activationNames) {
		return activationNames[k]
	}
	return fmt.Sprintf("ActivationKind(%d)", int(k))
}

// Activation is a parameter-free element-wise activation module.
type Activation struct{ Kind ActivationKind }

// Forward applies the activation.
func (a Activation) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	switch a.Kind {
	case ActReLU:
		return x.Relu()
	case ActSiLU:
		return x.Silu()
	case ActHardswish:
		return x.Hardswish()
	case ActHardsigmoid:
		return x.Hardsigmoid()
	case ActSigmoid:
		return x.Sigmoid()
	case ActGELU:
		return x.Gelu()
	case ActGELUTanh:
		return x.GeluTanh()
	}
	return nil, fmt.Errorf("nn: unknown activation %v", a.Kind)
}

// Parameters is empty.
func (Activation) Parameters() []torch.NamedTensor { return nil }

// SetTraining has no effect.
func (Activation) SetTraining(bool) {}

// OutputShape is the input shape.
func (Activation) OutputShape(in []int64) ([]int64, error) { return in, nil }

// ---- LayerNorm ------------------------------------------------------------------

// LayerNorm is torch.nn.LayerNorm over the last dimension, of size
// Features, with a learned element-wise weight (1) and bias (0).
type LayerNorm struct {
	Features     int64
	Eps          float64
	Weight, Bias *torch.Tensor
	// ChannelsFirst normalises dimension 1 of an NCHW tensor instead, as
	// torchvision's ConvNeXt LayerNorm2d: permute to NHWC, normalise the
	// channels, permute back. The parameters are the same.
	ChannelsFirst bool
}

// NewLayerNorm creates a layer norm with PyTorch's initialisation (weight
// 1, bias 0).
func NewLayerNorm(features int64, eps float64) (*LayerNorm, error) {
	if features <= 0 {
		return nil, fmt.Errorf("nn: layer_norm needs a positive size, got %d", features)
	}
	w, err := newParameter([]int64{features}, torch.InitConstant(1))
	if err != nil {
		return nil, fmt.Errorf("nn: layer_norm weight: %w", err)
	}
	b, err := newParameter([]int64{features}, torch.InitConstant(0))
	if err != nil {
		w.Free()
		return nil, fmt.Errorf("nn: layer_norm bias: %w", err)
	}
	return &LayerNorm{Features: features, Eps: eps, Weight: w, Bias: b}, nil
}

// Forward normalises x.
func (l *LayerNorm) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	shape := []int64{l.Features}
	if !l.ChannelsFirst {
		return x.LayerNorm(shape, l.Weight, l.Bias, l.Eps)
	}
	nhwc, err := x.Permute(0, 2, 3, 1)
	if err != nil {
		return nil, err
	}
	defer nhwc.Free()
	n, err := nhwc.LayerNorm(shape, l.Weight, l.Bias, l.Eps)
	if err != nil {
		return nil, err
	}
	defer n.Free()
	return n.Permute(0, 3, 1, 2)
}

// Parameters are "weight" and "bias".
func (l *LayerNorm) Parameters() []torch.NamedTensor { return weightAndBias(l.Weight, l.Bias) }

// SetTraining has no effect.
func (l *LayerNorm) SetTraining(bool) {}

// OutputShape is the input shape.
func (l *LayerNorm) OutputShape(in []int64) ([]int64, error) {
	dim := len(in) - 1
	if l.ChannelsFirst {
		dim = 1
	}
	if dim < 0 || dim >= len(in) || in[dim] != l.Features {
		return nil, fmt.Errorf("layer_norm of %d features cannot normalise shape %v", l.Features, in)
	}
	return in, nil
}

// ---- StochasticDepth -------------------------------------------------------------

// StochasticDepth is torchvision.ops.StochasticDepth: in training mode it
// drops a residual branch per sample (or per batch) with probability P.
// New layers start in training mode, as in PyTorch.
type StochasticDepth struct {
	P        float64
	Mode     torch.StochasticDepthMode
	training bool
}

// NewStochasticDepth creates a stochastic-depth layer in training mode.
func NewStochasticDepth(p float64, mode torch.StochasticDepthMode) *StochasticDepth {
	return &StochasticDepth{P: p, Mode: mode, training: true}
}

// Forward drops rows in training mode and is the identity otherwise.
func (s *StochasticDepth) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	return x.StochasticDepth(s.P, s.Mode, s.training)
}

// Parameters is empty.
func (s *StochasticDepth) Parameters() []torch.NamedTensor { return nil }

// SetTraining switches stochastic depth on (true) or off.
func (s *StochasticDepth) SetTraining(training bool) { s.training = training }

// OutputShape is the input shape.
func (s *StochasticDepth) OutputShape(in []int64) ([]int64, error) { return in, nil }

// ---- Permute ----------------------------------------------------------------------

// Permute reorders dimensions (torchvision.ops.Permute).
type Permute struct{ Dims []int64 }

// Forward permutes x.
func (p Permute) Forward(x *torch.Tensor) (*torch.Tensor, error) { return x.Permute(p.Dims...) }

// Parameters is empty.
func (Permute) Parameters() []torch.NamedTensor { return nil }

// SetTraining has no effect.
func (Permute) SetTraining(bool) {}

// OutputShape permutes the shape.
func (p Permute) OutputShape(in []int64) ([]int64, error) {
	if len(in) != len(p.Dims) {
		return nil, fmt.Errorf("permute %v of shape %v", p.Dims, in)
	}
	out := make([]int64, len(in))
	for i, d := range p.Dims {
		if d < 0 || int(d) >= len(in) {
			return nil, fmt.Errorf("permute %v of shape %v", p.Dims, in)
		}
		out[i] = in[d]
	}
	return out, nil
}
