package dist_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/dist"
)

// The failure tests use a short timeout and check that the error comes
// within it (plus slack for this loaded machine), never a hang.
const (
	shortTimeout = 2 * time.Second
	slack        = 8 * time.Second
)

func TestOneRank(t *testing.T) {
	needDist(t)
	// A job of one rank hosts its store on a free port.
	g, err := dist.Init(dist.Env{WorldSize: 1, LocalWorldSize: 1, MasterAddr: "127.0.0.1"}, dist.Options{Timeout: shortTimeout})
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	defer g.Close()
	if g.Timeout() != shortTimeout || g.Device() != torch.CPU() {
		t.Errorf("group timeout %s device %s, want %s cpu", g.Timeout(), g.Device(), shortTimeout)
	}
	x := f32(t, []float32{1.5, -2}, 2)
	if err := g.AllReduceSum([]*torch.Tensor{x}); err != nil {
		t.Fatal(err)
	}
	expect(t, "all_reduce on one rank", values(t, x), []float32{1.5, -2})
	if err := g.Barrier(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Barrier(); err == nil || err.Error() != "dist: barrier: the group is closed" {
		t.Errorf("Barrier after Close: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// timedOut checks that err is a timeout of op on rank after shortTimeout.
func timedOut(t *testing.T, err error, op string, rank int, rest string) {
	t.Helper()
	t.Logf("error: %v", err)
	var de *dist.Error
	if !errors.As(err, &de) || !de.TimedOut || de.Op != op || de.Rank != rank || de.Timeout != shortTimeout {
		t.Fatalf("got %v (%#v), want a timeout of %s on rank %d after %s", err, de, op, rank, shortTimeout)
	}
	prefix := fmt.Sprintf("dist: %s on rank %d timed out after 2s (is another rank gone or stuck?): %s", op, rank, rest)
	if !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("error %q\ndoes not start with %q", err, prefix)
	}
}

func TestInitErrors(t *testing.T) {
	needDist(t)
	t.Run("closed port", func(t *testing.T) {
		port := freePort(t)
		start := time.Now()
		_, err := dist.Init(dist.Env{Rank: 1, WorldSize: 2, MasterAddr: "127.0.0.1", MasterPort: port}, dist.Options{Timeout: shortTimeout})
		elapsed := time.Since(start)
		timedOut(t, err, "init", 1, fmt.Sprintf("connecting to the store at 127.0.0.1:%d: ", port))
		if elapsed > shortTimeout+slack {
			t.Errorf("the error came after %s", elapsed)
		}
	})
	t.Run("unreachable address", func(t *testing.T) {
		// 10.255.255.1 answers nothing (or has no route): either way a clear
		// error within the timeout. Some sandboxes accept every outbound
		// connection; there the error comes from talking to whatever
		// answered, and only its promptness is checked.
		intercepted := false
		if c, err := net.DialTimeout("tcp", "10.255.255.1:29500", time.Second); err == nil {
			c.Close()
			intercepted = true
		}
		start := time.Now()
		_, err := dist.Init(dist.Env{Rank: 1, WorldSize: 2, MasterAddr: "10.255.255.1", MasterPort: 29500}, dist.Options{Timeout: shortTimeout})
		elapsed := time.Since(start)
		t.Logf("error after %s: %v", elapsed.Round(time.Millisecond), err)
		var de *dist.Error
		if !errors.As(err, &de) || de.Op != "init" || de.Rank != 1 {
			t.Fatalf("got %v, want an init error on rank 1", err)
		}
		if !intercepted && !strings.Contains(err.Error(), "connecting to the store at 10.255.255.1:29500: ") {
			t.Errorf("error %q does not name the store's address", err)
		}
		if elapsed > shortTimeout+slack {
			t.Errorf("the error came after %s", elapsed)
		}
	})
	t.Run("no other rank comes", func(t *testing.T) {
		port := freePort(t)
		start := time.Now()
		_, err := dist.Init(dist.Env{Rank: 0, WorldSize: 2, MasterAddr: "127.0.0.1", MasterPort: port}, dist.Options{Timeout: shortTimeout})
		elapsed := time.Since(start)
		timedOut(t, err, "init", 0, fmt.Sprintf("waiting at the store 127.0.0.1:%d for every rank: 1 of 2 ranks joined", port))
		if elapsed > shortTimeout+slack {
			t.Errorf("the error came after %s", elapsed)
		}
	})
	t.Run("port in use", func(t *testing.T) {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		port := l.Addr().(*net.TCPAddr).Port
		_, err = dist.Init(dist.Env{Rank: 0, WorldSize: 1, MasterAddr: "127.0.0.1", MasterPort: port}, dist.Options{Timeout: shortTimeout})
		t.Logf("error: %v", err)
		prefix := fmt.Sprintf("dist: init on rank 0: hosting the store on port %d: ", port)
		if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), "Address already in use") {
			t.Errorf("got %v, want %q... Address already in use", err, prefix)
		}
		_, err = dist.ServeStore("127.0.0.1", port, 2, shortTimeout)
		prefix = fmt.Sprintf("dist: serve_store: hosting the store on port %d: ", port)
		if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), "Address already in use") {
			t.Errorf("ServeStore: got %v, want %q... Address already in use", err, prefix)
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		for _, c := range []struct {
			env  dist.Env
			opts dist.Options
			want string
		}{
			{dist.Env{Rank: 2, WorldSize: 2, MasterAddr: "h", MasterPort: 1}, dist.Options{}, "dist: init on rank 2: rank 2 out of range for world size 2"},
			{dist.Env{Rank: 0, WorldSize: 0, MasterAddr: "h", MasterPort: 1}, dist.Options{}, "dist: init on rank 0: world size 0 < 1"},
			{dist.Env{Rank: 1, WorldSize: 2, MasterPort: 1}, dist.Options{}, "dist: init on rank 1: no master address"},
			{dist.Env{Rank: 1, WorldSize: 2, MasterAddr: "h"}, dist.Options{}, "dist: init on rank 1: no master port (only a job of one rank that hosts its store may pick a free one)"},
			{dist.Env{Rank: 0, WorldSize: 1, MasterAddr: "h", MasterPort: 1}, dist.Options{Timeout: -time.Second}, "dist: init on rank 0: timeout -1s is not positive"},
		} {
			if _, err := dist.Init(c.env, c.opts); err == nil || err.Error() != c.want {
				t.Errorf("Init(%+v, %+v) = %v, want %q", c.env, c.opts, err, c.want)
			}
		}
		if _, err := dist.ServeStore("127.0.0.1", 0, 0, time.Second); err == nil || err.Error() != "dist: serve_store: world size 0 < 1" {
			t.Errorf("ServeStore of 0 ranks: %v", err)
		}
	})
	if torch.BuiltWithCUDA() {
		return
	}
	t.Run("CUDA without NCCL", func(t *testing.T) {
		_, err := dist.Init(dist.Env{WorldSize: 1, MasterAddr: "127.0.0.1"}, dist.Options{Timeout: shortTimeout, Device: torch.CUDA(0)})
		want := "dist: init on rank 0: this shim was built without NCCL (a CUDA libtorch and nccl.h are needed), so it cannot run a CUDA group"
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
	})
}

// TestPeerGone: a rank whose peer has exited, or hangs, gets an error within
// the timeout instead of waiting forever.
func TestPeerGone(t *testing.T) {
	if scenario, env, ok := worker(t); ok {
		peerGoneWorker(t, scenario, env)
		return
	}
	needDist(t)
	for _, scenario := range []string{"exits", "hangs"} {
		res := runJob(t, scenario, 2, localEnv(2, freePort(t)), time.Minute)
		mustPass(t, scenario, res)
		if got := reported(res[0].out, "error"); got == "" {
			t.Fatalf("%s: rank 0 reported no error:\n%s", scenario, describe(res))
		}
		t.Logf("%s: rank 0: %s", scenario, reported(res[0].out, "error"))
		if d := reportedDuration(t, res[0], "elapsed_ms"); d > shortTimeout+slack {
			t.Errorf("%s: rank 0's all_reduce failed after %s, want within %s", scenario, d, shortTimeout+slack)
		}
		if d := reportedDuration(t, res[0], "close_ms"); d > shortTimeout+slack {
			t.Errorf("%s: rank 0's Close took %s", scenario, d)
		}
	}
}

func peerGoneWorker(t *testing.T, scenario string, env dist.Env) {
	g := join(t, env, shortTimeout)
	if err := g.Barrier(); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if env.Rank == 1 {
		switch scenario {
		case "exits":
			os.Exit(0)
		case "hangs":
			time.Sleep(shortTimeout + slack + time.Second)
			os.Exit(0)
		}
	}
	x := f32(t, []float32{1, 2, 3}, 3)
	start := time.Now()
	err := g.AllReduceSum([]*torch.Tensor{x})
	report("elapsed_ms", strconv.FormatInt(time.Since(start).Milliseconds(), 10))
	report("error", err)
	switch scenario {
	case "hangs":
		timedOut(t, err, "all_reduce", 0, "")
	case "exits":
		// Gloo sees the closed connection at once, or the timeout expires.
		var de *dist.Error
		if !errors.As(err, &de) || de.Op != "all_reduce" || de.Rank != 0 {
			t.Fatalf("got %v, want an all_reduce error on rank 0", err)
		}
		if !de.TimedOut && !strings.HasPrefix(err.Error(), "dist: all_reduce on rank 0 failed (is another rank gone?): ") {
			t.Errorf("error %q names no timeout nor a gone peer", err)
		}
	}
	start = time.Now()
	g.Close()
	report("close_ms", strconv.FormatInt(time.Since(start).Milliseconds(), 10))
}

// TestAgentStore: workers connect to a store the test process hosts (as fer
// --nproc-per-node and torchrun do), and restart attempts keep apart.
func TestAgentStore(t *testing.T) {
	if scenario, env, ok := worker(t); ok {
		agentWorker(t, scenario, env)
		return
	}
	needDist(t)
	store, err := dist.ServeStore("127.0.0.1", 0, 3, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if store.Port() <= 0 {
		t.Fatalf("store port %d", store.Port())
	}
	for attempt := range 2 {
		res := runJob(t, "agent", 3, func(r int) dist.Env {
			return dist.Env{Rank: r, WorldSize: 3, LocalRank: r, LocalWorldSize: 3, MasterAddr: "127.0.0.1", MasterPort: store.Port(),
				UseAgentStore: true, RestartCount: attempt}
		}, time.Minute)
		mustPass(t, fmt.Sprintf("attempt %d", attempt), res)
		for _, r := range res {
			if got := reported(r.out, "sum"); got != "[3 6]" {
				t.Errorf("attempt %d: rank %d reported sum %q, want [3 6]:\n%s", attempt, r.rank, got, r.out)
			}
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func agentWorker(t *testing.T, _ string, env dist.Env) {
	if !env.UseAgentStore {
		t.Fatal("the worker does not use the agent store")
	}
	g := join(t, env, 20*time.Second)
	defer g.Close()
	x := f32(t, []float32{float32(env.Rank), 2 * float32(env.Rank)}, 2)
	if err := g.AllReduceSum([]*torch.Tensor{x}); err != nil {
		t.Fatal(err)
	}
	report("sum", values(t, x))
}

// TestAvailable: a shim built without c10d says so, the same way, from every
// entry point; one built with it runs a job of one rank.
func TestAvailable(t *testing.T) {
	err := dist.Available()
	if err == nil {
		return // the other tests exercise it
	}
	const prefix = "dist: this libtorch was built without distributed support (c10d/Gloo): "
	if !strings.HasPrefix(err.Error(), prefix) || len(err.Error()) == len(prefix) {
		t.Fatalf("Available() = %q, want %q and the reason", err, prefix)
	}
	t.Logf("unavailable: %v", err)
	if _, ierr := dist.Init(dist.Env{WorldSize: 1, MasterAddr: "127.0.0.1"}, dist.Options{}); ierr == nil || ierr.Error() != err.Error() {
		t.Errorf("Init: %v, want %v", ierr, err)
	}
	if _, serr := dist.ServeStore("127.0.0.1", 0, 1, time.Second); serr == nil || serr.Error() != err.Error() {
		t.Errorf("ServeStore: %v, want %v", serr, err)
	}
}
