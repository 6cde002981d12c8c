package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/fertorch/fertorch/checkpoint"
	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/internal/atomicfile"
	"github.com/fertorch/fertorch/torch"
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
}

// Train runs (or resumes) training as configured and returns its history.
// Cancelling ctx stops it between steps; the last checkpoint stays usable.
func Train(ctx context.Context, cfg Config, opts Options) (*Result, error) {
	r := &run{cfg: cfg, opts: opts, log: opts.Log, warn: opts.Warnings}
	if r.log == nil {
		r.log = io.Discard
	}
	if r.warn == nil {
		r.warn = r.log
	}
	var resume *LoadedCheckpoint
	if opts.Resume != "" {
		var err error
		if resume, err = r.openResume(cfg); err != nil {
			return nil, err
		}
	}
	if err := r.cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config:\n%w", err)
	}
	// A device that cannot be used is said before anything is read or
	// written.
	var err error
	if r.dev, err = r.cfg.Train.Device.Resolve(); err != nil {
		return nil, err
	}
	if resume == nil {
		if r.pretrained, err = readPretrained(&r.cfg.Model, r.warn); err != nil {
			return nil, err
		}
		if err := claimRunFolder(r.cfg.Output, opts.Overwrite); err != nil {
			return nil, err
		}
	}
	defer r.free()
	if err := r.setup(ctx, resume); err != nil {
		return nil, err
	}
	return r.loop(ctx)
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
	r.weights.Free()
}

// setup loads the data, builds the model and optimizer, and restores a
// checkpoint when resuming.
func (r *run) setup(ctx context.Context, resume *LoadedCheckpoint) error {
	c := r.cfg
	threads := c.Train.Threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	if err := torch.SetNumThreads(threads); err != nil {
		return err
	}
	dev := r.dev
	if c.Train.Precision == FP16 && !dev.IsCUDA() {
		return fmt.Errorf("precision fp16 needs a CUDA device (the CPU supports bf16)")
	}
	if dev.IsCUDA() {
		torch.SetCuDNNBenchmark(true)
	}
	// A wrong --data is the common mistake: say so before making the run
	// folder, so that it leaves nothing behind.
	for _, part := range []string{"train", "valid"} {
		if _, err := os.Stat(filepath.Join(c.Data.Dir, part)); err != nil {
			return fmt.Errorf("%w (run `fer prepare` first?)", err)
		}
	}
	r.printf("run folder %s, device %s, precision %s, libtorch %s, %d CPU threads\n", c.Output, dev, c.Train.Precision, torch.BuildInfo(), threads)
	// The data is opened and checked (a resumed run's against its record)
	// before anything is written.
	if err := r.loadData(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Output, 0o755); err != nil {
		return fmt.Errorf("output folder: %w", err)
	}
	if err := r.removeStaleTemporaries(); err != nil {
		return err
	}
	if err := r.reportSkipped(); err != nil {
		return err
	}
	if err := c.Save(filepath.Join(c.Output, EffectiveConfig)); err != nil {
		return err
	}
	r.state = State{Kind: checkpoint.KindFull, Config: c, Schedule: newScheduleState(), Classes: r.classes, ClassWeights: r.classWeights, Data: r.pinned}
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

// openSplit lists one part of the prepared layout and fingerprints it.
func (r *run) openSplit(part string) (*data.Dataset, data.Fingerprint, error) {
	dir := filepath.Join(r.cfg.Data.Dir, part)
	ds, err := data.OpenDir(dir, data.DirOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w (run `fer prepare` first?)", dir, err)
	}
	if ds.Len() == 0 {
		return nil, nil, fmt.Errorf("%s: no images found in its class folders", dir)
	}
	fp, err := data.FingerprintOf(ds)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	return ds, fp, nil
}

// decodeSplit decodes one opened part of the layout at the input size.
func (r *run) decodeSplit(ctx context.Context, part string, ds *data.Dataset) (*data.Dataset, error) {
	dir := filepath.Join(r.cfg.Data.Dir, part)
	opt := data.DecodeOptions{Height: r.cfg.Model.InputSize, Width: r.cfg.Model.InputSize, Resize: r.cfg.Model.Resize, Workers: r.cfg.Data.Workers}
	if r.cfg.Data.Cache != "" {
		opt.CacheFile = r.cfg.Data.Cache + "." + part
	}
	bar := newBar(r.log, r.opts.ProgressBar, ds.Len(), "decoding "+part)
	opt.Progress = func(done, total int) { bar.Set(done) }
	start := time.Now()
	dec, stats, err := ds.Decode(ctx, opt)
	bar.Finish()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	r.printf("%s: %d images (%d decoded, %d from cache) in %.1fs\n", part, dec.Len(), stats.Decoded, stats.Cached, time.Since(start).Seconds())
	if stats.CacheError != "" {
		r.printf("  pixel cache not used: %s\n", stats.CacheError)
	}
	r.skipped = append(r.skipped, dec.Skipped...)
	if dec.Len() == 0 {
		return nil, fmt.Errorf("%s: none of the images could be used", dir)
	}
	return dec, nil
}

func (r *run) loadData(ctx context.Context) error {
	c := r.cfg
	trainAll, trainFP, err := r.openSplit("train")
	if err != nil {
		return err
	}
	validAll, validFP, err := r.openSplit("valid")
	if err != nil {
		return err
	}
	if err := r.pinData(trainFP, validFP); err != nil {
		return err
	}
	trainDS, err := r.decodeSplit(ctx, "train", trainAll)
	if err != nil {
		return err
	}
	validDS, err := r.decodeSplit(ctx, "valid", validAll)
	if err != nil {
		return err
	}
	if err := sameClasses(trainDS.Classes, validDS.Classes); err != nil {
		return fmt.Errorf("%s: %w", c.Data.Dir, err)
	}
	r.classes = trainDS.Classes
	norm := c.Model.Normalization
	var aug *data.AugmentConfig
	if c.Augment.Enabled {
		aug = &c.Augment.AugmentConfig
	}
	r.train, err = data.NewLoader(trainDS, data.LoaderConfig{
		BatchSize: c.Train.BatchSize, Workers: c.Data.Workers, Prefetch: c.Data.Prefetch,
		Shuffle: true, DropLast: c.Train.DropLast, Seed: c.Train.Seed,
		Oversample: c.Train.Oversample, WeightCap: c.Train.ClassWeightCap,
		Augment: aug, Normalize: norm,
	})
	if err != nil {
		return err
	}
	r.valid, err = data.NewLoader(validDS, data.LoaderConfig{
		BatchSize: c.Train.BatchSize, Workers: c.Data.Workers, Prefetch: c.Data.Prefetch, Normalize: norm,
	})
	if err != nil {
		return err
	}
	counts := trainDS.Counts()
	cw := data.ClassWeights(counts, c.Train.ClassWeightCap)
	r.printf("\n%-12s %8s %8s %8s\n", "class", "train", "valid", "weight")
	vc := validDS.Counts()
	for i, name := range r.classes {
		w := "-"
		if c.Train.ClassWeights {
			w = fmt.Sprintf("%.3f", cw[i])
		}
		r.printf("%-12s %8d %8d %8s\n", name, counts[i], vc[i], w)
	}
	r.printf("\n")
	if c.Train.ClassWeights {
		r.classWeights = cw
		w32 := make([]float32, len(cw))
		for i, v := range cw {
			w32[i] = float32(v)
		}
		t, err := torch.FromFloat32s(w32, int64(len(w32)))
		if err != nil {
			return err
		}
		if r.weights, err = t.ToDevice(r.dev); err != nil {
			t.Free()
			return err
		}
		t.Free()
	}
	return nil
}

func sameClasses(a, b []string) error {
	if len(a) != len(b) {
		return fmt.Errorf("train has classes %v but valid has %v", a, b)
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Errorf("train has classes %v but valid has %v", a, b)
		}
	}
	return nil
}

// stepSeed derives the dropout seed of one step, so that a resumed run
// draws the same masks as an uninterrupted one.
func stepSeed(seed uint64, epoch, step int) uint64 {
	x := seed ^ 0x9e3779b97f4a7c15*uint64(epoch+1) ^ 0xbf58476d1ce4e5b9*uint64(step+1)
	x ^= x >> 31
	x *= 0x94d049bb133111eb
	return x ^ x>>29
}

// loop trains the remaining epochs.
func (r *run) loop(ctx context.Context) (*Result, error) {
	c := r.cfg
	res := &Result{Last: filepath.Join(c.Output, LastCheckpoint), Config: c}
	stopped := false
	for epoch := r.state.Epoch; epoch < c.Train.Epochs && !stopped; epoch++ {
		if r.state.Epoch != epoch {
			r.state.Epoch, r.state.Step, r.state.Partial = epoch, 0, EpochStats{}
		}
		lrs := make([]float64, len(r.baseLRs))
		for g, base := range r.baseLRs {
			lrs[g] = lrAt(c.Train, r.state.Schedule, base, epoch)
			r.opt.SetLR(g, lrs[g])
		}
		if err := r.trainEpoch(ctx, epoch); err != nil {
			return nil, err
		}
		trained := r.state.Partial
		row, report, err := r.validate(ctx, epoch)
		if err != nil {
			return nil, err
		}
		row.LR = lrs[len(lrs)-1]
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

// trainEpoch runs the epoch's remaining steps.
func (r *run) trainEpoch(ctx context.Context, epoch int) error {
	c := r.cfg
	r.model.SetTraining(true)
	it, err := r.train.Epoch(ctx, epoch, r.state.Step)
	if err != nil {
		return err
	}
	defer it.Close()
	steps := it.Steps()
	bar := newBar(r.log, r.opts.ProgressBar, steps, fmt.Sprintf("epoch %d/%d", epoch+1, c.Train.Epochs))
	bar.Set(r.state.Step)
	defer bar.Finish()
	readEvery := 1
	if r.dev.IsCUDA() {
		readEvery = 10 // reading a value waits for the GPU
	}
	// Each step runs in its own scope; only its two result scalars move to
	// the pending scope until they are read (on CUDA every few steps, since
	// reading waits for the GPU).
	var pendingLoss, pendingCorrect []*torch.Tensor
	var pendingN []int
	pending := torch.NewScope()
	defer func() { pending.Close() }()
	flush := func() error {
		for i := range pendingLoss {
			l, err := pendingLoss[i].Item()
			if err != nil {
				return err
			}
			k, err := pendingCorrect[i].Item()
			if err != nil {
				return err
			}
			r.state.Partial.LossSum += l * float64(pendingN[i])
			r.state.Partial.Correct += int64(k)
			r.state.Partial.Samples += int64(pendingN[i])
		}
		pendingLoss, pendingCorrect, pendingN = pendingLoss[:0], pendingCorrect[:0], pendingN[:0]
		r.staging.Synced()
		pending.Close()
		pending = torch.NewScope()
		return nil
	}
	// saveAndStop ends an interrupted epoch: the state is at a step
	// boundary, so it is saved and --resume continues from this step.
	saveAndStop := func(cause error) error {
		if err := flush(); err != nil {
			return err
		}
		if err := r.saveLast(); err != nil {
			return err
		}
		return cause
	}
	for {
		start := time.Now()
		b, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return saveAndStop(err)
			}
			return err
		}
		if err := torch.ManualSeed(stepSeed(c.Train.Seed, epoch, b.Step)); err != nil {
			b.Release()
			return err
		}
		scope := torch.NewScope()
		res, err := r.step(scope, b)
		n := b.N
		b.Release()
		if err == nil {
			pending.Own(res.Loss, nil)
			pending.Own(res.Correct, nil)
		}
		scope.Close()
		if err != nil {
			return fmt.Errorf("epoch %d step %d: %w", epoch+1, r.state.Step+1, err)
		}
		pendingLoss = append(pendingLoss, res.Loss)
		pendingCorrect = append(pendingCorrect, res.Correct)
		pendingN = append(pendingN, n)
		r.state.Step++
		last := r.state.Step == steps
		checkpoint := c.Train.CheckpointEverySteps > 0 && r.state.Step%c.Train.CheckpointEverySteps == 0 && !last
		if len(pendingLoss) >= readEvery || last || checkpoint {
			if err := flush(); err != nil {
				return err
			}
			p := r.state.Partial
			bar.Describe(fmt.Sprintf("epoch %d/%d loss %.4f acc %.4f", epoch+1, c.Train.Epochs, p.LossSum/float64(p.Samples), float64(p.Correct)/float64(p.Samples)))
		}
		r.state.Partial.Seconds += time.Since(start).Seconds()
		bar.Add(1, n)
		if err := ctx.Err(); err != nil && !last {
			return saveAndStop(err)
		}
		if checkpoint {
			if err := r.saveLast(); err != nil {
				return err
			}
		}
	}
	return nil
}

// step uploads a batch and runs one optimisation step in scope.
func (r *run) step(scope *torch.Scope, b *data.Batch) (StepResult, error) {
	images := b.Images[:b.N*b.C*b.H*b.W]
	x, y, err := r.staging.Upload(scope, images, b.Labels[:b.N], r.cfg.Train.ChannelsLast)
	if err != nil {
		return StepResult{}, err
	}
	return r.stepper.TrainStep(x, y)
}

// Evaluation is a model's predictions over a dataset.
type Evaluation struct {
	Probs  [][]float32
	Labels []int
	Loss   float64 // mean unweighted cross-entropy
}

// evaluate runs the model over every batch of a loader without autograd.
func evaluate(ctx context.Context, s *Stepper, staging *Staging, loader *data.Loader, channelsLast, flipTTA bool) (*Evaluation, error) {
	it, err := loader.Epoch(ctx, 0, 0)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	ev := &Evaluation{}
	var lossSum float64
	for {
		b, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		err = func() error {
			defer b.Release()
			scope := torch.NewScope()
			defer scope.Close()
			x, y, err := staging.Upload(scope, b.Images[:b.N*b.C*b.H*b.W], b.Labels[:b.N], channelsLast)
			if err != nil {
				return err
			}
			probs, err := s.Predict(x, flipTTA)
			if err != nil {
				return err
			}
			logp, err := probs.Clamp(1e-12, 1)
			if err == nil {
				logp, err = logp.Log()
			}
			if err != nil {
				return err
			}
			var nll *torch.Tensor
			err = torch.NoGrad(func() error {
				var err error
				nll, err = nllSum(logp, y)
				return err
			})
			if err != nil {
				return err
			}
			v, err := nll.Item()
			if err != nil {
				return err
			}
			staging.Synced()
			lossSum += v
			host, err := probs.Float32s()
			if err != nil {
				return err
			}
			c := len(host) / b.N
			for i := 0; i < b.N; i++ {
				ev.Probs = append(ev.Probs, host[i*c:(i+1)*c:(i+1)*c])
				ev.Labels = append(ev.Labels, int(b.Labels[i]))
			}
			return nil
		}()
		if err != nil {
			return nil, err
		}
	}
	if len(ev.Labels) > 0 {
		ev.Loss = lossSum / float64(len(ev.Labels))
	}
	return ev, nil
}

// nllSum is -sum_i logp[i, y_i].
func nllSum(logp, y *torch.Tensor) (*torch.Tensor, error) {
	// cross_entropy(log p) = -log softmax(log p)[y] = -log p[y] because the
	// rows of p sum to 1.
	return logp.CrossEntropy(y, torch.CrossEntropyOptions{Reduction: torch.ReductionSum})
}

// validate computes validation loss and metrics after an epoch.
func (r *run) validate(ctx context.Context, epoch int) (plot.Epoch, *metrics.Report, error) {
	p := r.state.Partial
	row := plot.Epoch{Epoch: epoch + 1, Seconds: p.Seconds, ValLoss: math.NaN(), ValAcc: math.NaN()}
	if p.Samples > 0 {
		row.TrainLoss = p.LossSum / float64(p.Samples)
		row.TrainAcc = float64(p.Correct) / float64(p.Samples)
	}
	r.model.SetTraining(false)
	start := time.Now()
	ev, err := evaluate(ctx, r.stepper, r.staging, r.valid, r.cfg.Train.ChannelsLast, false)
	if err != nil {
		return row, nil, fmt.Errorf("validation: %w", err)
	}
	pred, err := metrics.Argmax(ev.Probs)
	if err != nil {
		return row, nil, err
	}
	report, err := metrics.Compute(ev.Labels, pred, r.classes)
	if err != nil {
		return row, nil, err
	}
	row.ValLoss, row.ValAcc = ev.Loss, report.Accuracy
	row.Seconds += time.Since(start).Seconds()
	return row, report, nil
}

// saveLast writes the resumable checkpoint.
func (r *run) saveLast() error {
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
	return SaveCheckpoint(filepath.Join(r.cfg.Output, LastCheckpoint), &r.state, r.model.StateTensors(), &OptimizerTensors{Tensors: st.Tensors})
}

// saveEpoch writes the epoch's files: weights (per epoch, best), the
// resumable checkpoint, history and plots.
func (r *run) saveEpoch(epoch int, row plot.Epoch, report *metrics.Report, improved bool) error {
	out := r.cfg.Output
	weights := r.state
	weights.Kind = checkpoint.KindWeights
	weights.OptimizerKind, weights.OptimizerScalars = "", nil
	if r.cfg.Train.EpochCheckpoints {
		name := fmt.Sprintf("epoch-%02d-val_acc-%.4f.safetensors", epoch+1, row.ValAcc)
		if err := SaveCheckpoint(filepath.Join(out, name), &weights, r.model.StateTensors(), nil); err != nil {
			return err
		}
	}
	if improved {
		if err := SaveCheckpoint(filepath.Join(out, BestCheckpoint), &weights, r.model.StateTensors(), nil); err != nil {
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
