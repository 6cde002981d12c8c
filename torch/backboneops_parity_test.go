package torch_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/fertorch/fertorch/torch"
)

// backboneCases are the operations that ResNet, MobileNetV3, EfficientNet,
// ConvNeXt and ViT add to VGG's: depthwise and grouped convolutions, their
// activations, layer normalisation (also ConvNeXt's channels-last
// LayerNorm2d), stochastic depth and attention.
func backboneCases() []*parityCase {
	rng := rand.New(rand.NewPCG(21, 5))
	x := func(lo, hi float32, shape ...int64) *parityInput { return floats(rng, "x", true, lo, hi, shape...) }
	conv := func(name string, c, out, k, stride, pad, groups int64) *parityCase {
		in := []*parityInput{x(-2, 2, 2, c, 11, 10), floats(rng, "w", true, -0.5, 0.5, out, c/groups, k, k), floats(rng, "b", true, -0.5, 0.5, out)}
		return &parityCase{Name: name, Op: "conv2d", Inputs: in,
			Args: map[string]any{"stride": []int64{stride, stride}, "padding": []int64{pad, pad}, "dilation": []int64{1, 1}, "groups": groups},
			run: func(in map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				return one(in["x"].Conv2d(in["w"], in["b"], torch.Conv2dOptions{
					Stride: [2]int64{stride, stride}, Padding: [2]int64{pad, pad}, Groups: groups}))
			}}
	}
	act := func(op string, f func(*torch.Tensor) (*torch.Tensor, error)) *parityCase {
		// [-5, 5) covers every piece of hardswish and hardsigmoid.
		return &parityCase{Name: op, Op: op, Inputs: []*parityInput{x(-5, 5, 4, 3, 7)},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) { return one(f(m["x"])) }}
	}
	layerNorm := func(name string, shape, norm []int64, affine bool) *parityCase {
		in := []*parityInput{x(-3, 3, shape...)}
		if affine {
			in = append(in, floats(rng, "w", true, 0.5, 1.5, norm...), floats(rng, "b", true, -0.5, 0.5, norm...))
		}
		return &parityCase{Name: name, Op: "layer_norm", Inputs: in, Args: map[string]any{"shape": norm, "eps": 1e-6},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				return one(m["x"].LayerNorm(norm, m["w"], m["b"], 1e-6))
			}}
	}
	depth := func(name string, p float64, mode torch.StochasticDepthMode, train bool, seed uint64) *parityCase {
		modeName := "row"
		if mode == torch.StochasticDepthBatch {
			modeName = "batch"
		}
		return &parityCase{Name: name, Op: "stochastic_depth", Inputs: []*parityInput{x(-2, 2, 16, 3, 2, 2)},
			Args: map[string]any{"p": p, "mode": modeName, "train": train, "seed": seed},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				if err := torch.ManualSeed(seed); err != nil {
					return nil, err
				}
				return one(m["x"].StochasticDepth(p, mode, train))
			}}
	}
	qkv := func(sq, sk, sv []int64) []*parityInput {
		return []*parityInput{floats(rng, "q", true, -2, 2, sq...), floats(rng, "k", true, -2, 2, sk...), floats(rng, "v", true, -2, 2, sv...)}
	}
	return []*parityCase{
		// MobileNetV3 and EfficientNet's depthwise 3x3 and 5x5, ConvNeXt's 7x7.
		conv("conv2d_depthwise_3x3_s2", 6, 6, 3, 2, 1, 6),
		conv("conv2d_depthwise_5x5", 4, 4, 5, 1, 2, 4),
		conv("conv2d_depthwise_7x7", 4, 4, 7, 1, 3, 4),
		conv("conv2d_depthwise_multiplier2", 3, 6, 3, 1, 1, 3),
		conv("conv2d_groups3", 6, 9, 3, 1, 1, 3),
		act("silu", (*torch.Tensor).Silu),
		act("hardswish", (*torch.Tensor).Hardswish),
		act("hardsigmoid", (*torch.Tensor).Hardsigmoid),
		act("gelu", (*torch.Tensor).Gelu),
		act("gelu_tanh", (*torch.Tensor).GeluTanh),
		layerNorm("layer_norm_last", []int64{2, 5, 7}, []int64{7}, true),
		layerNorm("layer_norm_last_two", []int64{2, 5, 7}, []int64{5, 7}, true),
		layerNorm("layer_norm_plain", []int64{3, 9}, []int64{9}, false),
		// ConvNeXt's LayerNorm2d: NCHW -> NHWC, normalise channels, -> NCHW.
		{Name: "layer_norm_2d", Op: "layer_norm_2d", Inputs: []*parityInput{x(-3, 3, 2, 8, 3, 4), floats(rng, "w", true, 0.5, 1.5, 8), floats(rng, "b", true, -0.5, 0.5, 8)},
			Args: map[string]any{"eps": 1e-6},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				p, err := m["x"].Permute(0, 2, 3, 1)
				if err != nil {
					return nil, err
				}
				n, err := p.LayerNorm([]int64{8}, m["w"], m["b"], 1e-6)
				if err != nil {
					return nil, err
				}
				return one(n.Permute(0, 3, 1, 2))
			}},
		depth("stochastic_depth_row", 0.3, torch.StochasticDepthRow, true, 9),
		depth("stochastic_depth_batch", 0.4, torch.StochasticDepthBatch, true, 4),
		depth("stochastic_depth_eval", 0.3, torch.StochasticDepthRow, false, 9),
		depth("stochastic_depth_all_dropped", 1, torch.StochasticDepthRow, true, 2),
		{Name: "attention_heads", Op: "attention", Inputs: qkv([]int64{2, 3, 5, 8}, []int64{2, 3, 6, 8}, []int64{2, 3, 6, 4}),
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				return one(torch.ScaledDotProductAttention(m["q"], m["k"], m["v"]))
			}},
		{Name: "attention_3d", Op: "attention", Inputs: qkv([]int64{4, 7, 6}, []int64{4, 7, 6}, []int64{4, 7, 6}),
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				return one(torch.ScaledDotProductAttention(m["q"], m["k"], m["v"]))
			}},
		{Name: "matmul_batched_4d", Op: "matmul", Inputs: []*parityInput{floats(rng, "a", true, -2, 2, 2, 3, 5, 8), floats(rng, "b", true, -2, 2, 2, 3, 8, 6)},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) { return one(m["a"].Matmul(m["b"])) }},
	}
}

// TestBackboneOpParityWithPyTorch compares the backbones' operations with
// PyTorch's, forward and backward (max abs diff 1e-5).
func TestBackboneOpParityWithPyTorch(t *testing.T) {
	runParity(t, "testdata/parity_backbone.py", backboneCases())
}

// TestBackboneOpErrors: bad arguments come back as errors naming the
// operation, never as a crash.
func TestBackboneOpErrors(t *testing.T) {
	scope := torch.NewScope()
	defer scope.Close()
	x, err := scope.Own(torch.Zeros([]int64{2, 3, 4}, torch.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	w, err := scope.Own(torch.Ones([]int64{5}, torch.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		op  string
		run func() (*torch.Tensor, error)
	}{
		{"layer_norm", func() (*torch.Tensor, error) { return x.LayerNorm([]int64{5}, w, nil, 1e-5) }},
		{"stochastic_depth", func() (*torch.Tensor, error) { return x.StochasticDepth(1.5, torch.StochasticDepthRow, true) }},
		{"scaled_dot_product_attention", func() (*torch.Tensor, error) { return torch.ScaledDotProductAttention(x, w, x) }},
		{"conv2d", func() (*torch.Tensor, error) {
			img, err := scope.Own(torch.Zeros([]int64{1, 4, 5, 5}, torch.Options{}))
			if err != nil {
				return nil, err
			}
			k, err := scope.Own(torch.Zeros([]int64{4, 1, 3, 3}, torch.Options{}))
			if err != nil {
				return nil, err
			}
			return img.Conv2d(k, nil, torch.Conv2dOptions{Groups: 3}) // 4 channels in 3 groups
		}},
	}
	for _, c := range checks {
		_, err := c.run()
		var te *torch.Error
		if !errors.As(err, &te) || te.Op != c.op {
			t.Errorf("%s: got %v, want a *torch.Error for %s", c.op, err, c.op)
		}
	}
	// Evaluation mode, or p = 0, is the identity.
	for _, c := range []struct {
		p     float64
		train bool
	}{{0.5, false}, {0, true}} {
		y, err := x.StochasticDepth(c.p, torch.StochasticDepthRow, c.train)
		if err != nil {
			t.Fatal(err)
		}
		if !sameShape(y.Shape(), x.Shape()) {
			t.Errorf("identity stochastic depth changed the shape to %v", y.Shape())
		}
	}
}
