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

// Rates are what a schedule sets before one optimisation step.
type Rates struct {
	// LR has one learning rate per parameter group.
	LR []float64
	// Momentum is SGD's momentum or Adam's beta1 (one-cycle only).
	Momentum float64
	// SetMomentum is false when the schedule leaves the momentum alone.
	SetMomentum bool
}

// ratesAt are the rates of the step-th optimisation step (0-based) of a
// 0-based epoch of stepsPerEpoch steps, for groups whose configured rates
// are bases. one-cycle follows torch.optim.lr_scheduler.OneCycleLR stepped
// once per batch (each group's configured rate is its max_lr), one cycle
// per --fine-tune phase; the other schedules change the rate per epoch and
// are multiplied by the linear warm-up factor min(1, (k+1)/W) over the
// first W = WarmupEpochs x stepsPerEpoch steps of the run.
func ratesAt(t TrainConfig, st ScheduleState, bases []float64, epoch, step, stepsPerEpoch int) Rates {
	k := epoch*stepsPerEpoch + step
	r := Rates{LR: make([]float64, len(bases))}
	if t.Schedule == ScheduleOneCycle {
		first, end := t.phaseSpan(epoch)
		k -= first * stepsPerEpoch
		total := (end - first) * stepsPerEpoch
		for g, base := range bases {
			r.LR[g], r.Momentum = oneCycleAt(t, base, k, total)
		}
		r.SetMomentum = t.OneCycleMomentum
		return r
	}
	factor := 1.0
	if warm := int(math.Round(t.WarmupEpochs * float64(stepsPerEpoch))); warm > 0 && k < warm {
		factor = float64(k+1) / float64(warm)
	}
	for g, base := range bases {
		r.LR[g] = lrAt(t, st, base, epoch) * factor
	}
	return r
}

// applyRates sets the optimizer's rates for a step of the epoch.
func (r *run) applyRates(epoch, step, stepsPerEpoch int) {
	rates := ratesAt(r.cfg.Train, r.state.Schedule, r.baseLRs, epoch, step, stepsPerEpoch)
	for g, lr := range rates.LR {
		r.opt.SetLR(g, lr)
	}
	if rates.SetMomentum {
		r.opt.SetMomentum(rates.Momentum)
	}
}

// oneCycleAt is OneCycleLR's learning rate and momentum at step k of total
// (two phases, cosine annealing): from max_lr/div_factor up to max_lr over
// the first pct_start of the steps while the momentum falls from its
// maximum to its base, then down to max_lr/(div_factor*final_div_factor)
// while the momentum climbs back.
func oneCycleAt(t TrainConfig, maxLR float64, k, total int) (lr, momentum float64) {
	initial := maxLR / t.OneCycleDivFactor
	final := initial / t.OneCycleFinalDivFactor
	lo, hi := t.OneCycleMomentumRange[0], t.OneCycleMomentumRange[1]
	x, up, last := float64(k), t.OneCyclePctStart*float64(total)-1, float64(total-1)
	if x <= up {
		// (A warm-up phase of one step, where OneCycleLR would divide by
		// zero, starts at its initial rate.)
		pct := 0.0
		if up > 0 {
			pct = x / up
		}
		return cosineAnneal(initial, maxLR, pct), cosineAnneal(hi, lo, pct)
	}
	pct := 1.0
	if last > up {
		pct = (x - up) / (last - up)
	}
	return cosineAnneal(maxLR, final, pct), cosineAnneal(lo, hi, pct)
}

// cosineAnneal goes from a (pct 0) to b (pct 1) along half a cosine.
func cosineAnneal(a, b, pct float64) float64 {
	return b + (a-b)/2*(math.Cos(math.Pi*pct)+1)
}

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
