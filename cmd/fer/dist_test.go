package main

import (
	"bytes"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fertorch/fertorch/internal/testmodel"
	"github.com/fertorch/fertorch/torch/dist"
	"github.com/fertorch/fertorch/train"
)

// torchrunPath is Debian's torchrun: python3-torch 1.13 under make test
// (whose flags are spelt with underscores), 2.6 under make test-libtorch2.
const torchrunPath = "/usr/bin/torchrun"

// torchrunLacksLibuv reports whether the PyTorch of torchrunPath refuses a
// TCPStore with its default backend: PyTorch 2.4 and later ask for libuv,
// which Debian trixie's 2.6 was built without, so its torchrun cannot start
// as it is (testdata/torchrun_nolibuv.py).
var torchrunLacksLibuv = sync.OnceValue(func() bool {
	probe := exec.Command("/usr/bin/python3", "-c", "import torch.distributed as d; d.TCPStore('127.0.0.1', 0, 1, True)")
	out, err := probe.CombinedOutput()
	return err != nil && strings.Contains(string(out), "libuv")
})

// distArgs is a short run that trains the same on one process or several:
// plain VGG16 (no batch norm) at 32x32 from its seeded initialisation, SGD
// with momentum (its steps are proportional to the gradients, so a wrong
// sum shows), dropout and augmentation off, a global batch of 8 over 2
// epochs, the last checkpoint every 2 steps.
func distArgs(layout, out string) []string {
	return []string{"train", "--data", layout, "--output", out, "--weights", "", "--device", "cpu",
		"--arch", "vgg16", "--input-size", "32", "--batch-size", "8", "--epochs", "2",
		"--optimizer", "sgd", "--lr", "0.001", "--momentum", "0.9",
		"--head", "transfer", "--hidden", "32", "--dropout", "0", "--augment=false", "--trainable-base-layers", "all",
		"--checkpoint-every", "2", "--epoch-checkpoints=false", "--progress", "off", "--threads", "1", "--workers", "1",
		"--dist-timeout", "60s"}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// started is a running command with its output.
type started struct {
	cmd            *exec.Cmd
	stdout, stderr *bytes.Buffer
	done           chan struct{}
	code           int
	began          time.Time
	took           time.Duration
}

// start runs name with args and extra environment in dir, in the
// background.
func start(t *testing.T, dir string, env []string, name string, args ...string) *started {
	t.Helper()
	s := &started{cmd: exec.Command(name, args...), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	s.began = time.Now()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := s.cmd.Wait()
		s.took = time.Since(s.began)
		s.code = 0
		if err != nil {
			s.code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				s.code = ee.ExitCode()
			}
		}
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// wait waits for the command at most limit and returns its exit status.
func (s *started) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
		return s.code
	case <-time.After(limit):
		s.cmd.Process.Kill()
		<-s.done
		t.Fatalf("%s did not end within %v:\n%s%s", strings.Join(s.cmd.Args, " "), limit, s.stdout, s.stderr)
		return 0
	}
}

func (s *started) output() string { return s.stdout.String() + s.stderr.String() }

// sameTraining checks that run folder got trained what want did: the same
// files, the history within tol (validation accuracy equal) and every
// model tensor of the last checkpoint within tol.
func sameTraining(t *testing.T, want, got string, tol float64) {
	t.Helper()
	names := func(dir string) []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, e := range entries {
			n = append(n, e.Name())
		}
		return n
	}
	if w, g := names(want), names(got); !reflect.DeepEqual(w, g) {
		t.Errorf("%s holds %q, %s holds %q", got, g, want, w)
	}
	hw := historyWithoutTimes(t, filepath.Join(want, train.HistoryCSV))
	hg := historyWithoutTimes(t, filepath.Join(got, train.HistoryCSV))
	if len(hw) != len(hg) {
		t.Fatalf("%d epochs of history, want %d", len(hg), len(hw))
	}
	for i := range hw {
		x, y := hw[i], hg[i]
		if x.ValAcc != y.ValAcc || math.Abs(x.TrainAcc-y.TrainAcc) > tol || math.Abs(x.TrainLoss-y.TrainLoss) > tol || math.Abs(x.ValLoss-y.ValLoss) > tol {
			t.Errorf("epoch %d: history %+v, want %+v (within %g)", i+1, y, x, tol)
		}
	}
	a, err := train.LoadCheckpoint(filepath.Join(want, train.LastCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	b, err := train.LoadCheckpoint(filepath.Join(got, train.LastCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if a.State.Epoch != b.State.Epoch || a.State.Step != b.State.Step {
		t.Errorf("last checkpoint at epoch %d step %d, want epoch %d step %d", b.State.Epoch, b.State.Step, a.State.Epoch, a.State.Step)
	}
	worst, where, err := testmodel.WeightDiff(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if worst > tol {
		t.Errorf("the weights differ by up to %.3g (%s), want at most %g", worst, where, tol)
	}
	t.Logf("%s against %s: largest weight difference %.3g", filepath.Base(got), filepath.Base(want), worst)
}

// workerPID finds the fer worker of rank whose environment holds marker.
func workerPID(t *testing.T, marker string, rank int) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range procs {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		vars := strings.Split(string(raw), "\x00")
		has := func(kv string) bool {
			for _, v := range vars {
				if v == kv {
					return true
				}
			}
			return false
		}
		comm, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "comm"))
		if strings.TrimSpace(string(comm)) == "fer" && has(marker) && has("RANK="+strconv.Itoa(rank)) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	return 0
}

// killMidSecondEpoch kills rank's worker with SIGKILL once the run folder
// holds a checkpoint from the middle of the second epoch.
func killMidSecondEpoch(t *testing.T, s *started, out, marker string, rank int) train.State {
	t.Helper()
	last := filepath.Join(out, train.LastCheckpoint)
	var seen time.Time
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-s.done:
			t.Fatalf("the run ended before it could be killed in its second epoch:\n%s", s.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of the second epoch appeared:\n%s", s.output())
		}
		st, err := os.Stat(last)
		if err != nil || !st.ModTime().After(seen) {
			continue
		}
		seen = st.ModTime()
		lc, err := train.LoadCheckpoint(last)
		if err != nil || lc.State.Epoch != 1 || lc.State.Step == 0 {
			continue
		}
		pid := workerPID(t, marker, rank)
		if pid == 0 {
			t.Fatalf("no worker of rank %d found", rank)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		t.Logf("killed rank %d (pid %d) after the checkpoint of epoch 2, step %d", rank, pid, lc.State.Step)
		return lc.State
	}
}

// torchrun returns the program and first arguments of a torchrun whose
// logs go under logs, or skips t when there is no torchrun. The flags:
// Debian's torchrun 1.13 fails on Python 3.11 with its own defaults of
// --redirects and --tee (0: "AttributeError: 'NoneType' object has no
// attribute 'get'"), so they are 1 (standard output to the log under logs,
// and to the console).
func torchrun(t *testing.T, logs string) (string, []string) {
	t.Helper()
	if _, err := os.Stat(torchrunPath); err != nil {
		t.Skipf("%s is missing (Debian's python3-torch): the torchrun cases need it", torchrunPath)
	}
	flags := []string{"--no_python", "--redirects", "1", "--tee", "1", "--log_dir", logs}
	if torchrunLacksLibuv() {
		wrapper, err := filepath.Abs(filepath.Join("testdata", "torchrun_nolibuv.py"))
		if err != nil {
			t.Fatal(err)
		}
		return "/usr/bin/python3", append([]string{wrapper}, flags...)
	}
	return torchrunPath, flags
}

// TestDistributedTraining trains the same short run on one process, on 2
// processes started by fer train --nproc-per-node (fer hosts the store), by
// torchrun --standalone (c10d rendezvous; rank 0 hosts the store), and by two
// torchrun agents as two nodes on loopback (static rendezvous; the agent of
// node 0 hosts the store), and checks that all end with
// the weights and history of the one process (within 1e-5); then the
// faults: a killed worker under torchrun --max_restarts 1 (the job resumes
// from last.safetensors by itself and ends bit for bit as the uninterrupted
// 2-process run), under fer's launcher (which stops the job naming the rank; --resume
// finishes it), under torchrun without restarts, and a rank of a job
// started by hand (as a PyTorchJob does) whose peer dies.
func TestDistributedTraining(t *testing.T) {
	if testing.Short() {
		t.Skip("trains several short runs on 1 and 2 processes")
	}
	if err := dist.Available(); err != nil {
		t.Skip(err)
	}
	fer := buildFer(t)
	dir := t.TempDir()
	layout := prepareSmall(t, dir)
	const tol = 1e-5

	single := filepath.Join(dir, "single")
	if s := start(t, dir, nil, fer, distArgs(layout, single)...); s.wait(t, 5*time.Minute) != 0 {
		t.Fatalf("one process: %s", s.output())
	}

	// The 2-process run is also the reference of the fault cases.
	two := filepath.Join(dir, "nproc")
	launched := start(t, dir, nil, fer, append(distArgs(layout, two), "--nproc-per-node", "2")...)
	if code := launched.wait(t, 5*time.Minute); code != 0 {
		t.Fatalf("--nproc-per-node 2: exit %d:\n%s", code, launched.output())
	}
	t.Run("nproc-per-node", func(t *testing.T) {
		// Rank 0 alone reports; rank 1 prints nothing.
		if n := strings.Count(launched.stdout.String(), "best val_accuracy"); n != 1 || strings.Contains(launched.output(), "rank 1: ") {
			t.Errorf("want one report, from rank 0 only:\n%s", launched.output())
		}
		sameTraining(t, single, two, tol)
	})

	t.Run("torchrun", func(t *testing.T) {
		out, logs := filepath.Join(dir, "torchrun"), filepath.Join(dir, "torchrun-logs")
		run, flags := torchrun(t, logs)
		s := start(t, dir, nil, run, append(flags, append([]string{"--nproc_per_node", "2", "--standalone", fer}, distArgs(layout, out)...)...)...)
		if code := s.wait(t, 5*time.Minute); code != 0 {
			t.Fatalf("exit %d:\n%s", code, s.output())
		}
		sameTraining(t, single, out, tol)
		// --redirects 1 keeps each rank's standard output in its log.
		rank0, _ := filepath.Glob(filepath.Join(logs, "*", "attempt_0", "0", "stdout.log"))
		if len(rank0) != 1 {
			t.Fatalf("rank 0's log: %v", rank0)
		}
		if raw, _ := os.ReadFile(rank0[0]); !strings.Contains(string(raw), "best val_accuracy") {
			t.Errorf("rank 0's log lacks its report:\n%s", raw)
		}
	})

	t.Run("torchrun-two-nodes", func(t *testing.T) {
		out := filepath.Join(dir, "nodes")
		port := strconv.Itoa(freePort(t))
		var nodes []*started
		for node := 0; node < 2; node++ {
			run, flags := torchrun(t, filepath.Join(dir, "nodes-logs", strconv.Itoa(node)))
			nodes = append(nodes, start(t, dir, nil, run, append(flags, append([]string{"--nnodes", "2", "--node_rank", strconv.Itoa(node),
				"--nproc_per_node", "1", "--rdzv_backend", "static", "--master_addr", "127.0.0.1", "--master_port", port, fer}, distArgs(layout, out)...)...)...))
		}
		for node, s := range nodes {
			if code := s.wait(t, 5*time.Minute); code != 0 {
				t.Fatalf("node %d: exit %d:\n%s", node, code, s.output())
			}
		}
		sameTraining(t, single, out, tol)
	})

	t.Run("torchrun-restart-resumes", func(t *testing.T) {
		out := filepath.Join(dir, "restarted")
		marker := "FER_DIST_TEST=" + out
		run, flags := torchrun(t, out+"-logs")
		s := start(t, dir, []string{marker}, run, append(flags, append([]string{"--nproc_per_node", "2", "--max_restarts", "1",
			"--monitor_interval", "1", "--master_port", strconv.Itoa(freePort(t)), fer}, distArgs(layout, out)...)...)...)
		killMidSecondEpoch(t, s, out, marker, 1)
		if code := s.wait(t, 5*time.Minute); code != 0 {
			t.Fatalf("exit %d:\n%s", code, s.output())
		}
		if !strings.Contains(s.output(), "resuming at epoch 2, step") {
			t.Errorf("the restarted job did not resume in its second epoch:\n%s", s.output())
		}
		sameTraining(t, two, out, 0)
	})

	t.Run("launcher-kill-then-resume", func(t *testing.T) {
		out := filepath.Join(dir, "launched")
		marker := "FER_DIST_TEST=" + out
		s := start(t, dir, []string{marker}, fer, append(distArgs(layout, out), "--nproc-per-node", "2")...)
		killMidSecondEpoch(t, s, out, marker, 1)
		// The launcher stops rank 0 (which saves) and names rank 1.
		if code := s.wait(t, 2*time.Minute); code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, s.output())
		}
		lines := strings.Split(strings.TrimSpace(s.stderr.String()), "\n")
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, "fer train: rank 1 was killed by signal 9 (killed)") {
			t.Errorf("last line %q, want it to name rank 1 and SIGKILL:\n%s", last, s.output())
		}
		r := start(t, dir, nil, fer, "train", "--resume", out, "--nproc-per-node", "2", "--progress", "off")
		if code := r.wait(t, 5*time.Minute); code != 0 {
			t.Fatalf("resume: exit %d:\n%s", code, r.output())
		}
		sameTraining(t, two, out, 0)
	})

	t.Run("torchrun-without-restarts", func(t *testing.T) {
		out := filepath.Join(dir, "failed")
		marker := "FER_DIST_TEST=" + out
		run, flags := torchrun(t, out+"-logs")
		s := start(t, dir, []string{marker}, run, append(flags, append([]string{"--nproc_per_node", "2",
			"--monitor_interval", "1", "--master_port", strconv.Itoa(freePort(t)), fer}, distArgs(layout, out)...)...)...)
		killMidSecondEpoch(t, s, out, marker, 1)
		if code := s.wait(t, 2*time.Minute); code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, s.output())
		}
		// torchrun's report names the rank and the signal.
		if !regexp.MustCompile(`rank\s*: 1 \(local_rank: 1\)`).MatchString(s.output()) || !strings.Contains(s.output(), "Signal 9 (SIGKILL)") {
			t.Errorf("torchrun's report does not name rank 1 and SIGKILL:\n%s", s.output())
		}
	})

	t.Run("survivor-of-a-lost-peer", func(t *testing.T) {
		// Two processes started by hand with the contract, as a PyTorchJob
		// starts one per pod: rank 0 hosts the store. When rank 1 dies,
		// rank 0 exits non-zero within its --dist-timeout (60s), with an
		// error about the collective that lost its peer.
		out := filepath.Join(dir, "byhand")
		marker := "FER_DIST_TEST=" + out
		port := strconv.Itoa(freePort(t))
		var ranks []*started
		for rank := 0; rank < 2; rank++ {
			env := []string{marker, "RANK=" + strconv.Itoa(rank), "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port}
			ranks = append(ranks, start(t, dir, env, fer, distArgs(layout, out)...))
		}
		killMidSecondEpoch(t, ranks[0], out, marker, 1)
		killed := time.Now()
		code := ranks[0].wait(t, 2*time.Minute)
		took := time.Since(killed)
		if code != 1 || took > 75*time.Second {
			t.Errorf("rank 0: exit %d after %v, want 1 within the 60s timeout:\n%s", code, took, ranks[0].output())
		}
		lines := strings.Split(strings.TrimSpace(ranks[0].stderr.String()), "\n")
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, "fer train: ") || !strings.Contains(last, "dist: ") {
			t.Errorf("rank 0's last line %q, want fer train's error about the collective", last)
		}
		t.Logf("rank 0 ended %v after rank 1 was killed: %s", took.Round(time.Millisecond), lines[len(lines)-1])
	})
}
