package train

import (
	"fmt"
	"math"
	"time"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
	"github.com/fertorch/fertorch/torch/optim"
	"github.com/fertorch/fertorch/vision"
)

// BenchConfig describes a training-throughput measurement on synthetic
// batches: a model (by default the seed's: VGG16, transfer head, last 4
// base layers trainable), Adam, at a given size, batch, device and
// precision.
type BenchConfig struct {
	// Arch, Head and Trainable (trainable_base_layers) choose the model;
	// empty: vgg16, transfer, "4".
	Arch         vision.Arch
	Head         vision.Head
	Trainable    string
	Device       torch.Device
	Precision    Precision
	ChannelsLast bool
	BatchSize    int
	InputSize    int
	Classes      int
	Warmup       int
	Steps        int
	Seed         uint64
}

// BenchResult is a throughput measurement.
type BenchResult struct {
	Device        string  `json:"device"`
	Precision     string  `json:"precision"`
	ChannelsLast  bool    `json:"channels_last"`
	BatchSize     int     `json:"batch_size"`
	InputSize     int     `json:"input_size"`
	Steps         int     `json:"steps"`
	Seconds       float64 `json:"seconds"`
	ImagesPerSec  float64 `json:"images_per_sec"`
	FinalLoss     float64 `json:"final_loss"`
	TorchVersion  string  `json:"torch_version"`
	HostToDevice  bool    `json:"host_to_device_copy_per_step"`
	TrainableBase string  `json:"trainable_base_layers"`
	Arch          string  `json:"arch"`
	Head          string  `json:"head"`
	// TrainableParams counts the parameters the optimizer updates.
	TrainableParams int64 `json:"trainable_params"`
}

// Benchmark times training steps. Each step copies a fresh host batch to
// the device (from pinned memory on CUDA), as real training does, so the
// number includes the transfer but not decoding or augmentation.
func Benchmark(cfg BenchConfig) (*BenchResult, error) {
	if cfg.Steps < 1 || cfg.BatchSize < 1 {
		return nil, fmt.Errorf("benchmark: need at least one step and one image per batch")
	}
	if err := torch.ManualSeed(cfg.Seed); err != nil {
		return nil, err
	}
	m := DefaultConfig().Model
	m.InputSize = cfg.InputSize
	if cfg.Arch != "" {
		m.Arch = cfg.Arch
	}
	if cfg.Head != "" {
		m.Head = cfg.Head
	}
	if cfg.Trainable != "" {
		m.TrainableBaseLayers = cfg.Trainable
	}
	model, err := BuildNet(m, cfg.Classes)
	if err != nil {
		return nil, err
	}
	defer model.Free()
	if _, err := freezeNet(model, m.TrainableBaseLayers); err != nil {
		return nil, err
	}
	if err := nn.MoveTo(model, cfg.Device, torch.Float32, cfg.ChannelsLast); err != nil {
		return nil, err
	}
	base, head := vision.SplitTrainable(model)
	var trainable int64
	for _, p := range append(base, head...) {
		trainable += p.Tensor.Numel()
	}
	opt, err := optim.NewAdam([]optim.Group{{Params: base, LR: 1e-4}, {Params: head, LR: 1e-4}}, optim.AdamOptions{Beta1: 0.9, Beta2: 0.999, Eps: 1e-7})
	if err != nil {
		return nil, err
	}
	defer opt.Free()
	stepper, err := NewStepper(model, opt, LossConfig{}, cfg.Device, cfg.Precision)
	if err != nil {
		return nil, err
	}
	model.SetTraining(true)

	n, s := int64(cfg.BatchSize), int64(cfg.InputSize)
	host := make([]float32, n*3*s*s)
	for i := range host {
		host[i] = float32(math.Sin(float64(i) * 0.001))
	}
	labels := make([]int64, n)
	for i := range labels {
		labels[i] = int64(i % cfg.Classes)
	}
	staging, err := NewStaging(cfg.Device, []int64{n, 3, s, s})
	if err != nil {
		return nil, err
	}
	defer staging.Free()

	var last float64
	step := func() error {
		scope := torch.NewScope()
		defer scope.Close()
		x, y, err := staging.Upload(scope, host, labels, cfg.ChannelsLast)
		if err != nil {
			return err
		}
		r, err := stepper.TrainStep(x, y)
		if err != nil {
			return err
		}
		last, err = r.Loss.Item()
		staging.Synced()
		return err
	}
	for i := 0; i < cfg.Warmup; i++ {
		if err := step(); err != nil {
			return nil, fmt.Errorf("warmup step %d: %w", i, err)
		}
	}
	if err := torch.Synchronize(cfg.Device); err != nil {
		return nil, err
	}
	start := time.Now()
	for i := 0; i < cfg.Steps; i++ {
		if err := step(); err != nil {
			return nil, fmt.Errorf("step %d: %w", i, err)
		}
	}
	if err := torch.Synchronize(cfg.Device); err != nil {
		return nil, err
	}
	secs := time.Since(start).Seconds()
	return &BenchResult{
		Device: cfg.Device.String(), Precision: string(cfg.Precision), ChannelsLast: cfg.ChannelsLast,
		BatchSize: cfg.BatchSize, InputSize: cfg.InputSize, Steps: cfg.Steps, Seconds: secs,
		ImagesPerSec: float64(cfg.Steps*cfg.BatchSize) / secs, FinalLoss: last,
		TorchVersion: torch.Version(), HostToDevice: true, TrainableBase: m.TrainableBaseLayers,
		Arch: string(m.Arch), Head: m.Head.String(), TrainableParams: trainable,
	}, nil
}

// ForwardParity builds the seed's model with a fixed seed, runs the same
// random batch through it in evaluation mode on the CPU and on dev (float32,
// and with channelsLast if asked) and returns the largest absolute
// difference between the logits.
func ForwardParity(dev torch.Device, inputSize, batch int, channelsLast bool, seed uint64) (float64, error) {
	if err := torch.ManualSeed(seed); err != nil {
		return 0, err
	}
	model, err := vision.NewVGG16(vision.VGG16Config{InputSize: inputSize, NumClasses: 8, Head: vision.HeadTorchvision})
	if err != nil {
		return 0, err
	}
	defer model.Free()
	model.SetTraining(false)
	scope := torch.NewScope()
	defer scope.Close()
	x, err := scope.Own(torch.Randn([]int64{int64(batch), 3, int64(inputSize), int64(inputSize)}, torch.Options{}))
	if err != nil {
		return 0, err
	}
	var cpuOut, devOut []float32
	err = torch.NoGrad(func() error {
		y, err := model.Forward(x)
		if err != nil {
			return err
		}
		if cpuOut, err = y.Float32s(); err != nil {
			return err
		}
		if err := nn.MoveTo(model, dev, torch.Float32, channelsLast); err != nil {
			return err
		}
		xd, err := x.ToDevice(dev)
		if err != nil {
			return err
		}
		if channelsLast {
			if xd, err = xd.ChannelsLast(); err != nil {
				return err
			}
		}
		yd, err := model.Forward(xd)
		if err != nil {
			return err
		}
		devOut, err = yd.Float32s()
		return err
	})
	if err != nil {
		return 0, err
	}
	worst := 0.0
	for i := range cpuOut {
		worst = math.Max(worst, math.Abs(float64(cpuOut[i])-float64(devOut[i])))
	}
	return worst, nil
}
