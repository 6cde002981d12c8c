package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// WriteJSON writes the report as indented JSON followed by a newline.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("metrics: encode report: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("metrics: write report: %w", err)
	}
	return nil
}

// ReadJSON decodes a report written by WriteJSON (or json.Marshal).
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("metrics: decode report: %w", err)
	}
	return &r, nil
}

// Text renders the report for a terminal: a per-class table in the style of
// scikit-learn's classification_report (precision, recall, F1, support and
// the number of predictions), the accuracies and averages, then the
// confusion matrix with class names, rows true and columns predicted.
func (r *Report) Text() string {
	var b strings.Builder
	nameW := utf8.RuneCountInString("weighted avg")
	for _, c := range r.Classes {
		nameW = max(nameW, utf8.RuneCountInString(c))
	}
	pad := func(s string, w int) string { // right-align
		if n := utf8.RuneCountInString(s); n < w {
			return strings.Repeat(" ", w-n) + s
		}
		return s
	}
	fmt.Fprintf(&b, "%s %10s %10s %10s %10s %10s\n", pad("", nameW), "precision", "recall", "f1-score", "support", "predicted")
	for _, c := range r.PerClass {
		fmt.Fprintf(&b, "%s %10.4f %10.4f %10.4f %10d %10d\n", pad(c.Name, nameW), c.Precision, c.Recall, c.F1, c.Support, c.Predicted)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "%s %10s %10s %10.4f %10d\n", pad("accuracy", nameW), "", "", r.Accuracy, r.Samples)
	fmt.Fprintf(&b, "%s %10.4f %10.4f %10.4f %10d\n", pad("macro avg", nameW), r.Macro.Precision, r.Macro.Recall, r.Macro.F1, r.Samples)
	fmt.Fprintf(&b, "%s %10.4f %10.4f %10.4f %10d\n", pad("weighted avg", nameW), r.Weighted.Precision, r.Weighted.Recall, r.Weighted.F1, r.Samples)
	b.WriteString("\n")
	fmt.Fprintf(&b, "balanced accuracy %.4f\n", r.BalancedAccuracy)
	for _, t := range r.TopK {
		fmt.Fprintf(&b, "top-%d accuracy    %.4f\n", t.K, t.Accuracy)
	}
	b.WriteString("\nconfusion matrix (rows: true, columns: predicted)\n")
	colW := 1
	for _, c := range r.Classes {
		colW = max(colW, utf8.RuneCountInString(c))
	}
	for _, row := range r.Confusion {
		for _, v := range row {
			colW = max(colW, len(fmt.Sprint(v)))
		}
	}
	rowW := 1
	for _, c := range r.Classes {
		rowW = max(rowW, utf8.RuneCountInString(c))
	}
	b.WriteString(pad("", rowW))
	for _, c := range r.Classes {
		b.WriteString("  " + pad(c, colW))
	}
	b.WriteString("\n")
	for i, row := range r.Confusion {
		name := ""
		if i < len(r.Classes) {
			name = r.Classes[i]
		}
		b.WriteString(pad(name, rowW))
		for _, v := range row {
			b.WriteString("  " + pad(fmt.Sprint(v), colW))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// WriteText writes Text to w.
func (r *Report) WriteText(w io.Writer) error {
	if _, err := io.WriteString(w, r.Text()); err != nil {
		return fmt.Errorf("metrics: write report: %w", err)
	}
	return nil
}
