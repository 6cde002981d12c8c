package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/infer"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/train"
)

func runEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", "eval --checkpoint FILE (--data DIR | --legend CSV --images DIR) [flags]", stderr)
	checkpoint := fs.String("checkpoint", "runs/vgg16/best.safetensors", "trained model (best.safetensors, an epoch file or last.safetensors)")
	dir := fs.String("data", "", "labelled images in class folders, e.g. work/data/test")
	legend := fs.String("legend", "", "legend CSV (user.id,image,emotion) instead of --data")
	images := fs.String("images", "", "images folder for --legend")
	out := fs.StringP("out", "o", "", "folder for results.csv, ground_truth.csv, predictions.csv, metrics.json/txt, confusion.png (default: next to the checkpoint, eval-<data folder name>)")
	device := torch.DeviceAuto
	fs.Var(&device, "device", "device: "+torch.DeviceSpecNames())
	batch := fs.Int("batch-size", 64, "images per batch")
	workers := fs.Int("workers", 0, "decoding goroutines (0: one per core)")
	tta := fs.Bool("tta", false, "average each image's prediction with its horizontal mirror's")
	oneDNN := oneDNNFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %v", fs.Args())
	}
	if (*dir == "") == (*legend == "") {
		return usagef("give either --data DIR or --legend CSV with --images DIR")
	}
	if *legend != "" && *images == "" {
		return usagef("--legend needs --images")
	}
	if *batch < 1 {
		return usagef("--batch-size %d must be at least 1", *batch)
	}
	if *workers < 0 {
		return usagef("--workers %d is negative", *workers)
	}
	model, err := infer.Load(*checkpoint, infer.Options{Device: device, BatchSize: *batch, Workers: *workers, OneDNN: *oneDNN})
	if err != nil {
		return err
	}
	defer model.Free()
	tellNotice(stderr, "eval", model.Notice)
	var ds *data.Dataset
	source := *dir
	if *dir != "" {
		ds, err = data.OpenDir(*dir, data.DirOptions{})
		if err == nil && len(ds.Classes) == 0 {
			err = fmt.Errorf("%s holds no class folders: eval --data takes a folder with one sub-folder of images per class, such as work/data/test (or give --legend CSV --images DIR)", *dir)
		}
	} else {
		source = *legend
		ds, err = data.OpenLegend(*legend, *images, data.LegendOptions{Classes: model.Classes})
	}
	if err != nil {
		return err
	}
	if ds.Legend != nil {
		if err := data.WriteLegendReport(stdout, ds.Legend); err != nil {
			return err
		}
		if ds.Len() == 0 {
			if err := data.WriteSkipReport(stdout, ds.Skipped); err != nil {
				return err
			}
			return fmt.Errorf("%s: no row names a usable image in %s (the reasons are listed above)", *legend, *images)
		}
	}
	if *out == "" {
		name := filepath.Base(filepath.Clean(source))
		if *legend != "" {
			name = "legend"
		}
		*out = filepath.Join(filepath.Dir(*checkpoint), "eval-"+name)
	}
	ctx := onInterrupt()
	defer ctx.stop()
	res, err := train.Evaluate(ctx, model, ds, *tta)
	if err != nil {
		if res != nil && res.Dataset != nil {
			if werr := data.WriteSkipReport(stdout, res.Dataset.Skipped); werr != nil {
				return werr
			}
		}
		return ctx.wrap(err)
	}
	// The list is written even when empty, so that it never describes an
	// earlier evaluation.
	list := filepath.Join(*out, data.SkipListName)
	if err := data.WriteSkipList(list, res.Dataset.Skipped); err != nil {
		return err
	}
	if len(res.Dataset.Skipped) > 0 {
		if err := data.WriteSkipSummary(stdout, res.Dataset.Skipped, list); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "%s on %s (%d images%s): loss %.4f\n\n", *checkpoint, source, res.Dataset.Len(), map[bool]string{true: ", flip TTA", false: ""}[*tta], res.Loss)
	if err := res.Report.WriteText(stdout); err != nil {
		return err
	}
	if err := train.WriteEvalOutputs(*out, res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nwrote %s: results.csv, ground_truth.csv, predictions.csv, metrics.json, metrics.txt, confusion.png, %s\n", *out, data.SkipListName)
	return nil
}
