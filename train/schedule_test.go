package train

import (
	"encoding/json"
	"path/filepath"

	"math"
	"testing"

	"github.com/fertorch/fertorch/internal/pyref"
)

func TestSchedules(t *testing.T) {
	cfg := DefaultConfig().Train
	st := newScheduleState()
	cfg.Schedule = "step"
	cfg.StepEpochs, cfg.StepGamma = 3, 0.5
	for e, want := range []float64{1, 1, 1, 0.5, 0.5, 0.5, 0.25} {
		if got := lrAt(cfg, st, 1, e); got != want {
			t.Errorf("step epoch %d: %g, want %g", e, got, want)
		}
	}
	cfg.Schedule, cfg.Epochs, cfg.MinLR = "cosine", 4, 0.1
	// CosineAnnealingLR(T_max=4, eta_min=0.1) from 1: 1, 0.8682, 0.55, 0.2318
	for e, want := range []float64{1, 0.1 + 0.9*(1+math.Cos(math.Pi/4))/2, 0.55, 0.1 + 0.9*(1+math.Cos(3*math.Pi/4))/2} {
		if got := lrAt(cfg, st, 1, e); math.Abs(got-want) > 1e-12 {
			t.Errorf("cosine epoch %d: %g, want %g", e, got, want)
		}
	}
	cfg.Schedule, cfg.PlateauPatience, cfg.PlateauFactor, cfg.MinLR = "plateau", 2, 0.1, 0
	losses := []float64{1.0, 0.9, 0.89995, 0.95, 0.8, 0.85, 0.86}
	reduced := []bool{false, false, false, true, false, false, true}
	for i, l := range losses {
		if got := st.afterEpoch(cfg, l); got != reduced[i] {
			t.Errorf("plateau epoch %d (loss %g): reduced=%v, want %v", i, l, got, reduced[i])
		}
	}
	if math.Abs(st.Scale-0.01) > 1e-15 || lrAt(cfg, st, 1e-3, 9) != 1e-3*st.Scale {
		t.Errorf("plateau scale %g", st.Scale)
	}
}

// TestOneCycleMatchesPyTorch compares every step's rates and momentum with
// torch.optim.lr_scheduler.OneCycleLR stepped once per batch, for Adam
// (beta1) and SGD, two parameter groups, and a run whose warm-up ends
// between steps.
func TestOneCycleMatchesPyTorch(t *testing.T) {
	py := pyref.Require(t, "torch")
	for _, c := range []struct {
		opt           OptimizerName
		epochs, steps int
		pct           float64
	}{
		{Adam, 3, 7, 0.3},
		{SGD, 4, 5, 0.25},
		{Adam, 1, 3, 0.3}, // a warm-up shorter than one step
	} {
		cfg := DefaultConfig().Train
		cfg.Schedule, cfg.Optimizer, cfg.Epochs, cfg.OneCyclePctStart = ScheduleOneCycle, c.opt, c.epochs, c.pct
		cfg.OneCycleDivFactor, cfg.OneCycleFinalDivFactor = 20, 300
		bases := []float64{2e-4, 1e-3}
		arg, _ := json.Marshal(map[string]any{
			"max_lr": bases, "optimizer": string(c.opt), "epochs": c.epochs, "steps_per_epoch": c.steps,
			"pct_start": c.pct, "div_factor": cfg.OneCycleDivFactor, "final_div_factor": cfg.OneCycleFinalDivFactor,
			"momentum": cfg.OneCycleMomentumRange,
		})
		out, err := pyref.Run(py, filepath.Join("testdata", "onecycle.py"), string(arg))
		if err != nil {
			t.Fatal(err)
		}
		var want struct {
			LR       [][]float64
			Momentum []float64
		}
		if err := json.Unmarshal(out, &want); err != nil {
			t.Fatal(err)
		}
		if len(want.LR) != c.epochs*c.steps {
			t.Fatalf("%v: PyTorch gave %d steps, want %d", c, len(want.LR), c.epochs*c.steps)
		}
		close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(math.Abs(b), 1e-12) }
		for k := range want.LR {
			got := ratesAt(cfg, newScheduleState(), bases, k/c.steps, k%c.steps, c.steps)
			if !got.SetMomentum || !close(got.Momentum, want.Momentum[k]) {
				t.Errorf("%v step %d: momentum %g (set %v), PyTorch %g", c, k, got.Momentum, got.SetMomentum, want.Momentum[k])
			}
			for g := range bases {
				if !close(got.LR[g], want.LR[k][g]) {
					t.Errorf("%v step %d group %d: lr %.17g, PyTorch %.17g", c, k, g, got.LR[g], want.LR[k][g])
				}
			}
		}
	}
}

// TestWarmup checks the linear warm-up on top of an epoch schedule.
func TestWarmup(t *testing.T) {
	cfg := DefaultConfig().Train
	cfg.Schedule, cfg.StepEpochs, cfg.StepGamma, cfg.WarmupEpochs = ScheduleStep, 1, 0.5, 1.5
	// 4 steps per epoch: W = 6 warm-up steps, factors 1/6 ... 6/6, and the
	// step schedule halves the rate each epoch.
	want := []float64{1. / 6, 2. / 6, 3. / 6, 4. / 6, 0.5 * 5 / 6, 0.5, 0.5, 0.5, 0.25}
	for k, w := range want {
		got := ratesAt(cfg, newScheduleState(), []float64{1}, k/4, k%4, 4)
		if math.Abs(got.LR[0]-w) > 1e-15 || got.SetMomentum {
			t.Errorf("step %d: lr %g (momentum set %v), want %g", k, got.LR[0], got.SetMomentum, w)
		}
	}
}
