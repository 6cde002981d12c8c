package vision

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fertorch/fertorch/torch/nn"
)

// SummaryRow is one layer of a model summary.
type SummaryRow struct {
	// Name is the torchvision module name ("features.0", "classifier.3").
	Name string
	// KerasName is the Keras layer name for base layers ("block1_conv1").
	KerasName string
	// Type is the layer type; a ReLU that follows a layer is folded into it
	// as Keras does ("Conv2d+ReLU").
	Type string
	// OutputShape has -1 for the batch dimension.
	OutputShape []int64
	// Params and TrainableParams count parameter elements.
	Params, TrainableParams int64
}

// Summary is a Keras model.summary()-style description of a model.
type Summary struct {
	Title                    string
	Rows                     []SummaryRow
	Total, Trainable, Frozen int64
}

// Summary describes the model layer by layer for a batch of its input size,
// with parameter totals split into trainable and frozen.
func (m *VGG16) Summary() (*Summary, error) {
	s := &Summary{Title: fmt.Sprintf("%s (%s head, %d classes, %dx%d input)", m.Config.Arch(), m.Config.Head, m.Config.NumClasses, m.Config.InputSize, m.Config.InputSize)}
	shape := []int64{-1, 3, int64(m.Config.InputSize), int64(m.Config.InputSize)}
	s.Rows = append(s.Rows, SummaryRow{Name: "input_1", Type: "Input", OutputShape: shape})
	keras := map[int]string{}
	for _, l := range kerasBase(m.Config.BatchNorm) {
		if len(l.features) > 0 {
			keras[l.features[0]] = l.name
		}
	}
	var err error
	add := func(prefix string, i int, mod nn.Module, folded []nn.Module) error {
		shaper, ok := mod.(nn.Shaper)
		if !ok {
			return fmt.Errorf("summary: %T cannot compute its output shape", mod)
		}
		if shape, err = shaper.OutputShape(shape); err != nil {
			return fmt.Errorf("summary %s.%d: %w", prefix, i, err)
		}
		typ := strings.TrimPrefix(fmt.Sprintf("%T", mod), "*nn.")
		typ = strings.TrimPrefix(typ, "nn.")
		for _, f := range folded {
			switch f.(type) {
			case nn.ReLU:
				typ += "+ReLU"
			case *nn.BatchNorm2d:
				typ += "+BN"
			}
		}
		row := SummaryRow{Name: prefix + "." + strconv.Itoa(i), Type: typ, OutputShape: append([]int64(nil), shape...)}
		if prefix == "features" {
			row.KerasName = keras[i]
		}
		for _, part := range append([]nn.Module{mod}, folded...) {
			for _, p := range part.Parameters() {
				n := p.Tensor.Numel()
				row.Params += n
				if p.Tensor.RequiresGrad() {
					row.TrainableParams += n
				}
			}
		}
		s.Rows = append(s.Rows, row)
		return nil
	}
	// walk prints one row per layer, folding the batch norm and ReLU that
	// follow a layer into its row, as Keras shows a convolution with its
	// activation.
	walk := func(prefix string, seq *nn.Sequential) error {
		for i := 0; i < len(seq.Children); i++ {
			mod := seq.Children[i]
			var folded []nn.Module
			for i+1 < len(seq.Children) {
				next := seq.Children[i+1]
				_, isReLU := next.(nn.ReLU)
				_, isBN := next.(*nn.BatchNorm2d)
				if !isReLU && !isBN {
					break
				}
				folded = append(folded, next)
				i++
			}
			if err := add(prefix, i-len(folded), mod, folded); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("features", m.Features); err != nil {
		return nil, err
	}
	if m.Pool != nil {
		if shape, err = m.Pool.(nn.Shaper).OutputShape(shape); err != nil {
			return nil, err
		}
		s.Rows = append(s.Rows, SummaryRow{Name: "avgpool", Type: strings.TrimPrefix(fmt.Sprintf("%T", m.Pool), "*nn."), OutputShape: append([]int64(nil), shape...)})
	}
	if shape, err = m.flatten.OutputShape(shape); err != nil {
		return nil, err
	}
	s.Rows = append(s.Rows, SummaryRow{Name: "flatten", Type: "Flatten", OutputShape: append([]int64(nil), shape...)})
	if err := walk("classifier", m.Classifier); err != nil {
		return nil, err
	}
	for _, r := range s.Rows {
		s.Total += r.Params
		s.Trainable += r.TrainableParams
	}
	s.Frozen = s.Total - s.Trainable
	return s, nil
}

// BaseParams is the parameter count of the convolutional base alone.
func (s *Summary) BaseParams() int64 {
	var n int64
	for _, r := range s.Rows {
		if strings.HasPrefix(r.Name, "features.") {
			n += r.Params
		}
	}
	return n
}

// Shape writes the output shape as Keras does ("(None, 512, 7, 7)").
func (r SummaryRow) Shape() string { return formatShape(r.OutputShape) }

// Trainable says whether the row's parameters train: "yes", "no",
// "partly", or "-" without parameters.
func (r SummaryRow) Trainable() string {
	switch {
	case r.Params == 0:
		return "-"
	case r.TrainableParams == r.Params:
		return "yes"
	case r.TrainableParams == 0:
		return "no"
	}
	return "partly"
}

func formatShape(shape []int64) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		if d < 0 {
			parts[i] = "None"
		} else {
			parts[i] = strconv.FormatInt(d, 10)
		}
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// Commas formats n with thousands separators, as Keras prints counts.
func Commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// String renders the summary as a table like Keras' model.summary().
func (s *Summary) String() string {
	var b strings.Builder
	const line = "──────────────────────────────────────────────────────────────────────────────────────────────\n"
	fmt.Fprintf(&b, "Model: %s\n", s.Title)
	b.WriteString(line)
	fmt.Fprintf(&b, " %-44s %-22s %12s  %s\n", "Layer (type)", "Output Shape", "Param #", "Trainable")
	b.WriteString(strings.ReplaceAll(line, "─", "═"))
	for _, r := range s.Rows {
		name := r.Name
		if r.KerasName != "" {
			name = r.KerasName + " " + r.Name
		}
		fmt.Fprintf(&b, " %-44s %-22s %12s  %s\n", name+" ("+r.Type+")", r.Shape(), Commas(r.Params), r.Trainable())
	}
	b.WriteString(strings.ReplaceAll(line, "─", "═"))
	fmt.Fprintf(&b, "Total params: %s\nTrainable params: %s\nNon-trainable params: %s\n", Commas(s.Total), Commas(s.Trainable), Commas(s.Frozen))
	b.WriteString(line)
	return b.String()
}
