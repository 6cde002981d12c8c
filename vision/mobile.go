package vision

import (
	"fmt"
	"math"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
)

// This file holds torchvision's mobile architectures: mobilenet_v3_large
// and efficientnet_b0, built from the same pieces (Conv2dNormActivation,
// SqueezeExcitation, inverted-residual blocks).

// makeDivisible is torchvision's _make_divisible(v, 8): v rounded to the
// nearest multiple of 8, never below 8 nor more than 10% below v.
func makeDivisible(v float64) int64 {
	n := max(int64(8), int64(v+4)/8*8)
	if float64(n) < 0.9*v {
		n += 8
	}
	return n
}

// convNormAct is torchvision's Conv2dNormActivation: a bias-free
// convolution padded to keep the size ((k-1)/2), batch norm, and an
// activation unless act is nil. Parameters: 0.weight, 1.*.
func (b *builder) convNormAct(in, out, kernel, stride, groups int64, eps, momentum float64, act *nn.ActivationKind) *nn.Sequential {
	c := b.conv(in, out, kernel, stride, (kernel-1)/2, groups, false)
	n := b.bn(out, eps, momentum)
	if b.err != nil {
		return nil
	}
	s := nn.NewSequential(c, n)
	if act != nil {
		s.Children = append(s.Children, nn.Activation{Kind: *act})
	}
	return s
}

func actPtr(k nn.ActivationKind) *nn.ActivationKind { return &k }

// squeezeExcitation is torchvision.ops.SqueezeExcitation: global average
// pool, 1x1 convolution down (fc1), activation, 1x1 convolution up (fc2),
// gate, times the input. Parameters: fc1.*, fc2.*.
type squeezeExcitation struct {
	nn.Node
	fc1, fc2  *nn.Conv2d
	act, gate nn.Activation
}

func (b *builder) squeezeExcitation(channels, squeeze int64, act, gate nn.ActivationKind) *squeezeExcitation {
	se := &squeezeExcitation{fc1: b.conv(channels, squeeze, 1, 1, 0, 1, true), fc2: b.conv(squeeze, channels, 1, 1, 0, 1, true),
		act: nn.Activation{Kind: act}, gate: nn.Activation{Kind: gate}}
	if b.err != nil {
		return nil
	}
	se.Add("fc1", se.fc1)
	se.Add("fc2", se.fc2)
	return se
}

// Forward scales x's channels by the gate.
func (s *squeezeExcitation) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	pooled, err := x.AdaptiveAvgPool2d(1, 1)
	if err != nil {
		return nil, err
	}
	scale, err := nn.Chain(pooled, s.fc1, s.act, s.fc2, s.gate)
	pooled.Free()
	if err != nil {
		return nil, err
	}
	defer scale.Free()
	return scale.Mul(x)
}

// invertedResidual is MobileNetV3's InvertedResidual and EfficientNet's
// MBConv: `block` (expand, depthwise, squeeze-excitation, project), and a
// shortcut when the shape is kept, after stochastic depth (EfficientNet).
type invertedResidual struct {
	nn.Node
	block    *nn.Sequential
	residual bool
	depth    *nn.StochasticDepth
}

// Forward is block(x), plus x when the block keeps the shape.
func (r *invertedResidual) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	y, err := r.block.Forward(x)
	if err != nil || !r.residual {
		return y, err
	}
	if r.depth != nil {
		if y, err = then(y, r.depth.Forward); err != nil {
			return nil, err
		}
	}
	return addAndFree(y, x)
}

type invertedConfig struct {
	in, kernel, expanded, out int64
	se                        bool
	act                       nn.ActivationKind
	stride                    int64
}

// mobileNetV3Large is torchvision's inverted_residual_setting for
// mobilenet_v3_large (width 1.0, no reduced tail, no dilation).
var mobileNetV3Large = []invertedConfig{
	{16, 3, 16, 16, false, nn.ActReLU, 1},
	{16, 3, 64, 24, false, nn.ActReLU, 2},
	{24, 3, 72, 24, false, nn.ActReLU, 1},
	{24, 5, 72, 40, true, nn.ActReLU, 2},
	{40, 5, 120, 40, true, nn.ActReLU, 1},
	{40, 5, 120, 40, true, nn.ActReLU, 1},
	{40, 3, 240, 80, false, nn.ActHardswish, 2},
	{80, 3, 200, 80, false, nn.ActHardswish, 1},
	{80, 3, 184, 80, false, nn.ActHardswish, 1},
	{80, 3, 184, 80, false, nn.ActHardswish, 1},
	{80, 3, 480, 112, true, nn.ActHardswish, 1},
	{112, 3, 672, 112, true, nn.ActHardswish, 1},
	{112, 5, 672, 160, true, nn.ActHardswish, 2},
	{160, 5, 960, 160, true, nn.ActHardswish, 1},
	{160, 5, 960, 160, true, nn.ActHardswish, 1},
}

// newMobileNetV3Large builds torchvision's mobilenet_v3_large: batch norms
// with eps 0.001 and momentum 0.01, Hardsigmoid-gated squeeze-excitation,
// classifier Linear(960, 1280), Hardswish, Dropout(0.2), Linear(1280,
// classes); Kaiming-normal (fan_out) convolutions, N(0, 0.01) linear
// weights, zero biases. Stages: features.0 .. features.16.
func newMobileNetV3Large(cfg BackboneConfig) (Backbone, error) {
	const arch = ArchMobileNetV3Large
	cfg, err := cfg.check(arch, 1)
	if err != nil {
		return nil, err
	}
	const eps, momentum = 0.001, 0.01
	b := &builder{}
	features := nn.NewSequential(b.convNormAct(3, 16, 3, 2, 1, eps, momentum, actPtr(nn.ActHardswish)))
	for _, c := range mobileNetV3Large {
		if b.err != nil {
			break
		}
		blk := &invertedResidual{block: nn.NewSequential(), residual: c.stride == 1 && c.in == c.out}
		if c.expanded != c.in {
			blk.block.Children = append(blk.block.Children, b.convNormAct(c.in, c.expanded, 1, 1, 1, eps, momentum, &c.act))
		}
		blk.block.Children = append(blk.block.Children, b.convNormAct(c.expanded, c.expanded, c.kernel, c.stride, c.expanded, eps, momentum, &c.act))
		if c.se {
			blk.block.Children = append(blk.block.Children, b.squeezeExcitation(c.expanded, makeDivisible(float64(c.expanded/4)), nn.ActReLU, nn.ActHardsigmoid))
		}
		blk.block.Children = append(blk.block.Children, b.convNormAct(c.expanded, c.out, 1, 1, 1, eps, momentum, nil))
		blk.Add("block", blk.block)
		features.Children = append(features.Children, blk)
	}
	features.Children = append(features.Children, b.convNormAct(160, 960, 1, 1, 1, eps, momentum, actPtr(nn.ActHardswish)))
	normal := torch.InitNormal(0, 0.01)
	zero := torch.InitConstant(0)
	classifier := nn.NewSequential(b.linear(960, 1280, &normal, &zero), nn.Activation{Kind: nn.ActHardswish}, nn.NewDropout(0.2), b.linear(1280, int64(cfg.NumClasses), &normal, &zero))
	return finishMobile(b, arch, cfg, features, classifier, 960, "classifier.3.")
}

// mbConfig is a row of torchvision's EfficientNet setting.
type mbConfig struct {
	expand, kernel, stride, in, out int64
	layers                          int
}

// efficientNetB0 is torchvision's inverted_residual_setting for
// efficientnet_b0 (width and depth 1.0).
var efficientNetB0 = []mbConfig{
	{1, 3, 1, 32, 16, 1},
	{6, 3, 2, 16, 24, 2},
	{6, 5, 2, 24, 40, 2},
	{6, 3, 2, 40, 80, 3},
	{6, 5, 1, 80, 112, 3},
	{6, 5, 2, 112, 192, 4},
	{6, 3, 1, 192, 320, 1},
}

// newEfficientNetB0 builds torchvision's efficientnet_b0: SiLU
// activations, batch norms with PyTorch's defaults (eps 1e-5, momentum
// 0.1), SiLU/Sigmoid squeeze-excitation of input/4 channels, stochastic
// depth rising linearly from 0 to 0.2 (times block/16) on the residual
// blocks, classifier Dropout(0.2), Linear(1280, classes); Kaiming-normal
// (fan_out) convolutions, U(±1/sqrt(classes)) linear weights, zero
// biases. Stages: features.0 .. features.8.
func newEfficientNetB0(cfg BackboneConfig) (Backbone, error) {
	const arch = ArchEfficientNetB0
	cfg, err := cfg.check(arch, 1)
	if err != nil {
		return nil, err
	}
	const eps, momentum, depthProb = 1e-5, 0.1, 0.2
	silu := actPtr(nn.ActSiLU)
	b := &builder{}
	features := nn.NewSequential(b.convNormAct(3, 32, 3, 2, 1, eps, momentum, silu))
	total := 0
	for _, c := range efficientNetB0 {
		total += c.layers
	}
	id := 0
	for _, c := range efficientNetB0 {
		stage := nn.NewSequential()
		in, stride := c.in, c.stride
		for range c.layers {
			if b.err != nil {
				break
			}
			expanded := makeDivisible(float64(in * c.expand))
			blk := &invertedResidual{block: nn.NewSequential(), residual: stride == 1 && in == c.out,
				depth: nn.NewStochasticDepth(depthProb*float64(id)/float64(total), torch.StochasticDepthRow)}
			if expanded != in {
				blk.block.Children = append(blk.block.Children, b.convNormAct(in, expanded, 1, 1, 1, eps, momentum, silu))
			}
			blk.block.Children = append(blk.block.Children,
				b.convNormAct(expanded, expanded, c.kernel, stride, expanded, eps, momentum, silu),
				b.squeezeExcitation(expanded, max(1, in/4), nn.ActSiLU, nn.ActSigmoid),
				b.convNormAct(expanded, c.out, 1, 1, 1, eps, momentum, nil))
			blk.Add("block", blk.block)
			blk.Add("stochastic_depth", blk.depth)
			stage.Children = append(stage.Children, blk)
			in, stride = c.out, 1
			id++
		}
		features.Children = append(features.Children, stage)
	}
	features.Children = append(features.Children, b.convNormAct(320, 1280, 1, 1, 1, eps, momentum, silu))
	bound := 1 / math.Sqrt(float64(cfg.NumClasses))
	uniform := torch.InitUniform(-bound, bound)
	zero := torch.InitConstant(0)
	classifier := nn.NewSequential(nn.NewDropout(0.2), b.linear(1280, int64(cfg.NumClasses), &uniform, &zero))
	return finishMobile(b, arch, cfg, features, classifier, 1280, "classifier.1.")
}

// finishMobile assembles a network of torchvision's shape `features`,
// `avgpool`, `classifier` (MobileNetV3, EfficientNet, ConvNeXt), with one
// stage per entry of features.
func finishMobile(b *builder, arch Arch, cfg BackboneConfig, features, classifier *nn.Sequential, width int64, final string) (Backbone, error) {
	n := &network{arch: arch, cfg: cfg, width: width, classifier: final, head: classifier, training: true}
	n.Add("features", features)
	n.Add("classifier", classifier)
	if b.err != nil {
		b.release()
		return nil, fmt.Errorf("%s: %w", arch, b.err)
	}
	for i, m := range features.Children {
		name := fmt.Sprintf("features.%d", i)
		n.stages = append(n.stages, Stage{Name: name, Modules: []nn.NamedModule{{Name: name, Module: m}}})
	}
	n.features = func(x *torch.Tensor, observe func(int, *torch.Tensor)) (*torch.Tensor, error) {
		y, err := x.Share()
		if err != nil {
			return nil, err
		}
		for i, m := range features.Children {
			if y, err = then(y, m.Forward); err != nil {
				return nil, fmt.Errorf("features.%d: %w", i, err)
			}
			if observe != nil {
				observe(i, y)
			}
		}
		if y, err = then(y, func(t *torch.Tensor) (*torch.Tensor, error) { return t.AdaptiveAvgPool2d(1, 1) }); err != nil {
			return nil, err
		}
		return then(y, func(t *torch.Tensor) (*torch.Tensor, error) { return t.Flatten(1, -1) })
	}
	return n, nil
}
