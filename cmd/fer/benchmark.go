package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/train"
	"github.com/fertorch/fertorch/vision"
)

func runBenchmark(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("benchmark", "benchmark [flags]", stderr)
	device := torch.DeviceAuto
	fs.Var(&device, "device", "device: "+torch.DeviceSpecNames())
	precision := train.FP32
	fs.Var(&precision, "precision", "arithmetic: "+train.PrecisionNames())
	channelsLast := fs.Bool("channels-last", false, "NHWC memory format")
	batch := fs.Int("batch-size", 64, "images per batch")
	size := fs.Int("input-size", 224, "square input side")
	steps := fs.Int("steps", 20, "timed training steps")
	warmup := fs.Int("warmup", 3, "untimed warm-up steps")
	arch := vision.ArchVGG16
	fs.Var(&arch, "arch", "architecture: "+strings.Join(vision.ArchNames(), ", "))
	head := vision.HeadTransfer
	fs.Var(&head, "head", "classifier head: "+vision.HeadNames())
	trainable := fs.String("trainable-base-layers", "4", "stages of the base trained, counted from the top, or all (as fer train)")
	threads := fs.Int("threads", 0, "libtorch CPU threads (0: libtorch's default, one per core)")
	parity := fs.Bool("parity", false, "instead of timing, compare VGG16 logits on the CPU and on --device")
	cudnnBenchmark := fs.Bool("cudnn-benchmark", true, "let cuDNN pick the fastest convolution algorithms")
	jsonOut := fs.String("json", "", "also write the result as JSON to this file")
	oneDNN := oneDNNFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *threads < 0 {
		return usagef("--threads %d is negative", *threads)
	}
	if *threads > 0 {
		if err := torch.SetNumThreads(*threads); err != nil {
			return err
		}
	}
	dev, err := device.Resolve()
	if err != nil {
		return err
	}
	torch.SetCuDNNBenchmark(*cudnnBenchmark)
	// --parity runs the network on the CPU too.
	cpuSide := dev
	if *parity {
		cpuSide = torch.CPU()
	}
	notice, err := oneDNN.Apply(cpuSide)
	if err != nil {
		return err
	}
	tellNotice(stderr, "benchmark", notice)
	var result any
	if *parity {
		diff, err := train.ForwardParity(dev, *size, 4, *channelsLast, 7)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "VGG16 forward, batch 4 at %dx%d: max abs diff CPU vs %s (channels-last %v): %.3g\n", *size, *size, dev, *channelsLast, diff)
		result = map[string]any{"device": dev.String(), "input_size": *size, "channels_last": *channelsLast, "max_abs_diff": diff, "torch_version": torch.Version()}
	} else {
		r, err := train.Benchmark(train.BenchConfig{
			Arch: arch, Head: head, Trainable: *trainable,
			Device: dev, Precision: precision, ChannelsLast: *channelsLast,
			BatchSize: *batch, InputSize: *size, Classes: 8, Warmup: *warmup, Steps: *steps, Seed: 1,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s (%s head, %s trainable parameters) %s %s channels-last=%v batch %d at %dx%d: %.1f images/s (%d steps in %.2fs, loss %.4f)\n",
			r.Arch, r.Head, vision.Commas(r.TrainableParams), r.Device, r.Precision, r.ChannelsLast, r.BatchSize, r.InputSize, r.InputSize, r.ImagesPerSec, r.Steps, r.Seconds, r.FinalLoss)
		result = r
	}
	if *jsonOut != "" {
		raw, _ := json.MarshalIndent(result, "", "  ")
		if err := os.WriteFile(*jsonOut, append(raw, '\n'), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", *jsonOut, err)
		}
	}
	return nil
}
