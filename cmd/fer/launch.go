package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fertorch/fertorch/launch"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/dist"
	"github.com/fertorch/fertorch/train"
)

// nprocFlag is the flag that makes fer train its own launcher.
const nprocFlag = "nproc-per-node"

// distHelp explains distributed training under fer train's flags.
const distHelp = `
Several processes: --nproc-per-node N starts N copies of fer train on this
machine (one per GPU with --device cuda) and hosts their rendezvous store, as
torchrun --standalone does. Under torchrun or a Kubernetes PyTorchJob,
fer train reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT
itself; after a restart (torchrun --max_restarts) it resumes from the run
folder's last.safetensors. --batch-size is the global batch either way, so a
config trains the same run on one process or many.
`

// checkLaunch refuses a --nproc-per-node that cannot work: fewer than one
// process, a job that is itself a launched worker, or more processes than
// CUDA devices when the processes would use CUDA.
func checkLaunch(n int, device torch.DeviceSpec, getenv func(string) string) error {
	if n < 1 {
		return usagef("--%s %d must be at least 1", nprocFlag, n)
	}
	if ws := getenv("WORLD_SIZE"); ws != "" {
		return usagef("--%s starts its own processes, but WORLD_SIZE=%s says this fer train is one of a launched job's; drop --%s under torchrun or a PyTorchJob", nprocFlag, ws, nprocFlag)
	}
	spec := strings.ToLower(string(device))
	if strings.HasPrefix(spec, "cuda:") && n > 1 {
		return usagef("--device %s names one GPU for the %d processes of --%s; use --device cuda, which gives each process its own (cuda:LOCAL_RANK)", device, n, nprocFlag)
	}
	cuda := strings.HasPrefix(spec, "cuda")
	if spec == string(torch.DeviceAuto) {
		cuda = torch.CUDAIsAvailable()
	}
	if !cuda {
		return nil
	}
	count := 0
	if torch.BuiltWithCUDA() {
		count = torch.CUDADeviceCount()
	}
	if count == 0 {
		return usagef("--%s %d with --device %s needs %d CUDA devices (one per process), but %s; or use --device cpu", nprocFlag, n, device, n, torch.CUDAUnavailableReason())
	}
	if n > count {
		return usagef("--%s %d with --device %s needs %d CUDA devices (one per process), but %d are visible; use at most %d, or --device cpu", nprocFlag, n, device, n, count, count)
	}
	return nil
}

// withoutFlag is args without the flag name and its value (as --name V or
// --name=V), up to a "--" that ends the flags.
func withoutFlag(args []string, name string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if a == "--"+name {
			i++ // its value
			continue
		}
		if strings.HasPrefix(a, "--"+name+"=") {
			continue
		}
		out = append(out, a)
	}
	return out
}

// launchTrain runs fer train as n processes on this machine: the same
// arguments without --nproc-per-node, each process with torchrun's
// environment contract, and the job's store hosted here.
func launchTrain(n int, args []string, timeout time.Duration, stdout, stderr io.Writer) error {
	// Without c10d the workers could not join; say so once, here.
	if err := dist.Available(); err != nil {
		return fmt.Errorf("--%s: %w", nprocFlag, err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--%s: finding fer's own program: %w", nprocFlag, err)
	}
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	err = launch.Run(launch.Job{
		Procs:      n,
		Path:       self,
		Args:       append([]string{"train"}, withoutFlag(args, nprocFlag)...),
		Stdout:     stdout,
		Stderr:     stderr,
		ServeStore: storeServer(timeout),
		Signals:    signals,
	})
	var ie *launch.InterruptedError
	if errors.As(err, &ie) {
		// Rank 0 said what was interrupted and how to continue; the
		// launcher adds a line only when it had to kill a process.
		if len(ie.Killed) == 0 {
			return &exitError{code: ie.ExitCode()}
		}
		return &exitError{code: ie.ExitCode(), err: err}
	}
	return err
}

// storeServer hosts a job's rendezvous store (a c10d TCPStore on a free
// port) whose waits last at most timeout.
func storeServer(timeout time.Duration) func(addr string, worldSize int) (launch.Store, error) {
	return func(addr string, worldSize int) (launch.Store, error) {
		return dist.ServeStore(addr, 0, worldSize, timeout)
	}
}

// elasticResume is the run folder a restarted worker resumes: when torchrun
// restarted the job (TORCHELASTIC_RESTART_COUNT > 0) and the run folder
// holds a last checkpoint, the job continues from it instead of starting
// over. ok is false otherwise.
func elasticResume(getenv func(string) string, output string) (dir string, ok bool, err error) {
	raw := getenv("TORCHELASTIC_RESTART_COUNT")
	if raw == "" {
		return "", false, nil
	}
	restarts, err := strconv.Atoi(raw)
	if err != nil || restarts < 0 {
		return "", false, fmt.Errorf("TORCHELASTIC_RESTART_COUNT=%q is not a restart count", raw)
	}
	if restarts == 0 {
		return "", false, nil
	}
	last := filepath.Join(output, train.LastCheckpoint)
	if _, err := os.Stat(last); errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	} else if err != nil {
		return "", false, fmt.Errorf("restart %d: %w", restarts, err)
	}
	return output, true, nil
}
