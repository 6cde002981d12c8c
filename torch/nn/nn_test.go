package nn_test

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/internal/pyref"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
	"github.com/fertorch/fertorch/torch/optim"
)

// TestDefaultInitMatchesPyTorch: after the same seed, Conv2d and Linear get
// bit-identical default parameters to torch.nn's.
func TestDefaultInitMatchesPyTorch(t *testing.T) {
	py := pyref.Require(t, "torch")
	dir := t.TempDir()
	const seed = 2024
	if _, err := pyref.Run(py, "testdata/init.py", dir, strconv.Itoa(seed)); err != nil {
		t.Fatal(err)
	}
	if err := torch.ManualSeed(seed); err != nil {
		t.Fatal(err)
	}
	conv, err := nn.NewConv2d(3, 8, 3, nn.Conv2dConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer nn.Free(conv)
	lin, err := nn.NewLinear(20, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	defer nn.Free(lin)
	for name, p := range map[string]*torch.Tensor{"conv.weight": conv.Weight, "conv.bias": conv.Bias, "linear.weight": lin.Weight, "linear.bias": lin.Bias} {
		got, err := p.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		want := pyref.MustReadFloat32s(t, filepath.Join(dir, name+".bin"))
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s[%d] = %v, PyTorch %v", name, i, got[i], want[i])
			}
		}
		if !p.RequiresGrad() {
			t.Errorf("%s does not require grad", name)
		}
	}
}

// smallNet is conv-relu-pool-flatten-dropout-linear on 1x12x12 inputs.
func smallNet(t *testing.T) *nn.Sequential {
	t.Helper()
	conv, err := nn.NewConv2d(1, 4, 3, nn.Conv2dConfig{Padding: 1})
	if err != nil {
		t.Fatal(err)
	}
	lin, err := nn.NewLinear(4*6*6, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	return nn.NewSequential(conv, nn.ReLU{}, nn.NewMaxPool2d(2, 2), nn.NewFlatten(), nn.NewDropout(0.25), lin)
}

func TestSequentialNamesAndCounts(t *testing.T) {
	net := smallNet(t)
	defer nn.Free(net)
	var names []string
	for _, p := range net.Parameters() {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "0.weight,0.bias,5.weight,5.bias" {
		t.Errorf("parameter names %s", got)
	}
	total, trainable := nn.CountParameters(net)
	if want := int64(4*1*9 + 4 + 144*3 + 3); total != want || trainable != want {
		t.Errorf("parameters %d/%d, want %d", total, trainable, want)
	}
	_ = net.Parameters()[0].Tensor.SetRequiresGrad(false)
	if _, tr := nn.CountParameters(net); tr != total-36 {
		t.Errorf("trainable after freezing conv weight: %d", tr)
	}
	// A shape error names the failing layer.
	bad, _ := torch.Zeros([]int64{2, 3, 12, 12}, torch.Options{})
	defer bad.Free()
	if _, err := net.Forward(bad); err == nil || !strings.Contains(err.Error(), "layer 0 (*nn.Conv2d)") {
		t.Errorf("forward with 3 channels into a 1-channel conv: %v", err)
	}
}

func TestDropoutModes(t *testing.T) {
	d := nn.NewDropout(0.5)
	x, _ := torch.Ones([]int64{1000}, torch.Options{})
	defer x.Free()
	y, _ := d.Forward(x)
	defer y.Free()
	v, _ := y.Float32s()
	zeros := 0
	for _, e := range v {
		if e == 0 {
			zeros++
		} else if e != 2 {
			t.Fatalf("kept activation %v, want 2 (scaled by 1/(1-p))", e)
		}
	}
	if zeros < 400 || zeros > 600 {
		t.Errorf("%d of 1000 dropped at p=0.5", zeros)
	}
	d.SetTraining(false)
	z, _ := d.Forward(x)
	defer z.Free()
	w, _ := z.Float32s()
	for _, e := range w {
		if e != 1 {
			t.Fatalf("eval-mode dropout changed a value: %v", e)
		}
	}
}

func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	fields := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(fields[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// TestTrainingLoopLeaksNothing runs 1000 training steps of a small conv net
// with a per-step scope: the live-tensor count returns to where it started
// and the resident memory stays flat.
func TestTrainingLoopLeaksNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 steps")
	}
	if err := torch.ManualSeed(1); err != nil {
		t.Fatal(err)
	}
	net := smallNet(t)
	opt, err := optim.NewAdam([]optim.Group{{Params: net.Parameters(), LR: 1e-3}}, optim.DefaultAdamOptions())
	if err != nil {
		t.Fatal(err)
	}
	const batch = 16
	input := make([]float32, batch*12*12)
	labels := make([]int64, batch)
	for i := range labels {
		labels[i] = int64(i % 3)
	}
	// Each class has its own pattern, so the net can learn the labels.
	for i := range input {
		b, p := i/(12*12), i%(12*12)
		input[i] = float32(math.Sin(float64(p) * float64(labels[b]+1) / 7))
	}
	weights, _ := torch.FromFloat32s([]float32{1, 2, 3}, 3)
	defer weights.Free()
	step := func() float64 {
		scope := torch.NewScope()
		defer scope.Close()
		x, err := scope.Own(torch.FromFloat32s(input, batch, 1, 12, 12))
		if err != nil {
			t.Fatal(err)
		}
		y, err := scope.Own(torch.FromInt64s(labels, batch))
		if err != nil {
			t.Fatal(err)
		}
		logits, err := net.Forward(x)
		if err != nil {
			t.Fatal(err)
		}
		loss, err := logits.CrossEntropy(y, torch.CrossEntropyOptions{Weight: weights})
		if err != nil {
			t.Fatal(err)
		}
		if err := opt.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		if err := loss.Backward(); err != nil {
			t.Fatal(err)
		}
		if err := opt.Step(); err != nil {
			t.Fatal(err)
		}
		v, _ := loss.Item()
		return v
	}
	first := step()
	for i := 0; i < 99; i++ {
		step()
	}
	runtime.GC()
	liveBefore, rssBefore := torch.LiveTensors(), rssBytes(t)
	var last float64
	for i := 0; i < 1000; i++ {
		last = step()
	}
	runtime.GC()
	liveAfter, rssAfter := torch.LiveTensors(), rssBytes(t)
	if liveAfter != liveBefore {
		t.Errorf("live tensors %d after 1000 steps, %d before", liveAfter, liveBefore)
	}
	const slack = 8 << 20
	if grew := rssAfter - rssBefore; grew > slack {
		t.Errorf("RSS grew by %.1f MiB over 1000 steps (%.1f -> %.1f MiB)", float64(grew)/(1<<20), float64(rssBefore)/(1<<20), float64(rssAfter)/(1<<20))
	}
	if !(last < first/2) {
		t.Errorf("loss did not fall: %.4f -> %.4f", first, last)
	}
	t.Logf("loss %.4f -> %.4f; live tensors %d -> %d; RSS %.1f -> %.1f MiB", first, last, liveBefore, liveAfter, float64(rssBefore)/(1<<20), float64(rssAfter)/(1<<20))
	opt.Free()
	nn.Free(net)
}
