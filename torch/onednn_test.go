package torch_test

import (
	"math"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/torch"
)

// TestOneDNNSwitch: SetOneDNN reaches the convolutions (a 64-channel 3x3
// convolution differs in its last bits between oneDNN and the native
// kernels, and is bitwise the same again when switched back), and
// OneDNNEnabled reports it.
func TestOneDNNSwitch(t *testing.T) {
	if !torch.OneDNNAvailable() {
		t.Skipf("libtorch %s has no oneDNN", torch.Version())
	}
	defer torch.SetOneDNN(torch.OneDNNEnabled())
	scope := torch.NewScope()
	defer scope.Close()
	pattern := func(n int, freq, scale float64, shape ...int64) *torch.Tensor {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(scale * math.Sin(float64(i)*freq))
		}
		x, err := scope.Own(torch.FromFloat32s(v, shape...))
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	x := pattern(4*64*16*16, 0.37, 1, 4, 64, 16, 16)
	w := pattern(64*64*3*3, 0.11, 0.2, 64, 64, 3, 3)
	conv := func(on bool) []float32 {
		torch.SetOneDNN(on)
		if got := torch.OneDNNEnabled(); got != on {
			t.Fatalf("after SetOneDNN(%v), OneDNNEnabled() = %v", on, got)
		}
		y, err := scope.Own(x.Conv2d(w, nil, torch.Conv2dOptions{Padding: [2]int64{1, 1}}))
		if err != nil {
			t.Fatal(err)
		}
		return mustFloats(t, y)
	}
	with, native, again := conv(true), conv(false), conv(true)
	if !equalFloats(with, again) {
		t.Fatal("the oneDNN convolution is not reproducible")
	}
	if equalFloats(with, native) {
		t.Fatal("SetOneDNN(false) did not change the convolution's kernel: the results are bitwise equal")
	}
	var diff, scale float64
	for i := range with {
		diff = max(diff, math.Abs(float64(with[i]-native[i])))
		scale = max(scale, math.Abs(float64(native[i])))
	}
	t.Logf("oneDNN against native kernels: max abs diff %.3g (largest value %.3g)", diff, scale)
}

// TestProbeOneDNN: the probe measures, leaves the switch as it was in
// either state and draws no random numbers; Debian's libtorch 1.13 (the
// one CI builds against) passes it.
func TestProbeOneDNN(t *testing.T) {
	defer torch.SetOneDNN(torch.OneDNNEnabled())
	draw := func() []float32 {
		x, err := torch.Randn([]int64{8}, torch.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer x.Free()
		return mustFloats(t, x)
	}
	for _, on := range []bool{true, false} {
		torch.SetOneDNN(on)
		if err := torch.ManualSeed(3); err != nil {
			t.Fatal(err)
		}
		want := draw()
		if err := torch.ManualSeed(3); err != nil {
			t.Fatal(err)
		}
		p, err := torch.ProbeOneDNN()
		if err != nil {
			t.Fatal(err)
		}
		if got := draw(); !equalFloats(got, want) {
			t.Errorf("the probe moved the random generator: %v, want %v", got, want)
		}
		if got := torch.OneDNNEnabled(); got != on {
			t.Errorf("the probe left oneDNN enabled=%v, was %v", got, on)
		}
		t.Logf("oneDNN enabled=%v: %+v", on, p)
		switch {
		case !torch.OneDNNAvailable():
			if p != (torch.OneDNNProbe{}) {
				t.Errorf("without oneDNN the probe found %+v", p)
			}
		case math.IsNaN(p.MaxRelDiff) || p.MaxRelDiff < 0:
			t.Errorf("probe difference %v", p.MaxRelDiff)
		case p.MaxRelDiff > 0 && p.Case == "":
			t.Errorf("probe difference %v names no case", p.MaxRelDiff)
		case p.MaxRelDiff == 0:
			t.Errorf("oneDNN and native kernels agree bit for bit on every probe: the probe does not reach oneDNN")
		case strings.HasPrefix(torch.Version(), "1.") && !p.Agrees():
			t.Errorf("libtorch %s's oneDNN disagrees with its native kernels: %+v", torch.Version(), p)
		}
	}
}
