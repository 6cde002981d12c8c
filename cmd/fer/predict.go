package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/infer"
	"github.com/fertorch/fertorch/torch"
)

func runPredict(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("predict", "predict --checkpoint FILE [flags] IMAGE|FOLDER...", stderr)
	checkpoint := fs.String("checkpoint", "runs/vgg16/best.safetensors", "trained model")
	k := fs.IntP("top-k", "k", 3, "classes to show per image")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	device := torch.DeviceAuto
	fs.Var(&device, "device", "device: "+torch.DeviceSpecNames())
	batch := fs.Int("batch-size", 64, "images per batch")
	tta := fs.Bool("tta", false, "average each image's prediction with its horizontal mirror's")
	oneDNN := oneDNNFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("give at least one image or folder")
	}
	if *k < 1 {
		return usagef("--top-k must be at least 1")
	}
	if *batch < 1 {
		return usagef("--batch-size %d must be at least 1", *batch)
	}
	for _, a := range fs.Args() {
		if data.IsURL(a) {
			return usagef("%s is a URL: fer does not fetch URLs; download the image first and give its path", a)
		}
	}
	model, err := infer.Load(*checkpoint, infer.Options{Device: device, BatchSize: *batch, OneDNN: *oneDNN})
	if err != nil {
		return err
	}
	defer model.Free()
	tellNotice(stderr, "predict", model.Notice)
	ctx := onInterrupt()
	defer ctx.stop()
	preds, skipped, err := model.Predict(ctx, fs.Args(), *k, *tta)
	if err != nil {
		return ctx.wrap(err)
	}
	if *asJSON {
		out := struct {
			Predictions []infer.Prediction `json:"predictions"`
			Skipped     []string           `json:"skipped,omitempty"`
		}{Predictions: preds}
		for _, s := range skipped {
			out.Skipped = append(out.Skipped, s.String())
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else if len(preds) > 0 {
		infer.WritePredictions(stdout, preds)
		if len(skipped) > 0 {
			fmt.Fprintln(stderr)
			if err := data.WriteSkipReport(stderr, skipped); err != nil {
				return err
			}
		}
	}
	if len(preds) == 0 {
		// The error first, then why each file was refused.
		var why strings.Builder
		if err := data.WriteSkipReport(&why, skipped); err != nil {
			return err
		}
		return fmt.Errorf("none of the %d files given could be read as an image:\n%s", len(skipped), strings.TrimRight(why.String(), "\n"))
	}
	return nil
}
