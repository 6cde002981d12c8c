package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/fertorch/fertorch/internal/atomicfile"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/tensorfile"
	"github.com/fertorch/fertorch/train/plot"
)

// Checkpoint files are safetensors files. Model parameters keep their
// torchvision names, so a weights-only checkpoint loads in PyTorch with
// safetensors.torch.load_file + load_state_dict; a full checkpoint adds the
// optimizer's tensors under "optimizer.". The metadata carries the run
// state as JSON and a SHA-256 over that state and every tensor, checked on
// load, so a truncated or corrupted file is refused.
const (
	metaState       = "fertorch.state"
	metaDigest      = "fertorch.sha256"
	optimizerPrefix = "optimizer."
	checkpointVer   = 1
)

// Checkpoint kinds.
const (
	// KindFull can resume training: model, optimizer and loop state.
	KindFull = "full"
	// KindWeights holds the model and what evaluation needs.
	KindWeights = "weights"
)

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
}

// digest hashes the state JSON and every tensor (name, dtype, shape, data)
// in name order.
func digest(stateJSON []byte, entries []tensorfile.Entry) string {
	h := sha256.New()
	var n [8]byte
	write := func(b []byte) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	write(stateJSON)
	idx := make([]int, len(entries))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return entries[idx[a]].Name < entries[idx[b]].Name })
	for _, i := range idx {
		e := &entries[i]
		write([]byte(e.Name))
		write([]byte(e.DType.String()))
		for _, d := range e.Shape {
			binary.LittleEndian.PutUint64(n[:], uint64(d))
			h.Write(n[:])
		}
		write(e.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SaveCheckpoint writes model parameters (and, for a full checkpoint, the
// optimizer state tensors) with the run state to path atomically.
func SaveCheckpoint(path string, st *State, model []torch.NamedTensor, opt *OptimizerTensors) error {
	st.Version = checkpointVer
	entries, err := torch.ToEntries(model)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if opt != nil {
		oe, err := torch.ToEntries(opt.Tensors)
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", path, err)
		}
		for i := range oe {
			oe[i].Name = optimizerPrefix + oe[i].Name
		}
		entries = append(entries, oe...)
	}
	stateJSON, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("checkpoint %s: encoding state: %w", path, err)
	}
	meta := map[string]string{
		metaState:  string(stateJSON),
		metaDigest: digest(stateJSON, entries),
	}
	f, err := atomicfile.Create(path)
	if err != nil {
		return err
	}
	file := &tensorfile.File{Entries: entries, Metadata: meta}
	if _, err := file.WriteSafetensors(f); err != nil {
		f.Abort()
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return f.Commit()
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

// verifyCheckpoint checks the checksum of a file that fertorch wrote as a
// checkpoint; it reports false for other files (plain weights), which carry
// no checksum.
func verifyCheckpoint(path string, file *tensorfile.File) (bool, error) {
	stateJSON, ok := file.Metadata[metaState]
	if !ok {
		return false, nil
	}
	want := file.Metadata[metaDigest]
	if got := digest([]byte(stateJSON), file.Entries); got != want {
		return true, fmt.Errorf("%w: %s: checksum mismatch (stored %.12s, computed %.12s): the file was modified or corrupted", ErrCorruptCheckpoint, path, want, got)
	}
	return true, nil
}

// ErrCorruptCheckpoint is wrapped by every error about a damaged checkpoint.
var ErrCorruptCheckpoint = errors.New("checkpoint is damaged")

// LoadCheckpoint reads and verifies a checkpoint written by SaveCheckpoint.
func LoadCheckpoint(path string) (*LoadedCheckpoint, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if format, err := tensorfile.DetectFileFormat(path); err == nil && (format == tensorfile.FormatPTHZip || format == tensorfile.FormatPTHLegacy) {
		return nil, fmt.Errorf("%s is a PyTorch %s weights file, not a fertorch checkpoint: eval and predict take the .safetensors files `fer train` writes (best.safetensors, last.safetensors); give .pth weights to `fer train --weights`", path, format)
	}
	file, err := tensorfile.ReadSafetensorsFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptCheckpoint, err)
	}
	isCheckpoint, err := verifyCheckpoint(path, file)
	if err != nil {
		return nil, err
	}
	if !isCheckpoint {
		return nil, fmt.Errorf("%s: not a fertorch checkpoint (no %q metadata); to start training from plain weights use `fer train --weights`", path, metaState)
	}
	stateJSON := file.Metadata[metaState]
	lc := &LoadedCheckpoint{Path: path, Model: &tensorfile.File{Metadata: file.Metadata}}
	dec := json.NewDecoder(bytes.NewReader([]byte(stateJSON)))
	if err := dec.Decode(&lc.State); err != nil {
		return nil, fmt.Errorf("%w: %s: state: %v", ErrCorruptCheckpoint, path, err)
	}
	if lc.State.Version != checkpointVer {
		return nil, fmt.Errorf("%s: checkpoint format version %d, this fertorch reads version %d", path, lc.State.Version, checkpointVer)
	}
	for _, e := range file.Entries {
		if name, ok := strings.CutPrefix(e.Name, optimizerPrefix); ok {
			e.Name = name
			lc.Optimizer = append(lc.Optimizer, e)
		} else {
			lc.Model.Entries = append(lc.Model.Entries, e)
		}
	}
	return lc, nil
}
