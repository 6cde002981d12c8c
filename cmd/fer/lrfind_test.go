package main

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLRFindCommand sweeps a tiny model on a small synthetic layout: it
// writes the CSV and PNG it was asked for, with the sweep's rates, and
// leaves the configured run folder untouched.
func TestLRFindCommand(t *testing.T) {
	dir := t.TempDir()
	layout := prepareSmall(t, dir)
	out := filepath.Join(dir, "run")
	csvPath, pngPath := filepath.Join(dir, "sweep.csv"), filepath.Join(dir, "sweep.png")
	args := append(trainArgs(layout, out)[1:], "--steps", "12", "--start-lr", "1e-5", "--end-lr", "1e-2", "--csv", csvPath, "--png", pngPath)
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"lr-find"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "suggested learning rates: ") {
		t.Errorf("stdout lacks the suggestions:\n%s", stdout.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("lr-find made the run folder %s (%v)", out, err)
	}
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 2 || strings.Join(rows[0], ",") != "lr,loss,smoothed_loss" {
		t.Fatalf("csv: %v", rows)
	}
	for i, row := range rows[1:] {
		lr, err := strconv.ParseFloat(row[0], 64)
		want := 1e-5 * math.Pow(1e3, float64(i)/11)
		if err != nil || math.Abs(lr-want) > 1e-12*want {
			t.Errorf("row %d: rate %s, want %g", i+1, row[0], want)
		}
	}
	if st, err := os.Stat(pngPath); err != nil || st.Size() < 1000 {
		t.Errorf("png: %v", err)
	}
}
