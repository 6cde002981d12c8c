// Package infer turns a fertorch checkpoint into predictions: it loads the
// network the checkpoint describes (architecture, classes, input size,
// normalisation and resize method all come from the checkpoint), prepares
// decoded images exactly as evaluation does, and runs forward-only batches
// without autograd, with optional mirror test-time augmentation. `fer
// eval`, `fer predict` and `fer serve` all use it; it never imports the
// trainer.
package infer

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fertorch/fertorch/checkpoint"
	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
	"github.com/fertorch/fertorch/vision"
)

// Options configure Load.
type Options struct {
	// Device is where the model runs ("" is auto: CUDA when available).
	Device torch.DeviceSpec
	// BatchSize is the images per forward pass of Run (0: 64).
	BatchSize int
	// Workers are Run's decoding and batching goroutines (0: one per core).
	Workers int
	// OneDNN is whether CPU work may use libtorch's oneDNN kernels ("" is
	// auto: unless a probe finds them wrong on this machine).
	OneDNN torch.OneDNNMode
}

// Model is a trained network ready for inference. Its methods that run the
// network are meant for one goroutine at a time.
type Model struct {
	// Path is the checkpoint file.
	Path string
	// Kind is the checkpoint's kind (checkpoint.KindWeights or KindFull).
	Kind string
	// Classes are the class names in output order.
	Classes []string
	// Config is the network and its input preparation.
	Config ModelConfig
	// Device is where the network runs.
	Device torch.Device
	// Notice is what the user should be told about how the network runs
	// (oneDNN turned off on this CPU by the auto mode), or "".
	Notice string

	net     vision.Backbone
	batch   int
	workers int
}

// state is the part of a checkpoint's run state that inference reads: the
// trainer writes train.State, whose Config.Model embeds ModelConfig.
type state struct {
	Kind    string   `json:"kind"`
	Classes []string `json:"classes"`
	Config  struct {
		Model ModelConfig `json:"Model"`
	} `json:"config"`
}

// Load reads and verifies a checkpoint (weights or full) and builds its
// network on the device, in evaluation mode.
func Load(path string, opts Options) (*Model, error) {
	f, err := checkpoint.Read(path)
	if err != nil {
		return nil, err
	}
	var st state
	if err := f.DecodeState(&st); err != nil {
		return nil, err
	}
	if len(st.Classes) == 0 {
		return nil, fmt.Errorf("%s: checkpoint lists no classes", path)
	}
	dev, err := torch.ParseDevice(string(opts.Device))
	if err != nil {
		return nil, err
	}
	notice, err := opts.OneDNN.Apply(dev)
	if err != nil {
		return nil, err
	}
	net, err := st.Config.Model.Build(len(st.Classes))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m := &Model{Path: path, Kind: st.Kind, Classes: st.Classes, Config: st.Config.Model, Device: dev, Notice: notice, net: net, batch: opts.BatchSize, workers: opts.Workers}
	if m.batch <= 0 {
		m.batch = 64
	}
	if _, err := vision.LoadStateDict(net.StateTensors(), f.Model, vision.LoadOptions{Strict: true}); err != nil {
		m.Free()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := nn.MoveTo(net, dev, torch.Float32, false); err != nil {
		m.Free()
		return nil, err
	}
	net.SetTraining(false)
	return m, nil
}

// Free releases the network's tensors.
func (m *Model) Free() {
	if m.net != nil {
		m.net.Free()
		m.net = nil
	}
}

// Name describes the model in a few words: the checkpoint's file name, the
// architecture, head and input size.
func (m *Model) Name() string {
	return fmt.Sprintf("%s (%s, %s head, %dx%d)", filepath.Base(m.Path), m.Config.Arch, m.Config.Head, m.Config.InputSize, m.Config.InputSize)
}

// ImageValues is the number of float32 values of one prepared image
// (3 x InputSize x InputSize, CHW).
func (m *Model) ImageValues() int { return 3 * m.Config.InputSize * m.Config.InputSize }

// Prepare writes a decoded image into dst (ImageValues values, CHW) the way
// evaluation prepares it: resized to the input size with the checkpoint's
// method, grayscale expanded to RGB, normalised as in training.
func (m *Model) Prepare(dst []float32, img image.Image) error {
	s := m.Config.InputSize
	return data.Augment(dst, data.ToImage(img, s, s, m.Config.Resize), data.Transform{}, nil, m.Config.Normalization)
}

// Probabilities runs one forward pass over n prepared images (n *
// ImageValues values) and returns each image's class probabilities. With
// flipTTA each is averaged with its horizontal mirror's.
func (m *Model) Probabilities(images []float32, n int, flipTTA bool) ([][]float32, error) {
	per := m.ImageValues()
	if n <= 0 || len(images) < n*per {
		return nil, fmt.Errorf("infer: %d values for %d images of %d", len(images), n, per)
	}
	if m.net == nil {
		return nil, errors.New("infer: the model was freed")
	}
	scope := torch.NewScope()
	defer scope.Close()
	s := int64(m.Config.InputSize)
	x, err := scope.Own(torch.FromFloat32s(images[:n*per], int64(n), 3, s, s))
	if err != nil {
		return nil, err
	}
	if m.Device.IsCUDA() {
		if x, err = x.To(m.Device, torch.Float32, false); err != nil {
			return nil, err
		}
	}
	var host []float32
	err = torch.NoGrad(func() error {
		p, err := m.softmax(x)
		if err != nil {
			return err
		}
		if flipTTA {
			flipped, err := x.Flip(3)
			if err != nil {
				return err
			}
			q, err := m.softmax(flipped)
			if err != nil {
				return err
			}
			if p, err = p.Add(q); err != nil {
				return err
			}
			if p, err = p.MulScalar(0.5); err != nil {
				return err
			}
		}
		host, err = p.Float32s()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("infer: forward pass of %d images: %w", n, err)
	}
	c := len(m.Classes)
	if len(host) != n*c {
		return nil, fmt.Errorf("infer: %d probabilities for %d images of %d classes", len(host), n, c)
	}
	out := make([][]float32, n)
	for i := range out {
		out[i] = host[i*c : (i+1)*c : (i+1)*c]
	}
	return out, nil
}

func (m *Model) softmax(x *torch.Tensor) (*torch.Tensor, error) {
	logits, err := m.net.Forward(x)
	if err != nil {
		return nil, err
	}
	return logits.Softmax(1)
}

// Decode reads and resizes a dataset's images for this model (its input
// size and resize method); files that cannot be used go to Skipped.
func (m *Model) Decode(ctx context.Context, ds *data.Dataset) (*data.Dataset, error) {
	s := m.Config.InputSize
	dec, _, err := ds.Decode(ctx, data.DecodeOptions{Height: s, Width: s, Resize: m.Config.Resize, Workers: m.workers})
	return dec, err
}

// Run returns the class probabilities of every sample of a decoded dataset
// (see Decode), in order, in batches of Options.BatchSize.
func (m *Model) Run(ctx context.Context, ds *data.Dataset, flipTTA bool) ([][]float32, error) {
	loader, err := data.NewLoader(ds, data.LoaderConfig{BatchSize: m.batch, Workers: m.workers, Normalize: m.Config.Normalization})
	if err != nil {
		return nil, err
	}
	probs := make([][]float32, 0, ds.Len())
	for b, err := range loader.All(ctx, 0, 0) {
		if err != nil {
			return nil, err
		}
		p, err := m.Probabilities(b.Images, b.N, flipTTA)
		b.Release()
		if err != nil {
			return nil, err
		}
		probs = append(probs, p...)
	}
	return probs, nil
}

// ClassScore is a class and its probability.
type ClassScore struct {
	Class       string  `json:"class"`
	Probability float64 `json:"probability"`
}

// TopK returns the k most probable classes, most probable first (ties in
// class order); k is clamped to [1, number of classes].
func TopK(classes []string, probs []float32, k int) []ClassScore {
	k = max(1, min(k, len(probs)))
	order := make([]int, len(probs))
	for j := range order {
		order[j] = j
	}
	sort.SliceStable(order, func(a, b int) bool { return probs[order[a]] > probs[order[b]] })
	out := make([]ClassScore, k)
	for i, j := range order[:k] {
		out[i] = ClassScore{Class: classes[j], Probability: float64(probs[j])}
	}
	return out
}

// Prediction is the top classes of one image.
type Prediction struct {
	Image string       `json:"image"`
	Top   []ClassScore `json:"top"`
}

// Predict returns the top-k classes of every image file found in paths
// (files, or folders searched recursively), and the files that could not be
// used.
func (m *Model) Predict(ctx context.Context, paths []string, k int, flipTTA bool) ([]Prediction, []data.Skip, error) {
	samples, skipped := data.CollectImages(paths)
	if len(samples) == 0 && len(skipped) == 0 {
		return nil, nil, fmt.Errorf("no files found in %v", paths)
	}
	ds := &data.Dataset{Classes: m.Classes, Samples: samples, Skipped: skipped}
	dec, err := m.Decode(ctx, ds)
	if err != nil {
		return nil, nil, err
	}
	if dec.Len() == 0 {
		return nil, dec.Skipped, nil
	}
	probs, err := m.Run(ctx, dec, flipTTA)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Prediction, dec.Len())
	for i, p := range probs {
		out[i] = Prediction{Image: dec.Samples[i].Path, Top: TopK(m.Classes, p, k)}
	}
	return out, dec.Skipped, nil
}

// WritePredictions writes predictions as text lines.
func WritePredictions(w io.Writer, preds []Prediction) {
	for _, p := range preds {
		parts := make([]string, len(p.Top))
		for i, c := range p.Top {
			parts[i] = fmt.Sprintf("%s %.3f", c.Class, c.Probability)
		}
		fmt.Fprintf(w, "%s\t%s\n", p.Image, strings.Join(parts, "\t"))
	}
}

// ClassNames returns the class names in output order.
func (m *Model) ClassNames() []string { return m.Classes }
