package nn

import (
	"fmt"

	"github.com/fertorch/fertorch/torch"
)

// MultiheadAttention is torch.nn.MultiheadAttention for self-attention with
// batch_first=True, no masks and no attention dropout, as torchvision's ViT
// uses it: x [N, L, E] is projected by the packed in_proj_weight [3E, E]
// and in_proj_bias [3E] into queries, keys and values, split into Heads
// heads, combined by scaled dot-product attention and projected by
// out_proj. Parameters: in_proj_weight, in_proj_bias, out_proj.weight,
// out_proj.bias.
type MultiheadAttention struct {
	Embed, Heads int64
	InProjWeight *torch.Tensor
	InProjBias   *torch.Tensor
	OutProj      *Linear
}

// NewMultiheadAttention creates the layer with PyTorch's initialisation:
// Xavier-uniform in_proj_weight, zero in_proj_bias and out_proj.bias,
// out_proj.weight as a Linear's.
func NewMultiheadAttention(embed, heads int64) (*MultiheadAttention, error) {
	if embed <= 0 || heads <= 0 || embed%heads != 0 {
		return nil, fmt.Errorf("nn: multi-head attention needs an embedding size divisible by the head count, got %d and %d", embed, heads)
	}
	w, err := newParameter([]int64{3 * embed, embed}, torch.InitXavierUniform(1))
	if err != nil {
		return nil, fmt.Errorf("nn: attention in_proj_weight: %w", err)
	}
	b, err := newParameter([]int64{3 * embed}, torch.InitConstant(0))
	if err != nil {
		w.Free()
		return nil, fmt.Errorf("nn: attention in_proj_bias: %w", err)
	}
	out, err := NewLinear(embed, embed, true)
	if err == nil {
		err = torch.NoGrad(func() error { return out.Bias.Initialize(torch.InitConstant(0)) })
	}
	if err != nil {
		w.Free()
		b.Free()
		if out != nil {
			Free(out)
		}
		return nil, fmt.Errorf("nn: attention out_proj: %w", err)
	}
	return &MultiheadAttention{Embed: embed, Heads: heads, InProjWeight: w, InProjBias: b, OutProj: out}, nil
}

// Forward attends x [N, L, E] to itself and returns [N, L, E].
func (a *MultiheadAttention) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	shape := x.Shape()
	if len(shape) != 3 || shape[2] != a.Embed {
		return nil, fmt.Errorf("multi-head attention expects [N L %d], got %v", a.Embed, shape)
	}
	n, l, hd := shape[0], shape[1], a.Embed/a.Heads
	proj, err := x.Linear(a.InProjWeight, a.InProjBias)
	if err != nil {
		return nil, err
	}
	// [N, L, 3E] -> [3, N, H, L, hd]
	qkv, err := then(proj, func(t *torch.Tensor) (*torch.Tensor, error) { return t.Reshape(n, l, 3, a.Heads, hd) })
	if err != nil {
		return nil, err
	}
	if qkv, err = then(qkv, func(t *torch.Tensor) (*torch.Tensor, error) { return t.Permute(2, 0, 3, 1, 4) }); err != nil {
		return nil, err
	}
	defer qkv.Free()
	var parts [3]*torch.Tensor
	for i := range parts {
		if parts[i], err = qkv.Select(0, int64(i)); err != nil {
			return nil, err
		}
		defer parts[i].Free()
	}
	att, err := torch.ScaledDotProductAttention(parts[0], parts[1], parts[2])
	if err != nil {
		return nil, err
	}
	// [N, H, L, hd] -> [N, L, E]
	if att, err = then(att, func(t *torch.Tensor) (*torch.Tensor, error) { return t.Permute(0, 2, 1, 3) }); err != nil {
		return nil, err
	}
	if att, err = then(att, func(t *torch.Tensor) (*torch.Tensor, error) { return t.Reshape(n, l, a.Embed) }); err != nil {
		return nil, err
	}
	return then(att, a.OutProj.Forward)
}

// Parameters are in_proj_weight, in_proj_bias, out_proj.weight and
// out_proj.bias.
func (a *MultiheadAttention) Parameters() []torch.NamedTensor {
	return append([]torch.NamedTensor{{Name: "in_proj_weight", Tensor: a.InProjWeight}, {Name: "in_proj_bias", Tensor: a.InProjBias}},
		Prefixed("out_proj", a.OutProj.Parameters())...)
}

// SetTraining has no effect (no attention dropout).
func (a *MultiheadAttention) SetTraining(bool) {}

// OutputShape is the input shape.
func (a *MultiheadAttention) OutputShape(in []int64) ([]int64, error) { return in, nil }

// then applies f to x and releases x (an intermediate result).
func then(x *torch.Tensor, f func(*torch.Tensor) (*torch.Tensor, error)) (*torch.Tensor, error) {
	y, err := f(x)
	x.Free()
	return y, err
}
