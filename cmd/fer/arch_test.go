package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/internal/pyref"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/train"
	"github.com/fertorch/fertorch/vision"
)

// TestOtherArchitecturesRoundTrip: resnet18 (torchvision head) and
// mobilenet_v3_large (transfer head) train at 32x32 with their last stages
// trainable, draw model.png, and their checkpoints record the
// architecture, so eval and predict need no --arch; eval's accuracy is the
// share of results.csv that matches ground_truth.csv. The checkpoint
// loads into torchvision's model in PyTorch with strict=True (with the
// transfer head built as a PyTorch user builds it) and gives our logits
// within 1e-4.
func TestOtherArchitecturesRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two short runs")
	}
	fer := buildFer(t)
	dir := t.TempDir()
	layout := filepath.Join(dir, "data")
	prepareSplit(t, filepath.Join(dir, "synth"), layout, 1)
	valid, err := filepath.Glob(filepath.Join(layout, "valid", "*", "*"))
	if err != nil || len(valid) == 0 {
		t.Fatalf("no validation images: %v", err)
	}
	for _, c := range []struct {
		arch, head, trainable, line string
		hidden                      int
	}{
		{"resnet18", "torchvision", "1", "trainable stages: the last 1 of 5: layer4 (", 1024},
		{"mobilenet_v3_large", "transfer", "2", "trainable stages: the last 2 of 17: features.15, features.16 (", 32},
	} {
		run := filepath.Join(dir, c.arch)
		args := []string{"train", "--data", layout, "--output", run, "--weights", "", "--device", "cpu",
			"--arch", c.arch, "--head", c.head, "--input-size", "32", "--batch-size", "4", "--drop-last", "--epochs", "1",
			"--trainable-base-layers", c.trainable, "--epoch-checkpoints=false", "--progress", "off", "--threads", "2", "--workers", "2"}
		if c.head == "transfer" {
			args = append(args, "--hidden", fmt.Sprint(c.hidden))
		}
		code, out, errs := ferIn(t, fer, dir, args...)
		if code != 0 {
			t.Fatalf("%s train: exit %d\n%s%s", c.arch, code, out, errs)
		}
		if !strings.Contains(out, c.line) || !strings.Contains(out, "Model: "+c.arch+" ("+c.head+" head, 4 classes, 32x32 input)") {
			t.Errorf("%s: the output lacks %q or the summary title:\n%s", c.arch, c.line, out)
		}
		f, err := os.Open(filepath.Join(run, train.ModelPNG))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dy() < 300 {
			t.Errorf("%s model.png: %v", c.arch, err)
		}
		best := filepath.Join(run, train.BestCheckpoint)
		lc, err := train.LoadCheckpoint(best)
		if err != nil {
			t.Fatal(err)
		}
		if string(lc.State.Config.Model.Arch) != c.arch || string(lc.State.Config.Model.Head.String()) != c.head {
			t.Errorf("checkpoint records %s/%s", lc.State.Config.Model.Arch, lc.State.Config.Model.Head)
		}

		evalDir := filepath.Join(dir, c.arch+"-eval")
		code, out, errs = ferIn(t, fer, dir, "eval", "--checkpoint", best, "--data", filepath.Join(layout, "valid"), "--out", evalDir)
		if code != 0 {
			t.Fatalf("%s eval: exit %d\n%s%s", c.arch, code, out, errs)
		}
		results, truth := readCSV(t, filepath.Join(evalDir, "results.csv")), readCSV(t, filepath.Join(evalDir, "ground_truth.csv"))
		if len(results) != len(valid)+1 || len(truth) != len(results) {
			t.Fatalf("%s eval: %d results, %d ground truth rows for %d images", c.arch, len(results)-1, len(truth)-1, len(valid))
		}
		right := 0
		for i := 1; i < len(results); i++ {
			if results[i][1] == truth[i][1] {
				right++
			}
		}
		var metrics struct {
			Accuracy float64 `json:"accuracy"`
		}
		raw, err := os.ReadFile(filepath.Join(evalDir, "metrics.json"))
		if err == nil {
			err = json.Unmarshal(raw, &metrics)
		}
		if err != nil || math.Abs(metrics.Accuracy-float64(right)/float64(len(valid))) > 1e-9 {
			t.Errorf("%s eval: accuracy %v (%v), results.csv says %d/%d", c.arch, metrics.Accuracy, err, right, len(valid))
		}

		code, out, errs = ferIn(t, fer, dir, "predict", "--checkpoint", best, "--top-k", "4", valid[0])
		if code != 0 || !strings.HasPrefix(out, valid[0]+"\t") {
			t.Fatalf("%s predict: exit %d\n%s%s", c.arch, code, out, errs)
		}
		sum := 0.0
		for _, field := range strings.Split(strings.TrimSpace(out), "\t")[1:] {
			var class string
			var p float64
			if _, err := fmt.Sscanf(field, "%s %g", &class, &p); err != nil {
				t.Fatalf("predict line %q: %v", out, err)
			}
			sum += p
		}
		if math.Abs(sum-1) > 2e-3 {
			t.Errorf("%s predict: the 4 class probabilities sum to %g", c.arch, sum)
		}
		checkTorchvisionLoads(t, lc, c.arch, c.head, c.hidden)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// checkTorchvisionLoads loads the checkpoint into torchvision's model in
// PyTorch (strict=True) and compares eval-mode logits with ours.
func checkTorchvisionLoads(t *testing.T, lc *train.LoadedCheckpoint, arch, head string, hidden int) {
	t.Helper()
	py := pyref.Require(t, "torch", "torchvision", "numpy")
	dir := t.TempDir()
	m := lc.State.Config.Model
	net, err := train.BuildNet(m, len(lc.State.Classes))
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	if _, err := vision.LoadStateDict(net.StateTensors(), lc.Model, vision.LoadOptions{Strict: true}); err != nil {
		t.Fatal(err)
	}
	net.SetTraining(false)
	rng := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, 2*3*32*32)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	pyref.MustWriteFloat32s(t, filepath.Join(dir, "x.bin"), x)
	var ours []float32
	err = torch.NoGrad(func() error {
		scope := torch.NewScope()
		defer scope.Close()
		xt, err := scope.Own(torch.FromFloat32s(x, 2, 3, 32, 32))
		if err != nil {
			return err
		}
		y, err := scope.Own(net.Forward(xt))
		if err != nil {
			return err
		}
		ours, err = y.Float32s()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pyref.Run(py, "testdata/tv_checkpoint.py", lc.Path, arch, head, fmt.Sprint(len(lc.State.Classes)), fmt.Sprint(hidden), "32", dir); err != nil {
		t.Fatalf("torchvision %s with the %s head did not load the checkpoint strictly: %v", arch, head, err)
	}
	theirs := pyref.MustReadFloat32s(t, filepath.Join(dir, "logits.bin"))
	if len(theirs) != len(ours) {
		t.Fatalf("%s: %d logits from PyTorch, %d ours", arch, len(theirs), len(ours))
	}
	worst := 0.0
	for i := range ours {
		worst = math.Max(worst, math.Abs(float64(ours[i]-theirs[i])))
	}
	t.Logf("%s %s head: strict load in PyTorch, max abs logit diff %.3g", arch, head, worst)
	if worst > 1e-4 {
		t.Errorf("%s: logits differ from PyTorch's by %.3g (> 1e-4)", arch, worst)
	}
}

// TestSummaryCommand: fer summary prints what trains and the summary of the
// network a training run would build, and draws its layer graph: one box
// per row of the summary.
func TestSummaryCommand(t *testing.T) {
	picture := filepath.Join(t.TempDir(), "resnet18.png")
	var out, errb bytes.Buffer
	if code := run([]string{"summary", "--arch", "resnet18", "--head", "gap", "--input-size", "64", "--trainable-base-layers", "2", "--png", picture}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		"trainable stages: the last 2 of 5: layer3, layer4 (",
		"Model: resnet18 (gap head, 8 classes, 64x64 input)",
		"layer2 (Sequential)                          (None, 128, 8, 8)           525,568  no",
		"fc (Dropout+Linear)                          (None, 8)                     4,104  yes",
		"Trainable params: 10,497,544", // layer3, layer4 and the head: see vision's hand-computed counts
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	f, err := os.Open(picture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 8 rows (input, stem, layer1-4, features, fc) of 64 pixels each, a
	// header and a footer.
	if b := img.Bounds(); b.Dx() != 720 || b.Dy() != (46+8*48-14+10)*96/72 {
		t.Errorf("layer graph %v", b)
	}
}
