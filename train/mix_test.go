package train

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/internal/pyref"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/optim"
	"github.com/spf13/pflag"
)

// TestBetaSampler: for fixed seeds, 200,000 draws of Beta(a, a) have the
// mean 1/2 and the variance 1/(4(2a+1)) within five standard errors of
// the estimates (for the variance sigma^2 sqrt((2 - 6/(2a+3))/n), from
// Beta(a, a)'s excess kurtosis -6/(2a+3)), for concentrations below 1 (the
// boosted gamma), at 1 (uniform: a tenth of the draws below 0.1, within
// five standard errors) and above; every draw is inside [0, 1].
func TestBetaSampler(t *testing.T) {
	const n = 200000
	for i, a := range []float64{0.05, 0.2, 0.4, 1, 2, 8} {
		g := mixRNG{rand.NewPCG(uint64(i)+1, 99)}
		var sum, sumSq float64
		below := 0
		for range n {
			v := g.beta(a)
			if !(v >= 0 && v <= 1) {
				t.Fatalf("Beta(%g, %g) drew %g", a, a, v)
			}
			sum += v
			sumSq += v * v
			if v < 0.1 {
				below++
			}
		}
		mean := sum / n
		variance := sumSq/n - mean*mean
		want := 1 / (4 * (2*a + 1))
		meanTol := 5 * math.Sqrt(want/n)
		varTol := 5 * want * math.Sqrt((2-6/(2*a+3))/n)
		t.Logf("Beta(%g, %g): mean %.5f (0.5 +- %.4f), variance %.5f (%.5f +- %.4f)", a, a, mean, meanTol, variance, want, varTol)
		if math.Abs(mean-0.5) > meanTol {
			t.Errorf("Beta(%g, %g): mean %.5f, want 0.5 +- %.4f", a, a, mean, meanTol)
		}
		if math.Abs(variance-want) > varTol {
			t.Errorf("Beta(%g, %g): variance %.5f, want %.5f +- %.4f", a, a, variance, want, varTol)
		}
		if f := float64(below) / n; a == 1 && math.Abs(f-0.1) > 5*math.Sqrt(0.1*0.9/n) {
			t.Errorf("Beta(1, 1): %.4f of the draws below 0.1, want 0.1", f)
		}
	}
}

// TestCutBox checks timm's rand_bbox and the corrected lambda on cases
// computed by hand.
func TestCutBox(t *testing.T) {
	for _, c := range []struct {
		h, w           int
		lambda         float64
		cy, cx         int
		box            [4]int
		corrected      float64
		name, workings string
	}{
		// cut_rat 0.5: cut 16x16, half sides 8.
		{32, 32, 0.75, 10, 3, [4]int{2, 18, 0, 11}, 1 - 176.0/1024, "clipped left", "rows 10-8..10+8, columns 3-8 -> 0..3+8"},
		{32, 32, 0.75, 16, 16, [4]int{8, 24, 8, 24}, 0.75, "centred", "16x16 = a quarter"},
		// cut_rat sqrt(0.5) = 0.7071: cut_h int(7.07) = 7, cut_w int(4.24)
		// = 4; half sides 3 and 2, so the box is 6 x 4 at most.
		{10, 6, 0.5, 5, 0, [4]int{2, 8, 0, 2}, 1 - 12.0/60, "odd cut", "rows 2..8, columns -2 -> 0..2"},
		{10, 6, 0.5, 9, 5, [4]int{6, 10, 3, 6}, 1 - 12.0/60, "clipped bottom right", "rows 6..12 -> 10, columns 3..7 -> 6"},
		// lambda 0: the cut is the image, centred at a corner a quarter
		// of it stays.
		{8, 8, 0, 0, 0, [4]int{0, 4, 0, 4}, 1 - 16.0/64, "whole cut at a corner", "rows -4 -> 0..4"},
		// lambda near 1: cut_rat 0.1 of 7 is 0: an empty box, lambda 1.
		{7, 7, 0.99, 3, 3, [4]int{3, 3, 3, 3}, 1, "empty", "int(0.7) = 0"},
	} {
		yl, yh, xl, xh := cutBox(c.h, c.w, c.lambda, c.cy, c.cx)
		if got := [4]int{yl, yh, xl, xh}; got != c.box {
			t.Errorf("%s (%s): box %v, want %v", c.name, c.workings, got, c.box)
		}
		if got := cutLambda(c.h, c.w, yl, yh, xl, xh); math.Abs(got-c.corrected) > 1e-15 {
			t.Errorf("%s: corrected lambda %g, want %g", c.name, got, c.corrected)
		}
	}
}

// TestMixDraws checks the draws' frequencies over 20,000 steps (within
// 0.015 of the settings) and that they are a function of seed, epoch and
// step.
func TestMixDraws(t *testing.T) {
	count := func(m *mixer) (mixed, cut int) {
		for step := range 20000 {
			d := m.draw(42, 3, step, 24, 20)
			if d.Mixed {
				mixed++
				if !(d.Lambda >= 0 && d.Lambda < 1) {
					t.Fatalf("%+v: lambda %g", *m, d.Lambda)
				}
			}
			if d.CutMix {
				cut++
				if d.CY < 0 || d.CY >= 24 || d.CX < 0 || d.CX >= 20 {
					t.Fatalf("%+v: centre (%d, %d) outside 24x20", *m, d.CY, d.CX)
				}
			}
		}
		return
	}
	near := func(what string, got int, want float64) {
		if f := float64(got) / 20000; math.Abs(f-want) > 0.015 {
			t.Errorf("%s: %.4f of the steps, want %.4f", what, f, want)
		}
	}
	m, c := count(&mixer{mixup: 0.4, prob: 1, switchProb: 0.5})
	near("mixup alone: mixed", m, 1)
	near("mixup alone: cutmix", c, 0)
	m, c = count(&mixer{cutmix: 1, prob: 0.25, switchProb: 0.5})
	near("cutmix alone at mix_prob 0.25: mixed", m, 0.25)
	near("cutmix alone at mix_prob 0.25: cutmix", c, 0.25)
	m, c = count(&mixer{mixup: 0.4, cutmix: 1, prob: 0.8, switchProb: 0.3})
	near("both, mix_prob 0.8: mixed", m, 0.8)
	near("both, mix_prob 0.8, switch 0.3: cutmix", c, 0.8*0.3)
	m, _ = count(&mixer{mixup: 0.4, cutmix: 1, prob: 0, switchProb: 0.3})
	near("mix_prob 0: mixed", m, 0)

	both := &mixer{mixup: 0.4, cutmix: 1, prob: 1, switchProb: 0.5}
	if a, b := both.draw(42, 1, 3, 32, 32), both.draw(42, 1, 3, 32, 32); a != b {
		t.Errorf("the same step drew %+v and %+v", a, b)
	}
	if a, b := both.draw(42, 1, 3, 32, 32), both.draw(42, 1, 4, 32, 32); a == b {
		t.Errorf("steps 3 and 4 drew the same %+v", a)
	}
	if a, b := both.draw(42, 1, 3, 32, 32), both.draw(42, 2, 3, 32, 32); a == b {
		t.Errorf("epochs 1 and 2 drew the same %+v", a)
	}
	if a, b := both.draw(42, 1, 3, 32, 32), both.draw(43, 1, 3, 32, 32); a == b {
		t.Errorf("seeds 42 and 43 drew the same %+v", a)
	}
	// The run tests (TestMixTwoRanksAsOneProcess, TestMixRun) train with
	// seed 42, --mixup 0.4 --cutmix 1 and 5 steps an epoch: their first
	// epoch must mix with both.
	kinds := map[bool]int{}
	for step := range 5 {
		d := both.draw(42, 0, step, 32, 32)
		if d.Mixed {
			kinds[d.CutMix]++
		}
	}
	if kinds[true] == 0 || kinds[false] == 0 {
		t.Errorf("seed 42's first epoch mixes %d batches with cutmix and %d with mixup; the run tests need both", kinds[true], kinds[false])
	}
}

// linearModel is logits = flatten(x) W^T + b, a model the reference can
// compute exactly.
type linearModel struct{ w, b *torch.Tensor }

func (m *linearModel) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	f, err := x.Flatten(1, 3)
	if err != nil {
		return nil, err
	}
	return f.Linear(m.w, m.b)
}

func (m *linearModel) Parameters() []torch.NamedTensor {
	return []torch.NamedTensor{{Name: "weight", Tensor: m.w}, {Name: "bias", Tensor: m.b}}
}

func (m *linearModel) SetTraining(bool) {}

// TestMixMatchesReference: for seeded draws of a Mixup batch, a CutMix
// batch (a box clipped at an edge) and an unmixed one, the mixed images,
// the corrected lambda, the loss, the correct count and the weights after
// one SGD step of a linear model equal a PyTorch computation of timm's
// formulas (testdata/mix.py) within 1e-6, for each loss normalisation
// with and without class weights and label smoothing, for an odd batch,
// and in 2 micro-batches (the mixed loss over the batch's denominator).
func TestMixMatchesReference(t *testing.T) {
	py := pyref.Require(t, "torch", "numpy")
	const c, h, w, k = 3, 7, 9, 4
	both := &mixer{mixup: 0.4, cutmix: 1, prob: 0.9, switchProb: 0.5}
	// The first steps of epoch 2 (seed 7) whose draws are of each kind;
	// the CutMix one must clip its box at an edge.
	found := map[string]mixDraw{}
	for step := 0; len(found) < 3 && step < 1000; step++ {
		d := both.draw(7, 2, step, h, w)
		kind := "none"
		if d.Mixed && d.CutMix {
			yl, yh, xl, xh := cutBox(h, w, d.Lambda, d.CY, d.CX)
			if yh == yl || xh == xl || (yl > 0 && yh < h && xl > 0 && xh < w) {
				continue
			}
			kind = "cutmix"
		} else if d.Mixed {
			kind = "mixup"
		}
		if _, ok := found[kind]; !ok {
			found[kind] = d
		}
	}
	if len(found) != 3 {
		t.Fatalf("draws of each kind not found: %v", found)
	}
	cases := []struct {
		name      string
		kind      string
		n         int
		weights   []float32
		keras     bool
		smoothing float64
		parts     int
	}{
		{"mixup, keras weights", "mixup", 6, []float32{1, 2.5, 3, 1.5}, true, 0, 1},
		{"cutmix, keras weights, smoothing", "cutmix", 6, []float32{1, 2.5, 3, 1.5}, true, 0.1, 1},
		{"mixup, pytorch weights, smoothing", "mixup", 6, []float32{1, 2.5, 3, 1.5}, false, 0.1, 1},
		{"cutmix, unweighted, odd batch", "cutmix", 5, nil, false, 0, 1},
		{"unmixed, keras weights", "none", 6, []float32{1, 2.5, 3, 1.5}, true, 0, 1},
		{"cutmix, keras weights, 2 micro-batches", "cutmix", 6, []float32{1, 2.5, 3, 1.5}, true, 0.1, 2},
		{"mixup, pytorch weights, 2 micro-batches", "mixup", 5, []float32{1, 2.5, 3, 1.5}, false, 0, 2},
	}
	for i, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			scope := torch.NewScope()
			defer scope.Close()
			d := found[tc.kind]
			gen := rand.New(rand.NewPCG(uint64(i), 5))
			values := func(n int, scale float64) []float32 {
				v := make([]float32, n)
				for j := range v {
					v[j] = float32((gen.Float64()*2 - 1) * scale)
				}
				return v
			}
			xv := values(tc.n*c*h*w, 2)
			wv := values(k*c*h*w, 0.05)
			bv := values(k, 0.1)
			labels := make([]int64, tc.n)
			for j := range labels {
				labels[j] = int64(gen.IntN(k))
			}
			x, _ := scope.Own(torch.FromFloat32s(xv, int64(tc.n), c, h, w))
			y, _ := scope.Own(torch.FromInt64s(labels, int64(tc.n)))
			wt, _ := torch.FromFloat32s(wv, k, c*h*w)
			bt, _ := torch.FromFloat32s(bv, k)
			defer wt.Free()
			defer bt.Free()
			wt.SetRequiresGrad(true)
			bt.SetRequiresGrad(true)
			model := &linearModel{wt, bt}
			lc := LossConfig{KerasNormalization: tc.keras, LabelSmoothing: tc.smoothing}
			denominator := float64(tc.n)
			if tc.weights != nil {
				lc.ClassWeights, _ = scope.Own(torch.FromFloat32s(tc.weights, k))
				if !tc.keras {
					denominator = 0
					for _, l := range labels {
						denominator += float64(tc.weights[l])
					}
				}
			}
			opt, err := optim.NewSGD([]optim.Group{{Params: model.Parameters(), LR: 0.5}}, optim.SGDOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer opt.Free()
			s, err := NewStepper(model, opt, lc, torch.CPU(), FP32)
			if err != nil {
				t.Fatal(err)
			}
			s.Accumulate = tc.parts

			xp, _ := x.Flip(0)
			yp, _ := y.Flip(0)
			mixed, lambda, err := mixImages(x, xp, d)
			if err != nil {
				t.Fatal(err)
			}
			if tc.parts == 1 {
				denominator = 0 // the mean loss of TrainStep
			}
			var res StepResult
			if d.Mixed {
				res, err = s.TrainMixedStep(mixed, y, MixedLabels{Partner: yp, Lambda: lambda}, denominator)
			} else if tc.parts == 1 {
				res, err = s.TrainStep(mixed, y)
			} else {
				res, err = s.TrainShardStep(mixed, y, denominator)
			}
			if err != nil {
				t.Fatal(err)
			}

			f64 := func(v []float32) []float64 {
				out := make([]float64, len(v))
				for j, x := range v {
					out[j] = float64(x)
				}
				return out
			}
			var cw any
			if tc.weights != nil {
				cw = f64(tc.weights)
			}
			arg, _ := json.Marshal(map[string]any{
				"shape": []int{tc.n, c, h, w}, "x": f64(xv), "y": labels, "classes": k,
				"W": f64(wv), "b": f64(bv), "class_weights": cw, "keras": tc.keras,
				"smoothing": tc.smoothing, "lr": 0.5, "draw": d,
			})
			out, err := pyref.Run(py, filepath.Join("testdata", "mix.py"), string(arg))
			if err != nil {
				t.Fatal(err)
			}
			var want struct {
				Mixed   []float64
				Lambda  float64
				Box     []int
				Loss    float64
				Correct float64
				W, B    []float64
			}
			if err := json.Unmarshal(out, &want); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			worst := func(name string, got []float32, want []float64) {
				t.Helper()
				if len(got) != len(want) {
					t.Fatalf("%s: %d values, the reference %d", name, len(got), len(want))
				}
				m := 0.0
				for j := range got {
					m = math.Max(m, math.Abs(float64(got[j])-want[j]))
				}
				t.Logf("%s: max abs difference %.3g", name, m)
				if m > 1e-6 {
					t.Errorf("%s differs from the reference by %.3g", name, m)
				}
			}
			gotX, _ := mixed.Float32s()
			worst("mixed images", gotX, want.Mixed)
			if lambda != want.Lambda {
				t.Errorf("lambda %.17g, the reference %.17g", lambda, want.Lambda)
			}
			if d.Mixed && d.CutMix {
				yl, yh, xl, xh := cutBox(h, w, d.Lambda, d.CY, d.CX)
				if got := fmt.Sprint([]int{yl, yh, xl, xh}); got != fmt.Sprint(want.Box) {
					t.Errorf("box %s, the reference %v", got, want.Box)
				}
			}
			loss, _ := res.Loss.Item()
			if math.Abs(loss-want.Loss) > 1e-6 {
				t.Errorf("loss %.8f, the reference %.8f", loss, want.Loss)
			}
			if correct, _ := res.Correct.Item(); correct != want.Correct {
				t.Errorf("%g correct, the reference %g", correct, want.Correct)
			}
			gw, _ := wt.Float32s()
			gb, _ := bt.Float32s()
			worst("weight after the step", gw, want.W)
			worst("bias after the step", gb, want.B)
			t.Logf("draw %+v: lambda %.6f, loss %.6f", d, lambda, loss)
		})
	}
}

// TestMixSettings: the YAML keys and flags set the mixing, off by default,
// and bad values are errors that name the key.
func TestMixSettings(t *testing.T) {
	def := DefaultConfig()
	if newMixer(def.Train) != nil || def.Train.MixProb != 1 || def.Train.MixSwitchProb != 0.5 {
		t.Errorf("defaults: mixer %+v, mix_prob %g, mix_switch_prob %g", newMixer(def.Train), def.Train.MixProb, def.Train.MixSwitchProb)
	}
	path := filepath.Join(t.TempDir(), "mix.yaml")
	if err := os.WriteFile(path, []byte("train:\n  mixup: 0.2\n  cutmix: 1\n  mix_prob: 0.5\n  mix_switch_prob: 0.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := DefaultConfig()
	RegisterFlags(fs, &c)
	if err := fs.Parse([]string{"--cutmix", "0.7"}); err != nil {
		t.Fatal(err)
	}
	got, err := ResolveConfig(fs, path)
	if err != nil {
		t.Fatal(err)
	}
	if m := newMixer(got.Train); m == nil || *m != (mixer{mixup: 0.2, cutmix: 0.7, prob: 0.5, switchProb: 0.3}) {
		t.Errorf("config then --cutmix 0.7: %+v", m)
	}
	usage := fs.FlagUsages()
	for _, flag := range []string{"--mixup float", "--cutmix float", "--mix-prob float", "--mix-switch-prob float"} {
		if !strings.Contains(usage, flag) {
			t.Errorf("--help lacks %s", flag)
		}
	}
	for _, tc := range []struct {
		edit func(*TrainConfig)
		want string
	}{
		{func(t *TrainConfig) { t.Mixup = -0.2 }, "train.mixup -0.2 must be a finite Beta concentration >= 0 (0: off)"},
		{func(t *TrainConfig) { t.CutMix = math.Inf(1) }, "train.cutmix +Inf must be a finite Beta concentration >= 0 (0: off)"},
		{func(t *TrainConfig) { t.CutMix = math.NaN() }, "train.cutmix NaN must be a finite Beta concentration >= 0 (0: off)"},
		{func(t *TrainConfig) { t.Mixup, t.MixProb = 0.2, 1.5 }, "train.mix_prob 1.5 is outside [0, 1]"},
		{func(t *TrainConfig) { t.Mixup, t.CutMix, t.MixSwitchProb = 0.2, 1, -0.1 }, "train.mix_switch_prob -0.1 is outside [0, 1]"},
		// A setting that cannot take effect is refused, not ignored.
		{func(t *TrainConfig) { t.MixProb = 0.5 }, "train.mix_prob 0.5 has no effect: neither train.mixup nor train.cutmix is on"},
		{func(t *TrainConfig) { t.CutMix, t.MixSwitchProb = 1, 0.3 }, "train.mix_switch_prob 0.3 has no effect: it chooses between train.mixup and train.cutmix, and only both on take it"},
	} {
		c := DefaultConfig()
		tc.edit(&c.Train)
		if err := c.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("validate: %v, want %q", err, tc.want)
		}
	}
	if err := fs.Parse([]string{"--mix-prob", "often"}); err == nil || !strings.Contains(err.Error(), `invalid argument "often" for "--mix-prob" flag`) {
		t.Errorf("--mix-prob often: %v", err)
	}
}
