package main

import (
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fertorch/fertorch/data"
)

func runPrepare(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("prepare", "prepare --source DIR --out DIR [flags]", stderr)
	source := fs.String("source", "work/facial_expressions", "dataset folder holding data/legend.csv and images/")
	legend := fs.String("legend", "", "legend CSV (default: SOURCE/data/legend.csv)")
	images := fs.String("images", "", "images folder (default: SOURCE/images)")
	out := fs.StringP("out", "o", "work/data", "where to write train/, valid/ and test/ class folders")
	scheme := fs.String("split", "by-subject", "split scheme: seed (the tutorial's random split), stratified or by-subject (no person in two splits)")
	valid := fs.Float64("valid", 0.10, "share of the images for validation")
	test := fs.Float64("test", 0.05, "share of the remaining images for the test split")
	seed := fs.Uint64("seed", 42, "split seed")
	link := fs.String("link", "auto", "how files are placed: auto (hard links, copies where impossible), link or copy")
	dedupe := fs.Bool("dedupe", true, "drop byte-identical images before splitting (so one picture cannot be in two splits)")
	anyLabel := fs.Bool("any-label", false, "accept any label, not only the eight emotions")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %v", fs.Args())
	}
	if *legend == "" {
		*legend = filepath.Join(*source, "data", "legend.csv")
	}
	if *images == "" {
		*images = filepath.Join(*source, "images")
	}
	sch, err := data.ParseSplitScheme(*scheme)
	if err != nil {
		return usagef("%v", err)
	}
	mode, err := data.ParseLinkMode(*link)
	if err != nil {
		return usagef("%v", err)
	}
	if *valid < 0 || *valid >= 1 || *test < 0 || *test >= 1 {
		return usagef("--valid and --test must be in [0, 1)")
	}
	ds, err := data.OpenLegend(*legend, *images, data.LegendOptions{AnyLabel: *anyLabel})
	if err != nil {
		return err
	}
	printLegendReport(stdout, ds.Legend)
	if len(ds.Skipped) > 0 {
		if err := data.WriteSkipReport(stdout, ds.Skipped); err != nil {
			return err
		}
	}
	if ds.Len() == 0 {
		return fmt.Errorf("%s: no labelled image found in %s", *legend, *images)
	}
	split, err := data.SplitDataset(ds, data.SplitConfig{Scheme: sch, ValidFraction: *valid, TestFraction: *test, Seed: *seed, DedupeContent: *dedupe})
	if err != nil {
		return err
	}
	if len(split.Dropped) > 0 {
		fmt.Fprintf(stdout, "\nleft out before splitting:\n")
		if err := data.WriteSkipReport(stdout, split.Dropped); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "\n%s split (seed %d):\n%s\n", sch, *seed, data.FormatSplitTable(split))
	rep, err := data.WriteLayout(*out, split, mode)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, rep)
	for _, w := range rep.Warnings {
		fmt.Fprintln(stdout, "warning:", w)
	}
	return nil
}

func printLegendReport(w io.Writer, r *data.LegendReport) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "legend %s: %d rows, %d unique images, %d labelled images found\n", r.File, r.Rows, r.UniqueImages, r.Labelled)
	if len(r.Duplicates) > 0 {
		fmt.Fprintf(w, "  %d duplicate rows (same image, same label) kept once\n", len(r.Duplicates))
	}
	if len(r.Conflicts) > 0 {
		fmt.Fprintf(w, "  %d images listed with different labels were left out:\n", len(r.Conflicts))
		for _, c := range r.Conflicts {
			fmt.Fprintf(w, "    %s: %s (lines %v)\n", c.Image, strings.Join(c.Labels, " vs "), c.Lines)
		}
	}
	if len(r.Unlisted) > 0 {
		fmt.Fprintf(w, "  %d images have no legend row (not used):", len(r.Unlisted))
		shown := r.Unlisted
		if len(shown) > 10 {
			shown = shown[:10]
		}
		fmt.Fprintf(w, " %s", strings.Join(shown, ", "))
		if len(r.Unlisted) > len(shown) {
			fmt.Fprintf(w, ", ... (%d more)", len(r.Unlisted)-len(shown))
		}
		fmt.Fprintln(w)
	}
	if len(r.RawLabels) > 0 {
		var labels []string
		for l := range r.RawLabels {
			labels = append(labels, l)
		}
		sort.Strings(labels)
		parts := make([]string, len(labels))
		for i, l := range labels {
			parts[i] = fmt.Sprintf("%s %d", l, r.RawLabels[l])
		}
		fmt.Fprintf(w, "  labels as written: %s\n", strings.Join(parts, ", "))
	}
}
