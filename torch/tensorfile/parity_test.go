package tensorfile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/internal/pyref"
)

// manifestEntry is one tensor as PyTorch reads it back (see
// testdata/make_pth.py).
type manifestEntry struct {
	Name       string  `json:"name"`
	DType      string  `json:"dtype"`
	Shape      []int64 `json:"shape"`
	Contiguous bool    `json:"contiguous"`
	SHA256     string  `json:"sha256"`
	Hex        string  `json:"hex"`
}

func readManifest(t *testing.T, path string) []manifestEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Entries []manifestEntry `json:"entries"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m.Entries
}

// compareManifest checks every entry's name, order, dtype, shape and bytes
// against what PyTorch read from the same file.
func compareManifest(t *testing.T, f *File, want []manifestEntry) {
	t.Helper()
	if len(f.Entries) != len(want) {
		t.Fatalf("%d entries, PyTorch has %d (%v)", len(f.Entries), len(want), f.Names())
	}
	for i, w := range want {
		e := &f.Entries[i]
		shape := w.Shape
		if shape == nil {
			shape = []int64{}
		}
		got := e.Shape
		if got == nil {
			got = []int64{}
		}
		if e.Name != w.Name || e.DType.String() != w.DType || !reflect.DeepEqual(got, shape) {
			t.Errorf("entry %d: %s %v %v, PyTorch has %s %s %v", i, e.Name, e.DType, e.Shape, w.Name, w.DType, w.Shape)
			continue
		}
		sum := sha256.Sum256(e.Data)
		if hex.EncodeToString(sum[:]) != w.SHA256 {
			if w.Hex != "" {
				t.Errorf("%s: bytes %x, PyTorch has %s", e.Name, e.Data, w.Hex)
			} else {
				t.Errorf("%s: sha256 %x, PyTorch has %s", e.Name, sum, w.SHA256)
			}
		}
		if err := e.Validate(); err != nil {
			t.Error(err)
		}
	}
}

// TestAgainstPyTorch reads files that PyTorch writes, in both .pth
// formats, and compares every tensor with what torch.load reads.
func TestAgainstPyTorch(t *testing.T) {
	py := pyref.Require(t, "torch", "torchvision")
	dir := t.TempDir()
	marker := filepath.Join(dir, "PWNED")
	if _, err := pyref.Run(py, "testdata/make_pth.py", dir, marker); err != nil {
		t.Fatal(err)
	}
	file := func(name string) string { return filepath.Join(dir, name) }

	for _, name := range []string{"vgg", "dtypes", "views"} {
		for _, format := range []string{"zip", "legacy"} {
			base := name + "_" + format
			t.Run(base, func(t *testing.T) {
				f, err := ReadPTHFile(file(base+".pth"), PTHOptions{})
				if err != nil {
					t.Fatal(err)
				}
				compareManifest(t, f, readManifest(t, file(base+".json")))
				if name == "vgg" {
					// VGG16's base (14,714,688 parameters) plus the small head.
					var n int64
					for i := range f.Entries {
						n += f.Entries[i].NumElements()
					}
					if want := int64(14714688 + 512*32 + 32 + 32*8 + 8); n != want {
						t.Errorf("%d parameters, want %d", n, want)
					}
					if f.Entries[0].Name != "features.0.weight" || f.Entries[len(f.Entries)-1].Name != "classifier.3.bias" {
						t.Errorf("names %v", f.Names())
					}
				}
			})
		}
	}

	t.Run("old_legacy", func(t *testing.T) {
		f, err := ReadPTHFile(file("old_legacy.pth"), PTHOptions{})
		if err != nil {
			t.Fatal(err)
		}
		compareManifest(t, f, readManifest(t, file("old_legacy.json")))
	})

	for _, format := range []string{"zip", "legacy"} {
		t.Run("nested_"+format, func(t *testing.T) {
			path := file("nested_" + format + ".pth")
			_, err := ReadPTHFile(path, PTHOptions{})
			want := path + `: the file's top level is not a flat dict of tensors: "epoch" holds an int, "state_dict" holds a nested dict (2 tensors), "optimizer" holds a nested dict (2 tensors), "name" holds a str, "ema" holds a nested dict (1 tensors); select a nested dict with PTHOptions.Key (e.g. Key: "state_dict") or read every tensor with PTHOptions.Flatten`
			if err == nil || err.Error() != want {
				t.Errorf("err = %v\nwant %s", err, want)
			}
			all := readManifest(t, file("nested_"+format+".json"))
			f, err := ReadPTHFile(path, PTHOptions{Flatten: true})
			if err != nil {
				t.Fatal(err)
			}
			compareManifest(t, f, all)
			if want := []string{"epoch", "optimizer.param_groups", "name"}; !reflect.DeepEqual(f.Skipped, want) {
				t.Errorf("skipped %v, want %v", f.Skipped, want)
			}
			f, err = ReadPTHFile(path, PTHOptions{Key: "state_dict"})
			if err != nil {
				t.Fatal(err)
			}
			var sd []manifestEntry
			for _, e := range all {
				if name, ok := strings.CutPrefix(e.Name, "state_dict."); ok {
					e.Name = name
					sd = append(sd, e)
				}
			}
			compareManifest(t, f, sd)
		})
	}

	for _, c := range []struct{ name, module, attr string }{
		{"evil_system", "posix", "system"},
		// Pickle protocol 2 writes subprocess.Popen under its Python 2 name.
		{"evil_popen", "commands", "Popen"},
	} {
		for _, format := range []string{"zip", "legacy"} {
			t.Run(c.name+"_"+format, func(t *testing.T) {
				path := file(c.name + "_" + format + ".pth")
				for _, opts := range []PTHOptions{{}, {Flatten: true}} {
					_, err := ReadPTHFile(path, opts)
					var fg *ForbiddenGlobalError
					if !errors.As(err, &fg) || fg.Module != c.module || fg.Name != c.attr {
						t.Fatalf("err = %v, want forbidden global %s.%s", err, c.module, c.attr)
					}
					if msg := err.Error(); !strings.HasPrefix(msg, path+": ") || !strings.Contains(msg, "forbidden global "+c.module+"."+c.attr) {
						t.Errorf("error %q does not name the file and the global", msg)
					}
				}
				if _, err := ReadFile(path); err == nil {
					t.Error("ReadFile accepted a malicious file")
				}
				if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("the malicious file's command ran: %s exists", marker)
				}
			})
		}
	}
}
