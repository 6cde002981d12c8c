package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fertorch/fertorch/checkpoint"
	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/optim"
)

// ResumeFlags are the settings a resumed run takes from the command line
// instead of its checkpoint, by flag name: a longer epoch count, where the
// same data is now, and what only changes speed or placement. Everything
// else comes from the checkpoint, so that the run continues as it began.
var ResumeFlags = []string{"epochs", "data", "device", "threads", "onednn", "workers", "prefetch", "cache"}

// applyResumeFlag copies the setting of one of ResumeFlags from given to c.
func applyResumeFlag(c *Config, given Config, flag string) error {
	switch flag {
	case "epochs":
		c.Train.Epochs = given.Train.Epochs
	case "data":
		c.Data.Dir = given.Data.Dir
	case "device":
		c.Train.Device = given.Train.Device
	case "threads":
		c.Train.Threads = given.Train.Threads
	case "onednn":
		c.Train.OneDNN = given.Train.OneDNN
	case "workers":
		c.Data.Workers = given.Data.Workers
	case "prefetch":
		c.Data.Prefetch = given.Data.Prefetch
	case "cache":
		c.Data.Cache = given.Data.Cache
	default:
		return fmt.Errorf("--resume continues a run with its saved settings; --%s cannot change (only --%s may)", flag, strings.Join(ResumeFlags, ", --"))
	}
	return nil
}

// DataRecord pins a run to the images it trains and validates on: a
// resumed run finds them through it and refuses other images.
type DataRecord struct {
	// Dir is the prepared data folder's absolute path when the run last
	// (re)started; RunRelative is the same folder relative to the run
	// folder, which still holds when both were moved together.
	Dir         string `json:"dir"`
	RunRelative string `json:"run_relative,omitempty"`
	// Train and Valid are the fingerprints of the two splits.
	Train data.Fingerprint `json:"train"`
	Valid data.Fingerprint `json:"valid"`
}

// ResumeCheckpoint is the checkpoint that Options.Resume names: the
// run folder's last.safetensors, or the file itself.
func ResumeCheckpoint(resume string) string {
	if st, err := os.Stat(resume); err == nil && st.IsDir() {
		return filepath.Join(resume, LastCheckpoint)
	}
	return resume
}

// ResumeDevice is the device setting of the run a resume names, read from
// its checkpoint's header without loading its tensors: a resumed
// distributed run needs it to choose its collectives (Gloo on the CPU,
// NCCL on CUDA) before Train reads the checkpoint.
func ResumeDevice(resume string) (torch.DeviceSpec, error) {
	path := ResumeCheckpoint(resume)
	raw, err := checkpoint.ReadState(path)
	if err != nil {
		return "", fmt.Errorf("resume: %w", err)
	}
	var st State
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", fmt.Errorf("resume: %s: state: %w", path, err)
	}
	return st.Config.Train.Device, nil
}

// openResume reads the checkpoint to resume and adopts its config, with
// the command line's ResumeFlags over it (their values from given).
func (r *run) openResume(given Config) (*LoadedCheckpoint, error) {
	path := ResumeCheckpoint(r.opts.Resume)
	lc, err := LoadCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	if lc.State.Kind != checkpoint.KindFull {
		return nil, fmt.Errorf("resume: %s holds weights only; resume from a run's %s", path, LastCheckpoint)
	}
	r.cfg = lc.State.Config
	// The run continues where its checkpoint is now, even if the folder was
	// moved or copied since.
	r.cfg.Output = filepath.Dir(path)
	dataGiven := false
	for _, flag := range r.opts.Overrides {
		if err := applyResumeFlag(&r.cfg, given, flag); err != nil {
			return nil, err
		}
		dataGiven = dataGiven || flag == "data"
	}
	if r.cfg.Train.Epochs < lc.State.Epoch {
		return nil, fmt.Errorf("resume: --epochs %d is below the %d epochs already done", r.cfg.Train.Epochs, lc.State.Epoch)
	}
	r.pinned = lc.State.Data
	if !dataGiven {
		dir, err := findRunData(lc.State, r.cfg.Output)
		if err != nil {
			return nil, err
		}
		r.cfg.Data.Dir = dir
	}
	if r.pinned == nil {
		r.warnf("warning: %s records no fingerprint of its data (written by an older fertorch): the images in %s cannot be checked against the ones the run started with\n", path, r.cfg.Data.Dir)
	}
	return lc, nil
}

// findRunData returns the data folder a resumed run recorded: at its
// absolute path, or where it is relative to the run folder (both moved
// together).
func findRunData(st State, runDir string) (string, error) {
	rec := st.Data
	if rec == nil {
		// Older checkpoints kept only the folder as given.
		return st.Config.Data.Dir, nil
	}
	tried := []string{rec.Dir}
	if rec.RunRelative != "" {
		tried = append(tried, filepath.Join(runDir, rec.RunRelative))
	}
	for _, dir := range tried {
		if st, err := os.Stat(filepath.Join(dir, "train")); err == nil && st.IsDir() {
			return dir, nil
		}
	}
	return "", fmt.Errorf("resume: the run's data folder is gone (not at %s); give --data with where the same prepared data is now", strings.Join(tried, " nor at "))
}

// pinData checks the fingerprints of the splits a run opened against the
// ones its checkpoint recorded (resuming), and records them for the run's
// checkpoints.
func (r *run) pinData(train, valid data.Fingerprint) error {
	if p := r.pinned; p != nil {
		var diffs []string
		for _, part := range []struct {
			name     string
			was, now data.Fingerprint
		}{{"train", p.Train, train}, {"valid", p.Valid, valid}} {
			for _, d := range part.was.Diff(part.now) {
				diffs = append(diffs, part.name+": "+d)
			}
		}
		if len(diffs) > 0 {
			return fmt.Errorf("%w: %s is not the data this run started with (%s): %s. Was `fer prepare` run again with another split or seed? Give --data with the original prepared data, or start a new run",
				ErrDataChanged, r.cfg.Data.Dir, p.Dir, strings.Join(diffs, "; "))
		}
	}
	abs, err := filepath.Abs(r.cfg.Data.Dir)
	if err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	rec := &DataRecord{Dir: abs, Train: train, Valid: valid}
	if out, err := filepath.Abs(r.cfg.Output); err == nil {
		if rel, err := filepath.Rel(out, abs); err == nil {
			rec.RunRelative = rel
		}
	}
	r.pinned = rec
	return nil
}

// ErrDataChanged is wrapped by the error of a resumed run whose data is not
// the data it started with.
var ErrDataChanged = errors.New("resume: the data changed")

// restore applies a full checkpoint's optimizer and loop state.
func (r *run) restore(lc *LoadedCheckpoint) error {
	st := lc.State
	if err := sameClasses(st.Classes, r.classes); err != nil {
		return fmt.Errorf("resume: the dataset changed since the checkpoint: %w", err)
	}
	entries, err := r.restoreAverage(lc.Optimizer)
	if err != nil {
		return fmt.Errorf("resume %s: %w", lc.Path, err)
	}
	tensors := make([]torch.NamedTensor, 0, len(entries))
	defer func() {
		for _, t := range tensors {
			t.Tensor.Free()
		}
	}()
	for i := range entries {
		t, err := torch.FromEntry(&entries[i], torch.CPU())
		if err != nil {
			return fmt.Errorf("resume optimizer: %w", err)
		}
		tensors = append(tensors, torch.NamedTensor{Name: entries[i].Name, Tensor: t})
	}
	if err := r.opt.LoadState(&optim.State{Kind: st.OptimizerKind, Tensors: tensors, Scalars: st.OptimizerScalars}); err != nil {
		return fmt.Errorf("resume optimizer: %w", err)
	}
	if r.stepper.Scaler != nil && st.LossScale > 0 {
		r.stepper.Scaler.Scale = st.LossScale
		r.stepper.Scaler.SetGoodSteps(st.ScaleGoodSteps)
	}
	st.Config = r.cfg
	st.Data = r.pinned
	r.state = st
	r.printf("resuming at epoch %d, step %d (%d epochs in history), on the data in %s\n", st.Epoch+1, st.Step, len(st.History), r.cfg.Data.Dir)
	r.changeRanks(max(st.Ranks, 1))
	return nil
}
