package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/fertorch/fertorch/train"
	"github.com/fertorch/fertorch/vision"
)

func runSummary(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("summary", "summary [--arch NAME] [--head H] [--input-size N] [--png FILE] [flags]", stderr)
	cfg := train.DefaultConfig()
	m := &cfg.Model
	fs.Var(&m.Arch, "arch", "architecture: "+strings.Join(vision.ArchNames(), ", "))
	fs.Var(&m.Head, "head", "classifier head: "+vision.HeadNames())
	fs.IntVar(&m.Hidden, "hidden", m.Hidden, "hidden units of the transfer head")
	fs.Float64Var(&m.Dropout, "dropout", m.Dropout, "dropout probability of the transfer and gap heads")
	fs.IntVar(&m.InputSize, "input-size", m.InputSize, "square input side in pixels")
	fs.StringVar(&m.TrainableBaseLayers, "trainable-base-layers", m.TrainableBaseLayers, "stages of the base trained, counted from the top, or all (as fer train)")
	classes := fs.Int("classes", 8, "number of classes")
	pngPath := fs.String("png", "", "also draw the layer graph (output shapes, what trains) into this PNG file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %v", fs.Args())
	}
	if *classes < 1 {
		return usagef("--classes %d must be at least 1", *classes)
	}
	if err := cfg.Validate(); err != nil {
		return usagef("invalid settings:\n%v", err)
	}
	s, line, err := train.DescribeNet(cfg.Model, *classes)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n%s", line, s)
	if *pngPath != "" {
		if err := train.SaveModelPNG(s, *pngPath); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "layer graph: %s\n", *pngPath)
	}
	return nil
}
