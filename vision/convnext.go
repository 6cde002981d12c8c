package vision

import (
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
)

// cnBlock is torchvision's ConvNeXt CNBlock: `block` (7x7 depthwise
// convolution, channels-last layer norm, Linear(dim, 4dim), GELU,
// Linear(4dim, dim)) scaled per channel by layer_scale, through stochastic
// depth, plus the input. Parameters: layer_scale [dim 1 1], block.0.*,
// block.2.*, block.3.*, block.5.*.
type cnBlock struct {
	nn.Node
	block *nn.Sequential
	scale *torch.Tensor
	depth *nn.StochasticDepth
}

// Forward is x + stochastic_depth(layer_scale * block(x)).
func (c *cnBlock) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	y, err := c.block.Forward(x)
	if err != nil {
		return nil, err
	}
	if y, err = then(y, c.scale.Mul); err != nil {
		return nil, err
	}
	if y, err = then(y, c.depth.Forward); err != nil {
		return nil, err
	}
	return addAndFree(y, x)
}

// convnextTiny is torchvision's block setting for convnext_tiny: (input
// channels, output channels or 0 for the last stage, blocks).
var convnextTiny = [][3]int64{{96, 192, 3}, {192, 384, 3}, {384, 768, 9}, {768, 0, 3}}

// newConvNeXtTiny builds torchvision's convnext_tiny: a 4x4 stride-4 stem
// with LayerNorm2d, four stages of CNBlocks separated by LayerNorm2d and
// 2x2 stride-2 convolutions, layer norms with eps 1e-6, layer scale 1e-6,
// stochastic depth rising linearly from 0 to 0.1 (block/17), classifier
// LayerNorm2d, Flatten, Linear(768, classes); N(0, 0.02) convolution and
// linear weights (torchvision's trunc_normal_ cuts at ±2, 100 standard
// deviations: the same distribution), zero biases. Stages: features.0 ..
// features.7.
func newConvNeXtTiny(cfg BackboneConfig) (Backbone, error) {
	const arch = ArchConvNeXtTiny
	cfg, err := cfg.check(arch, 32)
	if err != nil {
		return nil, err
	}
	const eps, layerScale, depthProb = 1e-6, 1e-6, 0.1
	b := &builder{}
	weightInit, zero := torch.InitNormal(0, 0.02), torch.InitConstant(0)
	conv := func(in, out, k, stride, pad, groups int64) *nn.Conv2d {
		c := b.conv(in, out, k, stride, pad, groups, true)
		if b.err == nil {
			b.init(c.Weight, weightInit)
		}
		return c
	}
	features := nn.NewSequential(nn.NewSequential(conv(3, 96, 4, 4, 0, 1), b.layerNorm(96, eps, true)))
	total := int64(0)
	for _, s := range convnextTiny {
		total += s[2]
	}
	id := int64(0)
	for _, s := range convnextTiny {
		dim := s[0]
		stage := nn.NewSequential()
		for range s[2] {
			if b.err != nil {
				break
			}
			blk := &cnBlock{block: nn.NewSequential(
				conv(dim, dim, 7, 1, 3, dim),
				nn.Permute{Dims: []int64{0, 2, 3, 1}},
				b.layerNorm(dim, eps, false),
				b.linear(dim, 4*dim, &weightInit, &zero),
				nn.Activation{Kind: nn.ActGELU},
				b.linear(4*dim, dim, &weightInit, &zero),
				nn.Permute{Dims: []int64{0, 3, 1, 2}},
			), depth: nn.NewStochasticDepth(depthProb*float64(id)/float64(total-1), torch.StochasticDepthRow)}
			if b.err == nil {
				blk.scale, b.err = torch.Full([]int64{dim, 1, 1}, layerScale, torch.Options{})
			}
			if b.err == nil {
				b.made = append(b.made, blk.scale)
				b.err = blk.scale.SetRequiresGrad(true)
			}
			blk.AddParam("layer_scale", blk.scale)
			blk.Add("block", blk.block)
			blk.Add("stochastic_depth", blk.depth)
			stage.Children = append(stage.Children, blk)
			id++
		}
		features.Children = append(features.Children, stage)
		if s[1] != 0 {
			features.Children = append(features.Children, nn.NewSequential(b.layerNorm(dim, eps, true), conv(dim, s[1], 2, 2, 0, 1)))
		}
	}
	classifier := nn.NewSequential(b.layerNorm(768, eps, false), nn.NewFlatten(), b.linear(768, int64(cfg.NumClasses), &weightInit, &zero))
	return finishMobile(b, arch, cfg, features, classifier, 768, "classifier.2.")
}
