package vision

import (
	"fmt"
	"math"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
)

// encoderBlock is torchvision's ViT EncoderBlock: x + attention(ln_1(x)),
// then that plus mlp(ln_2(·)). Parameters: ln_1.*, self_attention.*,
// ln_2.*, mlp.0.*, mlp.3.*.
type encoderBlock struct {
	nn.Node
	ln1, ln2  *nn.LayerNorm
	attention *nn.MultiheadAttention
	mlp       *nn.Sequential
}

// Forward runs the pre-norm attention and MLP sublayers with their
// residual connections.
func (e *encoderBlock) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	a, err := nn.Chain(x, e.ln1, e.attention)
	if err != nil {
		return nil, fmt.Errorf("self_attention: %w", err)
	}
	h, err := addAndFree(a, x)
	if err != nil {
		return nil, err
	}
	m, err := nn.Chain(h, e.ln2, e.mlp)
	if err != nil {
		h.Free()
		return nil, fmt.Errorf("mlp: %w", err)
	}
	out, err := m.Add(h)
	m.Free()
	h.Free()
	return out, err
}

// newViTB16 builds torchvision's vit_b_16 for square inputs of
// cfg.InputSize (a multiple of 16; 224 for the ImageNet weights):
// 16x16 patches projected to 768, a class token, learned position
// embeddings, 12 pre-norm encoder blocks (12 heads, MLP 3072, GELU, layer
// norms with eps 1e-6, no dropout), a final layer norm and heads.head on
// the class token. Initialisation as torchvision's: conv_proj N(0,
// 1/sqrt(768)) (trunc_normal_, cut at ±2), zero class token, N(0, 0.02)
// position embeddings, Xavier-uniform MLP weights with N(0, 1e-6) biases,
// a zero head. Stages: stem (class_token, conv_proj,
// encoder.pos_embedding), encoder.layers.encoder_layer_0 .. _11,
// encoder.ln.
func newViTB16(cfg BackboneConfig) (Backbone, error) {
	const arch = ArchViTB16
	const patch, hidden, layers, heads, mlpDim, eps = 16, 768, 12, 12, 3072, 1e-6
	cfg, err := cfg.check(arch, patch)
	if err != nil {
		return nil, err
	}
	if cfg.InputSize%patch != 0 {
		return nil, fmt.Errorf("%s: input size %d is not a multiple of the patch size %d", arch, cfg.InputSize, patch)
	}
	side := int64(cfg.InputSize / patch)
	seq := side*side + 1
	b := &builder{}
	param := func(shape []int64, init torch.Init) *torch.Tensor {
		if b.err != nil {
			return nil
		}
		t, err := torch.Empty(shape, torch.Options{})
		if err != nil {
			b.err = err
			return nil
		}
		b.made = append(b.made, t)
		b.init(t, init)
		if b.err == nil {
			b.err = t.SetRequiresGrad(true)
		}
		return t
	}
	n := &network{arch: arch, cfg: cfg, width: hidden, classifier: "heads.head.", training: true}
	classToken := param([]int64{1, 1, hidden}, torch.InitConstant(0))
	convProj := b.conv(3, hidden, patch, patch, 0, 1, true)
	if b.err == nil {
		b.init(convProj.Weight, torch.InitNormal(0, math.Sqrt(1.0/(3*patch*patch))))
	}
	encoder := &nn.NamedSequential{}
	posEmbedding := param([]int64{1, seq, hidden}, torch.InitNormal(0, 0.02))
	encoder.AddParam("pos_embedding", posEmbedding)
	blocks := &nn.NamedSequential{}
	xavier, tiny := torch.InitXavierUniform(1), torch.InitNormal(0, 1e-6)
	for i := range layers {
		if b.err != nil {
			break
		}
		e := &encoderBlock{ln1: b.layerNorm(hidden, eps, false), ln2: b.layerNorm(hidden, eps, false)}
		if b.err == nil {
			e.attention, b.err = nn.NewMultiheadAttention(hidden, heads)
			if b.err == nil {
				b.own(e.attention)
			}
		}
		e.mlp = nn.NewSequential(b.linear(hidden, mlpDim, &xavier, &tiny), nn.Activation{Kind: nn.ActGELU}, nn.NewDropout(0),
			b.linear(mlpDim, hidden, &xavier, &tiny), nn.NewDropout(0))
		e.Add("ln_1", e.ln1)
		e.Add("self_attention", e.attention)
		e.Add("ln_2", e.ln2)
		e.Add("mlp", e.mlp)
		blocks.Add(fmt.Sprintf("encoder_layer_%d", i), e)
	}
	encoder.Add("layers", blocks)
	ln := b.layerNorm(hidden, eps, false)
	encoder.Add("ln", ln)
	zero := torch.InitConstant(0)
	headSeq := &nn.NamedSequential{}
	headSeq.Add("head", b.linear(hidden, int64(cfg.NumClasses), &zero, &zero))
	if b.err != nil {
		b.release()
		return nil, fmt.Errorf("%s: %w", arch, b.err)
	}
	n.AddParam("class_token", classToken)
	n.Add("conv_proj", convProj)
	n.Add("encoder", encoder)
	n.Add("heads", headSeq)
	n.head = headSeq
	n.stages = append(n.stages, Stage{Name: "stem", Modules: []nn.NamedModule{
		{Name: "class_token", Module: parameter{classToken}},
		{Name: "conv_proj", Module: convProj},
		{Name: "encoder.pos_embedding", Module: parameter{posEmbedding}},
	}})
	for _, c := range blocks.Children {
		name := "encoder.layers." + c.Name
		n.stages = append(n.stages, Stage{Name: name, Modules: []nn.NamedModule{{Name: name, Module: c.Module}}})
	}
	n.stages = append(n.stages, Stage{Name: "encoder.ln", Modules: []nn.NamedModule{{Name: "encoder.ln", Module: ln}}})
	n.features = func(x *torch.Tensor, observe func(int, *torch.Tensor)) (*torch.Tensor, error) {
		batch := x.Shape()[0]
		// conv_proj, [N, 768, h, w] -> [N, h*w, 768]
		y, err := convProj.Forward(x)
		if err != nil {
			return nil, fmt.Errorf("conv_proj: %w", err)
		}
		if y, err = then(y, func(t *torch.Tensor) (*torch.Tensor, error) { return t.Reshape(batch, hidden, -1) }); err != nil {
			return nil, err
		}
		if y, err = then(y, func(t *torch.Tensor) (*torch.Tensor, error) { return t.Permute(0, 2, 1) }); err != nil {
			return nil, err
		}
		// The class token, expanded over the batch (0 + token), in front.
		zeros, err := torch.Zeros([]int64{batch, 1, hidden}, torch.Options{Device: x.Device(), DType: x.DType()})
		if err != nil {
			y.Free()
			return nil, err
		}
		cls, err := zeros.Add(classToken)
		zeros.Free()
		if err != nil {
			y.Free()
			return nil, err
		}
		tokens, err := torch.Cat([]*torch.Tensor{cls, y}, 1)
		cls.Free()
		y.Free()
		if err != nil {
			return nil, err
		}
		if y, err = then(tokens, posEmbedding.Add); err != nil {
			return nil, fmt.Errorf("input of %d tokens against %d position embeddings (input size %d): %w", tokens.Shape()[1], seq, cfg.InputSize, err)
		}
		if observe != nil {
			observe(0, y)
		}
		for i, c := range blocks.Children {
			if y, err = then(y, c.Module.Forward); err != nil {
				return nil, fmt.Errorf("encoder_layer_%d: %w", i, err)
			}
			if observe != nil {
				observe(i+1, y)
			}
		}
		if y, err = then(y, ln.Forward); err != nil {
			return nil, err
		}
		if observe != nil {
			observe(len(blocks.Children)+1, y)
		}
		return then(y, func(t *torch.Tensor) (*torch.Tensor, error) { return t.Select(1, 0) })
	}
	return n, nil
}

// parameter presents a bare parameter (ViT's class token and position
// embeddings) as a module, so that a Stage can hold it; its one parameter
// has the empty name.
type parameter struct{ t *torch.Tensor }

func (p parameter) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	return nil, fmt.Errorf("a parameter is not a layer")
}

func (p parameter) Parameters() []torch.NamedTensor {
	return []torch.NamedTensor{{Name: "", Tensor: p.t}}
}

func (p parameter) SetTraining(bool) {}
