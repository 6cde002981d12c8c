package train

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOnlyTheDefaultWeightsMayBeMissing: the built-in default path may be
// missing (a warning, random weights); the same path or any other given by
// flag or config file must load.
func TestOnlyTheDefaultWeightsMayBeMissing(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)

	var warn bytes.Buffer
	m := DefaultConfig().Model
	f, err := readPretrained(m, &warn)
	if err != nil || f != nil {
		t.Fatalf("default path missing: %v %v", f, err)
	}
	if want := "warning: pretrained weights " + DefaultWeights + " not found: the base starts from RANDOM weights"; !strings.HasPrefix(warn.String(), want) {
		t.Errorf("warning %q, want prefix %q", warn.String(), want)
	}

	m.weightsGiven = true
	warn.Reset()
	if _, err := readPretrained(m, &warn); err == nil || !strings.HasPrefix(err.Error(), "pretrained weights "+DefaultWeights+" cannot be used") || warn.Len() > 0 {
		t.Errorf("default path given explicitly: %v (warned %q)", err, warn.String())
	}
	m = DefaultConfig().Model
	m.Weights = "other.pth"
	if _, err := readPretrained(m, &warn); err == nil || !strings.Contains(err.Error(), "other.pth cannot be used") {
		t.Errorf("another path: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "other.pth"), []byte("not weights"), 0o644)
	if _, err := readPretrained(m, &warn); err == nil || !strings.Contains(err.Error(), "unknown weight file format") {
		t.Errorf("a file that is no weights: %v", err)
	}
	m.Weights = ""
	if f, err := readPretrained(m, &warn); f != nil || err != nil {
		t.Errorf("no weights: %v %v", f, err)
	}
}
