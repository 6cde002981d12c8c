package train

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/fertorch/fertorch/checkpoint"
	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/torch/tensorfile"
	"github.com/fertorch/fertorch/vision"
)

// DefaultWeights is where scripts/fetch-weights.sh puts torchvision's
// ImageNet VGG16 weights, and the built-in default of model.weights. For
// another architecture the built-in default is that architecture's file
// (DefaultWeightsFor).
const DefaultWeights = "weights/vgg16-397923af.pth"

// readPretrained reads the configured pretrained weights before anything
// is written. A path the user gave (by flag or config file) must load: a
// typo is an error, not a run from random weights. Only the built-in
// default may be missing, and then the run starts from random weights with
// a warning on warn. A fertorch checkpoint given as weights must pass its
// checksum. Torchvision weights with an input normalisation other than
// ImageNet's get a warning. It returns nil when there is nothing to load.
func readPretrained(m *ModelConfig, warn io.Writer) (*tensorfile.File, error) {
	m.resolveWeights()
	path := m.Weights
	if path == "" {
		return nil, nil
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && path == DefaultWeightsFor(m.Arch) && !m.weightsGiven {
		fmt.Fprintf(warn, "warning: pretrained weights %s not found: the base starts from RANDOM weights and will learn far less; "+
			"fetch them with scripts/fetch-weights.sh --arch "+string(m.Arch)+", or give --weights \"\" to say that random weights are meant\n", path)
		return nil, nil
	}
	file, err := vision.ReadWeights(path)
	if err != nil {
		return nil, fmt.Errorf("pretrained weights %s cannot be used: %w (fetch torchvision's with scripts/fetch-weights.sh --arch %s, or give --weights \"\" to start from random weights)", path, err, m.Arch)
	}
	ours, err := checkpoint.Verify(path, file)
	if err != nil {
		return nil, fmt.Errorf("pretrained weights: %w", err)
	}
	if !ours && m.Normalization != data.NormImageNet {
		fmt.Fprintf(warn, "warning: %s holds torchvision weights, trained on inputs normalised with ImageNet's mean and standard deviation; "+
			"normalization %s gives them inputs of another scale (use --normalization imagenet)\n", path, m.Normalization)
	}
	return file, nil
}
