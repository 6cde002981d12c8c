package dist_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fertorch/fertorch/torch/dist"
)

// The multi-process tests re-execute the test binary as a job's workers:
// each worker runs the same test function with workerVar set to the test's
// name (and caseVar to a scenario), finds its rank in torchrun's variables
// and runs the worker half of the test, reporting failures through its exit
// status and output.
const (
	workerVar = "FERTORCH_DIST_TEST_WORKER"
	caseVar   = "FERTORCH_DIST_TEST_CASE"
)

// worker is this process's role: the scenario and its Env when it is a
// worker of the running test, else ok is false.
func worker(t *testing.T) (scenario string, env dist.Env, ok bool) {
	t.Helper()
	if os.Getenv(workerVar) != t.Name() {
		return "", dist.Env{}, false
	}
	env, ok, err := dist.FromEnv(os.Getenv)
	if err != nil || !ok {
		t.Fatalf("worker: FromEnv: ok=%v err=%v", ok, err)
	}
	return os.Getenv(caseVar), env, true
}

// needDist skips the test when the shim has no c10d.
func needDist(t *testing.T) {
	t.Helper()
	if err := dist.Available(); err != nil {
		t.Skip(err)
	}
}

// freePort is a TCP port of 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// result is how one worker ended.
type result struct {
	rank    int
	err     error
	out     string
	elapsed time.Duration
}

// jobVars are the variables of the contract, which workers get only from
// the job.
var jobVars = []string{"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
	"TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT", "GLOO_SOCKET_IFNAME", workerVar, caseVar}

// runJob runs the test as n workers of scenario, with each rank's Env from
// envOf, and waits for them all (at most limit).
func runJob(t *testing.T, scenario string, n int, envOf func(rank int) dist.Env, limit time.Duration) []result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	base := os.Environ()[:0:0]
	for _, kv := range os.Environ() {
		keep := true
		for _, v := range jobVars {
			keep = keep && !strings.HasPrefix(kv, v+"=")
		}
		if keep {
			base = append(base, kv)
		}
	}
	type proc struct {
		cmd   *exec.Cmd
		out   *bytes.Buffer
		start time.Time
	}
	procs := make([]proc, n)
	for r := 0; r < n; r++ {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
		env := append([]string{}, base...)
		env = append(env, envOf(r).Environ()...)
		cmd.Env = append(env, workerVar+"="+t.Name(), caseVar+"="+scenario)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting rank %d: %v", r, err)
		}
		procs[r] = proc{cmd: cmd, out: &out, start: time.Now()}
	}
	res := make([]result, n)
	for r, p := range procs {
		err := p.cmd.Wait()
		res[r] = result{rank: r, err: err, out: p.out.String(), elapsed: time.Since(p.start)}
	}
	if ctx.Err() != nil {
		t.Fatalf("%s: the job did not end within %s:\n%s", scenario, limit, describe(res))
	}
	return res
}

// localEnv is rank r's Env for a job of n ranks on this machine whose store
// rank 0 hosts on port.
func localEnv(n, port int) func(r int) dist.Env {
	return func(r int) dist.Env {
		return dist.Env{Rank: r, WorldSize: n, LocalRank: r, LocalWorldSize: n, MasterAddr: "127.0.0.1", MasterPort: port}
	}
}

func describe(res []result) string {
	var b strings.Builder
	for _, r := range res {
		fmt.Fprintf(&b, "---- rank %d (%v, %s):\n%s\n", r.rank, r.err, r.elapsed.Round(time.Millisecond), r.out)
	}
	return b.String()
}

// mustPass fails the test unless every worker passed.
func mustPass(t *testing.T, scenario string, res []result) {
	t.Helper()
	for _, r := range res {
		if r.err != nil {
			t.Fatalf("%s: rank %d failed:\n%s", scenario, r.rank, describe(res))
		}
	}
}

// report prints a line that the test's parent reads back (see reported).
func report(key string, value any) { fmt.Printf("REPORT %s=%v\n", key, value) }

// reported is the value a worker reported for key, or "".
func reported(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "REPORT "+key+"="); ok {
			return v
		}
	}
	return ""
}

// reportedDuration is a duration a worker reported for key.
func reportedDuration(t *testing.T, r result, key string) time.Duration {
	t.Helper()
	v := reported(r.out, key)
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("rank %d reported %s=%q:\n%s", r.rank, key, v, r.out)
	}
	return time.Duration(ms) * time.Millisecond
}
