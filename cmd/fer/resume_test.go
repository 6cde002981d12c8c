package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fertorch/fertorch/checkpoint"
	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/data/synth"
	"github.com/fertorch/fertorch/internal/testkernels"
	"github.com/fertorch/fertorch/train"
	"github.com/fertorch/fertorch/train/plot"
)

// prepareSmall generates a small synthetic dataset and its layout.
func prepareSmall(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "synth")
	if _, err := synth.Generate(src, synth.Options{Seed: 4, PerClass: 12, Classes: []string{"anger", "happiness", "sadness", "surprise"}, Variation: 0.3, MaxSize: 64}); err != nil {
		t.Fatal(err)
	}
	ds, err := data.OpenLegend(filepath.Join(src, "data", "legend.csv"), filepath.Join(src, "images"), data.LegendOptions{AnyLabel: true})
	if err != nil {
		t.Fatal(err)
	}
	split, err := data.SplitDataset(ds, data.SplitConfig{Scheme: data.SplitBySubject, ValidFraction: 0.25, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "data")
	if _, err := data.WriteLayout(layout, split, data.LinkAuto); err != nil {
		t.Fatal(err)
	}
	return layout
}

// trainArgs is a short deterministic run: 2 epochs of 5 steps, with the
// last checkpoint saved every 2 steps, dropout and augmentation on.
func trainArgs(layout, out string) []string {
	return []string{"train", "--data", layout, "--output", out, "--weights", "", "--device", "cpu",
		"--arch", "vgg16_bn", "--input-size", "32", "--batch-size", "8", "--epochs", "2", "--lr", "1e-4",
		"--head", "transfer", "--hidden", "32", "--trainable-base-layers", "all",
		"--checkpoint-every", "2", "--epoch-checkpoints=false", "--progress", "off", "--threads", "2", "--workers", "2"}
}

func historyWithoutTimes(t *testing.T, path string) []plot.Epoch {
	t.Helper()
	h, err := plot.LoadCSV(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range h.Epochs {
		h.Epochs[i].Seconds = 0
	}
	return h.Epochs
}

func modelBytes(t *testing.T, path string) map[string][]byte {
	t.Helper()
	lc, err := train.LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range lc.Model.Entries {
		out[e.Name] = e.Data
	}
	for _, e := range lc.Optimizer {
		out["optimizer."+e.Name] = e.Data
	}
	return out
}

// TestKilledRunResumesExactly kills a training run with SIGKILL in the
// middle of an epoch, resumes it, and checks that it ends with the same
// weights, optimizer state and history (bit for bit, times aside) as an
// uninterrupted run with the same seed; then the same for a run stopped
// with Ctrl-C and resumed after its folder was moved.
func TestKilledRunResumesExactly(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three short runs")
	}
	testkernels.SkipOnNativeKernels(t, "trains three runs")
	fer := buildFer(t)
	dir := t.TempDir()
	layout := prepareSmall(t, dir)

	straight := filepath.Join(dir, "straight")
	if out, err := exec.Command(fer, trainArgs(layout, straight)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}

	killed := filepath.Join(dir, "killed")
	cmd := exec.Command(fer, trainArgs(layout, killed)...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it as soon as a mid-epoch checkpoint of the second epoch exists.
	last := filepath.Join(killed, train.LastCheckpoint)
	deadline := time.Now().Add(3 * time.Minute)
	var at train.State
	for {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no mid-epoch checkpoint appeared:\n%s", log.String())
		}
		if lc, err := train.LoadCheckpoint(last); err == nil && lc.State.Epoch == 1 && lc.State.Step > 0 {
			at = lc.State
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("run was not killed (it may have finished first): %v\n%s", err, log.String())
	}
	t.Logf("killed at epoch %d step %d", at.Epoch+1, at.Step)

	// Flags that change only speed or placement may change on resume; the
	// result stays bit-identical.
	resume := exec.Command(fer, "train", "--resume", killed, "--progress", "off", "--device", "cpu", "--workers", "1", "--prefetch", "1")
	out, err := resume.CombinedOutput()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "resuming at epoch 2, step") {
		t.Errorf("resume did not start mid-epoch:\n%s", out)
	}

	sameRun(t, straight, killed)

	// Ctrl-C (SIGINT) in the middle of the first epoch: the run saves where
	// it stopped, says how to continue, and --resume ends identical too.
	interrupted := filepath.Join(dir, "interrupted")
	cmd = exec.Command(fer, trainArgs(layout, interrupted)...)
	log.Reset()
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	last = filepath.Join(interrupted, train.LastCheckpoint)
	for deadline = time.Now().Add(3 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no checkpoint appeared:\n%s", log.String())
		}
		if _, err := os.Stat(last); err == nil {
			break
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 130 || !strings.Contains(log.String(), "interrupted; continue with: fer train --resume "+interrupted) {
		t.Fatalf("interrupted run: %v (want exit status 130)\n%s", err, log.String())
	}
	// The folder is moved before resuming: the run continues where its
	// checkpoint now is.
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(interrupted, moved); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(fer, "train", "--resume", moved, "--progress", "off").CombinedOutput(); err != nil {
		t.Fatalf("resume after interrupt: %v\n%s", err, out)
	}
	sameRun(t, straight, moved)
	if _, err := os.Stat(interrupted); !os.IsNotExist(err) {
		t.Errorf("the resumed run wrote to its old folder %s (%v)", interrupted, err)
	}

	// A new run refuses a folder that holds a run and leaves it as it was
	// (--overwrite is tested in train's TestClaimRunFolder).
	out, err = exec.Command(fer, trainArgs(layout, moved)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "continue that run with `fer train --resume "+moved+"`") {
		t.Errorf("a new run in a run's folder: %v\n%s", err, out)
	}
	sameRun(t, straight, moved)
}

// sameRun checks that two run folders end with the same weights, optimizer
// state and history (times aside).
func sameRun(t *testing.T, want, got string) {
	t.Helper()
	w := modelBytes(t, filepath.Join(want, train.LastCheckpoint))
	g := modelBytes(t, filepath.Join(got, train.LastCheckpoint))
	if len(g) != len(w) {
		t.Fatalf("%s: %d tensors, %s: %d", got, len(g), want, len(w))
	}
	for name, wb := range w {
		if !bytes.Equal(g[name], wb) {
			t.Errorf("%s differs between %s and the uninterrupted run", name, filepath.Base(got))
		}
	}
	hw := historyWithoutTimes(t, filepath.Join(want, train.HistoryCSV))
	hg := historyWithoutTimes(t, filepath.Join(got, train.HistoryCSV))
	if len(hw) != 2 || len(hg) != len(hw) {
		t.Fatalf("histories have %d and %d epochs", len(hw), len(hg))
	}
	for i := range hw {
		if hw[i] != hg[i] {
			t.Errorf("epoch %d history of %s: %+v, uninterrupted %+v", i+1, filepath.Base(got), hg[i], hw[i])
		}
	}
}

// TestDamagedCheckpointsAndUnreadableImages: a truncated checkpoint and one
// with a flipped byte are refused with errors that say so, by the loader and
// by eval; predict lists a file that is no image and a missing path as
// skipped and fails when no image is left; eval --legend lists why rows are
// unusable and fails with that list when none is.
func TestDamagedCheckpointsAndUnreadableImages(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a short run")
	}
	testkernels.SkipOnNativeKernels(t, "trains a run")
	fer := buildFer(t)
	dir := t.TempDir()
	layout := prepareSmall(t, dir)
	run := filepath.Join(dir, "run")
	args := append(trainArgs(layout, run), "--epochs", "1")
	if out, err := exec.Command(fer, args...).CombinedOutput(); err != nil {
		t.Fatalf("train: %v\n%s", err, out)
	}
	good, err := os.ReadFile(filepath.Join(run, train.LastCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-100] ^= 0x40
	cases := map[string][]byte{
		"truncated.safetensors": good[:len(good)/2],
		"flipped.safetensors":   flipped,
		"empty.safetensors":     nil,
	}
	for name, content := range cases {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := train.LoadCheckpoint(path)
		if !errors.Is(err, checkpoint.ErrCorrupt) {
			t.Errorf("%s: LoadCheckpoint error %v, want checkpoint.ErrCorrupt", name, err)
		}
		out, err := exec.Command(fer, "eval", "--checkpoint", path, "--data", filepath.Join(layout, "valid")).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "checkpoint is damaged") {
			t.Errorf("eval with %s: %v\n%s", name, err, out)
		}
	}
	if !strings.Contains(errString(train.LoadCheckpoint(filepath.Join(dir, "flipped.safetensors"))), "checksum mismatch") {
		t.Error("a flipped data byte is not reported as a checksum mismatch")
	}

	// predict with the good checkpoint: a file that is no image is listed as
	// skipped, and when nothing is left the command fails instead of
	// printing nothing.
	best := filepath.Join(run, train.BestCheckpoint)
	notImage := filepath.Join(dir, "notes.jpg")
	if err := os.WriteFile(notImage, []byte("not a picture"), 0o644); err != nil {
		t.Fatal(err)
	}
	images, err := filepath.Glob(filepath.Join(layout, "valid", "*", "*"))
	if err != nil || len(images) == 0 {
		t.Fatalf("no validation images: %v", err)
	}
	out, err := exec.Command(fer, "predict", "--checkpoint", best, "--top-k", "2", images[0], notImage).CombinedOutput()
	if err != nil || !strings.Contains(string(out), images[0]+"\t") || !strings.Contains(string(out), "skipped: 1") || !strings.Contains(string(out), notImage) {
		t.Errorf("predict on an image and a text file: %v\n%s", err, out)
	}
	out, err = exec.Command(fer, "predict", "--checkpoint", best, notImage).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "none of the 1 files given could be read as an image") {
		t.Errorf("predict on a text file only: %v\n%s", err, out)
	}
	missing := filepath.Join(dir, "nope.jpg")
	out, err = exec.Command(fer, "predict", "--checkpoint", best, images[0], missing).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "skipped: 1 (missing 1)\n  missing (1):\n    "+missing+": no such file or folder\n") {
		t.Errorf("predict on an image and a missing path: %v\n%s", err, out)
	}

	// eval --legend says why rows are unusable, a folder named like an
	// image included, and lists them in skipped.csv.
	src := filepath.Join(dir, "evalsrc")
	if err := os.MkdirAll(filepath.Join(src, "album.jpg"), 0o755); err != nil {
		t.Fatal(err)
	}
	legend := "user.id,image,emotion\n"
	for _, img := range images[:2] {
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(src, filepath.Base(img)), b, 0o644)
		legend += "u," + filepath.Base(img) + "," + filepath.Base(filepath.Dir(img)) + "\n"
	}
	legend += "u,album.jpg,happiness\nu,x.jpg,bored\n"
	os.WriteFile(filepath.Join(dir, "legend.csv"), []byte(legend), 0o644)
	evalOut := filepath.Join(dir, "eval-legend")
	out, err = exec.Command(fer, "eval", "--checkpoint", best, "--legend", filepath.Join(dir, "legend.csv"), "--images", src, "-o", evalOut).CombinedOutput()
	for _, want := range []string{
		"  2 rows unusable: 1 rejected (bad name or label), 0 without an image, 1 naming no readable file (listed under skipped)\n",
		"skipped: 2 (unknown-label 1, unreadable 1)\n",
		"    x.jpg (line 5): label \"bored\" is not one of anger, happiness, sadness, surprise\n",
		"    " + filepath.Join(src, "album.jpg") + " (line 4): is a folder, not an image file\n",
		"  every skipped file with its reason: " + filepath.Join(evalOut, "skipped.csv") + "\n",
	} {
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("eval --legend: %v: output lacks %q:\n%s", err, want, out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(evalOut, "skipped.csv")); err != nil || strings.Count(string(b), "\n") != 3 {
		t.Errorf("eval's skipped.csv: %v\n%s", err, b)
	}
	os.WriteFile(filepath.Join(dir, "junk.csv"), []byte("user.id,image,emotion\nu,album.jpg,happiness\nu,x.jpg,bored\n"), 0o644)
	out, err = exec.Command(fer, "eval", "--checkpoint", best, "--legend", filepath.Join(dir, "junk.csv"), "--images", src, "-o", evalOut).CombinedOutput()
	want := "fer eval: " + filepath.Join(dir, "junk.csv") + ": no row names a usable image in " + src + " (the reasons are listed above)\n"
	if err == nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), "is a folder, not an image file") {
		t.Errorf("eval --legend with no usable row: %v: want %q in\n%s", err, want, out)
	}
}

func errString[T any](_ T, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
