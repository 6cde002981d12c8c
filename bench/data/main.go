// Command data measures fertorch's input pipeline on the real-data sample:
// augmented 224x224 RGB float32 samples per second (Keras' tutorial
// augmentation, one composed warp per sample, rescaled), with one worker and
// with every core, against two Python peers run in the same process tree on
// the same images: a Keras-equivalent pipeline (PIL load + scipy affine per
// channel, as ImageDataGenerator does) and torchvision (RandomAffine +
// RandomHorizontalFlip + ToTensor on pre-resized PIL images). The ratios go
// to bench/RESULTS.md.
//
//	go run ./bench/data [-sample ../shared/facial_expressions] [-seconds 2] [-rounds 3] [-results bench/RESULTS.md]
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"github.com/fertorch/fertorch/internal/benchdoc"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/internal/pyref"
)

//go:embed peer.py
var peerScript []byte

const sectionTitle = "## data pipeline (make bench-data)"

type rates struct {
	one, all float64 // samples per second with 1 worker / all cores
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-data:", err)
		os.Exit(1)
	}
}

func run() error {
	sample := flag.String("sample", filepath.Join("..", "shared", "facial_expressions"), "the real-data sample (data/legend.csv and images/)")
	seconds := flag.Float64("seconds", 2, "seconds per measurement")
	rounds := flag.Int("rounds", 3, "interleaved rounds; each pipeline's best round counts")
	results := flag.String("results", filepath.Join("bench", "RESULTS.md"), "results file whose data-pipeline section is rewritten (empty: print only)")
	flag.Parse()
	cores := runtime.NumCPU()

	ds, err := data.OpenLegend(filepath.Join(*sample, "data", "legend.csv"), filepath.Join(*sample, "images"), data.LegendOptions{})
	if err != nil {
		return fmt.Errorf("%w (the benchmark needs the real-data sample; see -sample)", err)
	}
	fmt.Printf("sample: %d labelled images, %d cores\n", ds.Len(), cores)

	// One-time decode + resize into the uint8 cache, 1 worker and all cores.
	var decode rates
	var decoded *data.Dataset
	for _, w := range []int{1, cores} {
		prev := runtime.GOMAXPROCS(w)
		start := time.Now()
		decoded, _, err = ds.Decode(context.Background(), data.DecodeOptions{Workers: w})
		runtime.GOMAXPROCS(prev)
		if err != nil {
			return err
		}
		r := float64(ds.Len()) / time.Since(start).Seconds()
		if w == 1 {
			decode.one = r
		} else {
			decode.all = r
		}
	}
	if len(decoded.Skipped) > 0 {
		return fmt.Errorf("%d images skipped: %v", len(decoded.Skipped), decoded.Skipped[0])
	}
	fmt.Printf("decode+resize (once per run): %.0f img/s with 1 worker, %.0f with %d\n", decode.one, decode.all, cores)

	py, err := pyref.Find("numpy", "scipy", "PIL", "torch", "torchvision")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "bench-data")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	script := filepath.Join(tmp, "peer.py")
	if err := os.WriteFile(script, peerScript, 0o644); err != nil {
		return err
	}
	// The peers see the images in a seeded random order, so whatever share
	// they get through is representative of the whole sample.
	list := filepath.Join(tmp, "images.txt")
	var b strings.Builder
	order := rand.New(rand.NewPCG(1, 2)).Perm(decoded.Len())
	for _, i := range order {
		p, _ := filepath.Abs(decoded.Samples[i].Path)
		b.WriteString(p + "\n")
	}
	if err := os.WriteFile(list, []byte(b.String()), 0o644); err != nil {
		return err
	}
	peer, err := pyref.StartPeer(py, script, list, strconv.Itoa(cores))
	if err != nil {
		return err
	}
	defer peer.Close()

	// The machine is shared: measure in interleaved rounds and keep each
	// pipeline's best round, so that a burst of outside load does not land
	// on one side of a ratio only.
	var goR, preciseR, keras, tv rates
	best := func(r *rates, w int, v float64) {
		if w == 1 {
			r.one = max(r.one, v)
		} else {
			r.all = max(r.all, v)
		}
	}
	for round := 0; round < *rounds; round++ {
		for _, w := range []int{1, cores} {
			v, err := measureGo(decoded, w, *seconds, false)
			if err != nil {
				return err
			}
			best(&goR, w, v)
			v, err = measure(peer, "keras", w, *seconds)
			if err != nil {
				return err
			}
			best(&keras, w, v)
			v, err = measure(peer, "torchvision", w, *seconds)
			if err != nil {
				return err
			}
			best(&tv, w, v)
			v, err = measureGo(decoded, w, *seconds/2, true)
			if err != nil {
				return err
			}
			best(&preciseR, w, v)
		}
		fmt.Printf("round %d: fertorch %.0f/%.0f, precise %.0f/%.0f, keras %.0f/%.0f, torchvision %.0f/%.0f samples/s (1/%d cores)\n",
			round+1, goR.one, goR.all, preciseR.one, preciseR.all, keras.one, keras.all, tv.one, tv.all, cores)
	}

	section := report(ds.Len(), cores, *rounds, *seconds, decode, goR, preciseR, keras, tv)
	fmt.Println()
	return benchdoc.Publish(*results, sectionTitle, section)
}

// measureGo runs the loader (batch 64, shuffled, tutorial augmentation,
// rescale) with the given number of workers on as many cores for about the
// given time, and returns samples per second.
func measureGo(ds *data.Dataset, workers int, seconds float64, precise bool) (float64, error) {
	prev := runtime.GOMAXPROCS(workers)
	defer runtime.GOMAXPROCS(prev)
	aug := data.KerasTutorialAugment()
	aug.Precise = precise
	l, err := data.NewLoader(ds, data.LoaderConfig{BatchSize: 64, Workers: workers, Prefetch: 4, Shuffle: true, Seed: 1, Augment: aug})
	if err != nil {
		return 0, err
	}
	n := 0
	var start time.Time
	for epoch := 0; ; epoch++ {
		it, err := l.Epoch(context.Background(), epoch, 0)
		if err != nil {
			return 0, err
		}
		for {
			b, err := it.Next()
			if err != nil {
				break
			}
			// The first batch warms the pool and the workers; timing starts
			// after it.
			if start.IsZero() {
				start = time.Now()
			} else {
				n += b.N
			}
			b.Release()
			if time.Since(start).Seconds() > seconds {
				it.Close()
				return float64(n) / time.Since(start).Seconds(), nil
			}
		}
		it.Close()
	}
}

// measure asks the peer for a rate: it answers "<samples> <seconds>".
func measure(p *pyref.Peer, kind string, procs int, seconds float64) (float64, error) {
	f, err := p.Ask(fmt.Sprintf("%s %d %g", kind, procs, seconds), 2)
	if err != nil {
		return 0, fmt.Errorf("%s peer: %w", kind, err)
	}
	n, err1 := strconv.ParseFloat(f[0], 64)
	s, err2 := strconv.ParseFloat(f[1], 64)
	if err := errors.Join(err1, err2); err != nil || s <= 0 {
		return 0, fmt.Errorf("%s peer printed %q", kind, strings.Join(f, " "))
	}
	return n / s, nil
}

func report(n, cores, rounds int, seconds float64, decode, goR, precise, keras, tv rates) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", sectionTitle)
	fmt.Fprintf(&b, "Command: `make bench-data` (`go run ./bench/data`). Date: %s. Machine: %s, %d cores (shared), %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), benchdoc.CPUModel(), cores, runtime.Version())
	fmt.Fprintf(&b, "Augmented 224x224 RGB float32 samples per second from the real sample (%d images, mostly 350x350 grey JPEGs), "+
		"the tutorial's augmentation (rotation 20, shifts 0.1, shear 0.01, zoom 0.1, horizontal flip, constant fill, rescale 1/255). "+
		"fertorch: loader with batch 64, images decoded and resized once into the uint8 cache, one composed warp per sample written into the batch. "+
		"Keras-equivalent: per sample PIL load + NEAREST resize + numpy draws + scipy `affine_transform` per channel + flip + rescale, as ImageDataGenerator does every epoch. "+
		"torchvision 0.14: `RandomAffine(20, translate=(0.1,0.1), scale=(0.9,1.1), shear=0.01, bilinear)` + `RandomHorizontalFlip` + `ToTensor` on PIL images resized once beforehand. "+
		"Python peers run as 1 process, or one process per core (multiprocessing), in the same run on the same images. "+
		"The machine is shared, so the pipelines are measured in %d interleaved rounds of about %gs and each keeps its best round.\n\n", n, rounds, seconds)
	fmt.Fprintf(&b, "| pipeline | 1 core, samples/s | %d cores, samples/s |\n|---|---:|---:|\n", cores)
	fmt.Fprintf(&b, "| fertorch (fast kernel, default) | %.0f | %.0f |\n", goR.one, goR.all)
	fmt.Fprintf(&b, "| fertorch (Precise kernel, bit-exact with Keras) | %.0f | %.0f |\n", precise.one, precise.all)
	fmt.Fprintf(&b, "| Keras-equivalent (PIL + scipy) | %.0f | %.0f |\n", keras.one, keras.all)
	fmt.Fprintf(&b, "| torchvision | %.0f | %.0f |\n", tv.one, tv.all)
	fmt.Fprintf(&b, "| fertorch one-time decode + resize (images/s) | %.0f | %.0f |\n\n", decode.one, decode.all)
	ratio := func(a, b float64) string { return fmt.Sprintf("%.1fx", a/b) }
	fmt.Fprintf(&b, "| ratio | 1 core | %d cores | target (per core) |\n|---|---:|---:|---:|\n", cores)
	fmt.Fprintf(&b, "| fertorch / Keras-equivalent | %s | %s | >= 10x |\n", ratio(goR.one, keras.one), ratio(goR.all, keras.all))
	fmt.Fprintf(&b, "| fertorch / torchvision | %s | %s | >= 3x |\n", ratio(goR.one, tv.one), ratio(goR.all, tv.all))
	// First epoch, when fertorch also decodes: per-sample time is the sum.
	cold := 1 / (1/goR.one + 1/decode.one)
	fmt.Fprintf(&b, "| fertorch first epoch (decode + augment) / Keras-equivalent | %s | %s | |\n",
		ratio(cold, keras.one), ratio(1/(1/goR.all+1/decode.all), keras.all))
	fmt.Fprintf(&b, "| fertorch Precise / Keras-equivalent | %s | %s | |\n\n", ratio(precise.one, keras.one), ratio(precise.all, keras.all))
	return b.String()
}
