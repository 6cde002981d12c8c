package train_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fertorch/fertorch/internal/testkernels"
	"github.com/fertorch/fertorch/train"
)

// TestFineTunePhases trains vgg16 (block5 trainable) with --fine-tune 1 and
// checks the phases: its first epoch is bit for bit a head-only run's, its
// later epochs move the base, and runs stopped in either phase resume to
// the uninterrupted run's weights exactly.
func TestFineTunePhases(t *testing.T) {
	if testing.Short() {
		t.Skip("trains several small runs")
	}
	testkernels.SkipOnNativeKernels(t, "trains several runs")
	dir := t.TempDir()
	layout := distLayout(t, filepath.Join(dir, "data"))
	base := distConfig(layout, "", "vgg16", 3)
	base.Model.TrainableBaseLayers = "4"
	base.Train.Optimizer, base.Train.LR, base.Train.BaseLR, base.Train.Momentum = train.SGD, 1e-3, 1e-4, 0.9
	epochFile := func(run string, epoch int) string {
		t.Helper()
		m, err := filepath.Glob(filepath.Join(run, "epoch-0"+string(rune('0'+epoch))+"-*.safetensors"))
		if err != nil || len(m) != 1 {
			t.Fatalf("%s: epoch %d files %v %v", run, epoch, m, err)
		}
		return m[0]
	}
	runOf := func(name string, fineTune int, edit func(*train.Config)) train.Config {
		c := base
		c.Output, c.Train.FineTune = filepath.Join(dir, name), fineTune
		if edit != nil {
			edit(&c)
		}
		return c
	}

	full := runOf("full", 1, nil)
	if _, err := train.Train(context.Background(), full, train.Options{}); err != nil {
		t.Fatal(err)
	}
	head := runOf("head", 0, func(c *train.Config) { c.Train.Epochs, c.Model.TrainableBaseLayers = 1, "0" })
	if _, err := train.Train(context.Background(), head, train.Options{}); err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(t, epochFile(full.Output, 1), epochFile(head.Output, 1)); d != 0 {
		t.Errorf("the head-only epoch differs from a run that trains the head alone by %.3g", d)
	}
	// The base moved in the second epoch: block5's first convolution.
	a, err := train.LoadCheckpoint(epochFile(full.Output, 1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := train.LoadCheckpoint(epochFile(full.Output, 2))
	if err != nil {
		t.Fatal(err)
	}
	moved := false
	for i, e := range a.Model.Entries {
		if e.Name == "features.24.weight" && string(e.Data) != string(b.Model.Entries[i].Data) {
			moved = true
		}
		if e.Name == "features.0.weight" && string(e.Data) != string(b.Model.Entries[i].Data) {
			t.Errorf("a frozen layer (features.0) moved")
		}
	}
	if !moved {
		t.Errorf("block5 (features.24) did not move after the head-only epoch")
	}

	// Stopped in phase 1 (fine-tune 2: the second epoch) and in phase 2
	// (the third epoch of fine-tune 1), then resumed.
	for _, c := range []struct {
		name      string
		fineTune  int
		stopAfter int // stop once this epoch's file exists
	}{{"stop-in-head-phase", 2, 1}, {"stop-in-base-phase", 1, 2}} {
		cfg := runOf(c.name, c.fineTune, nil)
		ref := full
		if c.fineTune != 1 {
			ref = runOf(c.name+"-ref", c.fineTune, nil)
			if _, err := train.Train(context.Background(), ref, train.Options{}); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			defer cancel()
			for ctx.Err() == nil {
				if m, _ := filepath.Glob(filepath.Join(cfg.Output, "epoch-0"+string(rune('0'+c.stopAfter))+"-*.safetensors")); len(m) == 1 {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		_, err := train.Train(ctx, cfg, train.Options{})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: the interrupted run returned %v", c.name, err)
		}
		if _, err := os.Stat(filepath.Join(cfg.Output, train.LastCheckpoint)); err != nil {
			t.Fatal(err)
		}
		if _, err := train.Train(context.Background(), cfg, train.Options{Resume: cfg.Output}); err != nil {
			t.Fatalf("%s: resume: %v", c.name, err)
		}
		if d := maxDiff(t, epochFile(ref.Output, 3), epochFile(cfg.Output, 3)); d != 0 {
			t.Errorf("%s: the resumed run ends %.3g away from the uninterrupted one", c.name, d)
		}
	}
}
