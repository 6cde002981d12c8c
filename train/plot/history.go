// Package plot draws the pictures people look at after training: training
// curves (loss and accuracy per epoch, training against validation, like
// the two figures of the Keras transfer-learning tutorial, optionally the
// learning rate and further panels) and a confusion-matrix heat map with
// class names, counts in the cells and row-normalised colouring. It also
// writes and reads the training history as CSV and JSON holding the same
// numbers as the pictures.
//
// Inputs are plain Go values; nothing here needs libtorch. Pictures are
// PNG, drawn with gonum.org/v1/plot.
package plot

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/fertorch/fertorch/internal/atomicfile"
)

// Epoch is one row of the training history. A value that was not measured
// (no validation set, no learning rate schedule) is NaN; it is left out of
// the pictures, written as an empty CSV field and as JSON null.
type Epoch struct {
	// Epoch is the epoch number, counted from 1 by convention.
	Epoch int
	// TrainLoss is the mean training loss over the epoch.
	TrainLoss float64
	// TrainAcc is the training accuracy over the epoch, in [0, 1].
	TrainAcc float64
	// ValLoss is the validation loss after the epoch.
	ValLoss float64
	// ValAcc is the validation accuracy after the epoch, in [0, 1].
	ValAcc float64
	// LR is the learning rate of the epoch's last step (the head's).
	LR float64
	// Seconds is the wall time the epoch took.
	Seconds float64
}

// History is the per-epoch record of a training run.
type History struct {
	// Epochs holds one row per epoch, in training order.
	Epochs []Epoch `json:"epochs"`
}

// ErrEmptyHistory is returned when a history without epochs is plotted or
// written.
var ErrEmptyHistory = errors.New("history has no epochs")

// columns are the CSV header and JSON keys, in order.
var columns = [...]string{"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}

func (e *Epoch) floats() [6]*float64 {
	return [6]*float64{&e.TrainLoss, &e.TrainAcc, &e.ValLoss, &e.ValAcc, &e.LR, &e.Seconds}
}

// formatFloat writes the shortest text that parses back to exactly v: ""
// for NaN (missing), "+Inf" and "-Inf" for infinities.
func formatFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return ""
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func parseFloat(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "nan") {
		return math.NaN(), nil
	}
	return strconv.ParseFloat(s, 64)
}

// MarshalJSON writes the epoch as an object with the CSV column names as
// keys. NaN becomes null and infinities the strings "+Inf" and "-Inf",
// since JSON numbers cannot hold them.
func (e Epoch) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"epoch":%d`, e.Epoch)
	for i, p := range e.floats() {
		b.WriteString(`,"` + columns[i+1] + `":`)
		v := *p
		switch {
		case math.IsNaN(v):
			b.WriteString("null")
		case math.IsInf(v, 0):
			b.WriteString(`"` + formatFloat(v) + `"`)
		default:
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	b.WriteString("}")
	return b.Bytes(), nil
}

// UnmarshalJSON reads what MarshalJSON writes. A missing key or null is
// NaN; the strings "NaN", "Inf", "+Inf" and "-Inf" are accepted.
func (e *Epoch) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("epoch: %w", err)
	}
	for k := range raw {
		if !isColumn(k) {
			return fmt.Errorf("epoch: unknown field %q", k)
		}
	}
	out := Epoch{}
	if v, ok := raw["epoch"]; ok {
		if err := json.Unmarshal(v, &out.Epoch); err != nil {
			return fmt.Errorf("epoch: field epoch: %w", err)
		}
	}
	for i, p := range out.floats() {
		name := columns[i+1]
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			*p = math.NaN()
			continue
		}
		if len(v) > 0 && v[0] == '"' {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("epoch: field %s: %w", name, err)
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || !(math.IsInf(f, 0) || math.IsNaN(f)) {
				return fmt.Errorf("epoch: field %s: string %q is not NaN or an infinity", name, s)
			}
			*p = f
			continue
		}
		if err := json.Unmarshal(v, p); err != nil {
			return fmt.Errorf("epoch: field %s: %w", name, err)
		}
	}
	*e = out
	return nil
}

func isColumn(name string) bool {
	for _, c := range columns {
		if c == name {
			return true
		}
	}
	return false
}

// WriteCSV writes the history as CSV with the header
// epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds. Numbers are
// written in the shortest form that reads back exactly; NaN is an empty
// field.
func WriteCSV(w io.Writer, h History) error {
	if len(h.Epochs) == 0 {
		return fmt.Errorf("write history CSV: %w", ErrEmptyHistory)
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(columns[:]); err != nil {
		return fmt.Errorf("write history CSV: %w", err)
	}
	for _, e := range h.Epochs {
		row := []string{strconv.Itoa(e.Epoch)}
		for _, p := range e.floats() {
			row = append(row, formatFloat(*p))
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write history CSV: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write history CSV: %w", err)
	}
	return nil
}

// ReadCSV reads a history written by WriteCSV. Columns may come in any
// order; a missing column or empty field is NaN; an unknown column is an
// error, as is a file without the epoch column or without rows.
func ReadCSV(r io.Reader) (History, error) {
	cr := csv.NewReader(r)
	recs, err := cr.ReadAll()
	if err != nil {
		return History{}, fmt.Errorf("read history CSV: %w", err)
	}
	if len(recs) == 0 {
		return History{}, errors.New("read history CSV: no header")
	}
	idx := map[string]int{}
	for i, name := range recs[0] {
		name = strings.TrimSpace(strings.TrimPrefix(name, "\ufeff"))
		if !isColumn(name) {
			return History{}, fmt.Errorf("read history CSV: unknown column %q", name)
		}
		if _, dup := idx[name]; dup {
			return History{}, fmt.Errorf("read history CSV: column %q appears twice", name)
		}
		idx[name] = i
	}
	if _, ok := idx["epoch"]; !ok {
		return History{}, errors.New("read history CSV: no epoch column")
	}
	var h History
	for ln, rec := range recs[1:] {
		var e Epoch
		n, err := strconv.Atoi(strings.TrimSpace(rec[idx["epoch"]]))
		if err != nil {
			return History{}, fmt.Errorf("read history CSV: line %d: epoch: %w", ln+2, err)
		}
		e.Epoch = n
		for i, p := range e.floats() {
			col, ok := idx[columns[i+1]]
			if !ok {
				*p = math.NaN()
				continue
			}
			v, err := parseFloat(rec[col])
			if err != nil {
				return History{}, fmt.Errorf("read history CSV: line %d: %s: %w", ln+2, columns[i+1], err)
			}
			*p = v
		}
		h.Epochs = append(h.Epochs, e)
	}
	if len(h.Epochs) == 0 {
		return History{}, fmt.Errorf("read history CSV: %w", ErrEmptyHistory)
	}
	return h, nil
}

// WriteJSON writes the history as indented JSON: {"epochs": [{"epoch": 1,
// "train_loss": ..., ...}, ...]}, followed by a newline.
func WriteJSON(w io.Writer, h History) error {
	if len(h.Epochs) == 0 {
		return fmt.Errorf("write history JSON: %w", ErrEmptyHistory)
	}
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return fmt.Errorf("write history JSON: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write history JSON: %w", err)
	}
	return nil
}

// ReadJSON reads a history written by WriteJSON.
func ReadJSON(r io.Reader) (History, error) {
	var h History
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return History{}, fmt.Errorf("read history JSON: %w", err)
	}
	if len(h.Epochs) == 0 {
		return History{}, fmt.Errorf("read history JSON: %w", ErrEmptyHistory)
	}
	return h, nil
}

// SaveCSV writes the history to a CSV file (see WriteCSV).
func SaveCSV(path string, h History) error {
	return saveFile(path, func(w io.Writer) error { return WriteCSV(w, h) })
}

// SaveJSON writes the history to a JSON file (see WriteJSON).
func SaveJSON(path string, h History) error {
	return saveFile(path, func(w io.Writer) error { return WriteJSON(w, h) })
}

// LoadCSV reads a history from a CSV file (see ReadCSV).
func LoadCSV(path string) (History, error) {
	f, err := os.Open(path)
	if err != nil {
		return History{}, fmt.Errorf("load history: %w", err)
	}
	defer f.Close()
	h, err := ReadCSV(f)
	if err != nil {
		return History{}, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// LoadJSON reads a history from a JSON file (see ReadJSON).
func LoadJSON(path string) (History, error) {
	f, err := os.Open(path)
	if err != nil {
		return History{}, fmt.Errorf("load history: %w", err)
	}
	defer f.Close()
	h, err := ReadJSON(f)
	if err != nil {
		return History{}, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// saveFile writes path atomically: a failed write never leaves a truncated
// file behind.
func saveFile(path string, write func(io.Writer) error) error {
	if err := atomicfile.Write(path, write); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}
