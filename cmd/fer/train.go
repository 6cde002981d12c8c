package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fertorch/fertorch/train"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

func runTrain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train", "train [--config FILE] [flags]", stderr)
	configPath := fs.StringP("config", "c", "", "YAML config (defaults: the seed tutorial's settings); flags override it")
	resume := fs.String("resume", "", "continue a run from its folder or last.safetensors (a distributed run continues on any number of ranks, with the same global batches; bit for bit as if uninterrupted on the same number)")
	overwrite := fs.Bool("overwrite", false, "start a new run in a folder that holds an earlier run's checkpoints (they are deleted)")
	printConfig := fs.Bool("print-config", false, "print the effective config as YAML and exit")
	progress := fs.String("progress", "auto", "progress bars: auto (on a terminal), on or off")
	distTimeout := fs.Duration("dist-timeout", 30*time.Minute, "distributed runs: how long the rendezvous and every collective may wait for the other ranks")
	nproc := fs.Int(nprocFlag, 1, "start this many training processes on this machine (one per GPU with CUDA); see below")
	cfg := train.DefaultConfig()
	train.RegisterFlags(fs, &cfg)
	usage := fs.Usage
	fs.Usage = func() { usage(); fmt.Fprint(stderr, distHelp) }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %v", fs.Args())
	}
	cfg, err := train.ResolveConfig(fs, *configPath)
	if err != nil {
		// A config file is part of the command line: its mistakes exit 2.
		return usagef("%v", err)
	}
	opts := train.Options{Resume: *resume, Log: stdout, Warnings: stderr, Overwrite: *overwrite}
	if *resume != "" {
		// A resumed run keeps its own settings; only what changes its
		// length, where its data is, or its speed and placement may change.
		allowed := map[string]bool{"resume": true, "progress": true, "dist-timeout": true}
		for _, f := range train.ResumeFlags {
			allowed[f] = true
		}
		var refused []string
		fs.Visit(func(f *pflag.Flag) {
			switch {
			case f.Name == "resume" || f.Name == "progress" || f.Name == "dist-timeout" || f.Name == nprocFlag:
			case allowed[f.Name]:
				opts.Overrides = append(opts.Overrides, f.Name)
			default:
				refused = append(refused, "--"+f.Name)
			}
		})
		if len(refused) > 0 {
			return usagef("--resume continues a run with its saved settings; drop %s (only --%s may change)", strings.Join(refused, ", "), strings.Join(train.ResumeFlags, ", --"))
		}
	}
	if *printConfig {
		return train.WriteConfig(stdout, cfg)
	}
	if err := cfg.Validate(); err != nil {
		return usagef("invalid settings:\n%v", err)
	}
	bars, err := progressBars(*progress, stdout)
	if err != nil {
		return err
	}
	if fs.Changed(nprocFlag) {
		if err := checkLaunch(*nproc, cfg.Train.Device, os.Getenv); err != nil {
			return err
		}
		if *distTimeout <= 0 {
			return usagef("--dist-timeout %v must be positive", *distTimeout)
		}
		return launchTrain(*nproc, args, *distTimeout, stdout, stderr)
	}
	if *resume == "" {
		// A job that torchrun restarted continues from its last checkpoint.
		dir, ok, err := elasticResume(os.Getenv, cfg.Output)
		if err != nil {
			return err
		}
		if ok {
			opts.Resume = dir
			fs.Visit(func(f *pflag.Flag) {
				for _, name := range train.ResumeFlags {
					if f.Name == name {
						opts.Overrides = append(opts.Overrides, name)
					}
				}
			})
		}
	}
	// One rank of a distributed run (torchrun's environment) joins its
	// job first; until then a signal ends the process as usual.
	job, err := joinJob(fs, cfg, opts.Resume, *distTimeout)
	if err != nil {
		return err
	}
	defer job.close()
	opts.Dist, opts.LocalRank, opts.LocalWorldSize = job.group, job.env.LocalRank, job.env.LocalWorldSize
	if !job.lead() {
		stdout, bars = io.Discard, false
	}
	ctx := onInterrupt()
	defer ctx.stop()
	opts.ProgressBar = bars
	res, err := train.Train(ctx, cfg, opts)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, train.ErrPeerInterrupted) {
			runDir := cfg.Output
			if *resume != "" {
				runDir = filepath.Dir(train.ResumeCheckpoint(*resume))
			}
			err = fmt.Errorf("interrupted; continue with: fer train --resume %s", runDir)
			if ctx.Err() == nil {
				err = fmt.Errorf("%w; continue with: fer train --resume %s", train.ErrPeerInterrupted, runDir)
			}
			return ctx.wrap(job.wrap(err))
		}
		return job.wrap(err)
	}
	out := filepath.Dir(res.Last)
	fmt.Fprintf(stdout, "\nbest %s %.4f at epoch %d\n", res.Config.Train.BestMetric, res.Best, res.BestEpoch)
	fmt.Fprintf(stdout, "run folder %s: %s (weights), %s (resumable), %s, %s, %s\n", out,
		train.BestCheckpoint, train.LastCheckpoint, train.HistoryCSV, train.CurvesPNG, train.EffectiveConfig)
	fmt.Fprintf(stdout, "evaluate with: fer eval --checkpoint %s --data %s\n", res.BestPath, filepath.Join(res.Config.Data.Dir, "test"))
	return nil
}

// progressBars reads --progress: auto draws bars when stdout is a terminal.
func progressBars(setting string, stdout io.Writer) (bool, error) {
	switch setting {
	case "on":
		return true, nil
	case "off":
		return false, nil
	case "auto":
		f, ok := stdout.(*os.File)
		return ok && term.IsTerminal(int(f.Fd())), nil
	}
	return false, usagef("--progress must be auto, on or off")
}
