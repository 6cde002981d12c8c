package train

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"github.com/fertorch/fertorch/internal/atomicfile"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/train/plot"
	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// LRFindOptions configure the learning-rate range test.
type LRFindOptions struct {
	// StartLR and EndLR bound the sweep (defaults 1e-7 and 10): step i of
	// Steps uses StartLR x (EndLR/StartLR)^(i/(Steps-1)).
	StartLR, EndLR float64
	// Steps is the number of optimisation steps (default 100).
	Steps int
	// Smoothing is the exponential moving average's factor applied to the
	// loss (default 0.98, fastai's), with bias correction.
	Smoothing float64
	// DivergeFactor stops the sweep once the smoothed loss exceeds this
	// multiple of the best one (default 4, fastai's stop_div).
	DivergeFactor float64
	// Log receives progress (nil: discard); ProgressBar draws a bar on it.
	Log         io.Writer
	ProgressBar bool
}

func (o *LRFindOptions) defaults() error {
	if o.StartLR == 0 {
		o.StartLR = 1e-7
	}
	if o.EndLR == 0 {
		o.EndLR = 10
	}
	if o.Steps == 0 {
		o.Steps = 100
	}
	if o.Smoothing == 0 {
		o.Smoothing = 0.98
	}
	if o.DivergeFactor == 0 {
		o.DivergeFactor = 4
	}
	switch {
	case o.StartLR <= 0 || o.EndLR <= o.StartLR:
		return fmt.Errorf("lr-find: the rates must satisfy 0 < start (%g) < end (%g)", o.StartLR, o.EndLR)
	case o.Steps < 10:
		return fmt.Errorf("lr-find: %d steps are too few for a curve (at least 10)", o.Steps)
	case o.Smoothing < 0 || o.Smoothing >= 1:
		return fmt.Errorf("lr-find: smoothing %g is outside [0, 1)", o.Smoothing)
	case o.DivergeFactor <= 1:
		return fmt.Errorf("lr-find: divergence factor %g must be above 1", o.DivergeFactor)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// LRFindResult is the loss against the learning rate and the suggested
// rates.
type LRFindResult struct {
	// LR, Loss and Smoothed have one entry per step taken.
	LR, Loss, Smoothed []float64
	// Steepest is the rate where the smoothed loss falls fastest against
	// log(rate); Minimum is the rate of the lowest smoothed loss divided by
	// 10. Both follow fastai's lr_find (skipping the first tenth of the
	// steps and the last five).
	Steepest, Minimum float64
	// Stop says why the sweep ended.
	Stop string
}

// rateAt is the sweep's rate at step i.
func (o LRFindOptions) rateAt(i int) float64 {
	return o.StartLR * math.Pow(o.EndLR/o.StartLR, float64(i)/float64(o.Steps-1))
}

// sweepLR runs the range test with a step function that trains one batch at
// a rate and returns its loss.
func sweepLR(ctx context.Context, o LRFindOptions, step func(lr float64) (float64, error)) (*LRFindResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	res := &LRFindResult{Stop: fmt.Sprintf("reached the end rate %g", o.EndLR)}
	bar := newBar(o.Log, o.ProgressBar, o.Steps, "lr-find")
	defer bar.Finish()
	var avg float64
	best := math.Inf(1)
	for i := 0; i < o.Steps; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		lr := o.rateAt(i)
		loss, err := step(lr)
		if err != nil {
			return nil, fmt.Errorf("lr-find step %d (rate %g): %w", i+1, lr, err)
		}
		avg = o.Smoothing*avg + (1-o.Smoothing)*loss
		smooth := avg / (1 - math.Pow(o.Smoothing, float64(i+1)))
		res.LR = append(res.LR, lr)
		res.Loss = append(res.Loss, loss)
		res.Smoothed = append(res.Smoothed, smooth)
		bar.Add(1, 0)
		bar.Describe(fmt.Sprintf("lr-find rate %.2e loss %.4f", lr, smooth))
		if math.IsNaN(smooth) || math.IsInf(smooth, 0) {
			res.Stop = fmt.Sprintf("the loss became %g at rate %.3g", smooth, lr)
			break
		}
		best = math.Min(best, smooth)
		if i > 0 && smooth > o.DivergeFactor*best {
			res.Stop = fmt.Sprintf("diverged at rate %.3g (smoothed loss %.4g > %g x best %.4g)", lr, smooth, o.DivergeFactor, best)
			break
		}
	}
	var err error
	res.Steepest, res.Minimum, err = suggestLR(res.LR, res.Smoothed, o.Steps)
	return res, err
}

// suggestLR picks fastai's two suggestions from a sweep of steps planned
// steps: the rate of the steepest descent of the loss against log(rate),
// and the rate of the lowest loss divided by 10. Like fastai it ignores the
// first tenth of the planned steps and the last five taken.
func suggestLR(lrs, losses []float64, steps int) (steepest, minimum float64, err error) {
	lo, hi := steps/10, len(lrs)-5
	finite := hi
	for i := lo; i < hi; i++ {
		if math.IsNaN(losses[i]) || math.IsInf(losses[i], 0) {
			finite = i
			break
		}
	}
	hi = finite
	if hi-lo < 3 {
		return 0, 0, fmt.Errorf("lr-find: the loss diverged after %d steps, too early to suggest a rate: lower the start rate", len(lrs))
	}
	minAt := lo
	for i := lo; i < hi; i++ {
		if losses[i] < losses[minAt] {
			minAt = i
		}
	}
	steepAt, steepest := lo, math.Inf(1)
	for i := lo; i+1 < hi; i++ {
		g := (losses[i+1] - losses[i]) / (math.Log(lrs[i+1]) - math.Log(lrs[i]))
		if g < steepest {
			steepAt, steepest = i, g
		}
	}
	return lrs[steepAt], lrs[minAt] / 10, nil
}

// FindLR runs the learning-rate range test for a training config: a fresh
// copy of the configured model (pretrained weights, freezing, optimizer,
// class weights and augmentation as training would use them) trains on the
// training split with an exponentially increasing rate, the configured
// per-group ratios (base_lr/lr) kept. It writes nothing: no run folder is
// made or changed.
func FindLR(ctx context.Context, cfg Config, o LRFindOptions) (*LRFindResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, log: o.Log, warn: o.Log, noFiles: true}
	defer r.free()
	if err := r.cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config:\n%w", err)
	}
	var err error
	if r.dev, err = r.cfg.Train.Device.Resolve(); err != nil {
		return nil, err
	}
	if r.pretrained, err = readPretrained(&r.cfg.Model, r.warn); err != nil {
		return nil, err
	}
	threads, err := r.configureRuntime()
	if err != nil {
		return nil, err
	}
	r.printf("lr-find on %s, device %s, %d CPU threads: rates %g to %g over %d steps of %d images\n", cfg.Data.Dir, r.dev, threads, o.StartLR, o.EndLR, o.Steps, cfg.Train.BatchSize)
	if err := r.loadData(ctx); err != nil {
		return nil, err
	}
	if err := r.buildModel(nil); err != nil {
		return nil, err
	}
	r.model.SetTraining(true)
	ratios := make([]float64, len(r.baseLRs))
	for g, base := range r.baseLRs {
		ratios[g] = base / cfg.Train.LR
	}
	epoch := 0
	iter, err := r.train.Epoch(ctx, epoch, 0)
	if err != nil {
		return nil, err
	}
	defer func() { iter.Close() }()
	trainStep := func(lr float64) (float64, error) {
		b, err := iter.Next()
		if errors.Is(err, io.EOF) {
			iter.Close()
			epoch++
			if iter, err = r.train.Epoch(ctx, epoch, 0); err != nil {
				return 0, err
			}
			b, err = iter.Next()
		}
		if err != nil {
			return 0, err
		}
		defer b.Release()
		for g, ratio := range ratios {
			r.opt.SetLR(g, lr*ratio)
		}
		if err := torch.ManualSeed(stepSeed(cfg.Train.Seed, epoch, b.Step)); err != nil {
			return 0, err
		}
		scope := torch.NewScope()
		defer scope.Close()
		res, err := r.step(scope, b, nil) // lr-find never mixes
		if err != nil {
			return 0, err
		}
		r.staging.Synced()
		return res.Loss.Item()
	}
	return sweepLR(ctx, o, trainStep)
}

// WriteCSV writes the sweep as lr,loss,smoothed_loss rows.
func (res *LRFindResult) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"lr", "loss", "smoothed_loss"}); err != nil {
		return err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for i := range res.LR {
		if err := cw.Write([]string{f(res.LR[i]), f(res.Loss[i]), f(res.Smoothed[i])}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// SaveCSV writes the sweep's CSV atomically.
func (res *LRFindResult) SaveCSV(path string) error {
	f, err := atomicfile.Create(path)
	if err != nil {
		return err
	}
	if err := res.WriteCSV(f); err != nil {
		f.Abort()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Commit()
}

// SavePNG draws the smoothed loss against the rate (log scale) with the
// two suggestions marked.
func (res *LRFindResult) SavePNG(path string) error {
	p := gplot.New()
	p.Title.Text = "Learning-rate range test"
	p.X.Label.Text = "learning rate (log scale)"
	p.Y.Label.Text = "smoothed training loss"
	p.X.Scale = gplot.LogScale{}
	p.X.Tick.Marker = decadeTicks{}
	pts := make(plotter.XYs, 0, len(res.LR))
	top := math.Inf(-1)
	for i := range res.LR {
		if v := res.Smoothed[i]; !math.IsNaN(v) && !math.IsInf(v, 0) {
			pts = append(pts, plotter.XY{X: res.LR[i], Y: v})
			top = math.Max(top, v)
		}
	}
	if len(pts) == 0 {
		return errors.New("lr-find: no finite loss to draw")
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	p.Add(line)
	p.Add(plotter.NewGrid())
	for _, s := range []struct {
		name string
		lr   float64
		rgb  color.RGBA
	}{
		{fmt.Sprintf("steepest %.2e", res.Steepest), res.Steepest, color.RGBA{200, 40, 40, 255}},
		{fmt.Sprintf("minimum/10 %.2e", res.Minimum), res.Minimum, color.RGBA{40, 120, 40, 255}},
	} {
		y := lossAt(res, s.lr)
		sc, err := plotter.NewScatter(plotter.XYs{{X: s.lr, Y: y}})
		if err != nil {
			return err
		}
		sc.GlyphStyle.Radius = vg.Points(4)
		sc.GlyphStyle.Color = s.rgb
		sc.GlyphStyle.Shape = draw.CircleGlyph{}
		p.Add(sc)
		p.Legend.Add(s.name, sc)
	}
	// The sweep starts high and ends high: the bottom left is free.
	p.Legend.Left = true
	return plot.SavePlotPNG(path, p, 800, 500, 0)
}

// lossAt is the smoothed loss at the sweep's rate nearest lr.
func lossAt(res *LRFindResult, lr float64) float64 {
	best, at := math.Inf(1), 0
	for i, x := range res.LR {
		if d := math.Abs(math.Log(x) - math.Log(lr)); d < best {
			best, at = d, i
		}
	}
	return res.Smoothed[at]
}

// decadeTicks labels each power of ten of a log axis exactly (1e-06, 0.001,
// 1), without the rounding noise of computed powers.
type decadeTicks struct{}

// Ticks returns a labelled tick per decade between lo and hi.
func (decadeTicks) Ticks(lo, hi float64) []gplot.Tick {
	var ticks []gplot.Tick
	for e := int(math.Floor(math.Log10(lo))); e <= int(math.Ceil(math.Log10(hi))); e++ {
		v, err := strconv.ParseFloat("1e"+strconv.Itoa(e), 64)
		if err != nil || v < lo*(1-1e-9) || v > hi*(1+1e-9) {
			continue
		}
		ticks = append(ticks, gplot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
	}
	return ticks
}
