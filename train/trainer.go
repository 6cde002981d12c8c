package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/fertorch/fertorch/checkpoint"
	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/dist"
	"github.com/fertorch/fertorch/torch/optim"
	"github.com/fertorch/fertorch/torch/tensorfile"
	"github.com/fertorch/fertorch/train/metrics"
	"github.com/fertorch/fertorch/train/plot"
)

// Options are the parts of a training run that are not configuration.
type Options struct {
	// Resume continues from a full checkpoint (a file, or a run folder whose
	// last.safetensors is used) with the checkpoint's config, in the
	// checkpoint's folder; of the config given to Train only the settings
	// named in Overrides are used.
	Resume string
	// Overrides names the settings (flag names from ResumeFlags) that a
	// resumed run takes from the config given to Train.
	Overrides []string
	// Log receives progress and reports (nil: discard).
	Log io.Writer
	// Warnings receives warnings (nil: Log).
	Warnings io.Writer
	// ProgressBar draws a progress bar on Log (for terminals).
	ProgressBar bool
	// Overwrite lets a new run take a folder that holds an earlier run's
	// checkpoints: the files Train writes there are removed first. Without
	// it Train refuses such a folder with ErrRunExists.
	Overwrite bool
	// Dist is the process group of a data-parallel run, one process per
	// rank (nil: one process). Every rank calls Train with the same config;
	// Config.Train.BatchSize is the global batch. Rank 0 alone logs and
	// writes the run folder; the other ranks return only their errors.
	Dist *dist.Group
	// LocalRank and LocalWorldSize place a rank of Dist on its machine
	// (dist.Env's): a CUDA run trains on cuda:LocalRank (see RankDevice),
	// and threads and workers set to 0 take the machine's cores divided by
	// LocalWorldSize.
	LocalRank, LocalWorldSize int
}

// ErrRunExists is wrapped by the error of a new run whose folder already
// holds a run's checkpoints.
var ErrRunExists = errors.New("run folder holds an earlier run")

// Result summarises a finished run.
type Result struct {
	History   plot.History
	BestEpoch int
	Best      float64
	// Stopped is true when early stopping ended the run.
	Stopped bool
	// Files written in the run folder.
	Last, BestPath string
	// Config is the run's configuration (a resumed run's own).
	Config Config
}

// File names inside a run folder.
const (
	LastCheckpoint   = "last.safetensors"
	BestCheckpoint   = "best.safetensors"
	EffectiveConfig  = "config.yaml"
	HistoryCSV       = "history.csv"
	HistoryJSON      = "history.json"
	CurvesPNG        = "curves.png"
	ValidationReport = "validation.json"
	// ModelPNG is the layer graph with output shapes and what trains.
	ModelPNG = "model.png"
)

// run is one training run's live state.
type run struct {
	cfg     Config
	opts    Options
	log     io.Writer
	warn    io.Writer
	dev     torch.Device
	classes []string
	// pinned is the data the run is pinned to: the checkpoint's record
	// while resuming, then the record of the data opened.
	pinned *DataRecord
	// skipped lists the images of the splits that could not be used.
	skipped []data.Skip
	// pretrained holds the ImageNet weights, read before anything is
	// written, until the model takes them.
	pretrained *tensorfile.File

	train, valid *data.Loader

	model   Net
	opt     optim.Optimizer
	stepper *Stepper
	staging *Staging
	weights *torch.Tensor
	// classWeights are the loss's class weights (nil: unweighted).
	classWeights []float64
	baseLRs      []float64
	state        State

	// group is Options.Dist; reducer sums its gradients, and stopping is
	// set once the ranks learnt that one of them was interrupted.
	group    *dist.Group
	reducer  *dist.Reducer
	stopping bool
	// noFiles is set for work that must not touch the run folder
	// (lr-find).
	noFiles bool
	// phaseSet and headOnlyNow say which --fine-tune phase the model is
	// set for.
	phaseSet, headOnlyNow bool
	// ema is the moving average of the weights (--ema; nil: off).
	ema *weightAverage
}

// Train runs (or resumes) training as configured and returns its history.
// Cancelling ctx stops it between steps; the last checkpoint stays usable.
// With Options.Dist it is one rank of a data-parallel run.
func Train(ctx context.Context, cfg Config, opts Options) (*Result, error) {
	opts = rankOptions(opts)
	r := &run{cfg: cfg, opts: opts, log: opts.Log, warn: opts.Warnings, group: opts.Dist}
	if r.log == nil {
		r.log = io.Discard
	}
	if r.warn == nil {
		r.warn = r.log
	}
	defer r.free()
	// The ranks learn that all are ready before their first collective.
	if err := r.agree(r.start(ctx, cfg)); err != nil {
		return nil, err
	}
	if err := r.joinRanks(); err != nil {
		return nil, err
	}
	if err := r.startAverage(); err != nil {
		return nil, err
	}
	return r.loop(ctx)
}

// start checks the settings, opens the run (resuming its checkpoint), and
// sets it up, without collectives.
func (r *run) start(ctx context.Context, given Config) error {
	var resume *LoadedCheckpoint
	if r.opts.Resume != "" {
		var err error
		if resume, err = r.openResume(given); err != nil {
			return err
		}
	}
	if err := r.cfg.Validate(); err != nil {
		return fmt.Errorf("invalid config:\n%w", err)
	}
	if err := r.checkRanks(); err != nil {
		return err
	}
	// A device that cannot be used is said before anything is read or
	// written.
	var err error
	if r.dev, err = r.device(); err != nil {
		return err
	}
	// Ranks other than 0 take rank 0's weights and write nothing.
	if resume == nil && r.writes() {
		if r.pretrained, err = readPretrained(&r.cfg.Model, r.warn); err != nil {
			return err
		}
		if err := claimRunFolder(r.cfg.Output, r.opts.Overwrite); err != nil {
			return err
		}
	}
	return r.setup(ctx, resume)
}

func (r *run) printf(format string, args ...any) { fmt.Fprintf(r.log, format, args...) }

func (r *run) warnf(format string, args ...any) { fmt.Fprintf(r.warn, format, args...) }

func (r *run) free() {
	if r.staging != nil {
		r.staging.Free()
	}
	if r.opt != nil {
		r.opt.Free()
	}
	if r.model != nil {
		r.model.Free()
	}
	if r.reducer != nil {
		r.reducer.Free()
	}
	r.ema.free()
	r.weights.Free()
}

// setup loads the data, builds the model and optimizer, and restores a
// checkpoint when resuming.
func (r *run) setup(ctx context.Context, resume *LoadedCheckpoint) error {
	c := r.cfg
	threads, err := r.configureRuntime()
	if err != nil {
		return err
	}
	r.printf("run folder %s, device %s, precision %s, libtorch %s, %d CPU threads\n", c.Output, r.dev, c.Train.Precision, torch.BuildInfo(), threads)
	r.printf("recipe: %s\n", c.Train.Recipe())
	// The data is opened and checked (a resumed run's against its record)
	// before anything is written.
	if err := r.loadData(ctx); err != nil {
		return err
	}
	if r.writes() {
		if err := r.prepareFolder(); err != nil {
			return err
		}
	}
	r.state = State{Kind: checkpoint.KindFull, Config: c, Schedule: newScheduleState(), Classes: r.classes, ClassWeights: r.classWeights, Data: r.pinned, Ranks: r.ranks()}
	if err := r.buildModel(resume); err != nil {
		return err
	}
	if resume != nil {
		if err := r.restore(resume); err != nil {
			return err
		}
	}
	return nil
}

// loop trains the remaining epochs.
func (r *run) loop(ctx context.Context) (*Result, error) {
	c := r.cfg
	res := &Result{Last: filepath.Join(c.Output, LastCheckpoint), Config: c}
	stopped := false
	for epoch := r.state.Epoch; epoch < c.Train.Epochs && !stopped; epoch++ {
		if err := r.applyPhase(epoch); err != nil {
			return nil, err
		}
		if r.state.Epoch != epoch {
			r.state.Epoch, r.state.Step, r.state.Partial = epoch, 0, EpochStats{}
		}
		if err := r.trainEpoch(ctx, epoch); err != nil {
			return nil, err
		}
		trained := r.state.Partial
		row, report, err := r.validate(ctx, epoch)
		if err != nil {
			return nil, err
		}
		row.LR = r.opt.LR(r.opt.Groups() - 1)
		r.state.History = append(r.state.History, row)
		r.state.Epoch, r.state.Step, r.state.Partial = epoch+1, 0, EpochStats{}
		r.state.ValAccuracy = row.ValAcc
		if r.state.Schedule.afterEpoch(c.Train, row.ValLoss) {
			r.printf("validation loss has not improved for %d epochs: learning rate x%g\n", c.Train.PlateauPatience, c.Train.PlateauFactor)
		}
		value := metricValue(c.Train.BestMetric, row, report)
		improved := r.state.BestEpoch == 0 || better(c.Train.BestMetric, value, r.state.Best)
		if improved {
			r.state.Best, r.state.BestEpoch, r.state.BadEpochs = value, epoch+1, 0
		} else {
			r.state.BadEpochs++
		}
		if err := r.saveEpoch(epoch, row, report, improved); err != nil {
			return nil, err
		}
		r.printf("epoch %d/%d: loss %.4f acc %.4f | val_loss %.4f val_acc %.4f balanced %.4f macro-F1 %.4f | lr %.3g | %.0fs, train %.1f img/s%s\n",
			epoch+1, c.Train.Epochs, row.TrainLoss, row.TrainAcc, row.ValLoss, row.ValAcc,
			report.BalancedAccuracy, report.Macro.F1, row.LR, row.Seconds, trained.imagesPerSecond(), map[bool]string{true: " *best*", false: ""}[improved])
		if c.Train.EarlyStopping > 0 && r.state.BadEpochs >= c.Train.EarlyStopping {
			r.printf("early stopping: %s has not improved for %d epochs (best %.4f at epoch %d)\n", c.Train.BestMetric, r.state.BadEpochs, r.state.Best, r.state.BestEpoch)
			stopped = true
		}
	}
	res.History = plot.History{Epochs: r.state.History}
	res.BestEpoch, res.Best, res.Stopped = r.state.BestEpoch, r.state.Best, stopped
	res.BestPath = filepath.Join(c.Output, BestCheckpoint)
	return res, nil
}

func metricValue(m Metric, row plot.Epoch, rep *metrics.Report) float64 {
	switch m {
	case ValLoss:
		return row.ValLoss
	case ValBalancedAccuracy:
		return rep.BalancedAccuracy
	case ValMacroF1:
		return rep.Macro.F1
	}
	return row.ValAcc
}

func better(m Metric, v, best float64) bool {
	if m == ValLoss {
		return v < best
	}
	return v > best
}
