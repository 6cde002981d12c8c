package train

import (
	"math"
	"testing"
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
