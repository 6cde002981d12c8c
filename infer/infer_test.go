package infer_test

import (
	"context"
	"image"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/checkpoint"
	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/infer"
	"github.com/fertorch/fertorch/internal/testmodel"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/tensorfile"
	"github.com/fertorch/fertorch/vision"
)

func load(t *testing.T, opt testmodel.Options, batch int) (*infer.Model, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	if _, err := testmodel.Checkpoint(path, opt); err != nil {
		t.Fatal(err)
	}
	m, err := infer.Load(path, infer.Options{Device: "cpu", BatchSize: batch, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Free)
	return m, dir
}

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// TestLoadTakesSettingsFromTheCheckpoint: the classes, architecture, input
// size and preprocessing come from the trainer's run state.
func TestLoadTakesSettingsFromTheCheckpoint(t *testing.T) {
	classes := []string{"anger", "happiness", "surprise"}
	m, _ := load(t, testmodel.Options{InputSize: 64, Head: vision.HeadTransfer, Hidden: 16, Classes: classes}, 0)
	if !reflect.DeepEqual(m.Classes, classes) || m.Kind != checkpoint.KindWeights {
		t.Errorf("classes %v kind %q", m.Classes, m.Kind)
	}
	want := infer.ModelConfig{Arch: vision.ArchVGG16BN, Head: vision.HeadTransfer, Hidden: 16, Dropout: 0.5, InputSize: 64, Normalization: data.NormImageNet, Resize: data.ResizeBilinear}
	if m.Config != want {
		t.Errorf("config %+v, want %+v", m.Config, want)
	}
	if m.ImageValues() != 3*64*64 {
		t.Errorf("ImageValues %d", m.ImageValues())
	}
	if got := m.Name(); got != "model.safetensors (vgg16_bn, transfer head, 64x64)" {
		t.Errorf("Name %q", got)
	}
}

// TestProbabilitiesAgreeAcrossBatching: one image alone, in a batch of
// others, and through Run (the loader's path that eval and predict take)
// gets the same probabilities (1e-6), which sum to 1; mirror TTA gives an
// image and its mirror the same answer; nothing leaks.
func TestProbabilitiesAgreeAcrossBatching(t *testing.T) {
	m, dir := load(t, testmodel.Options{}, 3)
	paths, err := testmodel.WriteFaces(filepath.Join(dir, "faces"), 5)
	if err != nil {
		t.Fatal(err)
	}
	before := torch.LiveTensors()
	per := m.ImageValues()
	batch := make([]float32, len(paths)*per)
	var imgs []image.Image
	for i, p := range paths {
		img, _, err := data.DecodeFile(p, data.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
		if err := m.Prepare(batch[i*per:(i+1)*per], img); err != nil {
			t.Fatal(err)
		}
	}
	together, err := m.Probabilities(batch, len(paths), false)
	if err != nil {
		t.Fatal(err)
	}
	ds := &data.Dataset{Classes: m.Classes}
	for _, p := range paths {
		ds.Samples = append(ds.Samples, data.Sample{Path: p, Name: p})
	}
	dec, err := m.Decode(context.Background(), ds)
	if err != nil {
		t.Fatal(err)
	}
	run, err := m.Run(context.Background(), dec, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(run) != len(paths) {
		t.Fatalf("Run gave %d rows for %d images", len(run), len(paths))
	}
	spread := 0.0
	for i := range paths {
		alone, err := m.Probabilities(batch[i*per:(i+1)*per], 1, false)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(alone[0], together[i]); d > 1e-6 {
			t.Errorf("image %d: alone vs in a batch of %d differ by %g", i, len(paths), d)
		}
		if d := maxDiff(run[i], together[i]); d > 1e-6 {
			t.Errorf("image %d: Run (batches of 3) vs Prepare+Probabilities differ by %g", i, d)
		}
		sum, lo, hi := 0.0, 1.0, 0.0
		for _, p := range alone[0] {
			sum += float64(p)
			lo, hi = min(lo, float64(p)), max(hi, float64(p))
		}
		if math.Abs(sum-1) > 1e-5 || len(alone[0]) != 8 {
			t.Errorf("image %d: %d probabilities summing to %v", i, len(alone[0]), sum)
		}
		spread = max(spread, hi-lo)
	}
	if spread < 0.01 {
		t.Errorf("the test model's probabilities are nearly uniform (spread %g): the comparisons above prove little", spread)
	}
	// Mirror TTA: an image and its mirror get the same averaged answer.
	mirror := image.NewNRGBA(imgs[0].Bounds())
	b := imgs[0].Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			mirror.Set(b.Max.X-1-(x-b.Min.X), y, imgs[0].At(x, y))
		}
	}
	two := make([]float32, 2*per)
	if err := m.Prepare(two[:per], imgs[0]); err != nil {
		t.Fatal(err)
	}
	if err := m.Prepare(two[per:], mirror); err != nil {
		t.Fatal(err)
	}
	tta, err := m.Probabilities(two, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(tta[0], tta[1]); d > 1e-6 {
		t.Errorf("TTA: image and mirror differ by %g", d)
	}
	plain, _ := m.Probabilities(two, 2, false)
	if d := maxDiff(plain[0], plain[1]); d < 1e-6 {
		t.Errorf("without TTA the mirror gets the same answer (diff %g): the TTA check proves nothing", d)
	}
	if live := torch.LiveTensors(); live != before {
		t.Errorf("live tensors %d after the forward passes, %d before", live, before)
	}
}

// TestProbabilitiesRejectsBadInput: a short buffer and a freed model are
// errors, not crashes.
func TestProbabilitiesRejectsBadInput(t *testing.T) {
	m, _ := load(t, testmodel.Options{}, 0)
	if _, err := m.Probabilities(make([]float32, 10), 1, false); err == nil || !strings.Contains(err.Error(), "10 values for 1 images of 3072") {
		t.Errorf("short buffer: %v", err)
	}
	m.Free()
	if _, err := m.Probabilities(make([]float32, m.ImageValues()), 1, false); err == nil || !strings.Contains(err.Error(), "freed") {
		t.Errorf("freed model: %v", err)
	}
}

// TestTopK orders by probability, keeps class order on ties and clamps k.
func TestTopK(t *testing.T) {
	classes := []string{"a", "b", "c", "d"}
	probs := []float32{0.1, 0.4, 0.1, 0.4}
	got := infer.TopK(classes, probs, 3)
	want := []infer.ClassScore{{"b", float64(float32(0.4))}, {"d", float64(float32(0.4))}, {"a", float64(float32(0.1))}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TopK 3: %v", got)
	}
	if n := len(infer.TopK(classes, probs, 0)); n != 1 {
		t.Errorf("k 0 gave %d classes, want 1", n)
	}
	if n := len(infer.TopK(classes, probs, 99)); n != 4 {
		t.Errorf("k 99 gave %d classes, want 4", n)
	}
}

// TestLoadRefusesOtherFiles: a missing file, plain weights and a damaged
// checkpoint each get their own message.
func TestLoadRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := infer.Load(filepath.Join(dir, "none.safetensors"), infer.Options{Device: "cpu"}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	path := filepath.Join(dir, "model.safetensors")
	if _, err := testmodel.Checkpoint(path, testmodel.Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := checkpoint.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain.safetensors")
	if err := writePlain(plain, f); err != nil {
		t.Fatal(err)
	}
	if _, err := infer.Load(plain, infer.Options{Device: "cpu"}); err == nil || !strings.Contains(err.Error(), "not a fertorch checkpoint") {
		t.Errorf("plain weights: %v", err)
	}
}

// writePlain writes a checkpoint's model tensors without fertorch's
// metadata, as plain safetensors weights.
func writePlain(path string, f *checkpoint.File) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	plain := &tensorfile.File{Entries: f.Model.Entries}
	if _, err := plain.WriteSafetensors(out); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
