package vision

import (
	"fmt"
	"strings"

	"github.com/fertorch/fertorch/torch/nn"
)

// The heads of every architecture. HeadTorchvision keeps the
// architecture's own classifier (torchvision's names and initialisation,
// only the number of classes changes). HeadTransfer and HeadGAP replace
// the module ArchSpec.HeadModule names with an nn.Sequential, as a PyTorch
// user replaces it, so that fertorch's weights load with strict=True into
//
//	m = torchvision.models.resnet18(num_classes=C)
//	m.fc = nn.Sequential(nn.Linear(512, H), nn.ReLU(), nn.Dropout(p), nn.Linear(H, C))  # transfer: fc.0.*, fc.3.*
//	m.fc = nn.Sequential(nn.Dropout(p), nn.Linear(512, C))                              # gap: fc.1.*
//
// with FeatureWidth in place of 512, and `m.classifier` (VGG16, the
// MobileNets and EfficientNets: classifier.0.* and classifier.3.*, or
// classifier.1.*), `m.classifier[2]` (ConvNeXt, which keeps its
// LayerNorm2d and Flatten: classifier.2.0.*, classifier.2.3.*, or
// classifier.2.1.*) or `m.heads` (ViT: heads.0.*, heads.3.*, or heads.1.*)
// in place of `m.fc`. The new layers are initialised as Keras' Dense
// (Glorot-uniform weights, zero biases), as the seed's head. Every
// architecture but VGG already pools globally before its classifier, so
// its gap head is the Dropout and Linear alone; VGG's adds the global
// average pool over its 512 channels.

// replaceHead puts the configured transfer or gap head in place of the
// module at path (one or two dotted names below the network).
func (n *network) replaceHead(path string, cfg BackboneConfig) error {
	var head *nn.Sequential
	var err error
	switch cfg.Head {
	case HeadTransfer:
		head, err = denseStack(glorot, []int64{n.width, int64(cfg.Hidden), int64(cfg.NumClasses)}, cfg.Dropout)
	case HeadGAP:
		var lin *nn.Linear
		if lin, err = newDense(glorot, n.width, int64(cfg.NumClasses)); err == nil {
			head = nn.NewSequential(nn.NewDropout(cfg.Dropout), lin)
		}
	default:
		return fmt.Errorf("%s: head %s replaces nothing", n.arch, cfg.Head)
	}
	if err != nil {
		return fmt.Errorf("%s %s head: %w", n.arch, cfg.Head, err)
	}
	parts := strings.Split(path, ".")
	for i, c := range n.Children {
		if c.Name != parts[0] {
			continue
		}
		switch len(parts) {
		case 1:
			nn.Free(c.Module)
			n.Children[i].Module = head
			n.head = head
		case 2:
			seq, ok := c.Module.(*nn.Sequential)
			var idx int
			if _, err := fmt.Sscan(parts[1], &idx); err != nil || !ok || idx < 0 || idx >= len(seq.Children) {
				nn.Free(head)
				return fmt.Errorf("%s: no module %s to replace", n.arch, path)
			}
			nn.Free(seq.Children[idx])
			seq.Children[idx] = head
		default:
			nn.Free(head)
			return fmt.Errorf("%s: head module %s is too deep", n.arch, path)
		}
		n.classifier = path + "."
		return nil
	}
	nn.Free(head)
	return fmt.Errorf("%s: no module %s to replace", n.arch, path)
}
