package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fertorch/fertorch/torch/dist"
	"github.com/fertorch/fertorch/train"
)

// The rank tests re-execute the test binary as the ranks of a job: a
// worker runs fer with the arguments in rankArgsVar (separated by the unit separator, 0x1f) and
// exits with its status.
const (
	rankWorkerVar = "FERTORCH_FER_RANK_WORKER"
	rankArgsVar   = "FERTORCH_FER_RANK_ARGS"
)

// rankJob is a job of fer processes started with torchrun's environment.
type rankJob struct {
	cmds []*exec.Cmd
	outs []*bytes.Buffer
}

// startRanks starts n ranks of `fer args...` on loopback.
func startRanks(t *testing.T, ctx context.Context, n int, args ...string) *rankJob {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var base []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT", rankWorkerVar, rankArgsVar:
			continue
		}
		base = append(base, kv)
	}
	j := &rankJob{}
	for r := 0; r < n; r++ {
		env := dist.Env{Rank: r, WorldSize: n, LocalRank: r, LocalWorldSize: n, MasterAddr: "127.0.0.1", MasterPort: port}
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
		cmd.Env = append(append(append([]string{}, base...), env.Environ()...), rankWorkerVar+"="+t.Name(), rankArgsVar+"="+strings.Join(args, "\x1f"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		j.cmds, j.outs = append(j.cmds, cmd), append(j.outs, &out)
	}
	return j
}

// wait waits for every rank and returns their exit statuses.
func (j *rankJob) wait() []int {
	codes := make([]int, len(j.cmds))
	for r, cmd := range j.cmds {
		err := cmd.Wait()
		var exit *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exit):
			codes[r] = exit.ExitCode()
		default:
			codes[r] = -1
		}
	}
	return codes
}

// rankWorker runs fer as a rank of the running test, if this process is one.
func rankWorker(t *testing.T) {
	if os.Getenv(rankWorkerVar) != t.Name() {
		return
	}
	os.Exit(run(strings.Split(os.Getenv(rankArgsVar), "\x1f"), os.Stdout, os.Stderr))
}

// TestRanksStopTogether runs `fer train` as 2 ranks with torchrun's
// environment: a SIGTERM to rank 1 alone stops both at the next step, rank
// 0 saving the checkpoint, each saying how to continue with its rank in
// front (rank 1 exits 143, rank 0 1), and rank 1 prints nothing else. A new
// run in that folder fails on rank 0, and rank 1 says so instead of
// waiting for it.
func TestRanksStopTogether(t *testing.T) {
	rankWorker(t)
	if testing.Short() {
		t.Skip("trains on 2 processes")
	}
	if err := dist.Available(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	layout := prepareSmall(t, dir)
	out := filepath.Join(dir, "run")
	args := []string{"train", "--data", layout, "--output", out, "--weights", "", "--device", "cpu",
		"--arch", "vgg16", "--input-size", "32", "--batch-size", "8", "--epochs", "50", "--lr", "1e-4",
		"--head", "transfer", "--hidden", "32", "--trainable-base-layers", "all",
		"--checkpoint-every", "1", "--epoch-checkpoints=false", "--progress", "off", "--threads", "1", "--workers", "1", "--dist-timeout", "1m"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	job := startRanks(t, ctx, 2, args...)
	last := filepath.Join(out, train.LastCheckpoint)
	for {
		if ctx.Err() != nil {
			t.Fatalf("no checkpoint appeared:\n%s\n%s", job.outs[0], job.outs[1])
		}
		if _, err := os.Stat(last); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := job.cmds[1].Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	codes := job.wait()
	log0, log1 := job.outs[0].String(), job.outs[1].String()
	want1 := "fer train: rank 1: interrupted; continue with: fer train --resume " + out + "\n"
	want0 := "fer train: rank 0: stopped because another rank was interrupted (Ctrl-C or SIGTERM); the last checkpoint is saved; continue with: fer train --resume " + out + "\n"
	if codes[1] != 143 || log1 != want1 {
		t.Errorf("rank 1: exit %d, output %q; want 143, %q", codes[1], log1, want1)
	}
	if codes[0] != 1 || !strings.HasSuffix(log0, want0) || !strings.Contains(log0, "data-parallel on 2 ranks") {
		t.Errorf("rank 0: exit %d, want 1 and a log ending %q:\n%s", codes[0], want0, log0)
	}
	lc, err := train.LoadCheckpoint(last)
	if err != nil {
		t.Fatal(err)
	}
	if lc.State.Ranks != 2 || lc.State.Epoch >= 50 {
		t.Errorf("the saved checkpoint: %d ranks, epoch %d", lc.State.Ranks, lc.State.Epoch+1)
	}

	job = startRanks(t, ctx, 2, args...)
	codes = job.wait()
	log0, log1 = job.outs[0].String(), job.outs[1].String()
	if codes[0] != 1 || !strings.Contains(log0, "fer train: rank 0: run folder holds an earlier run") {
		t.Errorf("a new run in a run's folder, rank 0: exit %d\n%s", codes[0], log0)
	}
	if want := "fer train: rank 1: stopped: rank 0 failed to start (see its error)\n"; codes[1] != 1 || log1 != want {
		t.Errorf("rank 1: exit %d, output %q; want 1, %q", codes[1], log1, want)
	}
}
