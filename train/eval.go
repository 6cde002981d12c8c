package train

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/internal/atomicfile"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
	"github.com/fertorch/fertorch/train/metrics"
	"github.com/fertorch/fertorch/train/plot"
	"github.com/fertorch/fertorch/vision"
)

// Predictor is a trained model ready for inference.
type Predictor struct {
	State   State
	Classes []string
	Device  torch.Device
	model   Net
	stepper *Stepper
	batch   int
	workers int
	staging *Staging
}

// PredictorOptions configure LoadPredictor.
type PredictorOptions struct {
	Device    torch.DeviceSpec // "" is auto
	BatchSize int              // 0: 64
	Workers   int              // decoding goroutines (0: one per core)
	Precision Precision        // "" is fp32; bf16; fp16 (CUDA)
}

// LoadPredictor loads a checkpoint (weights or full) for inference.
func LoadPredictor(path string, opts PredictorOptions) (*Predictor, error) {
	lc, err := LoadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	dev, err := torch.ParseDevice(string(opts.Device))
	if err != nil {
		return nil, err
	}
	st := lc.State
	mc := st.Config.Model
	if len(st.Classes) == 0 {
		return nil, fmt.Errorf("%s: checkpoint lists no classes", path)
	}
	model, err := BuildNet(mc, len(st.Classes))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p := &Predictor{State: st, Classes: st.Classes, Device: dev, model: model, batch: opts.BatchSize, workers: opts.Workers}
	if p.batch <= 0 {
		p.batch = 64
	}
	if _, err := vision.LoadStateDict(model.StateTensors(), lc.Model, vision.LoadOptions{Strict: true}); err != nil {
		p.Free()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := nn.MoveTo(model, dev, torch.Float32, false); err != nil {
		p.Free()
		return nil, err
	}
	model.SetTraining(false)
	prec := opts.Precision
	if prec == "" {
		prec = FP32
	}
	if p.stepper, err = NewStepper(model, nil, LossConfig{}, dev, prec); err != nil {
		p.Free()
		return nil, err
	}
	s := int64(mc.InputSize)
	if p.staging, err = NewStaging(dev, []int64{int64(p.batch), 3, s, s}); err != nil {
		p.Free()
		return nil, err
	}
	return p, nil
}

// Free releases the model.
func (p *Predictor) Free() {
	if p.staging != nil {
		p.staging.Free()
	}
	if p.model != nil {
		p.model.Free()
	}
}

// decode prepares a dataset the way the model was trained (input size,
// resize method).
func (p *Predictor) decode(ctx context.Context, ds *data.Dataset) (*data.Dataset, error) {
	mc := p.State.Config.Model
	dec, _, err := ds.Decode(ctx, data.DecodeOptions{Height: mc.InputSize, Width: mc.InputSize, Resize: mc.Resize, Workers: p.workers})
	return dec, err
}

// Run returns class probabilities for every decoded sample, in order.
func (p *Predictor) Run(ctx context.Context, ds *data.Dataset, flipTTA bool) (*Evaluation, error) {
	loader, err := data.NewLoader(ds, data.LoaderConfig{BatchSize: p.batch, Workers: p.workers, Normalize: p.State.Config.Model.Normalization})
	if err != nil {
		return nil, err
	}
	return evaluate(ctx, p.stepper, p.staging, loader, false, flipTTA)
}

// EvalResult is an evaluation's report and predictions.
type EvalResult struct {
	Report  *metrics.Report
	Loss    float64
	Dataset *data.Dataset
	Eval    *Evaluation
	Pred    []int
}

// Evaluate runs the predictor on a labelled dataset (a test layout folder or
// a legend+images pair opened by the caller) whose classes are matched to
// the model's by name. When no image decodes, the error comes with a result
// whose Dataset lists what was skipped.
func (p *Predictor) Evaluate(ctx context.Context, ds *data.Dataset, flipTTA bool) (*EvalResult, error) {
	if err := p.alignClasses(ds); err != nil {
		return nil, err
	}
	dec, err := p.decode(ctx, ds)
	if err != nil {
		return nil, err
	}
	if dec.Len() == 0 {
		return &EvalResult{Dataset: dec}, fmt.Errorf("no usable image in %s", ds.Root)
	}
	ev, err := p.Run(ctx, dec, flipTTA)
	if err != nil {
		return nil, err
	}
	pred, err := metrics.Argmax(ev.Probs)
	if err != nil {
		return nil, err
	}
	rep, err := metrics.Compute(ev.Labels, pred, p.Classes)
	if err != nil {
		return nil, err
	}
	if err := metrics.AddTopK(rep, ev.Labels, ev.Probs, 2, 3); err != nil {
		return nil, err
	}
	return &EvalResult{Report: rep, Loss: ev.Loss, Dataset: dec, Eval: ev, Pred: pred}, nil
}

// alignClasses relabels ds with the model's class indices, by name.
func (p *Predictor) alignClasses(ds *data.Dataset) error {
	index := map[string]int{}
	for i, c := range p.Classes {
		index[c] = i
	}
	remap := make([]int, len(ds.Classes))
	for i, c := range ds.Classes {
		j, ok := index[c]
		if !ok {
			return fmt.Errorf("class %q of %s is not one the model was trained on (%s)", c, ds.Root, strings.Join(p.Classes, ", "))
		}
		remap[i] = j
	}
	for i := range ds.Samples {
		ds.Samples[i].Label = remap[ds.Samples[i].Label]
	}
	ds.Classes = append([]string(nil), p.Classes...)
	return nil
}

// WriteEvalOutputs writes, into dir: results.csv and ground_truth.csv
// (image,emotion, as the seed tutorial writes them), predictions.csv with
// every class probability, metrics.json, metrics.txt and confusion.png.
func WriteEvalOutputs(dir string, r *EvalResult) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	classes := r.Report.Classes
	names := make([]string, r.Dataset.Len())
	for i, s := range r.Dataset.Samples {
		names[i] = s.Name
	}
	writeCSV := func(name string, header []string, row func(i int) []string) error {
		f, err := atomicfile.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		w := csv.NewWriter(f)
		w.Write(header)
		for i := range names {
			w.Write(row(i))
		}
		w.Flush()
		if err := w.Error(); err != nil {
			f.Abort()
			return fmt.Errorf("%s: %w", name, err)
		}
		return f.Commit()
	}
	if err := writeCSV("results.csv", []string{"image", "emotion"}, func(i int) []string {
		return []string{names[i], classes[r.Pred[i]]}
	}); err != nil {
		return err
	}
	if err := writeCSV("ground_truth.csv", []string{"image", "emotion"}, func(i int) []string {
		return []string{names[i], classes[r.Eval.Labels[i]]}
	}); err != nil {
		return err
	}
	if err := writeCSV("predictions.csv", append([]string{"image", "true", "predicted"}, classes...), func(i int) []string {
		row := []string{names[i], classes[r.Eval.Labels[i]], classes[r.Pred[i]]}
		for _, p := range r.Eval.Probs[i] {
			row = append(row, strconv.FormatFloat(float64(p), 'f', 6, 32))
		}
		return row
	}); err != nil {
		return err
	}
	if err := saveReport(filepath.Join(dir, "metrics.json"), r.Report); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "metrics.txt"), []byte(r.Report.Text())); err != nil {
		return err
	}
	return plot.SaveConfusionPNG(filepath.Join(dir, "confusion.png"), r.Report.Confusion, classes, plot.ConfusionOptions{Title: "confusion matrix (rows: true class)"})
}

// Prediction is the top classes of one image.
type Prediction struct {
	Image string       `json:"image"`
	Top   []ClassScore `json:"top"`
}

// ClassScore is a class and its probability.
type ClassScore struct {
	Class       string  `json:"class"`
	Probability float64 `json:"probability"`
}

// Predict returns the top-k classes of every image file found in paths
// (files, or folders searched recursively), and the files that could not be
// used.
func (p *Predictor) Predict(ctx context.Context, paths []string, k int, flipTTA bool) ([]Prediction, []data.Skip, error) {
	samples, skipped := data.CollectImages(paths)
	if len(samples) == 0 && len(skipped) == 0 {
		return nil, nil, fmt.Errorf("no files found in %v", paths)
	}
	ds := &data.Dataset{Classes: p.Classes, Samples: samples, Skipped: skipped}
	dec, err := p.decode(ctx, ds)
	if err != nil {
		return nil, nil, err
	}
	if dec.Len() == 0 {
		return nil, dec.Skipped, nil
	}
	ev, err := p.Run(ctx, dec, flipTTA)
	if err != nil {
		return nil, nil, err
	}
	k = max(1, min(k, len(p.Classes)))
	out := make([]Prediction, dec.Len())
	for i, probs := range ev.Probs {
		order := make([]int, len(probs))
		for j := range order {
			order[j] = j
		}
		sort.SliceStable(order, func(a, b int) bool { return probs[order[a]] > probs[order[b]] })
		out[i].Image = dec.Samples[i].Path
		for _, j := range order[:k] {
			out[i].Top = append(out[i].Top, ClassScore{Class: p.Classes[j], Probability: float64(probs[j])})
		}
	}
	return out, dec.Skipped, nil
}

// WritePredictions writes predictions as text lines.
func WritePredictions(w io.Writer, preds []Prediction) {
	for _, p := range preds {
		parts := make([]string, len(p.Top))
		for i, c := range p.Top {
			parts[i] = fmt.Sprintf("%s %.3f", c.Class, c.Probability)
		}
		fmt.Fprintf(w, "%s\t%s\n", p.Image, strings.Join(parts, "\t"))
	}
}
