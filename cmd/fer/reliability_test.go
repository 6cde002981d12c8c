package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/data/synth"
	"github.com/fertorch/fertorch/internal/testkernels"
	"github.com/fertorch/fertorch/torch/tensorfile"
	"github.com/fertorch/fertorch/train"
)

// prepareSplit generates the small synthetic dataset once into src and
// writes its layout with the given split seed.
func prepareSplit(t *testing.T, src, layout string, seed uint64) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(src, "data", "legend.csv")); err != nil {
		if _, err := synth.Generate(src, synth.Options{Seed: 4, PerClass: 12, Classes: []string{"anger", "happiness", "sadness", "surprise"}, Variation: 0.3, MaxSize: 64}); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := data.OpenLegend(filepath.Join(src, "data", "legend.csv"), filepath.Join(src, "images"), data.LegendOptions{AnyLabel: true})
	if err != nil {
		t.Fatal(err)
	}
	split, err := data.SplitDataset(ds, data.SplitConfig{Scheme: data.SplitBySubject, ValidFraction: 0.25, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := data.WriteLayout(layout, split, data.LinkCopy); err != nil {
		t.Fatal(err)
	}
}

// ferIn runs the fer binary in dir and returns its exit status, stdout
// and stderr.
func ferIn(t *testing.T, fer, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(fer, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestResumeIsPinnedToItsData: a run started with a relative --data finds
// the same images when resumed from another folder (which holds other
// images at the same relative path); other data, changed data, a data
// folder that is gone, and a damaged checkpoint given as --weights are
// refused with messages that say what is wrong; a moved copy of the same
// data is accepted with --data; temporary files a killed save left are
// removed.
func TestResumeIsPinnedToItsData(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two short epochs")
	}
	testkernels.SkipOnNativeKernels(t, "trains two runs")
	fer := buildFer(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "synth")
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	prepareSplit(t, src, filepath.Join(a, "data"), 1)
	prepareSplit(t, src, filepath.Join(b, "data"), 2)
	run := filepath.Join(dir, "run")
	args := append(trainArgs("data", run), "--epochs", "1")
	if code, out, errs := ferIn(t, fer, a, args...); code != 0 {
		t.Fatalf("train: exit %d\n%s%s", code, out, errs)
	}

	// Other images at the relative path, from the other folder: the run
	// keeps to its own data.
	code, _, errs := ferIn(t, fer, b, "train", "--resume", run, "--data", "data", "--progress", "off")
	if code != 1 || !strings.Contains(errs, "is not the data this run started with") || !strings.Contains(errs, "train: ") ||
		!strings.Contains(errs, "Was `fer prepare` run again with another split or seed?") {
		t.Errorf("resume on other data: exit %d\n%s", code, errs)
	}

	// A dataset that shrank says so.
	shrunk := filepath.Join(dir, "shrunk")
	prepareSplit(t, src, shrunk, 1)
	files, _ := filepath.Glob(filepath.Join(shrunk, "train", "anger", "*"))
	os.Remove(files[0])
	code, _, errs = ferIn(t, fer, b, "train", "--resume", run, "--data", shrunk, "--progress", "off")
	if code != 1 || !strings.Contains(errs, "train: anger shrank from") {
		t.Errorf("resume on shrunk data: exit %d\n%s", code, errs)
	}

	// The data folder moved: named, then found again with --data.
	moved := filepath.Join(dir, "moved-data")
	if err := os.Rename(filepath.Join(a, "data"), moved); err != nil {
		t.Fatal(err)
	}
	code, _, errs = ferIn(t, fer, b, "train", "--resume", run, "--progress", "off")
	if want := "the run's data folder is gone (not at " + filepath.Join(a, "data"); code != 1 || !strings.Contains(errs, want) || !strings.Contains(errs, "give --data") {
		t.Errorf("resume after the data moved: exit %d\n%s\nwant %q", code, errs, want)
	}

	// A fertorch checkpoint with a flipped byte is refused as --weights,
	// before a run folder is made.
	good, err := os.ReadFile(filepath.Join(run, train.BestCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	good[len(good)-7] ^= 0x10
	flipped := filepath.Join(dir, "flipped.safetensors")
	os.WriteFile(flipped, good, 0o644)
	fresh := filepath.Join(dir, "fresh")
	code, _, errs = ferIn(t, fer, b, append(trainArgs("data", fresh), "--weights", flipped)...)
	if code != 1 || !strings.Contains(errs, "pretrained weights: checkpoint is damaged: "+flipped+": checksum mismatch") {
		t.Errorf("--weights with a damaged checkpoint: exit %d\n%s", code, errs)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("the refused run made its folder (%v)", err)
	}

	// Temporary files of an interrupted save are removed on resume; the
	// moved data is accepted; speed and placement flags may change.
	stale := filepath.Join(run, ".last.safetensors.tmp-123456")
	os.WriteFile(stale, make([]byte, 1024), 0o644)
	code, out, errs := ferIn(t, fer, b, "train", "--resume", run, "--data", moved, "--epochs", "2",
		"--device", "cpu", "--threads", "1", "--workers", "1", "--prefetch", "1", "--progress", "off")
	if code != 0 {
		t.Fatalf("resume with the moved data: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "on the data in "+moved) || !strings.Contains(out, "removed 1 temporary files an interrupted save left: .last.safetensors.tmp-123456") {
		t.Errorf("resume output:\n%s", out)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temporary file still there (%v)", err)
	}
	lc, err := train.LoadCheckpoint(filepath.Join(run, train.LastCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if lc.State.Data == nil || lc.State.Data.Dir != moved || lc.State.Epoch != 2 {
		t.Errorf("checkpoint after resume: epoch %d, data %+v", lc.State.Epoch, lc.State.Data)
	}
}

// TestWeightsAndCheckpointMessages: an explicit weights path that cannot
// be read fails before anything is written, from a flag or a config file;
// a .pth given where a fertorch checkpoint is expected says what to do.
func TestWeightsAndCheckpointMessages(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "synth")
	layout := filepath.Join(dir, "data")
	prepareSplit(t, src, layout, 1)
	out := filepath.Join(dir, "run")
	var stdout, stderr bytes.Buffer
	code := run([]string{"train", "--data", layout, "-o", out, "--weights", filepath.Join(dir, "vgg16-typo.pth"), "--progress", "off"}, &stdout, &stderr)
	want := "fer train: pretrained weights " + filepath.Join(dir, "vgg16-typo.pth") + " cannot be used: weights: open "
	if code != 1 || !strings.HasPrefix(stderr.String(), want) || !strings.Contains(stderr.String(), `give --weights "" to start from random weights`) {
		t.Errorf("--weights typo: exit %d, stderr %q, want prefix %q", code, stderr.String(), want)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the failed run made its folder (%v)", err)
	}
	cfg := filepath.Join(dir, "run.yaml")
	os.WriteFile(cfg, []byte("model:\n  weights: missing.pth\n"), 0o644)
	stdout.Reset()
	stderr.Reset()
	code = run([]string{"train", "--config", cfg, "--data", layout, "-o", out, "--progress", "off"}, &stdout, &stderr)
	if code != 1 || !strings.HasPrefix(stderr.String(), "fer train: pretrained weights missing.pth cannot be used") {
		t.Errorf("weights from a config file: exit %d, stderr %q", code, stderr.String())
	}

	pth := filepath.Join(dir, "vgg16.pth")
	f := &tensorfile.File{Entries: []tensorfile.Entry{{Name: "features.0.bias", DType: tensorfile.Float32, Shape: []int64{2}, Data: make([]byte, 8)}}}
	var buf bytes.Buffer
	if _, err := f.WritePTH(&buf); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pth, buf.Bytes(), 0o644)
	for _, cmd := range []string{"eval", "predict"} {
		stdout.Reset()
		stderr.Reset()
		args := []string{cmd, "--checkpoint", pth, "--data", layout}
		if cmd == "predict" {
			args = []string{cmd, "--checkpoint", pth, layout}
		}
		code := run(args, &stdout, &stderr)
		want := "fer " + cmd + ": " + pth + " is a PyTorch pth (zip) weights file, not a fertorch checkpoint: eval and predict take the .safetensors files `fer train` writes"
		if code != 1 || !strings.HasPrefix(stderr.String(), want) || !strings.Contains(stderr.String(), "give .pth weights to `fer train --weights`") {
			t.Errorf("%s with a .pth: exit %d, stderr %q", cmd, code, stderr.String())
		}
	}
}

// TestSignalExitStatus: SIGTERM and SIGINT set the shell's exit statuses,
// 143 and 130.
func TestSignalExitStatus(t *testing.T) {
	for sig, want := range map[syscall.Signal]int{syscall.SIGTERM: 143, syscall.SIGINT: 130} {
		it := onInterrupt()
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		select {
		case <-it.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%v did not cancel", sig)
		}
		err := it.wrap(os.ErrClosed)
		ee, ok := err.(*exitError)
		if !ok || ee.code != want {
			t.Errorf("%v: %v, want exit status %d", sig, err, want)
		}
		it.stop()
	}
	it := onInterrupt()
	defer it.stop()
	if err := it.wrap(os.ErrClosed); err != os.ErrClosed {
		t.Errorf("without a signal wrap changed the error to %v", err)
	}
}
