package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// PrepareConfig is what a prepare step needs: where the legend and images
// are, where the layout goes, and how to split.
type PrepareConfig struct {
	// LegendFile is data/legend.csv; ImagesDir holds the images it names.
	LegendFile, ImagesDir string
	// OutDir receives train/, valid/ and test/.
	OutDir string
	// Legend selects the accepted labels.
	Legend LegendOptions
	// Split chooses the scheme, fractions and seed.
	Split SplitConfig
	// Link says how files are placed (hard links by default).
	Link LinkMode
	// Verify decodes every image first and leaves out (and reports) those
	// that cannot be decoded, so the layout holds only usable files.
	Verify bool
	// Limits apply to Verify.
	Limits Limits
}

// PrepareReport is what Prepare did, for the prepare command to print.
type PrepareReport struct {
	// Dataset is the legend matched with the images (Legend and Skipped
	// hold the details).
	Dataset *Dataset
	// Split holds the three parts.
	Split *Split
	// Layout says what was written.
	Layout *LayoutReport
}

// Prepare reads the legend, matches it with the images, optionally verifies
// that each image decodes, splits, and writes the directory layout.
func Prepare(ctx context.Context, cfg PrepareConfig) (*PrepareReport, error) {
	if cfg.OutDir == "" {
		return nil, errors.New("prepare: no output folder")
	}
	d, err := OpenLegend(cfg.LegendFile, cfg.ImagesDir, cfg.Legend)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if cfg.Verify {
		if d, err = verifyImages(ctx, d, cfg.Limits); err != nil {
			return nil, fmt.Errorf("prepare: %w", err)
		}
	}
	sp, err := SplitDataset(d, cfg.Split)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	d.Skipped = append(d.Skipped, sp.Dropped...)
	lay, err := WriteLayout(cfg.OutDir, sp, cfg.Link)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	return &PrepareReport{Dataset: d, Split: sp, Layout: lay}, nil
}

// verifyImages decodes every sample's file and drops the ones that fail,
// recording why.
func verifyImages(ctx context.Context, d *Dataset, lim Limits) (*Dataset, error) {
	errs := make([]error, len(d.Samples))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(d.Samples) {
					return
				}
				_, _, errs[i] = DecodeFile(d.Samples[i].Path, lim)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
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

// Write prints the report: the legend summary, the per-class split table,
// what the layout step did, and every skipped file with its reason.
func (r *PrepareReport) Write(w io.Writer) error {
	var b strings.Builder
	if lg := r.Dataset.Legend; lg != nil {
		fmt.Fprintf(&b, "legend %s: %d rows, %d distinct images, %d labelled images found\n", lg.File, lg.Rows, lg.UniqueImages, lg.Labelled)
		fmt.Fprintf(&b, "  %d duplicate rows dropped, %d images with conflicting labels, %d rows rejected, %d rows without an image, %d images without a row\n",
			len(lg.Duplicates), len(lg.Conflicts), len(lg.Rejected), len(lg.Missing), len(lg.Unlisted))
		var mixed []string
		folded := map[string][]string{}
		for raw := range lg.RawLabels {
			k := strings.ToLower(strings.TrimSpace(raw))
			folded[k] = append(folded[k], raw)
		}
		for k, v := range folded {
			if len(v) > 1 {
				sort.Strings(v)
				mixed = append(mixed, fmt.Sprintf("%s (%s)", k, strings.Join(v, ", ")))
			}
		}
		sort.Strings(mixed)
		if len(mixed) > 0 {
			fmt.Fprintf(&b, "  labels written in several cases, merged: %s\n", strings.Join(mixed, "; "))
		}
	}
	fmt.Fprintf(&b, "split (%s, seed %d, valid %.0f%%, test %.0f%% of the rest):\n", r.Split.Config.Scheme, r.Split.Config.Seed,
		100*r.Split.Config.ValidFraction, 100*r.Split.Config.TestFraction)
	b.WriteString(FormatSplitTable(r.Split))
	if r.Layout != nil {
		b.WriteString(r.Layout.String() + "\n")
		for _, warn := range r.Layout.Warnings {
			b.WriteString("  warning: " + warn + "\n")
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	return WriteSkipReport(w, r.Dataset.Skipped)
}
