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

// kerasLayer is one layer of Keras' VGG16 base and the torchvision module
// index in `features` it corresponds to (-1 for the input layer).
type kerasLayer struct {
	name    string
	feature int
}

// kerasBase lists Keras' VGG16 base layers in order. Keras fuses each ReLU
// into its convolution, so torchvision's ReLU modules have no entry.
func kerasBase() []kerasLayer {
	layers := []kerasLayer{{"input_1", -1}}
	block, conv, idx := 1, 1, 0
	for _, ch := range vgg16Plan {
		if ch == 0 {
			layers = append(layers, kerasLayer{fmt.Sprintf("block%d_pool", block), idx})
			idx++
			block, conv = block+1, 1
			continue
		}
		layers = append(layers, kerasLayer{fmt.Sprintf("block%d_conv%d", block, conv), idx})
		idx += 2 // the convolution and its ReLU
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
// It returns the Keras names of the trainable base layers.
func (m *VGG16) FreezeBase(trainable int) ([]string, error) {
	if trainable < 0 || trainable > KerasBaseLayers {
		return nil, fmt.Errorf("vgg16: %d trainable base layers requested, the base has %d", trainable, KerasBaseLayers)
	}
	layers := kerasBase()
	cut := len(layers) - trainable
	var names []string
	for i, l := range layers {
		train := i >= cut
		if train {
			names = append(names, l.name)
		}
		if l.feature < 0 {
			continue
		}
		for _, p := range m.Features.Children[l.feature].Parameters() {
			if err := p.Tensor.SetRequiresGrad(train); err != nil {
				return nil, fmt.Errorf("vgg16: freezing %s: %w", l.name, err)
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
