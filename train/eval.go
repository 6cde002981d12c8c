package train

import (
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/infer"
	"github.com/fertorch/fertorch/internal/atomicfile"
	"github.com/fertorch/fertorch/train/metrics"
	"github.com/fertorch/fertorch/train/plot"
)

// EvalResult is an evaluation's report and predictions.
type EvalResult struct {
	Report  *metrics.Report
	Loss    float64
	Dataset *data.Dataset
	Eval    *Evaluation
	Pred    []int
}

// Evaluate runs a model on a labelled dataset (a test layout folder or a
// legend+images pair opened by the caller) whose classes are matched to
// the model's by name, and computes the metrics. When no image decodes, the
// error comes with a result whose Dataset lists what was skipped.
func Evaluate(ctx context.Context, m *infer.Model, ds *data.Dataset, flipTTA bool) (*EvalResult, error) {
	if err := alignClasses(ds, m.Classes); err != nil {
		return nil, err
	}
	dec, err := m.Decode(ctx, ds)
	if err != nil {
		return nil, err
	}
	if dec.Len() == 0 {
		return &EvalResult{Dataset: dec}, fmt.Errorf("no usable image in %s", ds.Root)
	}
	probs, err := m.Run(ctx, dec, flipTTA)
	if err != nil {
		return nil, err
	}
	ev := &Evaluation{Probs: probs, Labels: dec.Labels()}
	for i, p := range probs {
		ev.Loss -= math.Log(max(float64(p[ev.Labels[i]]), 1e-12))
	}
	ev.Loss /= float64(len(probs))
	pred, err := metrics.Argmax(ev.Probs)
	if err != nil {
		return nil, err
	}
	rep, err := metrics.Compute(ev.Labels, pred, m.Classes)
	if err != nil {
		return nil, err
	}
	if err := metrics.AddTopK(rep, ev.Labels, ev.Probs, 2, 3); err != nil {
		return nil, err
	}
	return &EvalResult{Report: rep, Loss: ev.Loss, Dataset: dec, Eval: ev, Pred: pred}, nil
}

// alignClasses relabels ds with the model's class indices, by name.
func alignClasses(ds *data.Dataset, classes []string) error {
	index := map[string]int{}
	for i, c := range classes {
		index[c] = i
	}
	remap := make([]int, len(ds.Classes))
	for i, c := range ds.Classes {
		j, ok := index[c]
		if !ok {
			return fmt.Errorf("class %q of %s is not one the model was trained on (%s)", c, ds.Root, strings.Join(classes, ", "))
		}
		remap[i] = j
	}
	for i := range ds.Samples {
		ds.Samples[i].Label = remap[ds.Samples[i].Label]
	}
	ds.Classes = append([]string(nil), classes...)
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
