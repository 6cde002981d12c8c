// Command ops measures the per-operation overhead of fertorch's Go API: a
// small op called many times through Go, cgo and the shim, against the same
// loop in PyTorch's Python API on the same libtorch, in the same run.
//
//	go run ./bench/ops [-n 100000]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/fertorch/fertorch/internal/benchdoc"
	"github.com/fertorch/fertorch/internal/pyref"
	"github.com/fertorch/fertorch/torch"
)

const sectionTitle = "## per-op overhead (make bench-ops)"

const pythonLoop = `
import sys, time, torch
torch.set_num_threads(1)
n = int(sys.argv[1])
x = torch.rand(8); y = torch.rand(8)
w = torch.rand(4, 8)
def bench(f):
    for _ in range(n // 10): f()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n): f()
        best = min(best, time.perf_counter() - t)
    return best / n * 1e9
print(bench(lambda: x + y), bench(lambda: torch.relu(x)), bench(lambda: torch.nn.functional.linear(x, w)))
`

func bench(n int, f func() error) (float64, error) {
	for i := 0; i < n/10; i++ {
		if err := f(); err != nil {
			return 0, err
		}
	}
	best := time.Duration(1 << 62)
	for r := 0; r < 3; r++ {
		start := time.Now()
		for i := 0; i < n; i++ {
			if err := f(); err != nil {
				return 0, err
			}
		}
		best = min(best, time.Since(start))
	}
	return float64(best.Nanoseconds()) / float64(n), nil
}

func run() error {
	n := flag.Int("n", 100000, "calls per measurement (best of 3)")
	results := flag.String("results", "bench/RESULTS.md", "results file whose section to update (\"\": print only)")
	flag.Parse()
	if err := torch.SetNumThreads(1); err != nil {
		return err
	}
	x, err := torch.Rand([]int64{8}, torch.Options{})
	if err != nil {
		return err
	}
	y, _ := torch.Rand([]int64{8}, torch.Options{})
	w, _ := torch.Rand([]int64{4, 8}, torch.Options{})
	// xs is x, or a handle to it owned by the current step scope.
	xs := x
	type op struct {
		name string
		f    func() (*torch.Tensor, error)
	}
	ops := []op{
		{"add [8]+[8]", func() (*torch.Tensor, error) { return xs.Add(y) }},
		{"relu [8]", func() (*torch.Tensor, error) { return xs.Relu() }},
		{"linear [8]x[4,8]", func() (*torch.Tensor, error) { return xs.Linear(w, nil) }},
	}
	// Unscoped: each result carries a cleanup and is freed explicitly.
	// Scoped: results join a scope closed every 64 calls, as in a training
	// step; this is how fertorch's own loops run.
	unscoped := make([]float64, len(ops))
	scoped := make([]float64, len(ops))
	for i, o := range ops {
		ns, err := bench(*n, func() error {
			r, err := o.f()
			r.Free()
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
		unscoped[i] = ns
		var scope *torch.Scope
		newStep := func() error {
			scope = torch.NewScope()
			xs, err = scope.Own(x.Share())
			return err
		}
		if err := newStep(); err != nil {
			return err
		}
		calls := 0
		ns, err = bench(*n, func() error {
			if _, err := o.f(); err != nil {
				return err
			}
			if calls++; calls%64 == 0 {
				scope.Close()
				return newStep()
			}
			return nil
		})
		scope.Close()
		xs = x
		if err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
		scoped[i] = ns
	}
	py, err := pyref.Find("torch")
	if err != nil {
		return err
	}
	out, err := exec.Command(py, "-c", pythonLoop, strconv.Itoa(*n)).Output()
	if err != nil {
		return fmt.Errorf("python peer: %w", err)
	}
	fields := strings.Fields(string(out))
	if len(fields) != len(ops) {
		return fmt.Errorf("python peer printed %q", out)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", sectionTitle)
	fmt.Fprintf(&b, "Command: `make bench-ops` (`go run ./bench/ops`). Date: %s. Machine: %s, %d cores (shared), %s, libtorch %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), benchdoc.CPUModel(), runtime.NumCPU(), runtime.Version(), torch.Version())
	fmt.Fprintf(&b, "A small op called %d times in a loop (best of 3 loops, 1 libtorch thread), through fertorch's Go API (cgo, the C shim, handle bookkeeping) and through PyTorch's Python API, on the same libtorch. Unscoped: each result carries a cleanup and is freed explicitly. In a scope: results join a step scope closed every 64 calls, as fertorch's training loop runs. A ratio below 1 means fertorch's call is cheaper.\n\n", *n)
	fmt.Fprintln(&b, "| op | PyTorch (Python) ns/op | fertorch unscoped ns/op | ratio | fertorch in a scope ns/op | ratio |")
	fmt.Fprintln(&b, "|---|---:|---:|---:|---:|---:|")
	for i, o := range ops {
		p, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.2f | %.0f | %.2f |\n", o.name, p, unscoped[i], unscoped[i]/p, scoped[i], scoped[i]/p)
	}
	b.WriteString("\n")
	return benchdoc.Publish(*results, sectionTitle, b.String())
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-ops:", err)
		os.Exit(1)
	}
}
