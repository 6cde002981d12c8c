package train

import "math"

// ScheduleState is the learning-rate scheduler's state between epochs.
type ScheduleState struct {
	// Scale multiplies the configured learning rates (plateau schedule).
	Scale float64 `json:"scale"`
	// PlateauBest is the best validation loss seen (0: none yet);
	// PlateauWait counts epochs without improvement since.
	PlateauBest float64 `json:"plateau_best"`
	PlateauWait int     `json:"plateau_wait"`
}

// newScheduleState starts a schedule.
func newScheduleState() ScheduleState { return ScheduleState{Scale: 1} }

// lrAt is the learning rate of a group whose configured rate is base during
// epoch (0-based).
func lrAt(t TrainConfig, st ScheduleState, base float64, epoch int) float64 {
	lr := base
	switch t.Schedule {
	case ScheduleStep:
		lr = base * math.Pow(t.StepGamma, float64(epoch/t.StepEpochs))
	case ScheduleCosine:
		// torch.optim.lr_scheduler.CosineAnnealingLR over the run's epochs.
		lo := math.Min(t.MinLR, base)
		return lo + (base-lo)*(1+math.Cos(math.Pi*float64(epoch)/float64(t.Epochs)))/2
	case SchedulePlateau:
		lr = base * st.Scale
	}
	return math.Max(lr, math.Min(t.MinLR, base))
}

// plateauMinDelta is Keras ReduceLROnPlateau's default min_delta.
const plateauMinDelta = 1e-4

// afterEpoch updates a plateau schedule with the epoch's validation loss, as
// Keras' ReduceLROnPlateau(monitor="val_loss") does: after PlateauPatience
// epochs without an improvement of more than min_delta the rate is
// multiplied by PlateauFactor. It reports whether the rate was reduced.
func (st *ScheduleState) afterEpoch(t TrainConfig, valLoss float64) bool {
	if t.Schedule != SchedulePlateau || math.IsNaN(valLoss) {
		return false
	}
	if st.PlateauBest == 0 || valLoss < st.PlateauBest-plateauMinDelta {
		st.PlateauBest = valLoss
		st.PlateauWait = 0
		return false
	}
	st.PlateauWait++
	if st.PlateauWait >= t.PlateauPatience {
		st.Scale *= t.PlateauFactor
		st.PlateauWait = 0
		return true
	}
	return false
}
