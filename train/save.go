package train

import (
	"fmt"
	"path/filepath"

	"github.com/fertorch/fertorch/checkpoint"
	"github.com/fertorch/fertorch/internal/atomicfile"
	"github.com/fertorch/fertorch/train/metrics"
	"github.com/fertorch/fertorch/train/plot"
)

// saveLast writes the resumable checkpoint (rank 0).
func (r *run) saveLast() error {
	if !r.writes() {
		return nil
	}
	st, err := r.opt.State()
	if err != nil {
		return err
	}
	defer st.Free()
	r.state.OptimizerKind, r.state.OptimizerScalars = st.Kind, st.Scalars
	if r.stepper.Scaler != nil {
		r.state.LossScale, r.state.ScaleGoodSteps = r.stepper.Scaler.Scale, r.stepper.Scaler.GoodSteps()
	}
	r.state.Kind = checkpoint.KindFull
	tensors := st.Tensors
	if r.ema != nil {
		tensors = append(tensors[:len(tensors):len(tensors)], r.ema.named(emaPrefix)...)
	}
	return SaveCheckpoint(filepath.Join(r.cfg.Output, LastCheckpoint), &r.state, r.model.StateTensors(), &OptimizerTensors{Tensors: tensors})
}

// saveEpoch writes the epoch's files: weights (per epoch, best), the
// resumable checkpoint, history and plots.
func (r *run) saveEpoch(epoch int, row plot.Epoch, report *metrics.Report, improved bool) error {
	if !r.writes() {
		return nil
	}
	out := r.cfg.Output
	weights := r.state
	weights.Kind = checkpoint.KindWeights
	weights.OptimizerKind, weights.OptimizerScalars = "", nil
	if r.cfg.Train.EpochCheckpoints {
		name := fmt.Sprintf("epoch-%02d-val_acc-%.4f.safetensors", epoch+1, row.ValAcc)
		if err := SaveCheckpoint(filepath.Join(out, name), &weights, r.fileWeights(), nil); err != nil {
			return err
		}
	}
	if improved {
		if err := SaveCheckpoint(filepath.Join(out, BestCheckpoint), &weights, r.fileWeights(), nil); err != nil {
			return err
		}
		if err := saveReport(filepath.Join(out, ValidationReport), report); err != nil {
			return err
		}
	}
	if err := r.saveLast(); err != nil {
		return err
	}
	h := plot.History{Epochs: r.state.History}
	if err := plot.SaveCSV(filepath.Join(out, HistoryCSV), h); err != nil {
		return err
	}
	if err := plot.SaveJSON(filepath.Join(out, HistoryJSON), h); err != nil {
		return err
	}
	return plot.SaveCurvesPNG(filepath.Join(out, CurvesPNG), h, plot.CurvesOptions{LearningRate: true})
}

func saveReport(path string, rep *metrics.Report) error {
	f, err := atomicfile.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteJSON(f); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}
