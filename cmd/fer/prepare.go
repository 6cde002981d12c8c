package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/fertorch/fertorch/data"
)

func runPrepare(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("prepare", "prepare --source DIR --out DIR [flags]", stderr)
	source := fs.String("source", "work/facial_expressions", "dataset folder holding data/legend.csv and images/")
	legend := fs.String("legend", "", "legend CSV (default: SOURCE/data/legend.csv)")
	images := fs.String("images", "", "images folder (default: SOURCE/images)")
	out := fs.StringP("out", "o", "work/data", "where to write train/, valid/ and test/ class folders")
	sch := data.SplitBySubject
	fs.Var(&sch, "split", "split scheme: "+data.SplitSchemeNames()+" (seed: the tutorial's random split; by-subject: no person in two splits)")
	valid := fs.Float64("valid", 0.10, "share of the images for validation")
	test := fs.Float64("test", 0.05, "share of the remaining images for the test split")
	seed := fs.Uint64("seed", 42, "split seed")
	mode := data.LinkAuto
	fs.Var(&mode, "link", "how files are placed: "+data.LinkModeNames()+" (auto: hard links, copies where impossible)")
	dedupe := fs.Bool("dedupe", true, "drop byte-identical images before splitting (so one picture cannot be in two splits)")
	anyLabel := fs.Bool("any-label", false, "accept any label, not only the eight emotions")
	verify := fs.Bool("verify", true, "decode every image before splitting and leave out (and list) those that cannot be used")
	progress := fs.String("progress", "auto", "progress bar while verifying: auto (on a terminal), on or off")
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
	if *valid < 0 || *valid >= 1 || *test < 0 || *test >= 1 {
		return usagef("--valid and --test must be in [0, 1)")
	}
	bars, err := progressEnabled(*progress, stdout)
	if err != nil {
		return err
	}
	cfg := data.PrepareConfig{
		LegendFile: *legend,
		ImagesDir:  *images,
		OutDir:     *out,
		Legend:     data.LegendOptions{AnyLabel: *anyLabel},
		Split:      data.SplitConfig{Scheme: sch, ValidFraction: *valid, TestFraction: *test, Seed: *seed, DedupeContent: *dedupe},
		Link:       mode,
		Verify:     *verify,
	}
	var bar *progressbar.ProgressBar
	if *verify && bars {
		cfg.Progress = func(done, total int) {
			if bar == nil {
				bar = progressbar.NewOptions(total,
					progressbar.OptionSetWriter(stdout),
					progressbar.OptionSetDescription("verifying images"),
					progressbar.OptionShowCount(),
					progressbar.OptionShowIts(),
					progressbar.OptionSetItsString("img"),
					progressbar.OptionSetWidth(24),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(stdout) }),
				)
			}
			_ = bar.Set(done)
		}
	}
	ctx := onInterrupt()
	defer ctx.stop()
	rep, err := data.Prepare(ctx, cfg)
	if bar != nil {
		_ = bar.Finish()
	}
	if rep != nil {
		if werr := rep.Write(stdout); werr != nil && err == nil {
			err = werr
		}
	}
	return ctx.wrap(err)
}

// progressEnabled reads a --progress value: bars are drawn on a terminal
// (auto), always (on) or never (off).
func progressEnabled(value string, stdout io.Writer) (bool, error) {
	switch value {
	case "on":
		return true, nil
	case "off":
		return false, nil
	case "auto":
		if f, ok := stdout.(*os.File); ok {
			return term.IsTerminal(int(f.Fd())), nil
		}
		return false, nil
	}
	return false, usagef("--progress must be auto, on or off, not %q", value)
}
