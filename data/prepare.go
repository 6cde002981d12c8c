package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SkipListName is the file in a prepared layout that lists every skipped
// row and file with its reason (see WriteSkipList).
const SkipListName = "skipped.csv"

// PrepareConfig is what a prepare step needs: where the legend and images
// are, where the layout goes, and how to split.
type PrepareConfig struct {
	// LegendFile is data/legend.csv; ImagesDir holds the images it names.
	LegendFile, ImagesDir string
	// OutDir receives train/, valid/, test/ and skipped.csv.
	OutDir string
	// Legend selects the accepted labels.
	Legend LegendOptions
	// Split chooses the scheme, fractions and seed.
	Split SplitConfig
	// Link says how files are placed (hard links by default).
	Link LinkMode
	// Verify decodes every image before splitting and leaves out (and
	// reports) those that cannot be decoded, so the split and the layout
	// hold only usable files.
	Verify bool
	// Limits apply to Verify.
	Limits Limits
	// Workers is the number of verifying goroutines (default GOMAXPROCS).
	Workers int
	// Progress, when set, is called after each verified image with the
	// number done; calls are serialized but come from worker goroutines.
	Progress func(done, total int)
}

// PrepareReport is what Prepare did, for the prepare command to print.
type PrepareReport struct {
	// Dataset is the legend matched with the images (Legend and Skipped
	// hold the details); Skipped lists every row and file left out.
	Dataset *Dataset
	// Verified is the number of images decoded by Verify, in VerifyTime;
	// both are zero without Verify.
	Verified   int
	VerifyTime time.Duration
	// Split holds the three parts (nil when no image was usable).
	Split *Split
	// Layout says what was written (nil when no image was usable).
	Layout *LayoutReport
	// SkipList is the file listing every skipped row and file.
	SkipList string
}

// Prepare reads the legend, matches it with the images, verifies that each
// image decodes (with Verify), splits, and writes the directory layout with
// the list of skipped files (OutDir/skipped.csv). The layout appears only
// once it is complete (see WriteLayout). When no image is usable it returns
// the report so far with an error.
func Prepare(ctx context.Context, cfg PrepareConfig) (*PrepareReport, error) {
	if cfg.OutDir == "" {
		return nil, errors.New("no output folder given")
	}
	d, err := OpenLegend(cfg.LegendFile, cfg.ImagesDir, cfg.Legend)
	if err != nil {
		return nil, err
	}
	rep := &PrepareReport{Dataset: d}
	if cfg.Verify {
		start := time.Now()
		n := d.Len()
		if d, err = verifyImages(ctx, d, cfg.Limits, cfg.Workers, cfg.Progress); err != nil {
			return nil, err
		}
		rep.Dataset, rep.Verified, rep.VerifyTime = d, n, time.Since(start)
	}
	if d.Len() == 0 {
		return rep, fmt.Errorf("%s: no usable labelled image in %s", cfg.LegendFile, cfg.ImagesDir)
	}
	sp, err := SplitDataset(d, cfg.Split)
	if err != nil {
		return nil, err
	}
	d.Skipped = append(d.Skipped, sp.Dropped...)
	listFile := filepath.Join(filepath.Clean(cfg.OutDir), SkipListName)
	lay, err := writeLayout(ctx, cfg.OutDir, sp, cfg.Link, &layoutFinish{
		names: []string{SkipListName},
		write: func(dir string, lr *LayoutReport) error {
			removeSamples(sp, lr.Skipped)
			d.Skipped = append(d.Skipped, lr.Skipped...)
			return WriteSkipList(filepath.Join(dir, SkipListName), d.Skipped)
		},
	})
	if err != nil {
		return nil, err
	}
	rep.Split, rep.Layout, rep.SkipList = sp, lay, listFile
	return rep, nil
}

// removeSamples takes the skipped files out of the split's parts.
func removeSamples(sp *Split, skips []Skip) {
	if len(skips) == 0 {
		return
	}
	gone := map[string]bool{}
	for _, s := range skips {
		gone[s.Path] = true
	}
	keep := func(in []Sample) []Sample {
		out := in[:0:0]
		for _, s := range in {
			if !gone[s.Path] {
				out = append(out, s)
			}
		}
		return out
	}
	sp.Train, sp.Valid, sp.Test = keep(sp.Train), keep(sp.Valid), keep(sp.Test)
}

// verifyImages decodes every sample's file in parallel with the decoder
// training uses (DecodeFile: the byte limit from the file size, then the
// header's dimensions against the limits, then the pixels) and drops the
// ones that fail, recording why.
func verifyImages(ctx context.Context, d *Dataset, lim Limits, workers int, progress func(done, total int)) (*Dataset, error) {
	n := len(d.Samples)
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	errs := make([]error, n)
	var next, done atomic.Int64
	var progressMu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < min(workers, max(n, 1)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				_, _, errs[i] = DecodeFile(d.Samples[i].Path, lim)
				if progress != nil {
					k := int(done.Add(1))
					progressMu.Lock()
					progress(k, n)
					progressMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("verifying images: %w", err)
	}
	out := *d
	out.Samples = nil
	out.Skipped = append([]Skip(nil), d.Skipped...)
	for i, s := range d.Samples {
		if errs[i] == nil {
			out.Samples = append(out.Samples, s)
			continue
		}
		kind := SkipCorrupt
		var de *DecodeError
		if errors.As(errs[i], &de) {
			kind = de.Kind
		}
		out.Skipped = append(out.Skipped, Skip{Path: s.Path, Kind: kind, Reason: errs[i].Error()})
	}
	return &out, nil
}

// maxWarnings bounds the layout warnings a report prints.
const maxWarnings = 10

// Write prints the report, bounded whatever the input's size: the legend
// summary, the verification, the per-class split table, what the layout
// step did, and a summary of the skipped files per reason with a few
// examples each (the full list is in SkipList).
func (r *PrepareReport) Write(w io.Writer) error {
	if err := WriteLegendReport(w, r.Dataset.Legend); err != nil {
		return err
	}
	var b strings.Builder
	if r.Verified > 0 {
		fmt.Fprintf(&b, "verified %d images in %.1fs (%.0f images/s): %d decode, %d do not\n", r.Verified, r.VerifyTime.Seconds(),
			float64(r.Verified)/max(r.VerifyTime.Seconds(), 1e-9), r.Dataset.Len(), r.Verified-r.Dataset.Len())
	}
	if r.Split != nil {
		fmt.Fprintf(&b, "\n%s split (seed %d, valid %.0f%%, test %.0f%% of the rest):\n", r.Split.Config.Scheme, r.Split.Config.Seed,
			100*r.Split.Config.ValidFraction, 100*r.Split.Config.TestFraction)
		b.WriteString(FormatSplitTable(r.Split))
		for _, gap := range r.Split.Gaps() {
			b.WriteString("  warning: " + gap + "\n")
		}
		b.WriteString("\n")
	}
	if r.Layout != nil {
		for _, s := range r.Layout.Interrupted {
			b.WriteString(s + "\n")
		}
		b.WriteString(r.Layout.String() + "\n")
		for i, warn := range r.Layout.Warnings {
			if i == maxWarnings {
				fmt.Fprintf(&b, "  ... and %d more warnings\n", len(r.Layout.Warnings)-maxWarnings)
				break
			}
			b.WriteString("  warning: " + clip(warn, maxReportLine) + "\n")
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	return WriteSkipSummary(w, r.Dataset.Skipped, r.SkipList)
}
