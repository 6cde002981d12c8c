// Package launch runs one training job's worker processes on this machine,
// the way torchrun does on a single node: it hosts the job's rendezvous
// store, starts the workers with torchrun's environment contract (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT,
// TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT), forwards
// SIGINT and SIGTERM to them, merges their output (rank 0's unchanged, the
// others' lines prefixed with "rank N: "), and when one of them fails stops
// the others and says which rank failed and how.
//
// The package is pure Go: the store is whatever Job.ServeStore makes (a
// c10d TCPStore in fer), so that the process management is testable
// without libtorch.
package launch

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MasterAddr is the address the workers of a local job meet at.
const MasterAddr = "127.0.0.1"

// DefaultGrace is how long stopped workers get to exit (rank 0 saves its
// checkpoint then) before they are killed.
const DefaultGrace = 30 * time.Second

// Store is the job's rendezvous store, hosted by the launcher for the
// lifetime of the job (TORCHELASTIC_USE_AGENT_STORE=True tells the workers
// not to host one themselves).
type Store interface {
	// Port is the TCP port the store listens on (MASTER_PORT).
	Port() int
	Close() error
}

// Job is a set of worker processes to run on this machine.
type Job struct {
	// Procs is the number of workers (WORLD_SIZE and LOCAL_WORLD_SIZE).
	Procs int
	// Path is the worker program and Args its arguments (without the
	// program's name); every worker gets the same ones.
	Path string
	Args []string
	// Env is the environment the workers inherit (nil: this process's);
	// the contract's variables replace any of the same name in it.
	Env []string
	// Dir is the workers' working directory ("": this process's).
	Dir string
	// Stdout and Stderr receive the workers' output: rank 0's standard
	// output unchanged (passed as is when Stdout is an *os.File, so that
	// rank 0 sees a terminal), every other line with "rank N: " in front,
	// except rank 0's standard error, which passes unchanged too.
	Stdout, Stderr io.Writer
	// ServeStore starts the job's store for worldSize workers, reachable
	// at addr (MasterAddr).
	ServeStore func(addr string, worldSize int) (Store, error)
	// Grace is how long workers that were sent SIGTERM (or a forwarded
	// signal) get before SIGKILL (0: DefaultGrace).
	Grace time.Duration
	// Signals are the signals to forward to the workers (SIGINT, SIGTERM).
	// The first is forwarded; a second one while workers are stopping
	// kills them at once.
	Signals <-chan os.Signal
}

// WorkerError says that a worker failed (exited non-zero, or was killed by
// a signal, without the launcher asking) and the job was stopped.
type WorkerError struct {
	Rank int
	// ExitCode is the worker's exit status, -1 when a signal killed it.
	ExitCode int
	// Signal is the signal that killed it (0 when it exited).
	Signal syscall.Signal
	// LastLine is the last non-empty line of the worker's standard error
	// ("" when it wrote none).
	LastLine string
	// Others are the workers that failed on their own while the job was
	// stopping (exited non-zero with another status than a stopped fer's,
	// 128 + SIGTERM or SIGINT): the first failure to be seen is not
	// always the cause, as when rank 0 fails and tells the others.
	Others []*WorkerError
}

func (e *WorkerError) Error() string {
	msg := e.describe()
	if e.LastLine == "" {
		msg += " and wrote no error; the other ranks were stopped"
	}
	for _, o := range e.Others {
		msg += " (" + o.describe() + ")"
	}
	return msg
}

// describe is how the worker ended and its last error line.
func (e *WorkerError) describe() string {
	var how string
	if e.Signal != 0 {
		how = fmt.Sprintf("rank %d was killed by signal %d (%v)", e.Rank, int(e.Signal), e.Signal)
	} else {
		how = fmt.Sprintf("rank %d exited with status %d", e.Rank, e.ExitCode)
	}
	if e.LastLine != "" {
		how += "; its last error line: " + e.LastLine
	}
	return how
}

// workerError is how state says that worker rank ended.
func workerError(rank int, state *os.ProcessState) *WorkerError {
	e := &WorkerError{Rank: rank, ExitCode: state.ExitCode()}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = ws.Signal()
	}
	return e
}

// InterruptedError says that the launcher was sent Signal, forwarded it
// and the workers stopped.
type InterruptedError struct {
	Signal syscall.Signal
	// Killed are the ranks that had not exited within the grace period
	// (or when a second signal came) and were killed.
	Killed []int
}

func (e *InterruptedError) Error() string {
	msg := fmt.Sprintf("stopped by signal %d (%v)", int(e.Signal), e.Signal)
	if len(e.Killed) > 0 {
		msg += fmt.Sprintf("; killed %s, which had not exited", rankList(e.Killed))
	}
	return msg
}

// ExitCode is the shell's status for the signal: 128 + its number.
func (e *InterruptedError) ExitCode() int { return 128 + int(e.Signal) }

func rankList(ranks []int) string {
	s := make([]string, len(ranks))
	for i, r := range ranks {
		s[i] = strconv.Itoa(r)
	}
	if len(s) == 1 {
		return "rank " + s[0]
	}
	return "ranks " + strings.Join(s, ", ")
}

// Environ is the contract's environment of worker rank in a local job of
// procs workers whose store listens on port.
func Environ(rank, procs, port int) []string {
	return []string{
		"RANK=" + strconv.Itoa(rank),
		"WORLD_SIZE=" + strconv.Itoa(procs),
		"LOCAL_RANK=" + strconv.Itoa(rank),
		"LOCAL_WORLD_SIZE=" + strconv.Itoa(procs),
		"MASTER_ADDR=" + MasterAddr,
		"MASTER_PORT=" + strconv.Itoa(port),
		"TORCHELASTIC_USE_AGENT_STORE=True",
		"TORCHELASTIC_RESTART_COUNT=0",
	}
}

// mergeEnv is base with the variables of over replacing those of the same
// name.
func mergeEnv(base, over []string) []string {
	names := map[string]bool{}
	for _, kv := range over {
		name, _, _ := strings.Cut(kv, "=")
		names[name] = true
	}
	out := make([]string, 0, len(base)+len(over))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if !names[name] {
			out = append(out, kv)
		}
	}
	return append(out, over...)
}

// worker is one started process.
type worker struct {
	rank      int
	cmd       *exec.Cmd
	stderr    *lineCopier
	exited    bool
	signalled bool
}

type exitEvent struct {
	w     *worker
	state *os.ProcessState
}

// Run hosts the store, starts the workers and waits for them. It returns
// nil when every worker exited with status 0, a *WorkerError when one
// failed (the others were stopped), an *InterruptedError when a signal
// from Job.Signals stopped the job, or an error when the job could not
// start.
func Run(job Job) error {
	if job.Procs < 1 {
		return fmt.Errorf("launch: %d workers; want at least 1", job.Procs)
	}
	if job.ServeStore == nil {
		return errors.New("launch: no store")
	}
	grace := job.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	base := job.Env
	if base == nil {
		base = os.Environ()
	}
	store, err := job.ServeStore(MasterAddr, job.Procs)
	if err != nil {
		return fmt.Errorf("starting the job's store: %w", err)
	}
	defer store.Close()

	out := newSyncWriters(job.Stdout, job.Stderr)
	var copiers sync.WaitGroup
	exits := make(chan exitEvent, job.Procs)
	workers := make([]*worker, 0, job.Procs)
	var failure *WorkerError
	var caught syscall.Signal
	var killed []int
	stopping := false
	var graceC <-chan time.Time
	running := 0

	// stop sends sig to every worker still running.
	stop := func(sig syscall.Signal) {
		for _, w := range workers {
			if !w.exited {
				w.signalled = true
				_ = w.cmd.Process.Signal(sig)
			}
		}
	}
	kill := func() {
		for _, w := range workers {
			if !w.exited {
				w.signalled = true
				killed = append(killed, w.rank)
				_ = w.cmd.Process.Kill()
			}
		}
		graceC = nil
	}

	var startErr error
	for rank := 0; rank < job.Procs; rank++ {
		w, err := startWorker(job, rank, mergeEnv(base, Environ(rank, job.Procs, store.Port())), out, &copiers, exits)
		if err != nil {
			startErr = fmt.Errorf("starting rank %d: %w", rank, err)
			break
		}
		workers = append(workers, w)
		running++
	}
	if startErr != nil {
		stopping = true
		stop(syscall.SIGTERM)
		graceC = time.After(grace)
	}

	for running > 0 {
		select {
		case ev := <-exits:
			running--
			ev.w.exited = true
			if ev.state.Success() {
				continue
			}
			if stopping || ev.w.signalled {
				if e := workerError(ev.w.rank, ev.state); failure != nil && e.Signal == 0 &&
					e.ExitCode != 128+int(syscall.SIGTERM) && e.ExitCode != 128+int(syscall.SIGINT) {
					failure.Others = append(failure.Others, e)
				}
				continue
			}
			failure = workerError(ev.w.rank, ev.state)
			stopping = true
			stop(syscall.SIGTERM)
			graceC = time.After(grace)
		case sig := <-job.Signals:
			if stopping {
				kill()
				continue
			}
			s, ok := sig.(syscall.Signal)
			if !ok {
				s = syscall.SIGTERM
			}
			caught = s
			stopping = true
			stop(s)
			graceC = time.After(grace)
		case <-graceC:
			kill()
		}
	}
	// The output of a worker that exited is complete once its pipes close;
	// a process the worker left behind may hold them open, so wait a
	// little only.
	done := make(chan struct{})
	go func() { copiers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	sort.Ints(killed)
	switch {
	case startErr != nil:
		return startErr
	case failure != nil:
		failure.LastLine = workers[failure.Rank].stderr.lastLine()
		for _, o := range failure.Others {
			o.LastLine = workers[o.Rank].stderr.lastLine()
		}
		return failure
	case caught != 0:
		return &InterruptedError{Signal: caught, Killed: killed}
	}
	return nil
}

// startWorker starts rank's process with its output copied to out.
func startWorker(job Job, rank int, env []string, out *syncWriters, copiers *sync.WaitGroup, exits chan<- exitEvent) (*worker, error) {
	cmd := exec.Command(job.Path, job.Args...)
	cmd.Env = env
	cmd.Dir = job.Dir
	// A worker whose launcher dies (even by SIGKILL) is told to stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	w := &worker{rank: rank, cmd: cmd}
	prefix := ""
	if rank > 0 {
		prefix = fmt.Sprintf("rank %d: ", rank)
	}
	var ends []*os.File // both ends of every pipe
	var copies []func()
	closeAll := func() {
		for _, f := range ends {
			f.Close()
		}
	}
	pipe := func(dst io.Writer) (*os.File, *lineCopier, error) {
		r, wr, err := os.Pipe()
		if err != nil {
			return nil, nil, fmt.Errorf("making a pipe for rank %d's output: %w", rank, err)
		}
		ends = append(ends, r, wr)
		c := &lineCopier{out: dst, prefix: prefix, mu: &out.mu}
		copies = append(copies, func() { c.copyFrom(r); r.Close() })
		return wr, c, nil
	}
	if f, ok := job.Stdout.(*os.File); ok && rank == 0 {
		cmd.Stdout = f
	} else {
		wr, _, err := pipe(out.stdout)
		if err != nil {
			closeAll()
			return nil, err
		}
		cmd.Stdout = wr
	}
	wr, stderr, err := pipe(out.stderr)
	if err != nil {
		closeAll()
		return nil, err
	}
	cmd.Stderr = wr
	w.stderr = stderr
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, err
	}
	// The workers hold the write ends now.
	for i := 1; i < len(ends); i += 2 {
		ends[i].Close()
	}
	for _, copyOut := range copies {
		copiers.Add(1)
		go func() { defer copiers.Done(); copyOut() }()
	}
	go func() {
		// Wait's error only restates the status in ProcessState.
		_ = cmd.Wait()
		exits <- exitEvent{w: w, state: cmd.ProcessState}
	}()
	return w, nil
}
