// Package testmodel makes what inference tests and benchmarks need in a
// second: a small, untrained fertorch checkpoint written through the
// trainer's own SaveCheckpoint (so it carries a real run state), and a few
// face-like test images.
package testmodel

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"reflect"

	"github.com/fertorch/fertorch/checkpoint"
	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/tensorfile"
	"github.com/fertorch/fertorch/train"
	"github.com/fertorch/fertorch/vision"
)

// Options choose the checkpoint's network; zero fields take the defaults
// (vgg16_bn with the gap head at 32x32, the eight emotions, seed 1).
type Options struct {
	Arch      vision.Arch
	Head      vision.Head
	InputSize int
	Hidden    int
	Classes   []string
	Seed      uint64
}

// Checkpoint writes a weights checkpoint of a randomly initialised network
// to path and returns its run configuration.
func Checkpoint(path string, opt Options) (train.Config, error) {
	cfg := train.DefaultConfig()
	cfg.Model.Arch = vision.ArchVGG16BN
	cfg.Model.Head = vision.HeadGAP
	cfg.Model.InputSize = 32
	cfg.Model.Hidden = 32
	cfg.Model.Weights = ""
	cfg.Model.Resize = data.ResizeBilinear
	cfg.Train.Seed = 1
	if opt.Arch != "" {
		cfg.Model.Arch = opt.Arch
	}
	if opt.Head != "" {
		cfg.Model.Head = opt.Head
	}
	if opt.InputSize > 0 {
		cfg.Model.InputSize = opt.InputSize
	}
	if opt.Hidden > 0 {
		cfg.Model.Hidden = opt.Hidden
	}
	if opt.Seed != 0 {
		cfg.Train.Seed = opt.Seed
	}
	classes := opt.Classes
	if classes == nil {
		classes = data.Emotions()
	}
	if err := torch.ManualSeed(cfg.Train.Seed); err != nil {
		return cfg, err
	}
	net, err := cfg.Model.Build(len(classes))
	if err != nil {
		return cfg, err
	}
	defer net.Free()
	st := &train.State{Kind: checkpoint.KindWeights, Config: cfg, Classes: classes}
	if err := train.SaveCheckpoint(path, st, net.StateTensors(), nil); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// Face draws a w x h face-like picture (an oval, eyes, a mouth whose curve
// depends on mood in [-1, 1]) with a tint that depends on seed.
func Face(w, h int, mood float64, seed int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	cx, cy := float64(w)/2, float64(h)/2
	rx, ry := float64(w)*0.38, float64(h)*0.46
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := (float64(x)-cx)/rx, (float64(y)-cy)/ry
			c := color.NRGBA{uint8(40 + 20*(seed%5)), uint8(60 + 7*y%80), uint8(90 + 13*seed%60), 255}
			if fx*fx+fy*fy < 1 {
				c = color.NRGBA{uint8(200 - 9*(seed%7)), uint8(160 + 3*(seed%11)), 130, 255}
			}
			// eyes
			for _, ex := range []float64{-0.4, 0.4} {
				dx, dy := fx-ex, fy+0.3
				if dx*dx+dy*dy < 0.02 {
					c = color.NRGBA{20, 20, 30, 255}
				}
			}
			// mouth: y = 0.45 - mood*0.25*(1-x^2) for |x| < 0.5
			if math.Abs(fx) < 0.5 && math.Abs(fy-(0.45-mood*0.25*(1-4*fx*fx))) < 0.05 {
				c = color.NRGBA{120, 20, 30, 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// WriteFaces writes n faces into dir, alternating PNG and JPEG and varying
// size and mood, and returns their paths.
func WriteFaces(dir string, n int) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for i := 0; i < n; i++ {
		side := 40 + 13*(i%5)
		img := Face(side, side+7*(i%3), math.Sin(float64(i)), i)
		ext := ".png"
		if i%2 == 1 {
			ext = ".jpg"
		}
		path := filepath.Join(dir, fmt.Sprintf("face-%02d%s", i, ext))
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		if ext == ".png" {
			err = png.Encode(f, img)
		} else {
			err = jpeg.Encode(f, img, &jpeg.Options{Quality: 90})
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// Classes are the default checkpoint's classes, in output order.
func Classes() []string { return data.Emotions() }

// WeightDiff is the largest absolute difference between the float32
// tensors of two checkpoints' models (parameters and buffers) and the
// tensor where it is. The models must hold the same names, shapes and
// dtypes in the same order, and their other tensors must be equal.
func WeightDiff(a, b *train.LoadedCheckpoint) (worst float64, where string, err error) {
	if len(a.Model.Entries) != len(b.Model.Entries) {
		return 0, "", fmt.Errorf("%d tensors against %d", len(a.Model.Entries), len(b.Model.Entries))
	}
	for i := range a.Model.Entries {
		ea, eb := &a.Model.Entries[i], &b.Model.Entries[i]
		if ea.Name != eb.Name || !reflect.DeepEqual(ea.Shape, eb.Shape) || ea.DType != eb.DType {
			return 0, "", fmt.Errorf("tensor %d: %s %v %v against %s %v %v", i, ea.Name, ea.Shape, ea.DType, eb.Name, eb.Shape, eb.DType)
		}
		if ea.DType != tensorfile.Float32 {
			if !bytes.Equal(ea.Data, eb.Data) {
				return 0, "", fmt.Errorf("%s differs", ea.Name)
			}
			continue
		}
		x, err := ea.Float32s()
		if err != nil {
			return 0, "", err
		}
		y, err := eb.Float32s()
		if err != nil {
			return 0, "", err
		}
		for k := range x {
			if d := math.Abs(float64(x[k]) - float64(y[k])); d > worst {
				worst, where = d, ea.Name
			}
		}
	}
	return worst, where, nil
}
