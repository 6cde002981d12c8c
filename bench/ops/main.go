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
	"strconv"
	"strings"
	"time"

	"github.com/fertorch/fertorch/internal/pyref"
	"github.com/fertorch/fertorch/torch"
)

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
	fmt.Printf("per-op overhead, %d calls, best of 3, 1 libtorch thread, libtorch %s\n\n", *n, torch.Version())
	fmt.Println("| op | PyTorch (Python) ns/op | fertorch unscoped ns/op | ratio | fertorch in a scope ns/op | ratio |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for i, o := range ops {
		p, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return err
		}
		fmt.Printf("| %s | %.0f | %.0f | %.2f | %.0f | %.2f |\n", o.name, p, unscoped[i], unscoped[i]/p, scoped[i], scoped[i]/p)
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-ops:", err)
		os.Exit(1)
	}
}
