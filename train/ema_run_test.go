package train_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/fertorch/fertorch/internal/testkernels"
	"github.com/fertorch/fertorch/train"
)

// TestEMARun trains with --ema: the epoch files hold the average, not the
// live weights that last.safetensors keeps, and a run stopped in its second
// epoch resumes to the uninterrupted run's average and weights bit for bit.
func TestEMARun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small runs")
	}
	testkernels.SkipOnNativeKernels(t, "takes about 3 minutes")
	dir := t.TempDir()
	layout := distLayout(t, filepath.Join(dir, "data"))
	cfg := distConfig(layout, filepath.Join(dir, "full"), "vgg16", 2)
	cfg.Train.Optimizer, cfg.Train.LR, cfg.Train.Momentum, cfg.Train.EMA = train.SGD, 1e-3, 0.9, 0.8
	if _, err := train.Train(context.Background(), cfg, train.Options{}); err != nil {
		t.Fatal(err)
	}
	epochFile := func(run, n string) string {
		t.Helper()
		m, err := filepath.Glob(filepath.Join(run, "epoch-0"+n+"-*.safetensors"))
		if err != nil || len(m) != 1 {
			t.Fatalf("%s: epoch %s files %v %v", run, n, m, err)
		}
		return m[0]
	}
	if d := maxDiff(t, epochFile(cfg.Output, "2"), filepath.Join(cfg.Output, train.LastCheckpoint)); d == 0 {
		t.Error("the epoch file holds the live weights, not their average")
	}

	stopped := cfg
	stopped.Output = filepath.Join(dir, "stopped")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer cancel()
		for ctx.Err() == nil {
			if m, _ := filepath.Glob(filepath.Join(stopped.Output, "epoch-01-*.safetensors")); len(m) == 1 {
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
	if _, err := train.Train(context.Background(), stopped, train.Options{Resume: stopped.Output}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	// An average that is not restored ends ~1e-3 away.
	if d := maxDiff(t, epochFile(cfg.Output, "2"), epochFile(stopped.Output, "2")); d != 0 {
		t.Errorf("the resumed run's average ends %.3g away from the uninterrupted one's", d)
	}
	if d := maxDiff(t, filepath.Join(cfg.Output, train.LastCheckpoint), filepath.Join(stopped.Output, train.LastCheckpoint)); d != 0 {
		t.Errorf("the resumed run's weights end %.3g away from the uninterrupted one's", d)
	}
}
