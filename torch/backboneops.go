package torch

/*
#include "fertorch.h"
*/
import "C"

// This file holds the operations of the backbones beyond VGG: the
// activations of MobileNetV3, EfficientNet, ConvNeXt and ViT, layer
// normalisation, stochastic depth and attention. Grouped and depthwise
// convolutions are Conv2d with Conv2dOptions.Groups.

func (t *Tensor) activation(op string, code C.int) (*Tensor, error) {
	return t.unaryCall(op, func(h C.fer_tensor, o *C.fer_tensor) *C.char { return C.fer_activation(code, h, o) })
}

// Silu is x * sigmoid(x) (torch.nn.SiLU, EfficientNet's activation).
func (t *Tensor) Silu() (*Tensor, error) { return t.activation("silu", C.FER_SILU) }

// Hardswish is x * relu6(x+3) / 6 (torch.nn.Hardswish, MobileNetV3's).
func (t *Tensor) Hardswish() (*Tensor, error) { return t.activation("hardswish", C.FER_HARDSWISH) }

// Hardsigmoid is relu6(x+3) / 6 (torch.nn.Hardsigmoid, MobileNetV3's
// squeeze-and-excitation gate).
func (t *Tensor) Hardsigmoid() (*Tensor, error) {
	return t.activation("hardsigmoid", C.FER_HARDSIGMOID)
}

// Gelu is x * Φ(x) with the exact error-function form (torch.nn.GELU(),
// as torchvision's ConvNeXt and ViT use).
func (t *Tensor) Gelu() (*Tensor, error) { return t.activation("gelu", C.FER_GELU) }

// GeluTanh is GELU's tanh approximation (torch.nn.GELU(approximate="tanh")).
func (t *Tensor) GeluTanh() (*Tensor, error) { return t.activation("gelu_tanh", C.FER_GELU_TANH) }

// LayerNorm is F.layer_norm: it normalises over the trailing dimensions
// given by normalizedShape (the last one for ConvNeXt and ViT) and applies
// the element-wise weight and bias (either may be nil).
func (t *Tensor) LayerNorm(normalizedShape []int64, weight, bias *Tensor, eps float64) (*Tensor, error) {
	ins := []named{{"input", t}}
	for _, n := range []named{{"weight", weight}, {"bias", bias}} {
		if n.t != nil {
			ins = append(ins, n)
		}
	}
	if err := live("layer_norm", ins...); err != nil {
		return nil, err
	}
	sp, nd := shapePtr(normalizedShape)
	var out C.fer_tensor
	msg := C.fer_layer_norm(t.h, sp, nd, weight.handle(), bias.handle(), C.double(eps), &out)
	return result("layer_norm", msg, out, ins...)
}

// StochasticDepthMode says what stochastic depth drops together.
type StochasticDepthMode int

// Stochastic depth modes, as torchvision.ops.stochastic_depth's "row" and
// "batch".
const (
	// StochasticDepthRow drops each sample's residual branch independently
	// (what torchvision's EfficientNet and ConvNeXt use).
	StochasticDepthRow StochasticDepthMode = iota
	// StochasticDepthBatch drops the whole batch's branch at once.
	StochasticDepthBatch
)

// StochasticDepth is torchvision.ops.stochastic_depth: in training mode each
// row (or the whole batch) is zeroed with probability p and the rest scaled
// by 1/(1-p); otherwise the result is a new handle to t. The draws come from
// libtorch's generator, in the same order as torchvision's, so that after
// ManualSeed(s) they equal PyTorch's after torch.manual_seed(s); the
// trainer's per-step seed therefore fixes them as it fixes dropout masks.
func (t *Tensor) StochasticDepth(p float64, mode StochasticDepthMode, train bool) (*Tensor, error) {
	in := named{"input", t}
	if err := live("stochastic_depth", in); err != nil {
		return nil, err
	}
	var out C.fer_tensor
	msg := C.fer_stochastic_depth(t.h, C.double(p), cbool(mode == StochasticDepthRow), cbool(train), &out)
	return result("stochastic_depth", msg, out, in)
}

// ScaledDotProductAttention is softmax(q·kᵀ/√E)·v over the last two
// dimensions of q [..., L, E], k [..., S, E] and v [..., S, Ev], batched
// over the leading ones. It uses libtorch's fused kernel where there is one
// (libtorch 2.0 and later; see HasFusedAttention) and matmul and softmax
// otherwise, as PyTorch 1.13's nn.MultiheadAttention does.
func ScaledDotProductAttention(q, k, v *Tensor) (*Tensor, error) {
	ins := []named{{"query", q}, {"key", k}, {"value", v}}
	if err := live("scaled_dot_product_attention", ins...); err != nil {
		return nil, err
	}
	var out C.fer_tensor
	msg := C.fer_scaled_dot_product_attention(q.h, k.h, v.h, &out)
	return result("scaled_dot_product_attention", msg, out, ins...)
}

// HasFusedAttention reports whether ScaledDotProductAttention runs
// libtorch's fused kernel.
func HasFusedAttention() bool { return C.fer_has_fused_attention() != 0 }
