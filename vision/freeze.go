package vision

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fertorch/fertorch/torch"
)

// KerasBaseLayers is how many layers Keras counts in VGG16's base
// (include_top=False): the input layer, 13 convolutions and 5 pools.
const KerasBaseLayers = 19

// kerasLayer is one layer of Keras' VGG16 base and the torchvision modules
// in `features` it corresponds to: the convolution (and its batch norm in
// vgg16_bn), or the pool; none for the input layer.
type kerasLayer struct {
	name     string
	features []int
}

// kerasBase lists Keras' VGG16 base layers in order. Keras fuses each ReLU
// into its convolution, so torchvision's ReLU modules have no entry; a
// vgg16_bn batch norm belongs to its convolution's layer.
func kerasBase(batchNorm bool) []kerasLayer {
	layers := []kerasLayer{{name: "input_1"}}
	block, conv, idx := 1, 1, 0
	for _, ch := range vgg16Plan {
		if ch == 0 {
			layers = append(layers, kerasLayer{fmt.Sprintf("block%d_pool", block), []int{idx}})
			idx++
			block, conv = block+1, 1
			continue
		}
		l := kerasLayer{fmt.Sprintf("block%d_conv%d", block, conv), []int{idx}}
		idx++
		if batchNorm {
			l.features = append(l.features, idx)
			idx++
		}
		layers = append(layers, l)
		idx++ // the ReLU
		conv++
	}
	return layers
}

// ParseTrainableBaseLayers reads the trainable_base_layers setting: a count
// of Keras base layers counted from the top (0 freezes the whole base, 4 is
// the seed's "all but the last 4 frozen") or "all".
func ParseTrainableBaseLayers(s string) (int, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "all" {
		return KerasBaseLayers, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > KerasBaseLayers {
		return 0, fmt.Errorf("trainable_base_layers %q: want a number from 0 to %d or \"all\"", s, KerasBaseLayers)
	}
	return n, nil
}

// FreezeBase makes only the last `trainable` of Keras' 19 VGG16 base layers
// trainable (requires_grad on their parameters) and freezes the rest. The
// head is always trainable. With the seed's 4, block5's three convolutions
// (features.24, .26, .28) and its pool train; everything below is frozen.
// Frozen batch-norm layers also stop updating their statistics (see
// SetTraining). It returns the Keras names of the trainable base layers.
func (m *VGG16) FreezeBase(trainable int) ([]string, error) {
	if trainable < 0 || trainable > KerasBaseLayers {
		return nil, fmt.Errorf("vgg16: %d trainable base layers requested, the base has %d", trainable, KerasBaseLayers)
	}
	layers := kerasBase(m.Config.BatchNorm)
	cut := len(layers) - trainable
	var names []string
	for i, l := range layers {
		train := i >= cut
		if train {
			names = append(names, l.name)
		}
		for _, f := range l.features {
			for _, p := range m.Features.Children[f].Parameters() {
				if err := p.Tensor.SetRequiresGrad(train); err != nil {
					return nil, fmt.Errorf("vgg16: freezing %s: %w", l.name, err)
				}
			}
		}
	}
	if m.Classifier != nil {
		for _, p := range m.Classifier.Parameters() {
			if err := p.Tensor.SetRequiresGrad(true); err != nil {
				return nil, fmt.Errorf("vgg16: head %s: %w", p.Name, err)
			}
		}
	}
	return names, nil
}

// TrainableParameters returns the parameters that require grad, split into
// the base's and the head's (so that each can get its own learning rate).
// Frozen parameters are left out: an optimizer never sees them.
func (m *VGG16) TrainableParameters() (base, head []torch.NamedTensor) {
	for _, p := range m.Parameters() {
		if !p.Tensor.RequiresGrad() {
			continue
		}
		if strings.HasPrefix(p.Name, "features.") {
			base = append(base, p)
		} else {
			head = append(head, p)
		}
	}
	return base, head
}

// ParseTrainable reads the trainable_base_layers setting for an
// architecture: how many stages of the base train, counted from the top,
// or "all". VGG's stages are Keras' 19 base layers (ParseTrainableBaseLayers:
// the input layer counts, 4 trains block5); the other architectures' are
// their Stages (ResNet: stem, layer1 .. layer4; the MobileNets, EfficientNets
// and ConvNeXt: the entries of `features`; ViT: the embeddings, the 12
// encoder layers and the final layer norm). A count above the
// architecture's is an error.
func ParseTrainable(a Arch, s string) (int, error) {
	spec, err := LookupArch(a)
	if err != nil {
		return 0, err
	}
	if a == ArchVGG16 || a == ArchVGG16BN {
		return ParseTrainableBaseLayers(s)
	}
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "all" {
		return spec.Stages, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > spec.Stages {
		return 0, fmt.Errorf("trainable_base_layers %q: %s has %d stages; want a number from 0 to %d or \"all\"", s, a, spec.Stages, spec.Stages)
	}
	return n, nil
}

// FreezeTop makes the last n stages of b's base trainable (n as
// ParseTrainable returns it) and freezes the rest; the head trains. Frozen
// batch-norm layers keep their running statistics in training mode
// (Backbone.SetTraining), as fastai and Keras do. It returns the names of
// the trainable stages.
func FreezeTop(b Backbone, n int) ([]string, error) {
	spec, err := LookupArch(b.Arch())
	if err != nil {
		return nil, err
	}
	if n < 0 || n > spec.Stages {
		return nil, fmt.Errorf("%s: %d trainable stages requested, the base has %d", b.Arch(), n, spec.Stages)
	}
	// VGG's count includes Keras' input layer, which has no stage.
	return FreezeStages(b, min(n, len(b.Stages())))
}
