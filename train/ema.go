package train

import (
	"fmt"
	"strings"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/tensorfile"
)

// --ema DECAY keeps an exponential moving average of the model's weights,
// as timm's ModelEmaV2 does: after every optimizer step each floating-point
// tensor of the state dict (parameters and batch-norm statistics) becomes
// decay*average + (1-decay)*current, and the other tensors (batch counts)
// are copied. With --ema-warmup (the default) the decay of the update after
// n others is min(DECAY, (1+n)/(10+n)), as in TensorFlow's
// ExponentialMovingAverage: without it, a decay of 0.999 still gives the
// initial (random or pretrained) weights a third of the average after 1,100
// steps, and a fifth at the end of 10 epochs of 150 steps. n counts the
// run's optimizer steps, so it needs no state of its own. Validation, the per-epoch and
// best weight files use the average; last.safetensors keeps the live
// weights and the average (as "ema."-prefixed tensors beside the
// optimizer's), so a run resumes exactly.

// emaPrefix marks the average's tensors in a full checkpoint's optimizer
// section.
const emaPrefix = "ema."

// emaDecay is the decay of the update that follows n earlier ones.
func emaDecay(decay float64, warmup bool, n int) float64 {
	if !warmup {
		return decay
	}
	return min(decay, float64(1+n)/float64(10+n))
}

// weightAverage is the moving average of a list of state tensors.
type weightAverage struct {
	names []string
	avg   []*torch.Tensor
}

// newWeightAverage starts an average at the tensors' current values.
func newWeightAverage(state []torch.NamedTensor) (*weightAverage, error) {
	w := &weightAverage{}
	err := torch.NoGrad(func() error {
		for _, s := range state {
			c, err := s.Tensor.Clone()
			if err != nil {
				return fmt.Errorf("ema: copying %s: %w", s.Name, err)
			}
			w.names, w.avg = append(w.names, s.Name), append(w.avg, c)
		}
		return nil
	})
	if err != nil {
		w.free()
		return nil, err
	}
	return w, nil
}

// check says whether state is the list the average was made from.
func (w *weightAverage) check(state []torch.NamedTensor) error {
	if len(state) != len(w.avg) {
		return fmt.Errorf("ema: %d tensors, the average has %d", len(state), len(w.avg))
	}
	for i, s := range state {
		if s.Name != w.names[i] {
			return fmt.Errorf("ema: tensor %d is %s, the average's is %s", i, s.Name, w.names[i])
		}
	}
	return nil
}

// update moves the average towards state: average = decay*average +
// (1-decay)*state.
func (w *weightAverage) update(state []torch.NamedTensor, decay float64) error {
	if err := w.check(state); err != nil {
		return err
	}
	return torch.NoGrad(func() error {
		for i, s := range state {
			a := w.avg[i]
			if !a.DType().IsFloat() {
				if err := a.CopyFrom(s.Tensor); err != nil {
					return fmt.Errorf("ema: %s: %w", s.Name, err)
				}
				continue
			}
			if err := a.MulScalarInPlace(decay); err != nil {
				return fmt.Errorf("ema: %s: %w", s.Name, err)
			}
			if err := a.AddInPlace(s.Tensor, 1-decay); err != nil {
				return fmt.Errorf("ema: %s: %w", s.Name, err)
			}
		}
		return nil
	})
}

// swap exchanges the values of state and the average (twice restores both
// exactly), so that the model can be evaluated with the averaged weights.
func (w *weightAverage) swap(state []torch.NamedTensor) error {
	if err := w.check(state); err != nil {
		return err
	}
	return torch.NoGrad(func() error {
		for i, s := range state {
			tmp, err := s.Tensor.Clone()
			if err != nil {
				return err
			}
			err = s.Tensor.CopyFrom(w.avg[i])
			if err == nil {
				err = w.avg[i].CopyFrom(tmp)
			}
			tmp.Free()
			if err != nil {
				return fmt.Errorf("ema: swapping %s: %w", s.Name, err)
			}
		}
		return nil
	})
}

// named is the average as named tensors (for checkpoints).
func (w *weightAverage) named(prefix string) []torch.NamedTensor {
	out := make([]torch.NamedTensor, len(w.avg))
	for i, a := range w.avg {
		out[i] = torch.NamedTensor{Name: prefix + w.names[i], Tensor: a}
	}
	return out
}

// load sets the average from a checkpoint's "ema."-prefixed entries and
// returns the other entries.
func (w *weightAverage) load(entries []tensorfile.Entry) ([]tensorfile.Entry, error) {
	index := map[string]int{}
	for i, n := range w.names {
		index[n] = i
	}
	var rest []tensorfile.Entry
	found := 0
	for i := range entries {
		name, ok := strings.CutPrefix(entries[i].Name, emaPrefix)
		if !ok {
			rest = append(rest, entries[i])
			continue
		}
		k, known := index[name]
		if !known {
			return nil, fmt.Errorf("ema: the checkpoint averages %s, which the model does not have", name)
		}
		t, err := torch.FromEntry(&entries[i], torch.CPU())
		if err != nil {
			return nil, fmt.Errorf("ema: %s: %w", name, err)
		}
		err = w.avg[k].CopyFrom(t)
		t.Free()
		if err != nil {
			return nil, fmt.Errorf("ema: %s: %w", name, err)
		}
		found++
	}
	if found != len(w.avg) {
		return nil, fmt.Errorf("ema: the checkpoint holds the average of %d of the model's %d tensors (was it saved without --ema?)", found, len(w.avg))
	}
	return rest, nil
}

func (w *weightAverage) free() {
	if w == nil {
		return
	}
	for _, a := range w.avg {
		a.Free()
	}
	w.avg = nil
}

// startAverage starts the moving average of a new run, from the weights
// every rank holds once rank 0's are broadcast (a resumed run's comes from
// its checkpoint).
func (r *run) startAverage() error {
	if r.cfg.Train.EMA == 0 || r.ema != nil {
		return nil
	}
	var err error
	r.ema, err = newWeightAverage(r.model.StateTensors())
	return err
}

// updateAverage follows an optimizer step that had done steps before it
// in the run.
func (r *run) updateAverage(done int) error {
	if r.ema == nil {
		return nil
	}
	return r.ema.update(r.model.StateTensors(), emaDecay(r.cfg.Train.EMA, r.cfg.Train.EMAWarmup, done))
}

// restoreAverage takes the average out of a full checkpoint's optimizer
// entries and returns the optimizer's own.
func (r *run) restoreAverage(entries []tensorfile.Entry) ([]tensorfile.Entry, error) {
	if r.cfg.Train.EMA == 0 {
		return entries, nil
	}
	var err error
	if r.ema, err = newWeightAverage(r.model.StateTensors()); err != nil {
		return nil, err
	}
	return r.ema.load(entries)
}

// fileWeights are the weights the per-epoch and best files hold: the
// average with --ema, else the model's.
func (r *run) fileWeights() []torch.NamedTensor {
	if r.ema != nil {
		return r.ema.named("")
	}
	return r.model.StateTensors()
}

// withAverage runs f with the averaged weights in the model (f is run
// as is without --ema).
func (r *run) withAverage(f func() error) error {
	if r.ema == nil {
		return f()
	}
	state := r.model.StateTensors()
	if err := r.ema.swap(state); err != nil {
		return err
	}
	ferr := f()
	if err := r.ema.swap(state); err != nil {
		return err
	}
	return ferr
}
