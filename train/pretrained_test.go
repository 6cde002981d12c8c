package train

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/torch/tensorfile"
	"github.com/fertorch/fertorch/vision"
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
	f, err := readPretrained(&m, &warn)
	if err != nil || f != nil {
		t.Fatalf("default path missing: %v %v", f, err)
	}
	if want := "warning: pretrained weights " + DefaultWeights + " not found: the base starts from RANDOM weights"; !strings.HasPrefix(warn.String(), want) {
		t.Errorf("warning %q, want prefix %q", warn.String(), want)
	}

	m.weightsGiven = true
	warn.Reset()
	if _, err := readPretrained(&m, &warn); err == nil || !strings.HasPrefix(err.Error(), "pretrained weights "+DefaultWeights+" cannot be used") || warn.Len() > 0 {
		t.Errorf("default path given explicitly: %v (warned %q)", err, warn.String())
	}
	m = DefaultConfig().Model
	m.Weights = "other.pth"
	if _, err := readPretrained(&m, &warn); err == nil || !strings.Contains(err.Error(), "other.pth cannot be used") {
		t.Errorf("another path: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "other.pth"), []byte("not weights"), 0o644)
	if _, err := readPretrained(&m, &warn); err == nil || !strings.Contains(err.Error(), "unknown weight file format") {
		t.Errorf("a file that is no weights: %v", err)
	}
	m.Weights = ""
	if f, err := readPretrained(&m, &warn); f != nil || err != nil {
		t.Errorf("no weights: %v %v", f, err)
	}

	// Another architecture's built-in default is its own torchvision file.
	m = DefaultConfig().Model
	m.Arch = vision.ArchResNet18
	warn.Reset()
	if f, err := readPretrained(&m, &warn); f != nil || err != nil || m.Weights != "weights/resnet18-f37072fd.pth" ||
		!strings.Contains(warn.String(), "weights/resnet18-f37072fd.pth not found") || !strings.Contains(warn.String(), "--arch resnet18") {
		t.Errorf("resnet18 default: %v %v, weights %q, warned %q", f, err, m.Weights, warn.String())
	}

	// Torchvision weights with rescaling get a warning; with ImageNet's
	// normalisation none.
	e, err := tensorfile.NewEntry("fc.bias", []int64{2}, []float32{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := (&tensorfile.File{Entries: []tensorfile.Entry{e}}).WritePTH(&buf); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tiny.pth"), buf.Bytes(), 0o644)
	m.Weights, m.weightsGiven = "tiny.pth", true
	for _, norm := range []data.Normalization{data.NormImageNet, data.NormRescale} {
		m.Normalization = norm
		warn.Reset()
		f, err := readPretrained(&m, &warn)
		warned := strings.Contains(warn.String(), "normalization rescale")
		if err != nil || f == nil || warned != (norm == data.NormRescale) {
			t.Errorf("normalization %s: %v, warned %q", norm, err, warn.String())
		}
	}
}

// TestFetchWeightsScriptFollowsTheTable: scripts/fetch-weights.sh --arch
// downloads each architecture's file of vision's table (checked with
// --print-url, which downloads nothing) into the folder where training
// looks for it by default, and refuses unknown names.
func TestFetchWeightsScriptFollowsTheTable(t *testing.T) {
	dir := t.TempDir()
	fetch := func(args ...string) (string, error) {
		out, err := exec.Command("bash", append([]string{"../scripts/fetch-weights.sh"}, args...)...).CombinedOutput()
		return string(out), err
	}
	for _, spec := range vision.Archs() {
		w := spec.Weights[0]
		out, err := fetch("--arch", string(spec.Arch), "--dir", dir, "--print-url")
		if want := w.URL + " " + filepath.Join(dir, w.FileName()) + "\n"; err != nil || out != want {
			t.Errorf("--arch %s: %q (%v), want %q", spec.Arch, out, err, want)
		}
		if got := DefaultWeightsFor(spec.Arch); got != "weights/"+w.FileName() {
			t.Errorf("%s: training's default weights %s", spec.Arch, got)
		}
	}
	if out, err := fetch("--dir", dir, "--print-url"); err != nil || !strings.HasPrefix(out, "https://download.pytorch.org/models/vgg16-397923af.pth ") {
		t.Errorf("no --arch: %q (%v), want vgg16's file", out, err)
	}
	if DefaultWeightsFor(vision.ArchVGG16) != DefaultWeights {
		t.Errorf("vgg16's default weights %s, want %s", DefaultWeightsFor(vision.ArchVGG16), DefaultWeights)
	}
	out, err := fetch("--arch", "resnet19", "--dir", dir)
	if err == nil || !strings.Contains(out, "unknown architecture 'resnet19' (want one of vgg16, vgg16_bn, resnet18") {
		t.Errorf("unknown architecture: %q (%v)", out, err)
	}
	if out, err := fetch("--arch"); err == nil || !strings.Contains(out, "--arch needs an architecture") {
		t.Errorf("--arch without a name: %q (%v)", out, err)
	}
}
