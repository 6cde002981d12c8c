// Command weights measures how fast fertorch loads a VGG16 weight file the
// size of torchvision's official vgg16-397923af.pth (a torchvision VGG16
// state dict with random weights, 138M float32 parameters, written by
// PyTorch in the legacy format that the official file uses, and in the zip
// format), against reading the same file's bytes and against torch.load in
// the same run. Results go to the "weight loading" section of
// bench/RESULTS.md.
//
//	go run ./bench/weights [-rounds 3] [-dir /tmp] [-formats legacy,zip] [-results bench/RESULTS.md]
package main

import (
	"errors"
	"flag"
	"fmt"
	"github.com/fertorch/fertorch/internal/benchdoc"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/fertorch/fertorch/internal/pyref"
	"github.com/fertorch/fertorch/torch/tensorfile"
)

const sectionTitle = "## weight loading (make bench-weights)"

// peerScript writes the files, then times torch.load on request.
const peerScript = `
import gc, sys, time, torch, torchvision
torch.manual_seed(0)
sd = torchvision.models.vgg16().state_dict()
numel = sum(t.numel() for t in sd.values())
torch.save(sd, sys.argv[1], _use_new_zipfile_serialization=False)
torch.save(sd, sys.argv[2])
del sd
gc.collect()
print("ready", numel, flush=True)
for line in sys.stdin:
    path, weights_only = line.split()
    start = time.perf_counter()
    sd = torch.load(path, weights_only=(weights_only == "1"))
    elapsed = time.perf_counter() - start
    n = sum(t.numel() for t in sd.values())
    del sd
    gc.collect()
    print(elapsed, n, flush=True)
`

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-weights:", err)
		os.Exit(1)
	}
}

// method is one way of loading the file.
type method struct {
	name string
	load func(path string) (time.Duration, error)
}

// result holds a method's best times.
type result struct {
	cold, warm time.Duration
}

func run() error {
	rounds := flag.Int("rounds", 3, "interleaved rounds; each method keeps its best time")
	dir := flag.String("dir", "", "directory for the generated files (default: the system temp directory)")
	formats := flag.String("formats", "legacy,zip", "file formats to measure")
	results := flag.String("results", filepath.Join("bench", "RESULTS.md"), "results file whose weight-loading section is rewritten (empty: print only)")
	flag.Parse()

	py, err := pyref.Find("torch", "torchvision")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(*dir, "bench-weights")
	if err != nil {
		return err
	}
	// The files are large: remove them on every way out, Ctrl-C included.
	defer os.RemoveAll(tmp)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	go func() {
		<-sig
		os.RemoveAll(tmp)
		os.Exit(130)
	}()

	files := map[string]string{"legacy": filepath.Join(tmp, "vgg16-legacy.pth"), "zip": filepath.Join(tmp, "vgg16-zip.pth")}
	script := filepath.Join(tmp, "peer.py")
	if err := os.WriteFile(script, []byte(peerScript), 0o644); err != nil {
		return err
	}
	fmt.Println("generating a torchvision VGG16 state dict with random weights (legacy and zip formats)...")
	peer, err := startPeer(py, script, files["legacy"], files["zip"])
	if err != nil {
		return err
	}
	defer peer.Close()

	methods := []method{
		{"raw read (one buffer, io.ReadFull)", rawRead},
		{"fertorch tensorfile.ReadPTHFile", func(path string) (time.Duration, error) {
			return goLoad(path, peer.numel)
		}},
		{"torch.load", func(path string) (time.Duration, error) { return peer.load(path, false) }},
		{"torch.load(weights_only=True)", func(path string) (time.Duration, error) { return peer.load(path, true) }},
	}

	var (
		sections []string
		allocs   = map[string]float64{}
		resident = map[string][]float64{}
	)
	for _, format := range strings.Split(*formats, ",") {
		path, ok := files[format]
		if !ok {
			return fmt.Errorf("unknown format %q (want legacy or zip)", format)
		}
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		size := st.Size()
		fmt.Printf("\n%s format: %s, %.1f MB\n", format, path, float64(size)/1e6)
		allocs[format], err = allocPerByte(path, size)
		if err != nil {
			return err
		}
		best := make([]result, len(methods))
		for r := 0; r < *rounds; r++ {
			for i, m := range methods {
				// Cold-ish: the file's pages dropped from the page cache first.
				frac, err := evict(path)
				if err != nil {
					return err
				}
				resident[format] = append(resident[format], frac)
				cold, err := m.load(path)
				if err != nil {
					return fmt.Errorf("%s: %w", m.name, err)
				}
				// Warm: the cold run left the whole file in the page cache.
				warm, err := m.load(path)
				if err != nil {
					return fmt.Errorf("%s: %w", m.name, err)
				}
				if r == 0 || cold < best[i].cold {
					best[i].cold = cold
				}
				if r == 0 || warm < best[i].warm {
					best[i].warm = warm
				}
				fmt.Printf("round %d  %-34s cold-ish %7.0f MB/s  warm %7.0f MB/s\n", r+1, m.name, mbps(size, cold), mbps(size, warm))
			}
		}
		sections = append(sections, table(format, size, methods, best))
	}
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}

	report := reportText(*rounds, sections, allocs, resident)
	fmt.Println()
	return benchdoc.Publish(*results, sectionTitle, report)
}

func mbps(size int64, d time.Duration) float64 { return float64(size) / 1e6 / d.Seconds() }

// rawRead reads the whole file into one new buffer with a single
// io.ReadFull: what a plain read of the file into memory costs.
func rawRead(path string) (time.Duration, error) {
	debug.FreeOSMemory()
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, st.Size())
	if _, err := io.ReadFull(f, buf); err != nil {
		return 0, err
	}
	elapsed := time.Since(start)
	runtime.KeepAlive(buf)
	return elapsed, nil
}

// goLoad loads the file with tensorfile and checks the parameter count.
func goLoad(path string, numel int64) (time.Duration, error) {
	debug.FreeOSMemory()
	start := time.Now()
	f, err := tensorfile.ReadPTHFile(path, tensorfile.PTHOptions{})
	if err != nil {
		return 0, err
	}
	elapsed := time.Since(start)
	var n int64
	for i := range f.Entries {
		n += f.Entries[i].NumElements()
	}
	if len(f.Entries) != 32 || n != numel {
		return 0, fmt.Errorf("loaded %d tensors of %d elements, want 32 of %d", len(f.Entries), n, numel)
	}
	return elapsed, nil
}

// allocPerByte measures the Go heap allocated by one load, per file byte.
func allocPerByte(path string, size int64) (float64, error) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f, err := tensorfile.ReadPTHFile(path, tensorfile.PTHOptions{})
	if err != nil {
		return 0, err
	}
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(f)
	return float64(after.TotalAlloc-before.TotalAlloc) / float64(size), nil
}

// evict writes the file's pages back and asks the kernel to drop them from
// the page cache, then reports the fraction of the file still resident. On
// a virtual machine the host may still cache the disk, hence "cold-ish".
func evict(path string) (float64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, err
	}
	fd := int(f.Fd())
	if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		return 0, fmt.Errorf("posix_fadvise: %w", err)
	}
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return 0, err
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, fmt.Errorf("mmap: %w", err)
	}
	defer unix.Munmap(mem)
	page := os.Getpagesize()
	vec := make([]byte, (len(mem)+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		return 0, fmt.Errorf("mincore: %w", errno)
	}
	in := 0
	for _, v := range vec {
		in += int(v & 1)
	}
	return float64(in) / float64(len(vec)), nil
}

func table(format string, size int64, methods []method, best []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s format, %.1f MB:\n\n", format, float64(size)/1e6)
	fmt.Fprintf(&b, "| method | cold-ish MB/s | warm MB/s |\n|---|---:|---:|\n")
	for i, m := range methods {
		fmt.Fprintf(&b, "| %s | %.0f | %.0f |\n", m.name, mbps(size, best[i].cold), mbps(size, best[i].warm))
	}
	ratio := func(a, b time.Duration) string { return fmt.Sprintf("%.2fx", b.Seconds()/a.Seconds()) }
	fmt.Fprintf(&b, "\n| speed ratio | cold-ish | warm |\n|---|---:|---:|\n")
	for _, j := range []int{0, 2, 3} {
		fmt.Fprintf(&b, "| fertorch / %s | %s | %s |\n", methods[j].name, ratio(best[1].cold, best[j].cold), ratio(best[1].warm, best[j].warm))
	}
	b.WriteString("\n")
	return b.String()
}

func reportText(rounds int, sections []string, allocs map[string]float64, resident map[string][]float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", sectionTitle)
	fmt.Fprintf(&b, "Command: `make bench-weights` (`go run ./bench/weights`). Date: %s. Machine: %s, %d cores (shared), %s, PyTorch via %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), benchdoc.CPUModel(), runtime.NumCPU(), runtime.Version(), "Debian's python3-torch")
	fmt.Fprintf(&b, "A torchvision VGG16 state dict with random weights (32 tensors, 138,357,544 float32 parameters, the size of the official "+
		"vgg16-397923af.pth), written by PyTorch in the legacy format that the official file uses and in the zip format, then loaded "+
		"in %d interleaved rounds; each method keeps its best time. Cold-ish: the file is fsynced and its pages dropped with "+
		"posix_fadvise(DONTNEED) before the load (on a virtual machine the host may still cache the disk). Warm: the same load again "+
		"right after, from the page cache. Raw read: one buffer of the file's size filled with one io.ReadFull, what a plain "+
		"single-threaded read of the file into memory costs; fertorch reads each storage straight into its final buffer in 8 MiB "+
		"chunks on up to 4 goroutines, so it can beat it. torch.load is timed inside Python around the call only.\n\n", rounds)
	for _, s := range sections {
		b.WriteString(s)
	}
	var notes []string
	for _, format := range []string{"legacy", "zip"} {
		if a, ok := allocs[format]; ok {
			notes = append(notes, fmt.Sprintf("%s %.3f", format, a))
		}
	}
	fmt.Fprintf(&b, "Go heap allocated by one load, per byte of file: %s (each storage is read straight into the buffer the tensors share).\n", strings.Join(notes, ", "))
	var res []string
	for _, format := range []string{"legacy", "zip"} {
		if v := resident[format]; len(v) > 0 {
			res = append(res, fmt.Sprintf("%s %.0f%%", format, 100*slices.Max(v)))
		}
	}
	fmt.Fprintf(&b, "Page-cache residency after eviction, before cold-ish loads (worst case): %s.\n\n", strings.Join(res, ", "))
	return b.String()
}

// peerProc is the running Python peer.
type peerProc struct {
	*pyref.Peer
	numel int64
}

func startPeer(py, script, legacy, zip string) (*peerProc, error) {
	p, err := pyref.StartPeer(py, script, legacy, zip)
	if err != nil {
		return nil, err
	}
	if len(p.Ready) != 1 {
		p.Close()
		return nil, fmt.Errorf("python peer said ready %v, want the element count", p.Ready)
	}
	numel, err := strconv.ParseInt(p.Ready[0], 10, 64)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("python peer said ready %v: %w", p.Ready, err)
	}
	return &peerProc{Peer: p, numel: numel}, nil
}

func (p *peerProc) load(path string, weightsOnly bool) (time.Duration, error) {
	flag := "0"
	if weightsOnly {
		flag = "1"
	}
	f, err := p.Ask(path+" "+flag, 2)
	if err != nil {
		return 0, err
	}
	s, err1 := strconv.ParseFloat(f[0], 64)
	n, err2 := strconv.ParseInt(f[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil || s <= 0 {
		return 0, fmt.Errorf("python peer printed %q", strings.Join(f, " "))
	}
	if n != p.numel {
		return 0, fmt.Errorf("torch.load read %d elements, want %d", n, p.numel)
	}
	return time.Duration(s * float64(time.Second)), nil
}
