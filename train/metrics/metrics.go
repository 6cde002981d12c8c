// Package metrics computes classification metrics from true and predicted
// class indices: accuracy, balanced accuracy, per-class precision, recall,
// F1 and support, their macro and support-weighted averages, the confusion
// matrix and top-k accuracy from score rows.
//
// Conventions (the same as scikit-learn's with zero_division=0):
//
//   - Class i's precision is tp/(tp+fp), its recall tp/(tp+fn) and its F1
//     2tp/(2tp+fp+fn), where tp, fp and fn count samples of that class.
//     Any of these whose denominator is zero (a class never predicted, a
//     class absent from the truth, or both) is 0, never NaN.
//   - Support is the number of samples whose true class is i.
//   - Macro averages are unweighted means over the classes that occur in
//     the truth or in the predictions (scikit-learn's default label set);
//     a class that occurs in neither is reported with zeros but does not
//     pull the average down. Weighted averages weight each class by its
//     support, so classes with zero support do not count.
//   - Balanced accuracy is the mean recall over the classes present in the
//     truth (support > 0).
//   - The confusion matrix has one row per true class and one column per
//     predicted class: Confusion[t][p] counts samples of class t predicted
//     as p.
//
// Everything is plain Go; nothing here needs libtorch.
package metrics

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// ClassReport holds the metrics of one class.
type ClassReport struct {
	// Name is the class name given to Compute.
	Name string `json:"name"`
	// Precision is tp/(tp+fp), or 0 when the class was never predicted.
	Precision float64 `json:"precision"`
	// Recall is tp/(tp+fn), or 0 when the class has no true samples.
	Recall float64 `json:"recall"`
	// F1 is 2tp/(2tp+fp+fn), the harmonic mean of precision and recall,
	// or 0 when the class occurs in neither truth nor predictions.
	F1 float64 `json:"f1"`
	// Support is the number of samples whose true class is this one.
	Support int `json:"support"`
	// Predicted is the number of samples predicted as this class.
	Predicted int `json:"predicted"`
	// TruePositives is the number of samples of this class predicted as it.
	TruePositives int `json:"true_positives"`
}

// Average holds averaged precision, recall and F1.
type Average struct {
	// Precision is the averaged precision.
	Precision float64 `json:"precision"`
	// Recall is the averaged recall.
	Recall float64 `json:"recall"`
	// F1 is the averaged per-class F1 (not the F1 of the averaged
	// precision and recall).
	F1 float64 `json:"f1"`
}

// TopK is the top-k accuracy for one k.
type TopK struct {
	// K is the number of highest-scoring classes a hit may be among.
	K int `json:"k"`
	// Accuracy is the fraction of samples whose true class is a hit.
	Accuracy float64 `json:"accuracy"`
}

// Report is the full set of metrics for one evaluation. It marshals to JSON
// as it is; all values are finite.
type Report struct {
	// Classes are the class names, index i naming class i.
	Classes []string `json:"classes"`
	// Samples is the number of evaluated samples.
	Samples int `json:"samples"`
	// Correct is the number of samples whose prediction equals the truth.
	Correct int `json:"correct"`
	// Accuracy is Correct/Samples.
	Accuracy float64 `json:"accuracy"`
	// BalancedAccuracy is the mean recall over classes with support > 0.
	BalancedAccuracy float64 `json:"balanced_accuracy"`
	// Macro is the unweighted mean over classes present in the truth or
	// the predictions.
	Macro Average `json:"macro"`
	// Weighted is the support-weighted mean over all classes.
	Weighted Average `json:"weighted"`
	// PerClass has one entry per class, in class order.
	PerClass []ClassReport `json:"per_class"`
	// Confusion is the confusion matrix, rows true and columns predicted.
	Confusion [][]int `json:"confusion"`
	// TopK holds top-k accuracies added with AddTopK, sorted by K.
	TopK []TopK `json:"top_k,omitempty"`
}

// ConfusionMatrix counts (true, predicted) pairs into a numClasses x
// numClasses matrix whose rows are true classes and columns predicted ones.
func ConfusionMatrix(yTrue, yPred []int, numClasses int) ([][]int, error) {
	if err := checkLabels(yTrue, yPred, numClasses); err != nil {
		return nil, fmt.Errorf("confusion matrix: %w", err)
	}
	cm := make([][]int, numClasses)
	for i := range cm {
		cm[i] = make([]int, numClasses)
	}
	for i, t := range yTrue {
		cm[t][yPred[i]]++
	}
	return cm, nil
}

func checkLabels(yTrue, yPred []int, numClasses int) error {
	if numClasses <= 0 {
		return fmt.Errorf("need at least one class, got %d", numClasses)
	}
	if len(yTrue) != len(yPred) {
		return fmt.Errorf("%d true labels but %d predictions", len(yTrue), len(yPred))
	}
	if len(yTrue) == 0 {
		return errors.New("no samples")
	}
	for i, t := range yTrue {
		if t < 0 || t >= numClasses {
			return fmt.Errorf("true label %d at sample %d is outside [0, %d)", t, i, numClasses)
		}
		if p := yPred[i]; p < 0 || p >= numClasses {
			return fmt.Errorf("predicted label %d at sample %d is outside [0, %d)", p, i, numClasses)
		}
	}
	return nil
}

// ratio returns num/den, or 0 when den is 0 (zero_division=0).
func ratio(num, den int) float64 {
	if den == 0 {
		return 0
	}
	return float64(num) / float64(den)
}

// Compute returns the metrics of predictions yPred against the truth yTrue.
// Labels are class indices into classes. It fails on empty input, length
// mismatches and labels outside the class range.
func Compute(yTrue, yPred []int, classes []string) (*Report, error) {
	cm, err := ConfusionMatrix(yTrue, yPred, len(classes))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return FromConfusion(cm, classes)
}

// FromConfusion computes the report from a confusion matrix (rows true,
// columns predicted) such as one accumulated batch by batch. The matrix is
// copied.
func FromConfusion(cm [][]int, classes []string) (*Report, error) {
	n := len(classes)
	if n == 0 {
		return nil, errors.New("metrics: need at least one class")
	}
	if len(cm) != n {
		return nil, fmt.Errorf("metrics: confusion matrix has %d rows for %d classes", len(cm), n)
	}
	r := &Report{
		Classes:   append([]string(nil), classes...),
		PerClass:  make([]ClassReport, n),
		Confusion: make([][]int, n),
	}
	for i, row := range cm {
		if len(row) != n {
			return nil, fmt.Errorf("metrics: confusion matrix row %d has %d columns for %d classes", i, len(row), n)
		}
		for j, v := range row {
			if v < 0 {
				return nil, fmt.Errorf("metrics: confusion matrix cell (%d, %d) is negative (%d)", i, j, v)
			}
		}
		r.Confusion[i] = append([]int(nil), row...)
	}
	for i := range n {
		c := &r.PerClass[i]
		c.Name = classes[i]
		c.TruePositives = cm[i][i]
		for j := range n {
			c.Support += cm[i][j]
			c.Predicted += cm[j][i]
		}
		r.Samples += c.Support
		r.Correct += c.TruePositives
		fp := c.Predicted - c.TruePositives
		fn := c.Support - c.TruePositives
		c.Precision = ratio(c.TruePositives, c.Predicted)
		c.Recall = ratio(c.TruePositives, c.Support)
		c.F1 = ratio(2*c.TruePositives, 2*c.TruePositives+fp+fn)
	}
	if r.Samples == 0 {
		return nil, errors.New("metrics: no samples")
	}
	r.Accuracy = ratio(r.Correct, r.Samples)

	var present, inTruth int
	var recallSum float64
	for _, c := range r.PerClass {
		if c.Support > 0 || c.Predicted > 0 {
			present++
			r.Macro.Precision += c.Precision
			r.Macro.Recall += c.Recall
			r.Macro.F1 += c.F1
		}
		if c.Support > 0 {
			inTruth++
			recallSum += c.Recall
		}
		w := float64(c.Support)
		r.Weighted.Precision += w * c.Precision
		r.Weighted.Recall += w * c.Recall
		r.Weighted.F1 += w * c.F1
	}
	// present >= inTruth >= 1 because Samples > 0.
	r.Macro.Precision /= float64(present)
	r.Macro.Recall /= float64(present)
	r.Macro.F1 /= float64(present)
	r.BalancedAccuracy = recallSum / float64(inTruth)
	r.Weighted.Precision /= float64(r.Samples)
	r.Weighted.Recall /= float64(r.Samples)
	r.Weighted.F1 /= float64(r.Samples)
	return r, nil
}

// Score is the element type of score rows: probabilities or logits.
type Score interface{ ~float32 | ~float64 }

// TopKAccuracy returns the fraction of samples whose true class is among the
// k highest-scoring classes of its row. scores[i] holds one score per class
// (probabilities or logits: only the order matters). Ties are counted in the
// sample's favour, like tf.math.in_top_k: sample i is a hit when fewer than
// k classes score strictly higher than its true class. k larger than the
// number of classes counts every sample as a hit. NaN scores are an error.
func TopKAccuracy[F Score](yTrue []int, scores [][]F, k int) (float64, error) {
	if k < 1 {
		return 0, fmt.Errorf("top-k accuracy: k must be at least 1, got %d", k)
	}
	if len(yTrue) != len(scores) {
		return 0, fmt.Errorf("top-k accuracy: %d labels but %d score rows", len(yTrue), len(scores))
	}
	if len(yTrue) == 0 {
		return 0, errors.New("top-k accuracy: no samples")
	}
	hits := 0
	for i, row := range scores {
		t := yTrue[i]
		if len(row) != len(scores[0]) {
			return 0, fmt.Errorf("top-k accuracy: score row %d has %d classes, row 0 has %d", i, len(row), len(scores[0]))
		}
		if t < 0 || t >= len(row) {
			return 0, fmt.Errorf("top-k accuracy: true label %d at sample %d is outside [0, %d)", t, i, len(row))
		}
		st := float64(row[t])
		higher := 0
		for j, s := range row {
			v := float64(s)
			if math.IsNaN(v) {
				return 0, fmt.Errorf("top-k accuracy: score row %d has NaN at class %d", i, j)
			}
			if v > st {
				higher++
			}
		}
		if higher < k {
			hits++
		}
	}
	return float64(hits) / float64(len(yTrue)), nil
}

// AddTopK computes the top-k accuracy for each k from score rows and stores
// it in r.TopK (replacing an earlier value for the same k). The rows must
// have one score per class of the report.
func AddTopK[F Score](r *Report, yTrue []int, scores [][]F, ks ...int) error {
	if r == nil {
		return errors.New("top-k accuracy: nil report")
	}
	for i, row := range scores {
		if len(row) != len(r.Classes) {
			return fmt.Errorf("top-k accuracy: score row %d has %d classes, the report has %d", i, len(row), len(r.Classes))
		}
	}
	for _, k := range ks {
		acc, err := TopKAccuracy(yTrue, scores, k)
		if err != nil {
			return err
		}
		replaced := false
		for i := range r.TopK {
			if r.TopK[i].K == k {
				r.TopK[i].Accuracy = acc
				replaced = true
			}
		}
		if !replaced {
			r.TopK = append(r.TopK, TopK{K: k, Accuracy: acc})
		}
	}
	sort.Slice(r.TopK, func(i, j int) bool { return r.TopK[i].K < r.TopK[j].K })
	return nil
}

// Argmax returns the index of the highest score in each row (the first one on
// ties), the usual way to turn model outputs into predictions. Empty rows
// and NaN scores are errors.
func Argmax[F Score](scores [][]F) ([]int, error) {
	out := make([]int, len(scores))
	for i, row := range scores {
		if len(row) == 0 {
			return nil, fmt.Errorf("argmax: score row %d is empty", i)
		}
		best := 0
		for j, s := range row {
			if math.IsNaN(float64(s)) {
				return nil, fmt.Errorf("argmax: score row %d has NaN at class %d", i, j)
			}
			if s > row[best] {
				best = j
			}
		}
		out[i] = best
	}
	return out, nil
}
