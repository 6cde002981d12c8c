package train

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestClaimRunFolder: a new run refuses a folder holding an earlier run's
// checkpoints, and --overwrite removes that run's files and nothing else.
func TestClaimRunFolder(t *testing.T) {
	dir := t.TempDir()
	write := func(name string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	list := func() []string {
		t.Helper()
		var names []string
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, path)
				names = append(names, rel)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		return names
	}

	// A folder with no checkpoint (a run stopped before its first one, or
	// the user's own files) is taken as it is.
	write(EffectiveConfig)
	write("notes.txt")
	if err := claimRunFolder(dir, false); err != nil {
		t.Fatalf("folder without checkpoints refused: %v", err)
	}
	if err := claimRunFolder(filepath.Join(dir, "missing"), false); err != nil {
		t.Fatalf("missing folder refused: %v", err)
	}

	for _, name := range []string{LastCheckpoint, BestCheckpoint, HistoryCSV, HistoryJSON, CurvesPNG, ValidationReport,
		"epoch-01-val_acc-0.5000.safetensors", "epoch-12-val_acc-0.9241.safetensors", "eval/results.csv", "mine.safetensors"} {
		write(name)
	}
	before := list()
	err := claimRunFolder(dir, false)
	if !errors.Is(err, ErrRunExists) {
		t.Fatalf("error %v, want ErrRunExists", err)
	}
	want := dir + " has 4 checkpoint files; continue that run with `fer train --resume " + dir + "`, choose another --output, or start over with --overwrite"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
	if after := list(); !slices.Equal(after, before) {
		t.Errorf("a refused folder changed: %v -> %v", before, after)
	}

	if err := claimRunFolder(dir, true); err != nil {
		t.Fatal(err)
	}
	if got, want := list(), []string{"eval/results.csv", "mine.safetensors", "notes.txt"}; !slices.Equal(got, want) {
		t.Errorf("after --overwrite the folder holds %v, want %v", got, want)
	}
}
