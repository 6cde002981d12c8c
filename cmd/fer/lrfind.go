package main

import (
	"fmt"
	"io"

	"github.com/fertorch/fertorch/train"
)

func runLRFind(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("lr-find", "lr-find [--config FILE] [training flags] [--start-lr R] [--end-lr R] [--steps N] [--png FILE] [--csv FILE]", stderr)
	configPath := fs.StringP("config", "c", "", "YAML training config (as fer train); flags override it")
	var o train.LRFindOptions
	fs.Float64Var(&o.StartLR, "start-lr", 1e-7, "rate of the first step")
	fs.Float64Var(&o.EndLR, "end-lr", 10, "rate of the last step (the sweep stops earlier when the loss diverges)")
	fs.IntVar(&o.Steps, "steps", 100, "training steps of the sweep, the rate growing exponentially")
	pngPath := fs.String("png", "lr-find.png", "plot of the smoothed loss against the rate, with the suggestions")
	csvPath := fs.String("csv", "lr-find.csv", "the sweep's rates and losses")
	progress := fs.String("progress", "auto", "progress bar: auto (on a terminal), on or off")
	cfg := train.DefaultConfig()
	train.RegisterFlags(fs, &cfg)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %v", fs.Args())
	}
	cfg, err := train.ResolveConfig(fs, *configPath)
	if err != nil {
		return usagef("%v", err)
	}
	if err := cfg.Validate(); err != nil {
		return usagef("invalid settings:\n%v", err)
	}
	if o.StartLR <= 0 || o.EndLR <= o.StartLR {
		return usagef("--start-lr %g and --end-lr %g must satisfy 0 < start < end", o.StartLR, o.EndLR)
	}
	if o.Steps < 10 {
		return usagef("--steps %d: at least 10 steps are needed for a curve", o.Steps)
	}
	o.Log = stdout
	if o.ProgressBar, err = progressBars(*progress, stdout); err != nil {
		return err
	}
	ctx := onInterrupt()
	defer ctx.stop()
	res, err := train.FindLR(ctx, cfg, o)
	if err != nil {
		return ctx.wrap(err)
	}
	if err := res.SaveCSV(*csvPath); err != nil {
		return err
	}
	if err := res.SavePNG(*pngPath); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d steps, %s\nsuggested learning rates: %.3g (steepest descent), %.3g (minimum/10)\nplot: %s, values: %s\n",
		len(res.LR), res.Stop, res.Steepest, res.Minimum, *pngPath, *csvPath)
	fmt.Fprintf(stdout, "then: fer train --lr %.3g ... (with --schedule one-cycle the rate is the peak; the minimum/10 value is the safer choice)\n", res.Steepest)
	return nil
}
