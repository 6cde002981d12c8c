package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/torch/tensorfile"
)

// TestSaveReadVerify: a checkpoint reads back with its state and the model
// and optimizer entries apart; a flipped byte, a foreign format version and
// plain weights are refused with their reasons.
func TestSaveReadVerify(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.safetensors")
	model := []tensorfile.Entry{{Name: "features.0.weight", DType: tensorfile.Float32, Shape: []int64{2}, Data: []byte{0, 0, 128, 63, 0, 0, 0, 64}}}
	opt := []tensorfile.Entry{{Name: "features.0.weight.exp_avg", DType: tensorfile.Float32, Shape: []int64{1}, Data: []byte{0, 0, 64, 64}}}
	state := []byte(`{"version":1,"kind":"full","classes":["a","b"]}`)
	if err := Save(path, state, model, opt); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Kind    string   `json:"kind"`
		Classes []string `json:"classes"`
	}
	if err := f.DecodeState(&st); err != nil || st.Kind != KindFull || !reflect.DeepEqual(st.Classes, []string{"a", "b"}) {
		t.Errorf("state %+v, %v", st, err)
	}
	if len(f.Model.Entries) != 1 || f.Model.Entries[0].Name != "features.0.weight" || len(f.Optimizer) != 1 || f.Optimizer[0].Name != "features.0.weight.exp_avg" {
		t.Errorf("entries: model %v optimizer %v", f.Model.Entries, f.Optimizer)
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	flipped := filepath.Join(dir, "flipped.safetensors")
	os.WriteFile(flipped, raw, 0o644)
	if _, err := Read(flipped); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("flipped byte: %v", err)
	}

	v2 := filepath.Join(dir, "v2.safetensors")
	if err := Save(v2, []byte(`{"version":2}`), model, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(v2); err == nil || !strings.Contains(err.Error(), "checkpoint format version 2, this fertorch reads version 1") {
		t.Errorf("version 2: %v", err)
	}

	plain := filepath.Join(dir, "plain.safetensors")
	out, _ := os.Create(plain)
	(&tensorfile.File{Entries: model}).WriteSafetensors(out)
	out.Close()
	if _, err := Read(plain); err == nil || !strings.Contains(err.Error(), "not a fertorch checkpoint") {
		t.Errorf("plain weights: %v", err)
	}
}

// TestReadState reads the state JSON from the header alone, and refuses a
// file that is not a checkpoint and a truncated header.
func TestReadState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.safetensors")
	model := []tensorfile.Entry{{Name: "w", DType: tensorfile.Float32, Shape: []int64{1}, Data: []byte{0, 0, 128, 63}}}
	state := `{"version":1,"kind":"full","config":{"train":{"device":"cpu"}}}`
	if err := Save(path, []byte(state), model, nil); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(path)
	if err != nil || string(got) != state {
		t.Fatalf("ReadState = %s, %v; want %s", got, err, state)
	}
	plain := filepath.Join(dir, "plain.safetensors")
	out, err := os.Create(plain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&tensorfile.File{Entries: model}).WriteSafetensors(out); err != nil {
		t.Fatal(err)
	}
	out.Close()
	if _, err := ReadState(plain); err == nil || err.Error() != plain+`: not a fertorch checkpoint (no "fertorch.state" metadata)` {
		t.Errorf("plain weights: %v", err)
	}
	raw, _ := os.ReadFile(path)
	short := filepath.Join(dir, "short.safetensors")
	os.WriteFile(short, raw[:20], 0o644)
	if _, err := ReadState(short); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "reading the header") {
		t.Errorf("truncated: %v", err)
	}
}
