package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fertorch/fertorch/internal/benchdoc"
	"github.com/fertorch/fertorch/torch"
)

const scalingTitle = "## data-parallel training on the CPU (make bench-dist)"

// epochRate matches the training images/s of an epoch line of fer train
// (all ranks' images over rank 0's training time on several ranks).
var epochRate = regexp.MustCompile(`(?m)^epoch (\d+)/\d+: .* train ([0-9.]+) img/s`)

// scalingSetup is one way of running the same training job.
type scalingSetup struct {
	name string
	args []string
}

// trainScaling trains the same short job with fer as 1 process of 2
// threads and as 2 processes of 1 thread (fer train --nproc-per-node 2),
// alternating, and reports each one's training images/s (the median of
// the epochs after the first) and the scaling efficiency.
func trainScaling(fer string, repeats, epochs int, results string) error {
	if _, err := os.Stat(fer); err != nil {
		return fmt.Errorf("%w (run make build first)", err)
	}
	dir, err := os.MkdirTemp("", "fer-bench-dist-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(fer, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return out.String(), fmt.Errorf("fer %s: %w\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String(), nil
	}
	synth, layout := filepath.Join(dir, "synth"), filepath.Join(dir, "data")
	if _, err := run("synth", "--out", synth, "--per-class", "80", "--seed", "3", "--variation", "0.3"); err != nil {
		return err
	}
	if _, err := run("prepare", "--source", synth, "--out", layout, "--split", "by-subject", "--valid", "0.1", "--test", "0.05", "--seed", "1"); err != nil {
		return err
	}
	common := []string{"train", "--data", layout, "--weights", "", "--device", "cpu", "--arch", "resnet18", "--head", "gap",
		"--trainable-base-layers", "all", "--input-size", "64", "--batch-size", "32", "--epochs", strconv.Itoa(epochs),
		"--epoch-checkpoints=false", "--progress", "off", "--overwrite"}
	setups := []scalingSetup{
		{"1 process x 2 threads", []string{"--threads", "2", "--workers", "2"}},
		{"2 processes x 1 thread", []string{"--nproc-per-node", "2", "--threads", "1", "--workers", "1"}},
	}
	rates := make([][]float64, len(setups))
	for rep := range repeats {
		for i, s := range setups {
			args := append(append(append([]string{}, common...), "--output", filepath.Join(dir, fmt.Sprintf("run%d", i))), s.args...)
			out, err := run(args...)
			if err != nil {
				return err
			}
			for _, m := range epochRate.FindAllStringSubmatch(out, -1) {
				epoch, _ := strconv.Atoi(m[1])
				v, err := strconv.ParseFloat(m[2], 64)
				if err != nil {
					return err
				}
				if epoch > 1 { // the first epoch warms up
					rates[i] = append(rates[i], v)
				}
			}
			if len(rates[i]) == 0 {
				return fmt.Errorf("%s printed no epoch line:\n%s", s.name, out)
			}
			fmt.Fprintf(os.Stderr, "bench-dist: repeat %d: %s: %v img/s\n", rep+1, s.name, rates[i])
		}
	}
	med := func(v []float64) float64 {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	one, two := med(rates[0]), med(rates[1])
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", scalingTitle)
	fmt.Fprintf(&b, "Command: `make bench-dist` (`go run ./bench/dist -train-repeats %d -train-epochs %d`). Date: %s. Machine: %s, %d cores (shared), %s, libtorch %s.\n\n",
		repeats, epochs, time.Now().UTC().Format("2006-01-02 15:04 UTC"), benchdoc.CPUModel(), runtime.NumCPU(), runtime.Version(), torch.Version())
	b.WriteString("The same job, `fer train` of resnet18 from scratch at 64x64 on a synthetic layout (8 classes, global batch 32, no augmentation), as one process with 2 libtorch threads and as `--nproc-per-node 2` with 1 thread each (Gloo over loopback, gradients summed in 25 MiB buckets). Images/s is the median over the epochs after the first of every repeat (the epoch line's training rate: all ranks' images over rank 0's training time). Efficiency is the 2-process rate over the 1-process rate: both use the same 2 cores, so 1.0 would mean data parallelism costs nothing; on one machine it is a check of the overhead, not a speed-up, which needs more devices.\n\n")
	fmt.Fprintln(&b, "| setup | training images/s |")
	fmt.Fprintln(&b, "|---|---:|")
	fmt.Fprintf(&b, "| %s | %.1f |\n| %s | %.1f |\n\n", setups[0].name, one, setups[1].name, two)
	fmt.Fprintf(&b, "Efficiency (2 processes x 1 thread over 1 process x 2 threads): %.2f.\n\n", two/one)
	return benchdoc.Publish(results, scalingTitle, b.String())
}
