package launch

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary is also the fake worker: with FAKE_WORKER set it plays
// that part instead of running the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("FAKE_WORKER"); mode != "" {
		os.Exit(fakeWorker(mode))
	}
	os.Exit(m.Run())
}

// contract lists the variables of the environment contract.
var contract = []string{"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
	"TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT"}

func fakeWorker(mode string) int {
	rank, _ := strconv.Atoi(os.Getenv("RANK"))
	failRank, _ := strconv.Atoi(os.Getenv("FAIL_RANK"))
	// ready tells the test that the signal handlers are installed.
	ready := func() {
		if dir := os.Getenv("READY_DIR"); dir != "" {
			os.WriteFile(filepath.Join(dir, strconv.Itoa(rank)), nil, 0o644)
		}
	}
	// waitForSignal waits for SIGINT or SIGTERM and exits as fer does.
	waitForSignal := func() int {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		ready()
		select {
		case sig := <-ch:
			fmt.Printf("got %v\n", sig)
			return 128 + int(sig.(syscall.Signal))
		case <-time.After(60 * time.Second):
			fmt.Println("no signal came")
			return 0
		}
	}
	switch mode {
	case "env":
		for _, name := range append(contract, "PRESET") {
			v, ok := os.LookupEnv(name)
			if ok {
				fmt.Printf("%s=%s\n", name, v)
			}
		}
		fmt.Printf("dups=%d\n", len(os.Environ())-len(uniqueNames(os.Environ())))
		return 0
	case "output":
		if rank == 0 {
			os.Stdout.WriteString("epoch 1 [  ] 0%\repoch 1 [##] 100%\n")
			os.Stdout.WriteString("best 0.5\n")
			os.Stderr.WriteString("warning from rank 0\n")
			os.Stdout.WriteString("no newline at the end")
			return 0
		}
		fmt.Printf("hello from %d\nsecond line\n", rank)
		fmt.Printf("rank %d: prefixed already\n", rank)
		fmt.Fprintf(os.Stderr, "fer train: rank %d: named already\n", rank)
		os.Stderr.WriteString("an error line\nlast words")
		return 0
	case "fail", "stubborn", "selfkill":
		if rank == failRank {
			time.Sleep(100 * time.Millisecond)
			os.Stderr.WriteString("loading\nfer train: disk on fire\n\n")
			if mode == "selfkill" {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
			return 3
		}
		if mode == "stubborn" && rank == 0 {
			signal.Ignore(syscall.SIGTERM)
			ready()
			time.Sleep(60 * time.Second)
			return 0
		}
		return waitForSignal()
	case "wait":
		return waitForSignal()
	case "cascade":
		// Rank 0 fails slowly; rank 1 learns of it first and exits. Rank 1
		// exits once rank 0 ignores SIGTERM, and rank 0 reports only once
		// the launcher has reaped rank 1 (its process is gone), whatever the
		// delays in starting the workers.
		dir := os.Getenv("READY_DIR")
		pidFile := filepath.Join(dir, "rank1.pid")
		if rank == 1 {
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if _, err := os.Stat(filepath.Join(dir, "0")); err == nil {
					break
				}
			}
			os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644)
			os.Stderr.WriteString("fer train: rank 1: stopped: rank 0 failed to start (see its error)\n")
			return 1
		}
		if rank > 1 {
			return waitForSignal()
		}
		signal.Ignore(syscall.SIGTERM)
		ready()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			b, err := os.ReadFile(pidFile)
			pid, _ := strconv.Atoi(string(b))
			if err == nil && pid > 0 && syscall.Kill(pid, 0) == syscall.ESRCH {
				break
			}
		}
		time.Sleep(100 * time.Millisecond) // for the launcher to record rank 1's exit
		os.Stderr.WriteString("fer train: rank 0: disk full\n")
		return 1
	case "ok":
		return 0
	}
	return 99
}

func uniqueNames(env []string) map[string]bool {
	m := map[string]bool{}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		m[name] = true
	}
	return m
}

// fakeStore listens on a free port of the loopback interface.
type fakeStore struct {
	ln        net.Listener
	world     int
	closeOnce sync.Once
	closed    chan struct{}
}

func (s *fakeStore) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }
func (s *fakeStore) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return s.ln.Close()
}

// job is a Job of procs fake workers in mode, with the extra environment
// and the store it serves.
func job(t *testing.T, procs int, mode string, env ...string) (Job, *fakeStore, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	store := &fakeStore{closed: make(chan struct{})}
	var stdout, stderr bytes.Buffer
	j := Job{
		Procs: procs,
		Path:  os.Args[0],
		Env:   append(os.Environ(), append([]string{"FAKE_WORKER=" + mode}, env...)...),
		ServeStore: func(addr string, world int) (Store, error) {
			if addr != "127.0.0.1" {
				t.Errorf("store address %q", addr)
			}
			ln, err := net.Listen("tcp", addr+":0")
			if err != nil {
				return nil, err
			}
			store.ln, store.world = ln, world
			return store, nil
		},
		Stdout: &stdout,
		Stderr: &stderr,
		Grace:  5 * time.Second,
	}
	t.Cleanup(func() {
		if store.ln != nil {
			select {
			case <-store.closed:
			default:
				t.Error("the store was not closed")
			}
		}
	})
	return j, store, &stdout, &stderr
}

// TestEnvironmentPerRank: every worker gets exactly the contract's values
// for its rank, replacing ones the launcher's environment had.
func TestEnvironmentPerRank(t *testing.T) {
	j, store, stdout, stderr := job(t, 3, "env", "RANK=7", "MASTER_PORT=1", "PRESET=kept")
	if err := Run(j); err != nil {
		t.Fatalf("Run: %v\n%s", err, stderr)
	}
	if store.world != 3 {
		t.Errorf("store for %d workers, want 3", store.world)
	}
	port := strconv.Itoa(store.Port())
	got := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		rank := "0"
		if rest, ok := strings.CutPrefix(line, "rank "); ok {
			rank, line, _ = strings.Cut(rest, ": ")
		}
		got[rank] = append(got[rank], line)
	}
	for r := 0; r < 3; r++ {
		rank := strconv.Itoa(r)
		want := []string{"RANK=" + rank, "WORLD_SIZE=3", "LOCAL_RANK=" + rank, "LOCAL_WORLD_SIZE=3",
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port, "TORCHELASTIC_USE_AGENT_STORE=True",
			"TORCHELASTIC_RESTART_COUNT=0", "PRESET=kept", "dups=0"}
		if !reflect.DeepEqual(got[rank], want) {
			t.Errorf("rank %d saw\n%q\nwant\n%q", r, got[rank], want)
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr: %q", stderr)
	}
}

// TestOutputPrefixes: rank 0's output passes unchanged (carriage returns
// and all), every line of the other ranks gets "rank N: " once, and a last
// line without a newline is completed.
func TestOutputPrefixes(t *testing.T) {
	j, _, stdout, stderr := job(t, 3, "output")
	if err := Run(j); err != nil {
		t.Fatalf("Run: %v", err)
	}
	lines := func(s string) []string {
		l := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		sort.Strings(l)
		return l
	}
	wantOut := []string{"best 0.5", "epoch 1 [  ] 0%\repoch 1 [##] 100%", "no newline at the end",
		"rank 1: hello from 1", "rank 1: prefixed already", "rank 1: second line",
		"rank 2: hello from 2", "rank 2: prefixed already", "rank 2: second line"}
	if got := lines(stdout.String()); !reflect.DeepEqual(got, wantOut) {
		t.Errorf("stdout lines\n%q\nwant\n%q", got, wantOut)
	}
	// Rank 0's own lines keep their order; the other ranks' whole lines may
	// come between them.
	var rank0 []string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if !strings.HasPrefix(line, "rank ") {
			rank0 = append(rank0, line)
		}
	}
	if want := []string{"epoch 1 [  ] 0%\repoch 1 [##] 100%", "best 0.5", "no newline at the end", ""}; !reflect.DeepEqual(rank0, want) {
		t.Errorf("rank 0's output changed: %q, want %q", rank0, want)
	}
	wantErr := []string{"fer train: rank 1: named already", "fer train: rank 2: named already",
		"rank 1: an error line", "rank 1: last words", "rank 2: an error line", "rank 2: last words", "warning from rank 0"}
	if got := lines(stderr.String()); !reflect.DeepEqual(got, wantErr) {
		t.Errorf("stderr lines\n%q\nwant\n%q", got, wantErr)
	}
}

// TestFailedWorkerStopsTheOthers: when rank 1 exits with status 3, the
// others get SIGTERM (and exit as fer does, 143) at once, and the error
// names rank 1, its status and its last error line.
func TestFailedWorkerStopsTheOthers(t *testing.T) {
	j, _, stdout, _ := job(t, 3, "fail", "FAIL_RANK=1")
	err := Run(j)
	var we *WorkerError
	if !errors.As(err, &we) {
		t.Fatalf("Run: %v, want a WorkerError", err)
	}
	if want := "rank 1 exited with status 3; its last error line: fer train: disk on fire"; err.Error() != want {
		t.Errorf("error %q\nwant  %q", err, want)
	}
	if we.Rank != 1 || we.ExitCode != 3 || we.Signal != 0 {
		t.Errorf("error %+v", we)
	}
	if got := stdout.String(); !strings.Contains(got, "got terminated\n") || !strings.Contains(got, "rank 2: got terminated\n") {
		t.Errorf("ranks 0 and 2 were not sent SIGTERM:\n%s", got)
	}
}

// TestFailureCascade: a rank that fails on its own while the job stops is
// named too, since the first rank to exit may only report another's
// failure.
func TestFailureCascade(t *testing.T) {
	j, _, _, stderr := job(t, 3, "cascade", "READY_DIR="+t.TempDir())
	err := Run(j)
	want := "rank 1 exited with status 1; its last error line: fer train: rank 1: stopped: rank 0 failed to start (see its error)" +
		" (rank 0 exited with status 1; its last error line: fer train: rank 0: disk full)"
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant  %s\n%s", err, want, stderr)
	}
}

// TestKilledWorker: a worker killed by a signal is named with the signal.
func TestKilledWorker(t *testing.T) {
	j, _, _, _ := job(t, 3, "selfkill", "FAIL_RANK=2")
	err := Run(j)
	if want := "rank 2 was killed by signal 9 (killed); its last error line: fer train: disk on fire"; err == nil || err.Error() != want {
		t.Errorf("error %v\nwant  %s", err, want)
	}
	var we *WorkerError
	if !errors.As(err, &we) || we.Signal != syscall.SIGKILL || we.ExitCode != -1 {
		t.Errorf("error %#v", err)
	}
}

// TestStubbornWorkerKilledAfterGrace: a worker that ignores SIGTERM is
// killed once the grace period is over, not before.
func TestStubbornWorkerKilledAfterGrace(t *testing.T) {
	j, _, _, _ := job(t, 2, "stubborn", "FAIL_RANK=1")
	j.Grace = 700 * time.Millisecond
	start := time.Now()
	err := Run(j)
	took := time.Since(start)
	var we *WorkerError
	if !errors.As(err, &we) || we.Rank != 1 {
		t.Fatalf("Run: %v, want rank 1's failure", err)
	}
	// Rank 1 fails after 100 ms; rank 0 dies at the end of the grace period,
	// not at the end of its 60 s sleep (the upper bound leaves room for a
	// loaded machine).
	if took < 800*time.Millisecond || took > 30*time.Second {
		t.Errorf("the job took %v, want the grace period of %v after rank 1's failure", took, j.Grace)
	}
}

// TestSignalsAreForwarded: SIGINT and SIGTERM reach every worker, and the
// job ends with the shell's status for the signal.
func TestSignalsAreForwarded(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			ready := t.TempDir()
			j, _, stdout, _ := job(t, 3, "wait", "READY_DIR="+ready)
			signals := make(chan os.Signal, 2)
			j.Signals = signals
			go func() {
				waitReady(t, ready, 3)
				signals <- sig
			}()
			err := Run(j)
			var ie *InterruptedError
			if !errors.As(err, &ie) {
				t.Fatalf("Run: %v, want an InterruptedError", err)
			}
			if ie.Signal != sig || len(ie.Killed) != 0 || ie.ExitCode() != 128+int(sig) {
				t.Errorf("error %+v, exit code %d", ie, ie.ExitCode())
			}
			got := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			sort.Strings(got)
			want := []string{"got " + sig.String(), "rank 1: got " + sig.String(), "rank 2: got " + sig.String()}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("the workers reported\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// TestSecondSignalKills: a second signal while the workers stop kills the
// ones still running.
func TestSecondSignalKills(t *testing.T) {
	ready := t.TempDir()
	j, _, _, _ := job(t, 2, "stubborn", "FAIL_RANK=5", "READY_DIR="+ready)
	j.Grace = time.Minute
	signals := make(chan os.Signal, 2)
	j.Signals = signals
	go func() {
		waitReady(t, ready, 2)
		signals <- syscall.SIGTERM
		time.Sleep(300 * time.Millisecond)
		signals <- syscall.SIGTERM
	}()
	start := time.Now()
	err := Run(j)
	if want := "stopped by signal 15 (terminated); killed rank 0, which had not exited"; err == nil || err.Error() != want {
		t.Errorf("error %v\nwant  %s", err, want)
	}
	// Killed at the second signal, not at the end of the grace period.
	if took := time.Since(start); took >= j.Grace/2 {
		t.Errorf("took %v with a grace period of %v", took, j.Grace)
	}
}

func waitReady(t *testing.T, dir string, n int) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if files, _ := os.ReadDir(dir); len(files) == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("the workers did not get ready")
}

// TestStartFailures: a store that cannot start and a program that cannot
// run are errors before (or instead of) any worker.
func TestStartFailures(t *testing.T) {
	j, _, _, _ := job(t, 2, "ok")
	j.ServeStore = func(string, int) (Store, error) { return nil, errors.New("port 29500 is in use") }
	if err := Run(j); err == nil || err.Error() != "starting the job's store: port 29500 is in use" {
		t.Errorf("store failure: %v", err)
	}
	j, _, _, _ = job(t, 2, "ok")
	j.Path = filepath.Join(t.TempDir(), "missing")
	if err := Run(j); err == nil || !strings.HasPrefix(err.Error(), "starting rank 0: fork/exec "+j.Path+": no such file or directory") {
		t.Errorf("missing program: %v", err)
	}
	j.Procs = 0
	if err := Run(j); err == nil || err.Error() != "launch: 0 workers; want at least 1" {
		t.Errorf("no workers: %v", err)
	}
}
