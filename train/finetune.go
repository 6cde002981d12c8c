package train

import (
	"fmt"
	"strings"

	"github.com/fertorch/fertorch/vision"
)

// --fine-tune N trains the way fastai's fine_tune does, in one run with one
// history and one set of checkpoints: the head alone for the first N epochs
// (the base frozen, its batch norms in evaluation mode), then the base's
// configured trainable layers too, at their own rate (--base-lr). The
// optimizer holds every parameter of both phases from the start; a frozen
// one gets no gradient, no update and no optimizer state until it trains.
// The phase follows from the epoch, so a run resumed in either phase, or
// across the change, continues exactly.

// headOnly reports whether the epoch (0-based) belongs to the fine-tune
// phase that trains the head alone.
func (t TrainConfig) headOnly(epoch int) bool { return t.FineTune > 0 && epoch < t.FineTune }

// applyPhase sets what trains for the epoch (0-based) under --fine-tune:
// nothing changes without it or within a phase.
func (r *run) applyPhase(epoch int) error {
	t := r.cfg.Train
	if t.FineTune == 0 {
		return nil
	}
	head := t.headOnly(epoch)
	if r.phaseSet && r.headOnlyNow == head {
		return nil
	}
	n := 0
	if !head {
		var err error
		if n, err = vision.ParseTrainable(r.model.Arch(), r.cfg.Model.TrainableBaseLayers); err != nil {
			return err
		}
	}
	names, err := vision.FreezeTop(r.model, n)
	if err != nil {
		return fmt.Errorf("fine-tune: %w", err)
	}
	r.phaseSet, r.headOnlyNow = true, head
	if head {
		r.printf("fine-tune: epochs 1 to %d train the head alone (the base is frozen)\n", t.FineTune)
	} else {
		rate := t.BaseLR
		if rate == 0 {
			rate = t.LR
		}
		r.printf("fine-tune: from epoch %d the base trains too (%s), at rate %g, the head at %g\n", epoch+1, strings.Join(names, ", "), rate, t.LR)
	}
	return r.newReducer()
}

// phaseSpan is the epochs [first, end) of the fine-tune phase of an epoch
// (the whole run without --fine-tune): a one-cycle schedule runs one cycle
// per phase, as fastai's fine_tune does.
func (t TrainConfig) phaseSpan(epoch int) (first, end int) {
	switch {
	case t.FineTune == 0:
		return 0, t.Epochs
	case epoch < t.FineTune:
		return 0, t.FineTune
	}
	return t.FineTune, t.Epochs
}
