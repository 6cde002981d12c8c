package metrics

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/internal/pyref"
)

// The worked example: five classes where cat and yak occur in truth and
// predictions, dog is in the truth but never predicted, fox is predicted but
// has no support, and owl occurs nowhere.
var (
	exClasses = []string{"cat", "dog", "fox", "owl", "yak"}
	exTrue    = []int{0, 0, 0, 1, 1, 4, 4, 4, 4, 0}
	exPred    = []int{0, 0, 4, 0, 4, 4, 4, 2, 4, 2}
)

func TestComputeHandExample(t *testing.T) {
	r, err := Compute(exTrue, exPred, exClasses)
	if err != nil {
		t.Fatal(err)
	}
	wantCM := [][]int{
		{2, 0, 1, 0, 1},
		{1, 0, 0, 0, 1},
		{0, 0, 0, 0, 0},
		{0, 0, 0, 0, 0},
		{0, 0, 1, 0, 3},
	}
	if !reflect.DeepEqual(r.Confusion, wantCM) {
		t.Errorf("confusion = %v, want %v", r.Confusion, wantCM)
	}
	if r.Samples != 10 || r.Correct != 5 || r.Accuracy != 0.5 {
		t.Errorf("samples/correct/accuracy = %d/%d/%v, want 10/5/0.5", r.Samples, r.Correct, r.Accuracy)
	}
	wantPer := []ClassReport{
		{Name: "cat", Precision: 2.0 / 3, Recall: 2.0 / 4, F1: 4.0 / 7, Support: 4, Predicted: 3, TruePositives: 2},
		{Name: "dog", Precision: 0, Recall: 0, F1: 0, Support: 2, Predicted: 0, TruePositives: 0},
		{Name: "fox", Precision: 0, Recall: 0, F1: 0, Support: 0, Predicted: 2, TruePositives: 0},
		{Name: "owl", Precision: 0, Recall: 0, F1: 0, Support: 0, Predicted: 0, TruePositives: 0},
		{Name: "yak", Precision: 3.0 / 5, Recall: 3.0 / 4, F1: 6.0 / 9, Support: 4, Predicted: 5, TruePositives: 3},
	}
	for i, w := range wantPer {
		if r.PerClass[i] != w {
			t.Errorf("class %d = %+v, want %+v", i, r.PerClass[i], w)
		}
	}
	// Macro over the four classes present in truth or predictions (owl is
	// in neither); balanced accuracy over the three with support.
	// The expected values are computed at run time in float64, in the order
	// the package sums (class order), so they must match bit for bit.
	// (Constant expressions would be evaluated exactly by the compiler.)
	pCat, rCat, fCat := div(2, 3), div(2, 4), div(4, 7)
	pYak, rYak, fYak := div(3, 5), div(3, 4), div(6, 9)
	wantMacro := Average{
		Precision: (pCat + pYak) / 4,
		Recall:    (rCat + rYak) / 4,
		F1:        (fCat + fYak) / 4,
	}
	if r.Macro != wantMacro {
		t.Errorf("macro = %+v, want %+v", r.Macro, wantMacro)
	}
	if want := (rCat + rYak) / 3; r.BalancedAccuracy != want {
		t.Errorf("balanced accuracy = %v, want %v", r.BalancedAccuracy, want)
	}
	four := div(4, 1)
	wantWeighted := Average{
		Precision: (four*pCat + four*pYak) / 10,
		Recall:    (four*rCat + four*rYak) / 10,
		F1:        (four*fCat + four*fYak) / 10,
	}
	if r.Weighted != wantWeighted {
		t.Errorf("weighted = %+v, want %+v", r.Weighted, wantWeighted)
	}
	if r.Weighted.Recall != r.Accuracy {
		t.Errorf("weighted recall %v should equal accuracy %v", r.Weighted.Recall, r.Accuracy)
	}
	// Plain values to guard against the expressions above being wrong
	// together with the code.
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"macro precision", r.Macro.Precision, 0.31666666666666665},
		{"macro recall", r.Macro.Recall, 0.3125},
		{"macro f1", r.Macro.F1, 0.30952380952380953},
		{"balanced accuracy", r.BalancedAccuracy, 0.4166666666666667},
		{"weighted f1", r.Weighted.F1, 0.4952380952380952},
	} {
		if math.Abs(c.got-c.want) > 1e-15 {
			t.Errorf("%s = %.17g, want %.17g", c.name, c.got, c.want)
		}
	}
}

// div divides at run time.
func div(a, b int) float64 { return float64(a) / float64(b) }

func TestPerfectAndAllWrong(t *testing.T) {
	classes := []string{"a", "b", "c"}
	y := []int{0, 1, 2, 2}
	r, err := Compute(y, y, classes)
	if err != nil {
		t.Fatal(err)
	}
	if r.Accuracy != 1 || r.BalancedAccuracy != 1 || r.Macro != (Average{1, 1, 1}) || r.Weighted != (Average{1, 1, 1}) {
		t.Errorf("perfect predictions: %+v", r)
	}
	r, err = Compute([]int{0, 0, 1}, []int{1, 1, 0}, classes)
	if err != nil {
		t.Fatal(err)
	}
	if r.Accuracy != 0 || r.BalancedAccuracy != 0 || r.Macro != (Average{}) || r.Weighted != (Average{}) {
		t.Errorf("all wrong: %+v", r)
	}
	// c occurs nowhere: it must not enter the macro average.
	if r.PerClass[2] != (ClassReport{Name: "c"}) {
		t.Errorf("absent class: %+v", r.PerClass[2])
	}
}

func TestComputeErrors(t *testing.T) {
	cases := []struct {
		name        string
		yTrue, yPrd []int
		classes     []string
		want        string
	}{
		{"no classes", []int{0}, []int{0}, nil, "at least one class"},
		{"empty", nil, nil, []string{"a"}, "no samples"},
		{"length", []int{0, 0}, []int{0}, []string{"a"}, "2 true labels but 1 predictions"},
		{"true range", []int{0, 2}, []int{0, 0}, []string{"a", "b"}, "true label 2 at sample 1"},
		{"negative pred", []int{0, 1}, []int{0, -1}, []string{"a", "b"}, "predicted label -1 at sample 1"},
	}
	for _, c := range cases {
		_, err := Compute(c.yTrue, c.yPrd, c.classes)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
	if _, err := FromConfusion([][]int{{1, 0}, {0}}, []string{"a", "b"}); err == nil {
		t.Error("ragged confusion matrix accepted")
	}
	if _, err := FromConfusion([][]int{{1, -1}, {0, 0}}, []string{"a", "b"}); err == nil {
		t.Error("negative cell accepted")
	}
	if _, err := FromConfusion([][]int{{0, 0}, {0, 0}}, []string{"a", "b"}); err == nil {
		t.Error("all-zero matrix accepted")
	}
	if _, err := FromConfusion([][]int{{1}}, []string{"a", "b"}); err == nil {
		t.Error("wrong row count accepted")
	}
}

func TestFromConfusionMatchesCompute(t *testing.T) {
	r1, err := Compute(exTrue, exPred, exClasses)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := ConfusionMatrix(exTrue, exPred, len(exClasses))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := FromConfusion(cm, exClasses)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r1, r2) {
		t.Errorf("FromConfusion differs from Compute:\n%+v\n%+v", r1, r2)
	}
	cm[0][0] = 99 // the report keeps its own copy
	if r2.Confusion[0][0] != 2 {
		t.Error("report shares the caller's confusion matrix")
	}
}

func TestTopK(t *testing.T) {
	scores := [][]float32{
		{0.1, 0.6, 0.3}, // true 1: rank 1
		{0.5, 0.2, 0.3}, // true 2: rank 2
		{0.2, 0.3, 0.5}, // true 0: rank 3
		{0.4, 0.4, 0.2}, // true 1: tied for first, a hit at k=1
		{0.3, 0.3, 0.3}, // true 2: all tied, a hit at k=1
	}
	y := []int{1, 2, 0, 1, 2}
	for k, want := range map[int]float64{1: 3.0 / 5, 2: 4.0 / 5, 3: 1, 7: 1} {
		got, err := TopKAccuracy(y, scores, k)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("top-%d = %v, want %v", k, got, want)
		}
	}
	for _, c := range []struct {
		name   string
		y      []int
		scores [][]float64
		k      int
	}{
		{"k=0", []int{0}, [][]float64{{1, 0}}, 0},
		{"length", []int{0, 1}, [][]float64{{1, 0}}, 1},
		{"empty", nil, nil, 1},
		{"ragged", []int{0, 0}, [][]float64{{1, 0}, {1}}, 1},
		{"label", []int{2}, [][]float64{{1, 0}}, 1},
		{"nan", []int{0}, [][]float64{{math.NaN(), 0}}, 1},
	} {
		if _, err := TopKAccuracy(c.y, c.scores, c.k); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}

	r, err := Compute(y, []int{1, 0, 2, 0, 0}, []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if err := AddTopK(r, y, scores, 2, 1); err != nil {
		t.Fatal(err)
	}
	if err := AddTopK(r, y, scores, 2); err != nil { // replaces, no duplicate
		t.Fatal(err)
	}
	want := []TopK{{1, 3.0 / 5}, {2, 4.0 / 5}}
	if !reflect.DeepEqual(r.TopK, want) {
		t.Errorf("TopK = %v, want %v", r.TopK, want)
	}
	if err := AddTopK(r, y, [][]float64{{1, 2}}, 1); err == nil {
		t.Error("score rows with the wrong class count accepted")
	}
}

func TestArgmax(t *testing.T) {
	got, err := Argmax([][]float32{{0.1, 0.7, 0.2}, {3, 3, 1}, {-1, -2, -0.5}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 0, 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("argmax = %v, want %v", got, want)
	}
	if _, err := Argmax([][]float64{{}}); err == nil {
		t.Error("empty row accepted")
	}
	if _, err := Argmax([][]float64{{1, math.NaN()}}); err == nil {
		t.Error("NaN accepted")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r, err := Compute(exTrue, exPred, exClasses)
	if err != nil {
		t.Fatal(err)
	}
	if err := AddTopK(r, []int{0, 1}, [][]float64{{1, 0, 0, 0, 0}, {0, 0, 1, 0, 0}}, 1); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"classes", "samples", "correct", "accuracy", "balanced_accuracy", "macro", "weighted", "per_class", "confusion", "top_k"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if got := raw["per_class"].([]any)[0].(map[string]any)["f1"].(float64); got != 4.0/7 {
		t.Errorf("per_class[0].f1 = %v", got)
	}
	back, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip differs:\n%+v\n%+v", back, r)
	}
	if _, err := ReadJSON(strings.NewReader(`{"bogus": 1}`)); err == nil {
		t.Error("unknown field accepted")
	}
}

func TestText(t *testing.T) {
	r, err := Compute(exTrue, exPred, exClasses)
	if err != nil {
		t.Fatal(err)
	}
	if err := AddTopK(r, []int{0, 1}, [][]float64{{1, 0, 0, 0, 0}, {0, 0, 1, 0, 0}}, 1, 3); err != nil {
		t.Fatal(err)
	}
	txt := r.Text()
	lines := strings.Split(txt, "\n")
	want := []string{
		"              precision     recall   f1-score    support  predicted",
		"         cat     0.6667     0.5000     0.5714          4          3",
		"         dog     0.0000     0.0000     0.0000          2          0",
		"         fox     0.0000     0.0000     0.0000          0          2",
		"         owl     0.0000     0.0000     0.0000          0          0",
		"         yak     0.6000     0.7500     0.6667          4          5",
		"",
		"    accuracy                           0.5000         10",
		"   macro avg     0.3167     0.3125     0.3095         10",
		"weighted avg     0.5067     0.5000     0.4952         10",
		"",
		"balanced accuracy 0.4167",
		"top-1 accuracy    0.5000",
		"top-3 accuracy    1.0000",
		"",
		"confusion matrix (rows: true, columns: predicted)",
		"     cat  dog  fox  owl  yak",
		"cat    2    0    1    0    1",
		"dog    1    0    0    0    1",
		"fox    0    0    0    0    0",
		"owl    0    0    0    0    0",
		"yak    0    0    1    0    3",
		"",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("text:\n%s\nwant:\n%s", txt, strings.Join(want, "\n"))
	}
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil || buf.String() != txt {
		t.Errorf("WriteText differs from Text (err %v)", err)
	}
}

// sklearnResult mirrors testdata/sklearn_ref.py's output.
type sklearnResult struct {
	Accuracy         float64    `json:"accuracy"`
	BalancedAccuracy float64    `json:"balanced_accuracy"`
	Precision        []float64  `json:"precision"`
	Recall           []float64  `json:"recall"`
	F1               []float64  `json:"f1"`
	Support          []int      `json:"support"`
	Confusion        [][]int    `json:"confusion"`
	Macro            [3]float64 `json:"macro"`
	Weighted         [3]float64 `json:"weighted"`
	TopK             []float64  `json:"top_k"`
}

type sklearnCase struct {
	N      int         `json:"n"`
	YTrue  []int       `json:"y_true"`
	YPred  []int       `json:"y_pred"`
	Scores [][]float64 `json:"scores"`
	Ks     []int       `json:"ks"`
}

func TestSklearnParity(t *testing.T) {
	py := pyref.Require(t, "sklearn", "numpy")
	rng := rand.New(rand.NewPCG(7, 11))
	var cases []sklearnCase
	cases = append(cases, sklearnCase{N: 5, YTrue: exTrue, YPred: exPred})
	for _, n := range []int{4, 5, 8, 8, 8} {
		size := 20 + rng.IntN(200)
		c := sklearnCase{N: n}
		for range size {
			// Skew towards low classes so that high ones are rare or
			// absent, in truth, in predictions or both.
			tl := min(rng.IntN(n), rng.IntN(n))
			pl := tl
			if rng.Float64() < 0.4 {
				pl = min(rng.IntN(n), rng.IntN(n-1))
			}
			c.YTrue = append(c.YTrue, tl)
			c.YPred = append(c.YPred, pl)
		}
		cases = append(cases, c)
	}
	for i := range cases {
		c := &cases[i]
		c.Ks = []int{1, 2, 3}
		for _, tl := range c.YTrue {
			row := make([]float64, c.N)
			for j := range row {
				row[j] = rng.Float64()
			}
			row[tl] += 0.3 * rng.Float64()
			c.Scores = append(c.Scores, row)
		}
	}
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	inPath := filepath.Join(t.TempDir(), "cases.json")
	if err := os.WriteFile(inPath, in, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := pyref.Run(py, "testdata/sklearn_ref.py", inPath)
	if err != nil {
		t.Fatal(err)
	}
	var refs []sklearnResult
	if err := json.Unmarshal(out, &refs); err != nil {
		t.Fatalf("decode reference output: %v\n%s", err, out)
	}
	if len(refs) != len(cases) {
		t.Fatalf("%d reference results for %d cases", len(refs), len(cases))
	}
	const tol = 1e-12
	near := func(what string, ci int, got, want float64) {
		if math.Abs(got-want) > tol {
			t.Errorf("case %d %s = %.17g, sklearn %.17g", ci, what, got, want)
		}
	}
	for ci, c := range cases {
		names := make([]string, c.N)
		for i := range names {
			names[i] = string(rune('a' + i))
		}
		r, err := Compute(c.YTrue, c.YPred, names)
		if err != nil {
			t.Fatal(err)
		}
		if err := AddTopK(r, c.YTrue, c.Scores, c.Ks...); err != nil {
			t.Fatal(err)
		}
		ref := refs[ci]
		near("accuracy", ci, r.Accuracy, ref.Accuracy)
		near("balanced accuracy", ci, r.BalancedAccuracy, ref.BalancedAccuracy)
		for i, pc := range r.PerClass {
			near("precision["+pc.Name+"]", ci, pc.Precision, ref.Precision[i])
			near("recall["+pc.Name+"]", ci, pc.Recall, ref.Recall[i])
			near("f1["+pc.Name+"]", ci, pc.F1, ref.F1[i])
			if pc.Support != ref.Support[i] {
				t.Errorf("case %d support[%s] = %d, sklearn %d", ci, pc.Name, pc.Support, ref.Support[i])
			}
		}
		if !reflect.DeepEqual(r.Confusion, ref.Confusion) {
			t.Errorf("case %d confusion = %v, sklearn %v", ci, r.Confusion, ref.Confusion)
		}
		near("macro precision", ci, r.Macro.Precision, ref.Macro[0])
		near("macro recall", ci, r.Macro.Recall, ref.Macro[1])
		near("macro f1", ci, r.Macro.F1, ref.Macro[2])
		near("weighted precision", ci, r.Weighted.Precision, ref.Weighted[0])
		near("weighted recall", ci, r.Weighted.Recall, ref.Weighted[1])
		near("weighted f1", ci, r.Weighted.F1, ref.Weighted[2])
		for i, tk := range r.TopK {
			near("top-k", ci, tk.Accuracy, ref.TopK[i])
		}
	}
}
