// Command dist measures gradient all-reduce throughput through fertorch's
// torch/dist (c10d's Gloo through the shim) against torch.distributed's
// Gloo from Python (bench/dist/peer.py), on the same libtorch, in the same
// run:
//
//	go run ./bench/dist [-ranks 2] [-rounds 3] [-repeats 2] [-results bench/RESULTS.md]
//	                    [-train-repeats 2] [-train-epochs 3] [-fer build/fer]
//
// Each side runs as -ranks processes on loopback (this program re-executes
// itself as fertorch's ranks) and all-reduces (sum) a VGG16-sized gradient
// (138,357,544 float32, 553 MB): once as one tensor, and once as DDP's
// 25 MiB buckets (parameters in reverse order), which fertorch does with a
// Reducer's Finish and Python with async all_reduce calls on the buckets,
// both filling the buckets and copying the sums into .grad.
// Throughput is the gradient's bytes over the time (algorithm bandwidth).
// The two sides alternate -repeats times; each keeps its best round.
//
// It then measures data-parallel training: the same fer train job as one
// process of 2 threads and as 2 processes of 1 thread (scaling.go).
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/fertorch/fertorch/internal/benchdoc"
	"github.com/fertorch/fertorch/internal/pyref"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/dist"
)

const (
	sectionTitle = "## gradient all-reduce on the CPU (make bench-dist)"
	// roleVar marks a re-executed copy of this program as one of fertorch's
	// ranks; argsVar carries its settings.
	roleVar = "FERTORCH_BENCH_DIST_WORKER"
	argsVar = "FERTORCH_BENCH_DIST_ARGS"
	// bucketBytes is DistributedDataParallel's default bucket size.
	bucketBytes = dist.DefaultBucketBytes
)

// vgg16 is torchvision's VGG16 parameter sizes, in model order.
func vgg16() []int64 {
	var sizes []int64
	in := int64(3)
	for _, out := range []int64{64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512} {
		sizes = append(sizes, out*in*9, out)
		in = out
	}
	return append(sizes, 4096*25088, 4096, 4096*4096, 4096, 1000*4096, 1000)
}

const vgg16Params = 138357544

// timing is one side's best times.
type timing struct {
	one, buckets float64 // seconds
	nbuckets     int
}

func main() {
	var err error
	if os.Getenv(roleVar) != "" {
		err = worker()
	} else {
		err = run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-dist:", err)
		os.Exit(1)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// job runs one side's ranks (argv of each, with its rank's variables) and
// parses rank 0's "result" line.
func job(name string, ranks int, argv func(rank int) []string, extraEnv []string) (timing, error) {
	port, err := freePort()
	if err != nil {
		return timing{}, err
	}
	cmds := make([]*exec.Cmd, ranks)
	outs := make([]*bytes.Buffer, ranks)
	for r := range ranks {
		a := argv(r)
		cmd := exec.Command(a[0], a[1:]...)
		env := dist.Env{Rank: r, WorldSize: ranks, LocalRank: r, LocalWorldSize: ranks, MasterAddr: "127.0.0.1", MasterPort: port}
		cmd.Env = append(append(append(os.Environ(), env.Environ()...), "OMP_NUM_THREADS=1"), extraEnv...)
		outs[r] = &bytes.Buffer{}
		cmd.Stdout = outs[r]
		cmd.Stderr = outs[r]
		if err := cmd.Start(); err != nil {
			return timing{}, fmt.Errorf("%s rank %d: %w", name, r, err)
		}
		cmds[r] = cmd
	}
	var failed error
	for r, cmd := range cmds {
		if err := cmd.Wait(); err != nil && failed == nil {
			failed = fmt.Errorf("%s rank %d: %w\n%s", name, r, err, outs[r].String())
		}
	}
	if failed != nil {
		return timing{}, failed
	}
	s := bufio.NewScanner(outs[0])
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) == 4 && f[0] == "result" {
			one, err1 := strconv.ParseFloat(f[1], 64)
			b, err2 := strconv.ParseFloat(f[2], 64)
			n, err3 := strconv.Atoi(f[3])
			if err1 != nil || err2 != nil || err3 != nil {
				break
			}
			return timing{one: one, buckets: b, nbuckets: n}, nil
		}
	}
	return timing{}, fmt.Errorf("%s rank 0 printed no result:\n%s", name, outs[0].String())
}

func run() error {
	ranks := flag.Int("ranks", 2, "processes per side")
	rounds := flag.Int("rounds", 3, "timed rounds per job (best kept)")
	repeats := flag.Int("repeats", 2, "jobs per side, alternating fertorch and PyTorch")
	results := flag.String("results", "bench/RESULTS.md", "results file whose section to update (\"\": print only)")
	trainRepeats := flag.Int("train-repeats", 2, "training-scaling jobs per setup (0: skip the training measurement)")
	trainEpochs := flag.Int("train-epochs", 3, "epochs of each training-scaling job")
	fer := flag.String("fer", "build/fer", "the fer binary for the training measurement")
	flag.Parse()
	if err := dist.Available(); err != nil {
		return err
	}
	sizes := vgg16()
	var total int64
	for _, n := range sizes {
		total += n
	}
	if total != vgg16Params {
		return fmt.Errorf("VGG16 sizes add up to %d parameters, want %d", total, vgg16Params)
	}
	py, err := pyref.Find("torch")
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	pyArgs := []string{py, "bench/dist/peer.py", strconv.Itoa(*rounds), strconv.Itoa(bucketBytes)}
	for _, n := range sizes {
		pyArgs = append(pyArgs, strconv.FormatInt(n, 10))
	}
	best := map[string]timing{}
	keep := func(name string, t timing) {
		b, ok := best[name]
		if !ok {
			best[name] = t
			return
		}
		b.one, b.buckets, b.nbuckets = min(b.one, t.one), min(b.buckets, t.buckets), t.nbuckets
		best[name] = b
	}
	for i := range *repeats {
		t, err := job("fertorch", *ranks, func(int) []string { return []string{self} },
			[]string{roleVar + "=1", argsVar + "=" + strconv.Itoa(*rounds)})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench-dist: repeat %d: fertorch %.3fs one tensor, %.3fs buckets\n", i+1, t.one, t.buckets)
		keep("fertorch", t)
		// Python's Gloo binds to the host name's address unless told;
		// fertorch binds to the loopback MASTER_ADDR, so give both loopback.
		t, err = job("pytorch", *ranks, func(int) []string { return pyArgs }, []string{"GLOO_SOCKET_IFNAME=lo"})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench-dist: repeat %d: PyTorch %.3fs one tensor, %.3fs buckets\n", i+1, t.one, t.buckets)
		keep("pytorch", t)
	}
	f, p := best["fertorch"], best["pytorch"]
	if f.nbuckets != p.nbuckets {
		return fmt.Errorf("fertorch made %d buckets, the peer %d", f.nbuckets, p.nbuckets)
	}
	gb := float64(total*4) / 1e9
	pyVersion, err := exec.Command(py, "-c", "import torch; print(torch.__version__)").Output()
	if err != nil {
		return fmt.Errorf("python peer version: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", sectionTitle)
	fmt.Fprintf(&b, "Command: `make bench-dist` (`go run ./bench/dist -ranks %d -rounds %d -repeats %d`). Date: %s. Machine: %s, %d cores (shared, and loaded by other work while this ran), %s, libtorch %s for fertorch, PyTorch %s for the peer.\n\n",
		*ranks, *rounds, *repeats, time.Now().UTC().Format("2006-01-02 15:04 UTC"), benchdoc.CPUModel(), runtime.NumCPU(), runtime.Version(), torch.Version(), strings.TrimSpace(string(pyVersion)))
	fmt.Fprintf(&b, "Sum all-reduce of a VGG16-sized gradient (%d float32, %.0f MB) between %d processes on loopback with Gloo: fertorch's torch/dist against torch.distributed from Python (`bench/dist/peer.py`, `GLOO_SOCKET_IFNAME=lo`), alternating %d jobs per side of %d timed rounds each; each side keeps its best round. One tensor: one all-reduce of the whole gradient (`Group.AllReduceSum` / `dist.all_reduce`). Buckets: the gradient in DDP's %d MiB buckets (parameters in reverse order, %d buckets), all launched asynchronously then awaited: fertorch's time is a `Reducer`'s `Finish` with no backward before it, which fills the buckets with zeros (parameters without a gradient), all-reduces them and copies the sums into every parameter's `.grad`; the Python loop does the same three steps with `zero_`, `all_reduce(async_op=True)` and `grad.copy_`. GB/s is the gradient's bytes over the time. A ratio above 1 means fertorch is faster. Two shared cores carry both ranks and Gloo's threads, so absolute figures are far below a real network's and vary between runs.\n\n",
		total, gb*1000, *ranks, *repeats, *rounds, bucketBytes>>20, f.nbuckets)
	fmt.Fprintln(&b, "| all-reduce | fertorch s | fertorch GB/s | PyTorch s | PyTorch GB/s | ratio |")
	fmt.Fprintln(&b, "|---|---:|---:|---:|---:|---:|")
	fmt.Fprintf(&b, "| one tensor | %.3f | %.2f | %.3f | %.2f | %.2f |\n", f.one, gb/f.one, p.one, gb/p.one, p.one/f.one)
	fmt.Fprintf(&b, "| %d MiB buckets | %.3f | %.2f | %.3f | %.2f | %.2f |\n", bucketBytes>>20, f.buckets, gb/f.buckets, p.buckets, gb/p.buckets, p.buckets/f.buckets)
	b.WriteString("\n")
	if err := benchdoc.Publish(*results, sectionTitle, b.String()); err != nil {
		return err
	}
	if *trainRepeats == 0 {
		return nil
	}
	return trainScaling(*fer, *trainRepeats, *trainEpochs, *results)
}

// worker is one of fertorch's ranks.
func worker() error {
	rounds, err := strconv.Atoi(os.Getenv(argsVar))
	if err != nil {
		return fmt.Errorf("%s=%q", argsVar, os.Getenv(argsVar))
	}
	env, ok, err := dist.FromEnv(os.Getenv)
	if err != nil || !ok {
		return fmt.Errorf("worker environment: ok=%v, %v", ok, err)
	}
	if err := torch.SetNumThreads(1); err != nil {
		return err
	}
	g, err := dist.Init(env, dist.Options{Timeout: 5 * time.Minute})
	if err != nil {
		return err
	}
	defer g.Close()
	sizes := vgg16()
	flat, err := torch.Ones([]int64{vgg16Params}, torch.Options{DType: torch.Float32})
	if err != nil {
		return err
	}
	params := make([]*torch.Tensor, len(sizes))
	for i, n := range sizes {
		if params[i], err = torch.Zeros([]int64{n}, torch.Options{DType: torch.Float32}); err != nil {
			return err
		}
		if err := params[i].SetRequiresGrad(true); err != nil {
			return err
		}
	}
	red, err := g.NewReducer(params, bucketBytes)
	if err != nil {
		return err
	}
	defer red.Free()
	one, buckets := 1e9, 1e9
	for range rounds {
		if err := g.Barrier(); err != nil {
			return err
		}
		start := time.Now()
		if err := g.AllReduceSum([]*torch.Tensor{flat}); err != nil {
			return err
		}
		one = min(one, time.Since(start).Seconds())
		if err := g.Barrier(); err != nil {
			return err
		}
		start = time.Now()
		if err := red.Prepare(); err != nil {
			return err
		}
		if err := red.Finish(); err != nil {
			return err
		}
		buckets = min(buckets, time.Since(start).Seconds())
	}
	first, err := flat.Narrow(0, 0, 1)
	if err != nil {
		return err
	}
	v, err := first.Float32s()
	if err != nil {
		return err
	}
	want := 1.0
	for range rounds {
		want *= float64(env.WorldSize)
	}
	if float64(v[0]) != want {
		return fmt.Errorf("all_reduce gave %v, want %v", v[0], want)
	}
	if err := g.Barrier(); err != nil {
		return err
	}
	if env.Rank == 0 {
		fmt.Printf("result %g %g %d\n", one, buckets, red.Buckets())
	}
	return nil
}
