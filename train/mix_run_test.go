package train_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/fertorch/fertorch/internal/testkernels"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/train"
)

// mixConfig is distConfig's run (5 steps an epoch, seed 42) with SGD and
// both Mixup and CutMix on: its first epoch mixes batches with each (see
// TestMixDraws).
func mixConfig(layout, out string, epochs int) train.Config {
	cfg := distConfig(layout, out, "vgg16", epochs)
	cfg.Train.Optimizer, cfg.Train.LR, cfg.Train.Momentum = train.SGD, 1e-3, 0.9
	cfg.Train.Mixup, cfg.Train.CutMix = 0.4, 1
	return cfg
}

// TestMixTwoRanksAsOneProcess: with --mixup and --cutmix, augmentation on,
// class weights with PyTorch's normalisation and label smoothing, 2 ranks
// (each rendering the partners of its half of the global batch, which the
// other rank holds) end the first epoch within 1e-5 of one process, with
// the same training accuracy and validation, as
// TestTwoRanksTrainAsOneProcess asks without mixing.
func TestMixTwoRanksAsOneProcess(t *testing.T) {
	if distWorker(t) {
		return
	}
	needDist(t)
	dir := t.TempDir()
	layout := distLayout(t, filepath.Join(dir, "data"))
	single := mixConfig(layout, filepath.Join(dir, "single"), 1)
	single.Augment.Enabled = true
	single.Train.LossNormalization, single.Train.LabelSmoothing = train.PyTorchLoss, 0.1
	if _, err := train.Train(context.Background(), single, train.Options{}); err != nil {
		t.Fatal(err)
	}
	two := single
	two.Output = filepath.Join(dir, "two")
	for r, out := range runRanks(t, 2, two, "train") {
		if e := reportOf(out, "error"); e != "<nil>" {
			t.Fatalf("rank %d: %s", r, e)
		}
	}
	last := train.LastCheckpoint
	d := maxDiff(t, filepath.Join(single.Output, last), filepath.Join(two.Output, last))
	t.Logf("vgg16 --mixup 0.4 --cutmix 1, 5 steps: max abs parameter difference 2 ranks vs 1 process %.3g", d)
	if d > 1e-5 {
		t.Errorf("parameters after 5 mixed steps differ by %.3g > 1e-5", d)
	}
	checkSameValidation(t, single.Output, two.Output)
}

// TestMixRun: a run with --mixup and --cutmix leaves no tensor alive;
// stopped inside its second epoch, it resumes to the uninterrupted run's
// weights, optimizer state and training history bit for bit (the draws
// depend on the seed, epoch and step only); mixing changes training; and
// mixing that never applies (--mix-prob 0) trains bit for bit as mixing
// off.
func TestMixRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small runs")
	}
	testkernels.SkipOnNativeKernels(t, "trains several runs")
	dir := t.TempDir()
	layout := distLayout(t, filepath.Join(dir, "data"))
	full := mixConfig(layout, filepath.Join(dir, "full"), 2)
	full.Train.CheckpointEverySteps = 1
	live := torch.LiveTensors()
	if _, err := train.Train(context.Background(), full, train.Options{}); err != nil {
		t.Fatal(err)
	}
	if leaked := torch.LiveTensors() - live; leaked != 0 {
		t.Errorf("the mixed run left %d tensors alive", leaked)
	}

	stopped := full
	stopped.Output = filepath.Join(dir, "stopped")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Stopped once the second epoch's first step is saved, the run
		// ends a step or two later.
		defer cancel()
		for ctx.Err() == nil {
			if lc, err := train.LoadCheckpoint(filepath.Join(stopped.Output, train.LastCheckpoint)); err == nil && lc.State.Epoch == 1 && lc.State.Step > 0 {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_, err := train.Train(ctx, stopped, train.Options{})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted run returned %v", err)
	}
	lc, err := train.LoadCheckpoint(filepath.Join(stopped.Output, train.LastCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped at epoch %d step %d", lc.State.Epoch+1, lc.State.Step)
	if lc.State.Epoch != 1 || lc.State.Step == 0 {
		t.Fatalf("the run stopped at epoch %d step %d, not inside the second epoch", lc.State.Epoch+1, lc.State.Step)
	}
	if _, err := train.Train(context.Background(), stopped, train.Options{Resume: stopped.Output}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	ha := sameEnd(t, full.Output, stopped.Output)

	off := full
	off.Output, off.Train.Epochs, off.Train.Mixup, off.Train.CutMix = filepath.Join(dir, "off"), 1, 0, 0
	never := full
	never.Output, never.Train.Epochs, never.Train.MixProb = filepath.Join(dir, "never"), 1, 0
	var history [2]float64
	for i, cfg := range []train.Config{off, never} {
		res, err := train.Train(context.Background(), cfg, train.Options{})
		if err != nil {
			t.Fatal(err)
		}
		history[i] = res.History.Epochs[0].TrainLoss
	}
	last := train.LastCheckpoint
	if d := maxDiff(t, filepath.Join(off.Output, last), filepath.Join(never.Output, last)); d != 0 || history[0] != history[1] {
		t.Errorf("--mix-prob 0 trains %.3g away from mixing off (training loss %.9g, off %.9g)", d, history[1], history[0])
	}
	epoch1 := func(run string) string {
		t.Helper()
		m, err := filepath.Glob(filepath.Join(run, "epoch-01-*.safetensors"))
		if err != nil || len(m) != 1 {
			t.Fatalf("%s: epoch files %v %v", run, m, err)
		}
		return m[0]
	}
	if d := maxDiff(t, epoch1(full.Output), epoch1(off.Output)); d == 0 || ha[0].TrainLoss == history[0] {
		t.Errorf("mixing did not change the first epoch (weights %.3g apart, training loss %.9g, unmixed %.9g)", d, ha[0].TrainLoss, history[0])
	}
	t.Logf("first epoch's training loss: mixed %.4f, unmixed %.4f", ha[0].TrainLoss, history[0])
}
