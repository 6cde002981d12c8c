package train_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/data/synth"
	"github.com/fertorch/fertorch/infer"
	"github.com/fertorch/fertorch/internal/testkernels"
	"github.com/fertorch/fertorch/train"
)

// TestDemoLearns runs `make demo`'s flow in-process with its config
// (configs/demo.yaml) and data (scripts/demo.sh's generator settings): the
// network, trained from scratch on the CPU, must reach at least 90%
// validation accuracy on the synthetic faces of people it never saw, and
// generalise to the test split.
func TestDemoLearns(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for about three minutes")
	}
	testkernels.SkipOnNativeKernels(t, "takes over 20 minutes (12 epochs)")
	dir := t.TempDir()
	src := filepath.Join(dir, "synth")
	if _, err := synth.Generate(src, synth.Options{Seed: 1, PerClass: 200, Variation: 0.2, Messy: true}); err != nil {
		t.Fatal(err)
	}
	ds, err := data.OpenLegend(filepath.Join(src, "data", "legend.csv"), filepath.Join(src, "images"), data.LegendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	split, err := data.SplitDataset(ds, data.SplitConfig{Scheme: data.SplitBySubject, ValidFraction: 0.2, TestFraction: 0.1, Seed: 1, DedupeContent: true})
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "data")
	if _, err := data.WriteLayout(layout, split, data.LinkAuto); err != nil {
		t.Fatal(err)
	}
	cfg, err := train.LoadConfig("../configs/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data.Dir = layout
	cfg.Output = filepath.Join(dir, "run")
	res, err := train.Train(context.Background(), cfg, train.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := res.History.Epochs
	if len(h) != cfg.Train.Epochs {
		t.Fatalf("%d epochs in the history, want %d", len(h), cfg.Train.Epochs)
	}
	if first, last := h[0].TrainLoss, h[len(h)-1].TrainLoss; !(last < first/10) {
		t.Errorf("training loss fell only from %.4f to %.4f", first, last)
	}
	if res.Best < 0.90 {
		t.Errorf("best validation accuracy %.4f (epoch %d), want >= 0.90", res.Best, res.BestEpoch)
	}
	model, err := infer.Load(res.BestPath, infer.Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer model.Free()
	test, err := data.OpenDir(filepath.Join(layout, "test"), data.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := train.Evaluate(context.Background(), model, test, false)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Report.Accuracy < 0.85 {
		t.Errorf("test accuracy %.4f, want >= 0.85", ev.Report.Accuracy)
	}
	t.Logf("validation accuracy %.4f at epoch %d; test accuracy %.4f on %d images (chance 0.125)", res.Best, res.BestEpoch, ev.Report.Accuracy, ev.Report.Samples)
}
