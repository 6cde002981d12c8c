package vision

import (
	"fmt"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
)

// vggBackbone adapts a VGG16 to the Backbone seam; the VGG16 keeps its own
// API (heads, Keras-style freezing) for the code that uses it directly.
type vggBackbone struct{ *VGG16 }

// AsBackbone presents a VGG16 (any head) as a Backbone. Its stages are
// Keras' 18 base layers after the input (block1_conv1 .. block5_pool), so
// FreezeStages(b, 4) freezes what FreezeBase(4) freezes.
func AsBackbone(m *VGG16) Backbone { return vggBackbone{m} }

// newVGGBackbone is torchvision's vgg16 or vgg16_bn with the configured
// head (VGG16's own heads: the seed's transfer head is VGG16's classifier
// over the flattened base).
func newVGGBackbone(cfg BackboneConfig, batchNorm bool) (Backbone, error) {
	arch := ArchVGG16
	if batchNorm {
		arch = ArchVGG16BN
	}
	cfg, err := cfg.check(arch, 32)
	if err != nil {
		return nil, err
	}
	m, err := NewVGG16(VGG16Config{InputSize: cfg.InputSize, NumClasses: cfg.NumClasses, Head: cfg.Head, Hidden: cfg.Hidden, Dropout: cfg.Dropout, BatchNorm: batchNorm})
	if err != nil {
		return nil, err
	}
	return vggBackbone{m}, nil
}

func (v vggBackbone) Arch() Arch { return Arch(v.VGG16.Config.Arch()) }

func (v vggBackbone) Config() BackboneConfig {
	c := v.VGG16.Config
	return BackboneConfig{NumClasses: c.NumClasses, InputSize: c.InputSize, Head: c.Head, Hidden: c.Hidden, Dropout: c.Dropout}
}

func (v vggBackbone) FeatureWidth() int64 {
	switch v.VGG16.Config.Head {
	case HeadTorchvision:
		return 512 * 7 * 7
	case HeadGAP:
		return 512
	}
	side := int64(v.VGG16.Config.InputSize) >> 5
	return 512 * side * side
}

// Classifier is torchvision's final layer for the torchvision head, the
// whole classifier for the transfer and gap heads (whose shapes a
// torchvision file does not have).
func (v vggBackbone) Classifier() string {
	if v.VGG16.Config.Head == HeadTorchvision {
		return fmt.Sprintf("classifier.%d.", len(v.VGG16.Classifier.Children)-1)
	}
	return "classifier."
}

// Features is the base, the head's pooling if it has one, flattened.
func (v vggBackbone) Features(x *torch.Tensor) (*torch.Tensor, error) {
	mods := []nn.Module{v.VGG16.Features}
	if v.Pool != nil {
		mods = append(mods, v.Pool)
	}
	mods = append(mods, nn.NewFlatten())
	f, err := nn.Chain(x, mods...)
	if err != nil {
		return nil, fmt.Errorf("%s features: %w", v.Arch(), err)
	}
	return f, nil
}

func (v vggBackbone) Stages() []Stage {
	var stages []Stage
	for _, l := range kerasBase(v.VGG16.Config.BatchNorm)[1:] {
		s := Stage{Name: l.name}
		for _, i := range l.features {
			s.Modules = append(s.Modules, nn.NamedModule{Name: fmt.Sprintf("features.%d", i), Module: v.VGG16.Features.Children[i]})
		}
		stages = append(stages, s)
	}
	return stages
}
