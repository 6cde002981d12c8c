package tensorfile

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/internal/pyref"
)

func writePTH(t testing.TB, f *File) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := f.WritePTH(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WritePTH reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

// TestWritePTHRoundTrip reads back what WritePTH writes and checks the
// archive's layout.
func TestWritePTHRoundTrip(t *testing.T) {
	want := sampleFile(t)
	data := writePTH(t, want)
	got, err := ReadPTH(bytes.NewReader(data), int64(len(data)), PTHOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Names(), want.Names()) {
		t.Fatalf("names %v, want %v", got.Names(), want.Names())
	}
	for i := range want.Entries {
		g, w := got.Entries[i], want.Entries[i]
		if g.DType != w.DType || !reflect.DeepEqual(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("%s: got %v %v %x, want %v %v %x", w.Name, g.DType, g.Shape, g.Data, w.DType, w.Shape, w.Data)
		}
	}
	// Tensor data is 64-byte aligned, as torch.save writes it.
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, zf := range zr.File {
		names = append(names, zf.Name)
		off, err := zf.DataOffset()
		if err != nil || off%64 != 0 {
			t.Errorf("%s: data at byte %d, %v", zf.Name, off, err)
		}
	}
	if names[0] != "archive/data.pkl" || names[len(names)-1] != "archive/version" || len(names) != len(want.Entries)+3 {
		t.Errorf("records %v", names)
	}
	// The same input gives the same bytes.
	if again := writePTH(t, want); !bytes.Equal(again, data) {
		t.Error("WritePTH is not deterministic")
	}
	// Counts beyond int32 are written as LONG1.
	p := statePickleFor(&File{Entries: []Entry{{Name: "big", DType: Uint8, Shape: []int64{1 << 33, 0}, Data: []byte{}}}})
	if !bytes.Contains(p, []byte{opLong1, 8, 0, 0, 0, 0, 2, 0, 0, 0}) {
		t.Errorf("pickle lacks LONG1 for 1<<33: %q", p)
	}
	if _, err := (&File{Entries: []Entry{{Name: "\xff", DType: Int8, Shape: []int64{0}, Data: []byte{}}}}).WritePTH(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("err = %v", err)
	}
}

// TestWritePTHLoadsInPyTorch checks that torch.load, with and without
// weights_only, reads what WritePTH writes.
func TestWritePTHLoadsInPyTorch(t *testing.T) {
	py := pyref.Require(t, "torch")
	f := sampleFile(t)
	path := filepath.Join(t.TempDir(), "go.pth")
	if err := os.WriteFile(path, writePTH(t, f), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"", "weights_only"} {
		out, err := pyref.Run(py, "testdata/torch_load.py", path, mode)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Entries []manifestEntry `json:"entries"`
		}
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		compareManifest(t, f, m.Entries)
	}
}
