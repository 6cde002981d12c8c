package train

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/train/metrics"
)

// TestWriteEvalOutputs checks the files eval writes for known predictions:
// results.csv and ground_truth.csv in the seed's (image, emotion) format,
// every probability in predictions.csv, and the metrics.
func TestWriteEvalOutputs(t *testing.T) {
	classes := []string{"anger", "happiness", "neutral"}
	ds := &data.Dataset{Classes: classes, Samples: []data.Sample{
		{Name: "a.jpg"}, {Name: "b.jpg"}, {Name: "c.jpg"}, {Name: "d.jpg"},
	}}
	ev := &Evaluation{
		Probs:  [][]float32{{0.7, 0.2, 0.1}, {0.1, 0.8, 0.1}, {0.2, 0.3, 0.5}, {0.6, 0.3, 0.1}},
		Labels: []int{0, 1, 1, 2},
	}
	pred := []int{0, 1, 2, 0}
	rep, err := metrics.Compute(ev.Labels, pred, classes)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteEvalOutputs(dir, &EvalResult{Report: rep, Dataset: ds, Eval: ev, Pred: pred}); err != nil {
		t.Fatal(err)
	}
	read := func(name string) [][]string {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	want := map[string][][]string{
		"results.csv":      {{"image", "emotion"}, {"a.jpg", "anger"}, {"b.jpg", "happiness"}, {"c.jpg", "neutral"}, {"d.jpg", "anger"}},
		"ground_truth.csv": {{"image", "emotion"}, {"a.jpg", "anger"}, {"b.jpg", "happiness"}, {"c.jpg", "happiness"}, {"d.jpg", "neutral"}},
		"predictions.csv": {
			{"image", "true", "predicted", "anger", "happiness", "neutral"},
			{"a.jpg", "anger", "anger", "0.700000", "0.200000", "0.100000"},
			{"b.jpg", "happiness", "happiness", "0.100000", "0.800000", "0.100000"},
			{"c.jpg", "happiness", "neutral", "0.200000", "0.300000", "0.500000"},
			{"d.jpg", "neutral", "anger", "0.600000", "0.300000", "0.100000"},
		},
	}
	for name, rows := range want {
		if got := read(name); !reflect.DeepEqual(got, rows) {
			t.Errorf("%s:\n%v\nwant\n%v", name, got, rows)
		}
	}
	f, err := os.Open(filepath.Join(dir, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := metrics.ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	if back.Accuracy != 0.5 || !reflect.DeepEqual(back.Confusion, [][]int{{1, 0, 0}, {0, 1, 1}, {1, 0, 0}}) {
		t.Errorf("metrics.json: accuracy %v confusion %v", back.Accuracy, back.Confusion)
	}
	if st, err := os.Stat(filepath.Join(dir, "confusion.png")); err != nil || st.Size() == 0 {
		t.Errorf("confusion.png: %v", err)
	}
}
