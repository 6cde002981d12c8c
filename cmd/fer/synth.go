package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/fertorch/fertorch/data/synth"
)

func runSynth(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("synth", "synth --out DIR [flags]", stderr)
	out := fs.StringP("out", "o", "work/synth", "folder to write data/legend.csv and images/ into")
	seed := fs.Uint64("seed", 1, "generator seed (same seed, same files)")
	perClass := fs.Int("per-class", 60, "images per class")
	classes := fs.String("classes", "", "comma-separated classes (default: the eight emotions)")
	minSize := fs.Int("min-size", 48, "smallest image side in pixels")
	maxSize := fs.Int("max-size", 160, "largest image side in pixels")
	messy := fs.Bool("messy", true, "inject the real dataset's mess: upper-case labels, a duplicate row, an unlisted image, a PNG named .jpg")
	overwrite := fs.Bool("overwrite", false, "replace a dataset generated earlier in --out")
	variation := fs.Float64("variation", 1, "variety of faces and scenes, (0, 1]: 1 is the full variety, lower values make expressions easier to learn from scratch")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	opts := synth.Options{Seed: *seed, PerClass: *perClass, MinSize: *minSize, MaxSize: *maxSize, Messy: *messy, Overwrite: *overwrite, Variation: *variation}
	if *classes != "" {
		opts.Classes = strings.Split(*classes, ",")
	}
	rep, err := synth.Generate(*out, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "synthetic dataset in %s: %d images of %d people, %d legend rows\n", rep.Dir, rep.Files, rep.Subjects, rep.Rows)
	names := make([]string, 0, len(rep.PerClass))
	for c := range rep.PerClass {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		fmt.Fprintf(stdout, "  %-10s %d\n", c, rep.PerClass[c])
	}
	// One line per kind of injected mess, with its first example.
	var kinds []string
	byKind := map[string][]synth.Injection{}
	for _, inj := range rep.Injected {
		if _, ok := byKind[inj.Kind]; !ok {
			kinds = append(kinds, inj.Kind)
		}
		byKind[inj.Kind] = append(byKind[inj.Kind], inj)
	}
	for _, k := range kinds {
		first := byKind[k][0]
		more := ""
		if n := len(byKind[k]); n > 1 {
			more = fmt.Sprintf(" (and %d more)", n-1)
		}
		fmt.Fprintf(stdout, "  injected %s: %s: %s%s\n", k, first.Image, first.Detail, more)
	}
	return nil
}
