// Command train compares the training throughput of `fer train` with an
// equivalent PyTorch script (bench/train/pytorch_train.py) on this machine,
// in the same run, on the same prepared images:
//
//	go run ./bench/train [-source DIR] [-size 64] [-batch 32] [-epochs 2]
//	go run ./bench/train -real=false -archs resnet18,mobilenet_v3_large -arch-sizes 64
//
// It also measures, per architecture of vision's table and input size, the
// training steps alone (`fer benchmark --arch`, synthetic batches, no data
// loading) against the same model in PyTorch
// (bench/train/pytorch_arch_bench.py): the architecture table of
// bench/RESULTS.md.
//
// Both train the seed's model (VGG16, last 4 Keras base layers trainable,
// the Flatten-Dense-Dropout-Dense head, Adam, class-weighted loss) with
// Keras-like augmentation; fertorch decodes each image once into a pixel
// cache and augments in goroutines, PyTorch reads and augments every image
// every epoch in DataLoader worker processes. Images per second are those of
// the training loop (data loading included) in the last epoch, so that
// fertorch's one-time decode is not counted (it is reported apart).
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/fertorch/fertorch/internal/benchdoc"
	"github.com/fertorch/fertorch/internal/pyref"
	"github.com/fertorch/fertorch/vision"
)

const (
	sectionTitle     = "## training throughput on the CPU (make bench-train)"
	archSectionTitle = "## training throughput per architecture on the CPU (make bench-train)"
)

var ipsLine = regexp.MustCompile(`train ([0-9.]+) img/s`)

// lastRate is the images/s of the last epoch line in out.
func lastRate(out []byte) (float64, error) {
	var rate float64
	found := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := ipsLine.FindSubmatch(sc.Bytes()); m != nil {
			v, err := strconv.ParseFloat(string(m[1]), 64)
			if err != nil {
				return 0, err
			}
			rate, found = v, true
		}
	}
	if !found {
		return 0, fmt.Errorf("no 'train N img/s' line in:\n%s", out)
	}
	return rate, nil
}

func run() error {
	source := flag.String("source", "../shared/facial_expressions", "dataset with data/legend.csv and images/")
	size := flag.Int("size", 64, "input size")
	batch := flag.Int("batch", 32, "batch size")
	epochs := flag.Int("epochs", 2, "epochs (the last one is measured)")
	threads := flag.Int("threads", runtime.NumCPU(), "libtorch threads on both sides")
	workers := flag.Int("workers", runtime.NumCPU(), "data workers on both sides")
	results := flag.String("results", "bench/RESULTS.md", "results file whose section to update (\"\": print only)")
	realData := flag.Bool("real", true, "measure fer train against the PyTorch script on the real sample")
	archs := flag.String("archs", strings.Join(vision.ArchNames(), ","), "architectures of the per-architecture table (\"\": none)")
	archSizes := flag.String("arch-sizes", "64,224", "input sizes of the per-architecture table")
	archBatch := flag.Int("arch-batch", 16, "batch size of the per-architecture table")
	archSteps := flag.Int("arch-steps", 5, "timed steps per row of the per-architecture table")
	archWarmup := flag.Int("arch-warmup", 2, "untimed warm-up steps per row")
	note := flag.String("note", "", "a remark on the machine's state for the results (e.g. other work running)")
	flag.Parse()
	fer, err := filepath.Abs("build/fer")
	if err != nil {
		return err
	}
	if _, err := os.Stat(fer); err != nil {
		return fmt.Errorf("%s missing: run make build first", fer)
	}
	py, err := pyref.Find("torch", "torchvision")
	if err != nil {
		return err
	}
	if *archs != "" {
		if err := archTable(fer, py, strings.Split(*archs, ","), *archSizes, *archBatch, *archSteps, *archWarmup, *threads, *note, *results); err != nil {
			return err
		}
	}
	if !*realData {
		return nil
	}
	tmp, err := os.MkdirTemp("", "bench-train-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	layout := filepath.Join(tmp, "data")
	if out, err := exec.Command(fer, "prepare", "--source", *source, "--out", layout, "--split", "by-subject").CombinedOutput(); err != nil {
		return fmt.Errorf("prepare: %v\n%s", err, out)
	}
	ferArgs := []string{"train", "--data", layout, "--output", filepath.Join(tmp, "run"), "--weights", "", "--device", "cpu",
		"--input-size", strconv.Itoa(*size), "--batch-size", strconv.Itoa(*batch), "--epochs", strconv.Itoa(*epochs),
		"--threads", strconv.Itoa(*threads), "--workers", strconv.Itoa(*workers), "--epoch-checkpoints=false", "--progress", "off"}
	fmt.Printf("fer %v\n", ferArgs)
	ferOut, err := exec.Command(fer, ferArgs...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fer train: %v\n%s", err, ferOut)
	}
	ours, err := lastRate(ferOut)
	if err != nil {
		return err
	}
	pyArgs := []string{"bench/train/pytorch_train.py", layout, strconv.Itoa(*size), strconv.Itoa(*batch), strconv.Itoa(*epochs), strconv.Itoa(*workers), strconv.Itoa(*threads)}
	fmt.Printf("%s %v\n", py, pyArgs)
	pyOut, err := exec.Command(py, pyArgs...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pytorch peer: %v\n%s", err, pyOut)
	}
	peer, err := lastRate(pyOut)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", sectionTitle)
	provenance, err := benchdoc.Provenance(fer)
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "Command: `make bench-train` (`go run ./bench/train -size %d -batch %d -epochs %d`). %s\n\n",
		*size, *batch, *epochs, provenance)
	fmt.Fprintf(&b, "The real sample (%s) prepared by-subject; both train the seed's model (VGG16, Keras' last 4 base layers trainable, Flatten-Dense 1024-Dropout-Dense head, Adam, class-weighted loss) at %dx%d, batch %d, with Keras-like augmentation, %d libtorch threads and %d data workers, from random weights. fertorch: `fer train` (decodes each image once, augments in goroutines); PyTorch: `bench/train/pytorch_train.py` (ImageFolder + torchvision transforms + DataLoader workers, every image read and augmented every epoch). Training images per second of the last of %d epochs (data loading included).\n\n",
		*source, *size, *size, *batch, *threads, *workers, *epochs)
	fmt.Fprintln(&b, "| trainer | train images/s | ratio fertorch/PyTorch |")
	fmt.Fprintln(&b, "|---|---:|---:|")
	fmt.Fprintf(&b, "| fer train | %.2f | %.2f |\n| PyTorch (DataLoader, %d workers) | %.2f | |\n\n", ours, ours/peer, *workers, peer)
	return benchdoc.Publish(*results, sectionTitle, b.String())
}

// archTable measures training steps per architecture and size with `fer
// benchmark` and the PyTorch peer, alternating, and publishes the table.
func archTable(fer, py string, archs []string, sizeList string, batch, steps, warmup, threads int, note, results string) error {
	var sizes []int
	for _, f := range strings.Split(sizeList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 32 {
			return fmt.Errorf("-arch-sizes: %q is not a size of at least 32", f)
		}
		sizes = append(sizes, n)
	}
	var rows []string
	for _, name := range archs {
		arch, err := vision.ParseArch(strings.TrimSpace(name))
		if err != nil {
			return fmt.Errorf("-archs: %w", err)
		}
		for _, size := range sizes {
			args := []string{"benchmark", "--arch", string(arch), "--head", "transfer", "--trainable-base-layers", "all", "--device", "cpu",
				"--input-size", strconv.Itoa(size), "--batch-size", strconv.Itoa(batch), "--steps", strconv.Itoa(steps), "--warmup", strconv.Itoa(warmup),
				"--threads", strconv.Itoa(threads)}
			fmt.Printf("fer %v\n", args)
			out, err := exec.Command(fer, args...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("fer benchmark %s at %d: %v\n%s", arch, size, err, out)
			}
			ours, err := benchmarkRate(out, batch)
			if err != nil {
				return fmt.Errorf("fer benchmark %s at %d: %w", arch, size, err)
			}
			pyArgs := []string{"bench/train/pytorch_arch_bench.py", string(arch), strconv.Itoa(size), strconv.Itoa(batch), strconv.Itoa(steps), strconv.Itoa(warmup), strconv.Itoa(threads)}
			fmt.Printf("%s %v\n", py, pyArgs)
			pyOut, err := exec.Command(py, pyArgs...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("pytorch peer %s at %d: %v\n%s", arch, size, err, pyOut)
			}
			peer, err := lastRate(pyOut)
			if err != nil {
				return err
			}
			fmt.Printf("%s %dx%d: fertorch %.2f, PyTorch %.2f images/s\n", arch, size, size, ours, peer)
			rows = append(rows, fmt.Sprintf("| %s | %dx%d | %.2f | %.2f | %.2f |", arch, size, size, ours, peer, ours/peer))
		}
	}
	provenance, err := benchdoc.Provenance(fer)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", archSectionTitle)
	fmt.Fprintf(&b, "Command: `go run ./bench/train -real=false -threads %d -archs %s -arch-sizes %s -arch-batch %d -arch-steps %d -arch-warmup %d` (part of `make bench-train`, which runs every architecture at 64 and 224). %s",
		threads, strings.Join(archs, ","), sizeList, batch, steps, warmup, provenance)
	if note != "" {
		fmt.Fprintf(&b, " %s", note)
	}
	fmt.Fprintf(&b, "\n\nTraining steps alone on one synthetic batch of %d copied afresh each step (no decoding or augmentation): each architecture with the transfer head (Dense 1024, ReLU, Dropout 0.5, Dense 8), every parameter trainable, Adam, cross-entropy, from random weights, libtorch threads: %d; fertorch `fer benchmark --arch A --head transfer --trainable-base-layers all`, PyTorch `bench/train/pytorch_arch_bench.py` (the same model built from torchvision). Images per second over %d timed steps after %d warm-up steps, fertorch and PyTorch alternating row by row.\n\n", batch, threads, steps, warmup)
	fmt.Fprintln(&b, "| architecture | input | fertorch images/s | PyTorch images/s | ratio fertorch/PyTorch |")
	fmt.Fprintln(&b, "|---|---|---:|---:|---:|")
	for _, r := range rows {
		fmt.Fprintln(&b, r)
	}
	fmt.Fprintln(&b)
	return benchdoc.Publish(results, archSectionTitle, b.String())
}

// benchmarkSteps is fer benchmark's "(N steps in S s" of its result line.
var benchmarkSteps = regexp.MustCompile(`images/s \(([0-9]+) steps in ([0-9.]+)s`)

// benchmarkRate is the images/s of fer benchmark's output, from its step
// count and time (its printed rate has one decimal, too coarse for the
// slow rows at 224x224) and the batch size.
func benchmarkRate(out []byte, batch int) (float64, error) {
	m := benchmarkSteps.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no \"images/s (N steps in Ss\" in:\n%s", out)
	}
	steps, err := strconv.Atoi(string(m[1]))
	if err != nil {
		return 0, err
	}
	secs, err := strconv.ParseFloat(string(m[2]), 64)
	if err != nil || secs <= 0 {
		return 0, fmt.Errorf("bad time %q in:\n%s", m[2], out)
	}
	return float64(steps*batch) / secs, nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-train:", err)
		os.Exit(1)
	}
}
