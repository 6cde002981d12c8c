package train

import (
	"strings"
	"testing"
)

// TestRecipe: the log's one-line summary of the settings, for the
// tutorial's defaults and for a run with every option on.
func TestRecipe(t *testing.T) {
	def := DefaultConfig().Train
	if got, want := def.Recipe(), "10 epochs of batch 64, adam lr 0.001, no schedule, loss class-weighted (cap 3), best by val_accuracy"; got != want {
		t.Errorf("defaults:\n got %q\nwant %q", got, want)
	}
	all := def
	all.Epochs, all.BatchSize, all.Accumulate = 20, 256, 4
	all.Optimizer, all.LR, all.BaseLR, all.Momentum, all.Nesterov, all.WeightDecay = SGD, 0.1, 0.01, 0.9, true, 5e-4
	all.Schedule, all.WarmupEpochs, all.FineTune = ScheduleCosine, 2, 3
	all.ClassWeightCap, all.LabelSmoothing, all.Oversample = 10, 0.1, true
	all.Mixup, all.CutMix, all.MixProb, all.MixSwitchProb = 0.2, 1, 0.8, 0.3
	all.EMA, all.BestMetric, all.EarlyStopping = 0.999, ValMacroF1, 5
	want := "20 epochs of batch 256 in 4 micro-batches, sgd lr 0.1 (base 0.01) momentum 0.9 nesterov weight decay 0.0005, " +
		"cosine schedule after 2 warm-up epochs, head alone for 3 epochs, loss class-weighted (cap 10), label smoothing 0.1, " +
		"rare classes oversampled (cap 10), mixup 0.2 or cutmix 1 (cutmix with probability 0.3) on 0.8 of the batches, " +
		"weights averaged (EMA 0.999 with warm-up), best by val_macro_f1, early stopping after 5 epochs"
	if got := all.Recipe(); got != want {
		t.Errorf("everything on:\n got %q\nwant %q", got, want)
	}
	for _, c := range []struct {
		edit func(*TrainConfig)
		want string
	}{
		{func(c *TrainConfig) { c.Schedule, c.StepGamma, c.StepEpochs = ScheduleStep, 0.5, 3 }, "step schedule (x0.5 every 3 epochs)"},
		{func(c *TrainConfig) { c.Schedule, c.PlateauFactor, c.PlateauPatience = SchedulePlateau, 0.1, 2 }, "plateau schedule (x0.1 after 2 epochs)"},
		{func(c *TrainConfig) { c.Schedule = ScheduleOneCycle }, "one-cycle schedule"},
		{func(c *TrainConfig) { c.CutMix = 1 }, "cutmix 1, best by"},
		{func(c *TrainConfig) { c.EMA, c.EMAWarmup = 0.99, false }, "weights averaged (EMA 0.99), best by"},
		{func(c *TrainConfig) { c.ClassWeights = false }, "no schedule, best by"},
	} {
		c2 := def
		c.edit(&c2)
		if got := c2.Recipe(); !strings.Contains(got, c.want) {
			t.Errorf("%q lacks %q", got, c.want)
		}
	}
}
