package vision

import (
	"fmt"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
)

// resBlock is torchvision's BasicBlock (two 3x3 convolutions) or
// Bottleneck (1x1, 3x3 with the stride, 1x1 widening by 4: ResNet v1.5),
// each convolution followed by batch norm, with an optional downsample
// (1x1 convolution and batch norm) on the shortcut. Parameters: conv1.*,
// bn1.*, conv2.*, bn2.*[, conv3.*, bn3.*][, downsample.0.*, downsample.1.*].
type resBlock struct {
	nn.Node
	convs      []*nn.Conv2d
	bns        []*nn.BatchNorm2d
	downsample *nn.Sequential
}

func newResBlock(b *builder, bottleneck bool, in, planes, stride int64) (*resBlock, int64) {
	blk := &resBlock{}
	var plan []struct{ in, out, k, stride, pad int64 }
	out := planes
	if bottleneck {
		out = planes * 4
		plan = append(plan,
			struct{ in, out, k, stride, pad int64 }{in, planes, 1, 1, 0},
			struct{ in, out, k, stride, pad int64 }{planes, planes, 3, stride, 1},
			struct{ in, out, k, stride, pad int64 }{planes, out, 1, 1, 0})
	} else {
		plan = append(plan,
			struct{ in, out, k, stride, pad int64 }{in, planes, 3, stride, 1},
			struct{ in, out, k, stride, pad int64 }{planes, planes, 3, 1, 1})
	}
	for i, p := range plan {
		c := b.conv(p.in, p.out, p.k, p.stride, p.pad, 1, false)
		n := b.bn(p.out, 1e-5, 0.1)
		if b.err != nil {
			return blk, out
		}
		blk.convs = append(blk.convs, c)
		blk.bns = append(blk.bns, n)
		blk.Add(fmt.Sprintf("conv%d", i+1), c)
		blk.Add(fmt.Sprintf("bn%d", i+1), n)
	}
	if stride != 1 || in != out {
		c := b.conv(in, out, 1, stride, 0, 1, false)
		n := b.bn(out, 1e-5, 0.1)
		if b.err == nil {
			blk.downsample = nn.NewSequential(c, n)
			blk.Add("downsample", blk.downsample)
		}
	}
	return blk, out
}

// Forward is relu(branch(x) + shortcut(x)).
func (r *resBlock) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	cur := x
	for i, c := range r.convs {
		y, err := c.Forward(cur)
		if cur != x {
			cur.Free()
		}
		if err != nil {
			return nil, err
		}
		if y, err = then(y, r.bns[i].Forward); err != nil {
			return nil, err
		}
		if i < len(r.convs)-1 {
			if y, err = then(y, (*torch.Tensor).Relu); err != nil {
				return nil, err
			}
		}
		cur = y
	}
	shortcut := x
	if r.downsample != nil {
		s, err := r.downsample.Forward(x)
		if err != nil {
			cur.Free()
			return nil, err
		}
		defer s.Free()
		shortcut = s
	}
	sum, err := addAndFree(cur, shortcut)
	if err != nil {
		return nil, err
	}
	return then(sum, (*torch.Tensor).Relu)
}

// NewResNet builds torchvision's resnet18 or resnet50 (ResNet v1.5: the
// bottleneck's stride sits on its 3x3 convolution) with torchvision's
// initialisation: Kaiming-normal (fan_out) convolutions, batch norms at
// weight 1 and bias 0 (eps 1e-5, momentum 0.1), PyTorch's default for fc.
// Stages: stem (conv1, bn1), layer1 .. layer4; the head is fc.
func NewResNet(arch Arch, cfg BackboneConfig) (Backbone, error) {
	var blocks [4]int
	bottleneck := false
	switch arch {
	case ArchResNet18:
		blocks = [4]int{2, 2, 2, 2}
	case ArchResNet50:
		blocks, bottleneck = [4]int{3, 4, 6, 3}, true
	default:
		return nil, fmt.Errorf("resnet: unknown architecture %q", arch)
	}
	cfg, err := cfg.check(arch, 1)
	if err != nil {
		return nil, err
	}
	n := &network{arch: arch, cfg: cfg, classifier: "fc.", training: true}
	b := &builder{}
	conv1 := b.conv(3, 64, 7, 2, 3, 1, false)
	bn1 := b.bn(64, 1e-5, 0.1)
	maxpool := &nn.MaxPool2d{Options: torch.MaxPool2dOptions{Kernel: [2]int64{3, 3}, Stride: [2]int64{2, 2}, Padding: [2]int64{1, 1}}}
	if b.err == nil {
		n.Add("conv1", conv1)
		n.Add("bn1", bn1)
	}
	n.stages = append(n.stages, Stage{Name: "stem", Modules: []nn.NamedModule{{Name: "conv1", Module: conv1}, {Name: "bn1", Module: bn1}}})
	var layers [4]*nn.Sequential
	in := int64(64)
	for i, count := range blocks {
		planes := int64(64) << i
		stride := int64(2)
		if i == 0 {
			stride = 1
		}
		layers[i] = nn.NewSequential()
		for j := 0; j < count && b.err == nil; j++ {
			blk, out := newResBlock(b, bottleneck, in, planes, stride)
			layers[i].Children = append(layers[i].Children, blk)
			in, stride = out, 1
		}
		name := fmt.Sprintf("layer%d", i+1)
		n.Add(name, layers[i])
		n.stages = append(n.stages, Stage{Name: name, Modules: []nn.NamedModule{{Name: name, Module: layers[i]}}})
	}
	n.width = in
	fc := b.linear(in, int64(cfg.NumClasses), nil, nil)
	if b.err != nil {
		b.release()
		return nil, fmt.Errorf("%s: %w", arch, b.err)
	}
	n.Add("fc", fc)
	n.head = fc
	pool := &nn.AdaptiveAvgPool2d{H: 1, W: 1}
	n.features = func(x *torch.Tensor, observe func(int, *torch.Tensor)) (*torch.Tensor, error) {
		y, err := nn.Chain(x, conv1, bn1, nn.ReLU{}, maxpool)
		if err != nil {
			return nil, fmt.Errorf("stem: %w", err)
		}
		if observe != nil {
			observe(0, y)
		}
		for i, l := range layers {
			if y, err = then(y, l.Forward); err != nil {
				return nil, fmt.Errorf("layer%d: %w", i+1, err)
			}
			if observe != nil {
				observe(i+1, y)
			}
		}
		if y, err = then(y, pool.Forward); err != nil {
			return nil, err
		}
		return then(y, func(t *torch.Tensor) (*torch.Tensor, error) { return t.Flatten(1, -1) })
	}
	return n, nil
}
