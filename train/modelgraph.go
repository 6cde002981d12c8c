package train

import (
	"fmt"

	"github.com/fertorch/fertorch/train/plot"
	"github.com/fertorch/fertorch/vision"
)

// ModelBoxes turns a model summary into the boxes of its layer graph: one
// per row (a stage, or a VGG layer), with its output shape, parameter
// count and whether it trains.
func ModelBoxes(s *vision.Summary) []plot.LayerBox {
	boxes := make([]plot.LayerBox, 0, len(s.Rows))
	for _, r := range s.Rows {
		name := r.Name
		if r.KerasName != "" {
			name = r.KerasName + " " + r.Name
		}
		b := plot.LayerBox{Title: fmt.Sprintf("%s (%s)", name, r.Type), Detail: "output " + r.Shape()}
		if r.Params > 0 {
			b.Detail += fmt.Sprintf("   %s params", vision.Commas(r.Params))
		}
		switch r.Trainable() {
		case "yes":
			b.Training, b.Detail = plot.Trains, b.Detail+", trains"
		case "no":
			b.Training, b.Detail = plot.Frozen, b.Detail+", frozen"
		case "partly":
			b.Training = plot.PartlyTrains
			b.Detail += fmt.Sprintf(", %s train", vision.Commas(r.TrainableParams))
		}
		boxes = append(boxes, b)
	}
	return boxes
}

// modelTitle is the layer graph's title line.
func modelTitle(s *vision.Summary) string {
	return fmt.Sprintf("%s: %s params, %s trainable", s.Title, vision.Commas(s.Total), vision.Commas(s.Trainable))
}

// SaveModelPNG draws a model summary's layer graph into path.
func SaveModelPNG(s *vision.Summary, path string) error {
	if err := plot.SaveLayerGraphPNG(path, modelTitle(s), ModelBoxes(s)); err != nil {
		return fmt.Errorf("model graph: %w", err)
	}
	return nil
}

// DescribeNet builds the network a model config describes for numClasses
// classes, freezes it as configured, and returns its summary and the line
// saying what trains, without training: `fer summary`.
func DescribeNet(m ModelConfig, numClasses int) (*vision.Summary, string, error) {
	net, err := BuildNet(m, numClasses)
	if err != nil {
		return nil, "", err
	}
	defer net.Free()
	line, err := freezeNet(net, m.TrainableBaseLayers)
	if err != nil {
		return nil, "", err
	}
	s, err := net.Summary()
	if err != nil {
		return nil, "", err
	}
	return s, line, nil
}
