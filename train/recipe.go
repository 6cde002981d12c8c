package train

import (
	"fmt"
	"strings"
)

// Recipe sums up, in one line for the start of a run's log, the training
// settings that shape its result, so that a log says how its model was
// made without the config file next to it:
//
//	10 epochs of batch 64, adam lr 0.001, no schedule, loss class-weighted (cap 3), best by val_accuracy
func (t TrainConfig) Recipe() string {
	batch := fmt.Sprintf("%d epochs of batch %d", t.Epochs, t.BatchSize)
	if t.Accumulate > 1 {
		batch += fmt.Sprintf(" in %d micro-batches", t.Accumulate)
	}
	parts := []string{batch}

	opt := fmt.Sprintf("%s lr %g", t.Optimizer, t.LR)
	if t.BaseLR > 0 && t.BaseLR != t.LR {
		opt += fmt.Sprintf(" (base %g)", t.BaseLR)
	}
	if t.Optimizer == SGD && t.Momentum > 0 {
		opt += fmt.Sprintf(" momentum %g", t.Momentum)
		if t.Nesterov {
			opt += " nesterov"
		}
	}
	if t.WeightDecay > 0 {
		opt += fmt.Sprintf(" weight decay %g", t.WeightDecay)
	}
	parts = append(parts, opt)

	switch t.Schedule {
	case ScheduleNone, "":
		parts = append(parts, "no schedule")
	case ScheduleStep:
		parts = append(parts, fmt.Sprintf("step schedule (x%g every %d epochs)", t.StepGamma, t.StepEpochs))
	case SchedulePlateau:
		parts = append(parts, fmt.Sprintf("plateau schedule (x%g after %d epochs)", t.PlateauFactor, t.PlateauPatience))
	default:
		parts = append(parts, string(t.Schedule)+" schedule")
	}
	if t.WarmupEpochs > 0 {
		parts[len(parts)-1] += fmt.Sprintf(" after %g warm-up epochs", t.WarmupEpochs)
	}
	if t.FineTune > 0 {
		parts = append(parts, fmt.Sprintf("head alone for %d epochs", t.FineTune))
	}

	var loss []string
	if t.ClassWeights {
		loss = append(loss, fmt.Sprintf("class-weighted (cap %g)", t.ClassWeightCap))
	}
	if t.LabelSmoothing > 0 {
		loss = append(loss, fmt.Sprintf("label smoothing %g", t.LabelSmoothing))
	}
	if len(loss) > 0 {
		parts = append(parts, "loss "+strings.Join(loss, ", "))
	}
	if t.Oversample {
		parts = append(parts, fmt.Sprintf("rare classes oversampled (cap %g)", t.ClassWeightCap))
	}
	if mix := t.mixing(); mix != "" {
		parts = append(parts, mix)
	}
	if t.EMA > 0 {
		warm := ""
		if t.EMAWarmup {
			warm = " with warm-up"
		}
		parts = append(parts, fmt.Sprintf("weights averaged (EMA %g%s)", t.EMA, warm))
	}
	best := "best by " + string(t.BestMetric)
	if t.EarlyStopping > 0 {
		best += fmt.Sprintf(", early stopping after %d epochs", t.EarlyStopping)
	}
	return strings.Join(append(parts, best), ", ")
}

// mixing describes Mixup and CutMix as configured, or "" when both are off.
func (t TrainConfig) mixing() string {
	var kinds []string
	if t.Mixup > 0 {
		kinds = append(kinds, fmt.Sprintf("mixup %g", t.Mixup))
	}
	if t.CutMix > 0 {
		kinds = append(kinds, fmt.Sprintf("cutmix %g", t.CutMix))
	}
	if len(kinds) == 0 {
		return ""
	}
	s := strings.Join(kinds, " or ")
	if len(kinds) == 2 {
		s += fmt.Sprintf(" (cutmix with probability %g)", t.MixSwitchProb)
	}
	if t.MixProb < 1 {
		s += fmt.Sprintf(" on %g of the batches", t.MixProb)
	}
	return s
}
