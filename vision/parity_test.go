package vision_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/internal/pyref"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/tensorfile"
	"github.com/fertorch/fertorch/vision"
)

// TestTorchvisionParity loads torchvision's vgg16 and vgg16_bn state dicts
// (random weights), saved by PyTorch in the zip and in the legacy format,
// into our VGG16 with torchvision's classifier, and compares the logits on
// the same batch: max abs diff <= 1e-4 at 224x224 and at 64x64 (where the
// adaptive pooling upsamples the 2x2 feature map to 7x7).
func TestTorchvisionParity(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads 2 x 553 MB per architecture")
	}
	py := pyref.Require(t, "torch", "torchvision", "numpy")
	rng := rand.New(rand.NewPCG(3, 4))
	for _, arch := range []string{"vgg16", "vgg16_bn"} {
		t.Run(arch, func(t *testing.T) {
			dir := t.TempDir()
			inputs := map[int][]float32{}
			for _, size := range []int{224, 64} {
				x := make([]float32, 2*3*size*size)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				inputs[size] = x
				pyref.MustWriteFloat32s(t, filepath.Join(dir, "x"+itoa(size)+".bin"), x)
			}
			if _, err := pyref.Run(py, "testdata/tv_vgg16.py", dir, arch); err != nil {
				t.Fatal(err)
			}
			for _, format := range []string{"zip", "legacy"} {
				file, err := vision.ReadWeights(filepath.Join(dir, format+".pth"))
				if err != nil {
					t.Fatal(err)
				}
				for _, size := range []int{224, 64} {
					m, err := vision.NewVGG16(vision.VGG16Config{InputSize: size, NumClasses: 1000, Head: vision.HeadTorchvision, BatchNorm: arch == "vgg16_bn"})
					if err != nil {
						t.Fatal(err)
					}
					rep, err := vision.LoadStateDict(m.StateTensors(), file, vision.LoadOptions{Strict: true})
					if err != nil {
						t.Fatal(err)
					}
					if want := len(file.Entries); len(rep.Loaded) != want {
						t.Errorf("loaded %d of %d tensors", len(rep.Loaded), want)
					}
					m.SetTraining(false)
					var got []float32
					err = torch.NoGrad(func() error {
						scope := torch.NewScope()
						defer scope.Close()
						x, err := scope.Own(torch.FromFloat32s(inputs[size], 2, 3, int64(size), int64(size)))
						if err != nil {
							return err
						}
						y, err := m.Forward(x)
						if err != nil {
							return err
						}
						got, err = y.Float32s()
						return err
					})
					m.Free()
					if err != nil {
						t.Fatal(err)
					}
					want := pyref.MustReadFloat32s(t, filepath.Join(dir, "logits"+itoa(size)+".bin"))
					if len(got) != len(want) {
						t.Fatalf("%d logits, want %d", len(got), len(want))
					}
					worst := 0.0
					for i := range got {
						worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
					}
					if worst > 1e-4 {
						t.Errorf("%s %s at %dx%d: max abs diff %.3g > 1e-4", arch, format, size, size, worst)
					}
					t.Logf("%s %s format at %dx%d: max abs diff %.3g", arch, format, size, size, worst)
				}
			}
		})
	}
}

func itoa(n int) string {
	if n == 224 {
		return "224"
	}
	return "64"
}

// TestLoadReportsProblems: strict loading refuses a file with a missing, an
// unexpected and a mis-shaped key and changes nothing; non-strict loading
// loads the rest and reports each problem; prefixes keep a new head.
func TestLoadReportsProblems(t *testing.T) {
	m, err := vision.NewVGG16(vision.VGG16Config{InputSize: 32, NumClasses: 3, Head: vision.HeadGAP})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	var file tensorfile.File
	for _, p := range m.StateTensors() {
		e, err := torch.ToEntry(p.Name, p.Tensor)
		if err != nil {
			t.Fatal(err)
		}
		for i := range e.Data {
			e.Data[i] = 0 // a recognisable value: all zeros
		}
		switch p.Name {
		case "features.0.bias":
			continue // missing
		case "classifier.1.weight":
			e.Shape = []int64{3, 256} // mis-shaped
			e.Data = e.Data[:3*256*4]
		}
		file.Entries = append(file.Entries, e)
	}
	extra, _ := tensorfile.NewEntry("classifier.9.weight", []int64{2}, []float32{1, 2})
	file.Entries = append(file.Entries, extra)
	before, _ := m.Features.Children[0].Parameters()[0].Tensor.Float32s()

	rep, err := vision.LoadStateDict(m.StateTensors(), &file, vision.LoadOptions{Strict: true})
	if err == nil {
		t.Fatal("strict load accepted a bad file")
	}
	// The first line names the first problem in parameter order.
	if first, _, _ := strings.Cut(err.Error(), "\n"); first != "strict load: features.0.bias is missing from the file (3 problems: a file for another architecture, head or class count?)" {
		t.Errorf("first line %q", first)
	}
	for _, want := range []string{"missing from the file (1): features.0.bias", "unexpected in the file (1): classifier.9.weight", "shape mismatch: classifier.1.weight is [3 512] in the model, [3 256] in the file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("strict error lacks %q:\n%v", want, err)
		}
	}
	after, _ := m.Features.Children[0].Parameters()[0].Tensor.Float32s()
	if after[0] != before[0] || len(rep.Loaded) != 0 {
		t.Error("a failed strict load changed the model")
	}
	rep, err = vision.LoadStateDict(m.StateTensors(), &file, vision.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problems() != 3 || len(rep.Loaded) != len(m.StateTensors())-2 {
		t.Errorf("non-strict: %d problems, %d loaded", rep.Problems(), len(rep.Loaded))
	}
	if v, _ := m.Features.Children[0].Parameters()[0].Tensor.Float32s(); v[0] != 0 {
		t.Error("non-strict load did not load features.0.weight")
	}
	rep, err = vision.LoadStateDict(m.StateTensors(), &file, vision.LoadOptions{Strict: true, Prefixes: []string{"features.2."}})
	if err != nil || len(rep.Ignored) == 0 || len(rep.Loaded) != 2 {
		t.Errorf("prefix load: %v, %d loaded, %d ignored", err, len(rep.Loaded), len(rep.Ignored))
	}
}

// TestMaliciousWeightsAreRefused: a .pth whose pickle would run os.system
// when unpickled by Python is refused, naming the global, and runs nothing.
func TestMaliciousWeightsAreRefused(t *testing.T) {
	py := pyref.Require(t, "torch")
	dir := t.TempDir()
	marker := filepath.Join(dir, "PWNED")
	script := filepath.Join(dir, "evil.py")
	src := `import os, sys, torch
class Evil:
    def __reduce__(self):
        return (os.system, ("touch ` + marker + `",))
torch.save({"features.0.weight": torch.zeros(1), "x": Evil()}, sys.argv[1])
`
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "evil.pth")
	if _, err := pyref.Run(py, script, path); err != nil {
		t.Fatal(err)
	}
	os.Remove(marker) // torch.save pickles, it does not run the payload; be sure
	_, err := vision.ReadWeights(path)
	var forbidden *tensorfile.ForbiddenGlobalError
	if err == nil || !errors.As(err, &forbidden) || !strings.Contains(err.Error(), "system") {
		t.Fatalf("malicious file: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the payload ran")
	}
}
