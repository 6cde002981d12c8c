package train

import (
	"encoding/json"
	"fmt"

	"github.com/fertorch/fertorch/checkpoint"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/tensorfile"
	"github.com/fertorch/fertorch/train/plot"
)

// The checkpoint file format (safetensors with the run state and a
// checksum in its metadata) is package checkpoint's; this file is the
// trainer's side of it: the run state and the conversion of tensors.

// EpochStats are running training sums over the steps done in an epoch.
type EpochStats struct {
	LossSum float64 `json:"loss_sum"` // sum over samples of the batch-mean loss times batch size
	Correct int64   `json:"correct"`
	Samples int64   `json:"samples"`
	Seconds float64 `json:"seconds"`
}

// imagesPerSecond is the training throughput of the steps counted.
func (e EpochStats) imagesPerSecond() float64 {
	if e.Seconds <= 0 {
		return 0
	}
	return float64(e.Samples) / e.Seconds
}

// State is the run state stored in a checkpoint.
type State struct {
	Version int    `json:"version"`
	Kind    string `json:"kind"`
	Config  Config `json:"config"`
	// Classes are the class names in index order.
	Classes      []string  `json:"classes"`
	ClassWeights []float64 `json:"class_weights,omitempty"`
	// Data pins the run to the images it trains on (nil in checkpoints of
	// older fertorch versions).
	Data *DataRecord `json:"data,omitempty"`
	// Epoch is the 0-based epoch in progress and Step the steps of it done;
	// Step == 0 means the epoch has not started.
	Epoch   int          `json:"epoch"`
	Step    int          `json:"step"`
	Partial EpochStats   `json:"partial"`
	History []plot.Epoch `json:"history"`
	// Best is the best value of Config.Train.BestMetric so far, reached at
	// BestEpoch (1-based; 0: none yet); BadEpochs counts epochs since.
	Best      float64 `json:"best"`
	BestEpoch int     `json:"best_epoch"`
	BadEpochs int     `json:"bad_epochs"`
	// Schedule is the learning-rate scheduler's state.
	Schedule ScheduleState `json:"schedule"`
	// OptimizerKind and OptimizerScalars restore the optimizer (full only).
	OptimizerKind    string             `json:"optimizer_kind,omitempty"`
	OptimizerScalars map[string]float64 `json:"optimizer_scalars,omitempty"`
	// LossScale and ScaleGoodSteps restore float16 loss scaling.
	LossScale      float64 `json:"loss_scale,omitempty"`
	ScaleGoodSteps int     `json:"scale_good_steps,omitempty"`
	// ValAccuracy is the validation accuracy of the last finished epoch.
	ValAccuracy float64 `json:"val_accuracy"`
	// Ranks is the number of processes that trained the run when it was
	// saved (0 in checkpoints of older fertorch versions: one).
	Ranks int `json:"ranks,omitempty"`
}

// SaveCheckpoint writes model parameters (and, for a full checkpoint, the
// optimizer state tensors) with the run state to path atomically.
func SaveCheckpoint(path string, st *State, model []torch.NamedTensor, opt *OptimizerTensors) error {
	st.Version = checkpoint.Version
	entries, err := torch.ToEntries(model)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	var optEntries []tensorfile.Entry
	if opt != nil {
		if optEntries, err = torch.ToEntries(opt.Tensors); err != nil {
			return fmt.Errorf("checkpoint %s: %w", path, err)
		}
	}
	stateJSON, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("checkpoint %s: encoding state: %w", path, err)
	}
	return checkpoint.Save(path, stateJSON, entries, optEntries)
}

// OptimizerTensors are an optimizer's state tensors, named by parameter.
type OptimizerTensors struct {
	Tensors []torch.NamedTensor
}

// LoadedCheckpoint is a checkpoint read back: state, model entries and
// optimizer entries (names without the "optimizer." prefix).
type LoadedCheckpoint struct {
	Path      string
	State     State
	Model     *tensorfile.File
	Optimizer []tensorfile.Entry
}

// LoadCheckpoint reads and verifies a checkpoint written by SaveCheckpoint
// and decodes its whole run state.
func LoadCheckpoint(path string) (*LoadedCheckpoint, error) {
	f, err := checkpoint.Read(path)
	if err != nil {
		return nil, err
	}
	lc := &LoadedCheckpoint{Path: path, Model: f.Model, Optimizer: f.Optimizer}
	if err := f.DecodeState(&lc.State); err != nil {
		return nil, err
	}
	return lc, nil
}
