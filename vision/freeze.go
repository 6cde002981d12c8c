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
