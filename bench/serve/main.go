// Command serve measures `fer serve` under load on loopback, with and
// without dynamic batching, against a minimal Python peer (Flask +
// PyTorch, bench/serve/peer.py) serving the same checkpoint with the same
// threads, in the same run:
//
//	go run ./bench/serve [-size 64] [-seconds 5] [-max-requests 3000] [-concurrency 1,4,16]
//
// Each server gets, at each concurrency, that many clients posting the same
// face image back to back for a fixed time (or request count, whichever
// comes first); images/s and the p50/p99 latency are measured on the
// client side. The resident memory of the batching server is read after
// each concurrency level, to show that it does not grow.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fertorch/fertorch/internal/benchdoc"
	"github.com/fertorch/fertorch/internal/pyref"
	"github.com/fertorch/fertorch/internal/testmodel"
)

const sectionTitle = "## model serving on the CPU (make bench-serve)"

// load is one load test's outcome.
type load struct {
	images   int
	failed   int
	seconds  float64
	p50, p99 time.Duration
}

func (l load) rate() float64 { return float64(l.images) / l.seconds }

// hammer sends the image from conc clients for at most d or maxRequests.
func hammer(url string, img []byte, conc int, d time.Duration, maxRequests int) load {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}, Timeout: 60 * time.Second}
	var sent atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var failed int
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for c := 0; c < conc; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && sent.Add(1) <= int64(maxRequests) {
				t0 := time.Now()
				resp, err := client.Post(url, "image/png", bytes.NewReader(img))
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				el := time.Since(t0)
				mu.Lock()
				if ok {
					lat = append(lat, el)
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	l := load{images: len(lat), failed: failed, seconds: secs}
	if len(lat) > 0 {
		l.p50 = lat[len(lat)/2]
		l.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return l
}

// server is a running server process.
type server struct {
	name string
	cmd  *exec.Cmd
	url  string
	log  bytes.Buffer
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// rssMiB is the process's resident memory.
func (s *server) rssMiB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// startFer starts `fer serve` on a free port and waits for its address.
func startFer(fer, ckpt string, threads int, extra ...string) (*server, error) {
	args := append([]string{"serve", "--checkpoint", ckpt, "--addr", "127.0.0.1:0", "--device", "cpu", "--threads", strconv.Itoa(threads), "--queue", "256"}, extra...)
	s := &server{cmd: exec.Command(fer, args...)}
	s.cmd.Stderr = io.Discard
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		s.stop()
		return nil, fmt.Errorf("fer serve %v did not start", args)
	}
	_, rest, ok := strings.Cut(sc.Text(), " at http://")
	addr, _, _ := strings.Cut(rest, "/")
	if !ok {
		s.stop()
		return nil, fmt.Errorf("fer serve said %q", sc.Text())
	}
	go io.Copy(io.Discard, out)
	s.url = "http://" + addr + "/v1/predict"
	return s, nil
}

// startPeer starts the Flask peer and waits until it answers.
func startPeer(py, ckpt string, threads int) (*server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &server{cmd: exec.Command(py, "bench/serve/peer.py", ckpt, strconv.Itoa(port), strconv.Itoa(threads))}
	s.cmd.Env = append(os.Environ(), "OMP_NUM_THREADS="+strconv.Itoa(threads))
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	s.url = fmt.Sprintf("http://127.0.0.1:%d/v1/predict", port)
	for i := 0; i < 600; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return s, nil
		}
		if s.cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("python peer did not start:\n%s", s.log.String())
}

// liveTensors reads fer_live_tensors from a fer serve's /metrics.
func liveTensors(base string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "fer_live_tensors "); ok {
			return v
		}
	}
	return "?"
}

func run() error {
	size := flag.Int("size", 64, "input size of the served vgg16_bn")
	seconds := flag.Float64("seconds", 5, "seconds per load test")
	maxRequests := flag.Int("max-requests", 3000, "most requests per load test")
	concList := flag.String("concurrency", "1,4,16", "client counts")
	threads := flag.Int("threads", runtime.NumCPU(), "libtorch threads on both sides")
	results := flag.String("results", "bench/RESULTS.md", "results file whose section to update (\"\": print only)")
	flag.Parse()
	var concs []int
	for _, f := range strings.Split(*concList, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			return fmt.Errorf("-concurrency %q: want positive numbers", *concList)
		}
		concs = append(concs, c)
	}
	fer, err := filepath.Abs("build/fer")
	if err != nil {
		return err
	}
	if _, err := os.Stat(fer); err != nil {
		return fmt.Errorf("%s missing: run make build first", fer)
	}
	py, err := pyref.Find("torch", "torchvision", "flask", "PIL")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "bench-serve-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ckpt := filepath.Join(tmp, "model.safetensors")
	if _, err := testmodel.Checkpoint(ckpt, testmodel.Options{InputSize: *size}); err != nil {
		return err
	}
	var img bytes.Buffer
	if err := png.Encode(&img, testmodel.Face(96, 112, 0.8, 3)); err != nil {
		return err
	}
	d := time.Duration(*seconds * float64(time.Second))

	type row struct {
		conc                 int
		batched, plain, peer load
	}
	rows := make([]row, len(concs))
	var rss []float64
	var live []string
	track := func(s *server) {
		rss = append(rss, s.rssMiB())
		live = append(live, liveTensors(strings.TrimSuffix(s.url, "/v1/predict")))
	}
	measure := func(s *server, pick func(*row) *load, trackRSS bool) {
		hammer(s.url, img.Bytes(), 1, 500*time.Millisecond, 20) // warm the connection and caches
		if trackRSS {
			track(s)
		}
		for i, c := range concs {
			rows[i].conc = c
			*pick(&rows[i]) = hammer(s.url, img.Bytes(), c, d, *maxRequests)
			l := *pick(&rows[i])
			fmt.Printf("  %s, %d clients: %.1f images/s, p50 %v, p99 %v, %d failed\n", s.name, c, l.rate(), l.p50, l.p99, l.failed)
			if trackRSS {
				track(s)
			}
		}
		if trackRSS { // the heaviest load once more: memory should stay put
			last := concs[len(concs)-1]
			hammer(s.url, img.Bytes(), last, d, *maxRequests)
			track(s)
		}
	}
	for _, mode := range []struct {
		name  string
		extra []string
		pick  func(*row) *load
	}{
		{"fer serve, batching", []string{"--max-batch", "16", "--max-wait", "2"}, func(r *row) *load { return &r.batched }},
		{"fer serve, no batching", []string{"--max-batch", "1"}, func(r *row) *load { return &r.plain }},
	} {
		s, err := startFer(fer, ckpt, *threads, mode.extra...)
		if err != nil {
			return err
		}
		s.name = mode.name
		measure(s, mode.pick, mode.name == "fer serve, batching")
		s.stop()
	}
	peer, err := startPeer(py, ckpt, *threads)
	if err != nil {
		return err
	}
	peer.name = "Flask + PyTorch"
	measure(peer, func(r *row) *load { return &r.peer }, false)
	peer.stop()

	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", sectionTitle)
	provenance, err := benchdoc.Provenance(fer)
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "Command: `make bench-serve` (`go run ./bench/serve -size %d -seconds %g -max-requests %d -concurrency %s`). %s\n\n",
		*size, *seconds, *maxRequests, *concList, provenance)
	fmt.Fprintf(&b, "One vgg16_bn checkpoint with the gap head at %dx%d (random weights: speed does not depend on them), served on loopback with %d libtorch threads by `fer serve` with dynamic batching (`--max-batch 16 --max-wait 2`), by `fer serve --max-batch 1` (one forward pass per image), and by `bench/serve/peer.py` (Flask's threaded server + PyTorch, one forward pass per request under inference_mode). N clients post the same %d-byte PNG back to back for %g s or %d requests; images/s and latency are the clients'. Ratio: fer serve with batching / the Python peer.\n\n",
		*size, *size, *threads, img.Len(), *seconds, *maxRequests)
	fmt.Fprintln(&b, "| clients | fer serve, batching: images/s, p50, p99 | fer serve, no batching: images/s, p50, p99 | Flask + PyTorch: images/s, p50, p99 | ratio batching/peer | ratio no batching/peer |")
	fmt.Fprintln(&b, "|---:|---:|---:|---:|---:|---:|")
	cell := func(l load) string {
		s := fmt.Sprintf("%.1f, %.1f ms, %.1f ms", l.rate(), float64(l.p50.Microseconds())/1000, float64(l.p99.Microseconds())/1000)
		if l.failed > 0 {
			s += fmt.Sprintf(" (%d failed)", l.failed)
		}
		return s
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %.2f | %.2f |\n", r.conc, cell(r.batched), cell(r.plain), cell(r.peer), r.batched.rate()/r.peer.rate(), r.plain.rate()/r.peer.rate())
	}
	parts := make([]string, len(rss))
	for i, v := range rss {
		parts[i] = fmt.Sprintf("%.0f", v)
	}
	fmt.Fprintf(&b, "\nThe batching fer serve after warm-up, after each row, and after the last row's load once more: resident memory %s MiB; libtorch tensors alive (`fer_live_tensors`) %s.\n\n", strings.Join(parts, ", "), strings.Join(live, ", "))
	return benchdoc.Publish(*results, sectionTitle, b.String())
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-serve:", err)
		os.Exit(1)
	}
}
