// Package train is fertorch's training and evaluation: the configuration
// (a YAML file whose defaults are the seed tutorial's settings, overridden by
// flags), the training loop with class-weighted loss, validation, progress,
// learning-rate schedules and early stopping, checkpoints written atomically
// and resumable mid-epoch, history with plots, and evaluation with honest
// per-class metrics.
package train

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/infer"
	"github.com/fertorch/fertorch/internal/atomicfile"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/vision"
)

// Config is everything a training run needs. DefaultConfig holds the seed
// tutorial's settings.
type Config struct {
	Data    DataConfig    `yaml:"data"`
	Model   ModelConfig   `yaml:"model"`
	Augment AugmentConfig `yaml:"augment"`
	Train   TrainConfig   `yaml:"train"`
	// Output is the run folder: checkpoints, history, plots, the effective
	// config.
	Output string `yaml:"output"`
}

// DataConfig says where the prepared images are and how they are loaded.
type DataConfig struct {
	// Dir holds the Keras layout written by `fer prepare`: train/<class>/,
	// valid/<class>/ and test/<class>/.
	Dir string `yaml:"dir"`
	// Cache is an optional file of decoded, resized pixels reused by later
	// runs with the same images and input size ("" keeps it in memory only).
	Cache string `yaml:"cache"`
	// Workers decode and augment in parallel (0: one per core).
	Workers int `yaml:"workers"`
	// Prefetch is how many batches may wait ready ahead of training.
	Prefetch int `yaml:"prefetch"`
}

// ModelConfig describes the network, how its inputs are prepared
// (infer.ModelConfig, with the same YAML names: what a checkpoint needs to
// be used for inference) and its starting weights.
type ModelConfig struct {
	infer.ModelConfig `yaml:",inline"`
	// Weights is the pretrained ImageNet file (torchvision .pth or
	// safetensors; "" for random weights). A file given by flag or config
	// must load; only the built-in default (DefaultWeights) may be missing,
	// and then training warns and starts from random weights.
	Weights string `yaml:"weights"`
	// weightsGiven is true when Weights came from a flag or a config file.
	weightsGiven bool
	// TrainableBaseLayers is how many stages of the base train, counted
	// from the top, or "all"; "0" freezes the base (the head always
	// trains). For VGG the stages are Keras' 19 base layers ("4", the
	// seed's, trains block5); for the other architectures they are
	// vision's stages (ResNet: stem, layer1..layer4, so "1" trains layer4).
	// Batch norms of frozen stages stay in evaluation mode.
	TrainableBaseLayers string `yaml:"trainable_base_layers"`
}

// AugmentConfig are Keras ImageDataGenerator's random augmentation settings
// (data.AugmentConfig, with the same YAML names), applied to training
// images only when Enabled.
type AugmentConfig struct {
	Enabled            bool `yaml:"enabled"`
	data.AugmentConfig `yaml:",inline"`
}

// TrainConfig are the optimisation settings.
type TrainConfig struct {
	Epochs int `yaml:"epochs"`
	// BatchSize is the global batch: a distributed run splits it across
	// its ranks, so a config means the same run on one process or many.
	BatchSize int `yaml:"batch_size"`
	// Optimizer is adam, adamw or sgd.
	Optimizer OptimizerName `yaml:"optimizer"`
	// LR is the head's learning rate; BaseLR the trainable base layers'
	// (0: same as LR).
	LR          float64 `yaml:"lr"`
	BaseLR      float64 `yaml:"base_lr"`
	WeightDecay float64 `yaml:"weight_decay"`
	// AdamEps is Adam's epsilon (Keras: 1e-7, PyTorch: 1e-8).
	AdamEps  float64 `yaml:"adam_eps"`
	Momentum float64 `yaml:"momentum"`
	Nesterov bool    `yaml:"nesterov"`
	// ClassWeights weights each class's loss by min(max_count/count, cap).
	ClassWeights   bool    `yaml:"class_weights"`
	ClassWeightCap float64 `yaml:"class_weight_cap"`
	// LossNormalization is keras (sum(w*CE)/batch size, the seed's) or
	// pytorch (sum(w*CE)/sum(w), nn.CrossEntropyLoss's).
	LossNormalization LossNormalization `yaml:"loss_normalization"`
	// Oversample draws rare classes more often (a weighted sampler).
	Oversample     bool    `yaml:"oversample"`
	LabelSmoothing float64 `yaml:"label_smoothing"`
	DropLast       bool    `yaml:"drop_last"`
	// Schedule is none, step, cosine, plateau or one-cycle.
	Schedule        ScheduleName `yaml:"schedule"`
	StepEpochs      int          `yaml:"step_epochs"`
	StepGamma       float64      `yaml:"step_gamma"`
	PlateauPatience int          `yaml:"plateau_patience"`
	PlateauFactor   float64      `yaml:"plateau_factor"`
	MinLR           float64      `yaml:"min_lr"`
	// WarmupEpochs ramps the rate linearly from 1/W of its value over the
	// first W = WarmupEpochs x steps-per-epoch steps (none, step, cosine
	// and plateau schedules; one-cycle has its own warm-up).
	WarmupEpochs float64 `yaml:"warmup_epochs"`
	// One-cycle settings (PyTorch OneCycleLR's pct_start, div_factor,
	// final_div_factor, cycle_momentum and base/max_momentum).
	OneCyclePctStart       float64    `yaml:"one_cycle_pct_start"`
	OneCycleDivFactor      float64    `yaml:"one_cycle_div_factor"`
	OneCycleFinalDivFactor float64    `yaml:"one_cycle_final_div_factor"`
	OneCycleMomentum       bool       `yaml:"one_cycle_momentum"`
	OneCycleMomentumRange  [2]float64 `yaml:"one_cycle_momentum_range,flow"`
	// EarlyStopping stops after this many epochs without improvement of
	// BestMetric (0: never).
	EarlyStopping int `yaml:"early_stopping"`
	// BestMetric chooses the best checkpoint: val_accuracy, val_loss,
	// val_balanced_accuracy or val_macro_f1.
	BestMetric Metric `yaml:"best_metric"`
	Seed       uint64 `yaml:"seed"`
	// Device is auto, cpu, cuda or cuda:N.
	Device torch.DeviceSpec `yaml:"device"`
	// Precision is fp32, bf16 or fp16 (autocast for the forward pass; fp16
	// adds loss scaling).
	Precision    Precision `yaml:"precision"`
	ChannelsLast bool      `yaml:"channels_last"`
	// CheckpointEverySteps also saves `last` inside an epoch (0: only at
	// epoch ends), so a killed run resumes where it was.
	CheckpointEverySteps int `yaml:"checkpoint_every_steps"`
	// EpochCheckpoints keeps one weights file per epoch, named with its
	// validation accuracy as the seed does.
	EpochCheckpoints bool `yaml:"epoch_checkpoints"`
	// Threads is libtorch's CPU thread count (0: one per core; on several
	// ranks per machine, the cores divided among them).
	Threads int `yaml:"threads"`
	// OneDNN is whether CPU work may use libtorch's oneDNN kernels: auto
	// (the default) uses them unless a start-up probe finds them computing
	// wrong convolutions on this machine, on and off force it.
	OneDNN torch.OneDNNMode `yaml:"onednn"`
	// SyncBN makes batch norm compute its batch statistics over every
	// rank's share of the global batch in a distributed run (PyTorch's
	// SyncBatchNorm); without it each rank normalises with its own share's
	// statistics, as DistributedDataParallel does by default.
	SyncBN bool `yaml:"sync_bn"`
	// Accumulate splits every step's batch (each rank's share of it) into
	// this many micro-batches whose gradients add up before one optimizer
	// step: a large batch on a small GPU, with the large batch's update
	// (batch norm sees the micro-batches). 0 and 1 mean none.
	Accumulate int `yaml:"accumulate"`
	// FineTune trains the head alone (the base frozen) for this many
	// epochs, then the configured trainable base layers too at BaseLR
	// (fastai's fine_tune; 0: off).
	FineTune int `yaml:"fine_tune"`
	// EMA keeps an exponential moving average of the weights with this
	// decay (e.g. 0.999), which validation and the saved weights use
	// (0: off).
	EMA float64 `yaml:"ema"`
	// EMAWarmup ramps the average's decay up as min(EMA, (1+n)/(10+n))
	// after n updates (TensorFlow's ExponentialMovingAverage with
	// num_updates), so the average forgets the initial weights within the
	// first epochs; false keeps the decay fixed (timm's ModelEmaV2).
	EMAWarmup bool `yaml:"ema_warmup"`
	// Mixup and CutMix are the Beta(a, a) concentrations of timm's Mixup
	// in its 'batch' mode (0: off): a training batch is blended with, or
	// has a box pasted from, the reversed global batch, and its loss is
	// the two labels' losses weighted by the blend (see mix.go).
	Mixup  float64 `yaml:"mixup"`
	CutMix float64 `yaml:"cutmix"`
	// MixProb is the probability that a batch is mixed at all;
	// MixSwitchProb, with both Mixup and CutMix on, the probability that
	// a mixed batch takes CutMix rather than Mixup.
	MixProb       float64 `yaml:"mix_prob"`
	MixSwitchProb float64 `yaml:"mix_switch_prob"`
}

// DefaultConfig returns the seed tutorial's settings: VGG16 at 224x224 with
// the last 4 base layers trainable, Flatten-Dense(1024)-Dropout(0.5)-Dense
// head, Adam (lr 1e-3, Keras eps), batch 64, 10 epochs, class weights capped
// at 3 with Keras' loss normalisation, and its augmentation.
func DefaultConfig() Config {
	return Config{
		Data: DataConfig{Dir: "work/data", Prefetch: 4},
		Model: ModelConfig{
			ModelConfig: infer.ModelConfig{
				Arch: vision.ArchVGG16, Head: vision.HeadTransfer, Hidden: 1024, Dropout: 0.5, InputSize: 224,
				Normalization: data.NormImageNet, Resize: data.ResizeNearest,
			},
			Weights: DefaultWeights, TrainableBaseLayers: "4",
		},
		Augment: AugmentConfig{Enabled: true, AugmentConfig: *data.KerasTutorialAugment()},
		Train: TrainConfig{
			Epochs: 10, BatchSize: 64, Optimizer: Adam, LR: 1e-3, AdamEps: 1e-7,
			ClassWeights: true, ClassWeightCap: 3, LossNormalization: KerasLoss,
			Schedule: ScheduleNone, StepEpochs: 5, StepGamma: 0.1, PlateauPatience: 2, PlateauFactor: 0.1,
			Accumulate: 1, OneCyclePctStart: 0.3, OneCycleDivFactor: 25, OneCycleFinalDivFactor: 1e4,
			OneCycleMomentum: true, OneCycleMomentumRange: [2]float64{0.85, 0.95},
			BestMetric: ValAccuracy, Seed: 42, Device: torch.DeviceAuto, Precision: FP32, OneDNN: torch.OneDNNAuto,
			EpochCheckpoints: true, EMAWarmup: true, MixProb: 1, MixSwitchProb: 0.5,
		},
		Output: "runs/vgg16",
	}
}

// LoadConfig reads a YAML file over DefaultConfig. Unknown keys and wrong
// types are errors that name the file and line.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	raw, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("reading config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		var te *yaml.TypeError
		if errors.As(err, &te) {
			// One line, each problem with its line number.
			msg = strings.Join(te.Errors, "; ")
		}
		return cfg, fmt.Errorf("config %s: %s", path, msg)
	}
	var given struct {
		Model struct {
			Weights *string `yaml:"weights"`
		} `yaml:"model"`
	}
	if err := yaml.Unmarshal(raw, &given); err == nil {
		cfg.Model.weightsGiven = given.Model.Weights != nil
	}
	return cfg, nil
}

// Save writes the config as YAML (the effective config of a run).
func (c Config) Save(path string) error {
	raw, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding config: %w", err)
	}
	return atomicfile.WriteFile(path, raw)
}

// Validate checks ranges and names, reporting every problem at once.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	check(c.Data.Dir != "", "data.dir is empty")
	check(c.Data.Workers >= 0, "data.workers %d is negative", c.Data.Workers)
	check(c.Data.Prefetch >= 1, "data.prefetch %d must be at least 1", c.Data.Prefetch)
	named := func(field string, v interface {
		String() string
		Set(string) error
	}) {
		// A name set in Go code rather than parsed may be outside its table.
		if err := v.Set(v.String()); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	named("model.arch", &c.Model.Arch)
	named("model.head", &c.Model.Head)
	check(c.Model.Hidden > 0, "model.hidden %d must be positive", c.Model.Hidden)
	check(c.Model.Dropout >= 0 && c.Model.Dropout < 1, "model.dropout %g is outside [0, 1)", c.Model.Dropout)
	check(c.Model.InputSize >= 32, "model.input_size %d is below 32", c.Model.InputSize)
	add(c.Model.checkArch())
	named("model.normalization", &c.Model.Normalization)
	named("model.resize", &c.Model.Resize)
	check(c.Augment.RotationRange <= 180, "augment.rotation_range %g is above 180", c.Augment.RotationRange)
	add(c.Augment.AugmentConfig.Validate())
	t := &c.Train
	check(t.Epochs >= 1, "train.epochs %d must be at least 1", t.Epochs)
	check(t.BatchSize >= 1, "train.batch_size %d must be at least 1", t.BatchSize)
	named("train.optimizer", &t.Optimizer)
	check(t.LR > 0, "train.lr %g must be positive", t.LR)
	check(t.BaseLR >= 0, "train.base_lr %g is negative", t.BaseLR)
	check(t.WeightDecay >= 0, "train.weight_decay %g is negative", t.WeightDecay)
	check(t.AdamEps > 0, "train.adam_eps %g must be positive", t.AdamEps)
	check(t.ClassWeightCap >= 1, "train.class_weight_cap %g must be at least 1", t.ClassWeightCap)
	named("train.loss_normalization", &t.LossNormalization)
	check(t.LabelSmoothing >= 0 && t.LabelSmoothing < 1, "train.label_smoothing %g is outside [0, 1)", t.LabelSmoothing)
	named("train.schedule", &t.Schedule)
	check(t.StepEpochs >= 1, "train.step_epochs %d must be at least 1", t.StepEpochs)
	check(t.StepGamma > 0 && t.StepGamma <= 1, "train.step_gamma %g is outside (0, 1]", t.StepGamma)
	check(t.PlateauFactor > 0 && t.PlateauFactor < 1, "train.plateau_factor %g is outside (0, 1)", t.PlateauFactor)
	check(t.Accumulate >= 0 && t.Accumulate <= t.BatchSize, "train.accumulate %d must be from 1 to the batch size %d", t.Accumulate, t.BatchSize)
	check(t.FineTune >= 0 && t.FineTune < t.Epochs, "train.fine_tune %d must be from 0 to epochs-1 (%d): the base trains after it", t.FineTune, t.Epochs-1)
	check(t.FineTune == 0 || strings.TrimSpace(c.Model.TrainableBaseLayers) != "0", "train.fine_tune %d unfreezes the trainable base layers after the head's epochs, but model.trainable_base_layers is 0", t.FineTune)
	check(t.EMA >= 0 && t.EMA < 1, "train.ema %g is outside [0, 1)", t.EMA)
	check(t.Mixup >= 0 && !math.IsInf(t.Mixup, 1), "train.mixup %g must be a finite Beta concentration >= 0 (0: off)", t.Mixup)
	check(t.CutMix >= 0 && !math.IsInf(t.CutMix, 1), "train.cutmix %g must be a finite Beta concentration >= 0 (0: off)", t.CutMix)
	check(t.MixProb >= 0 && t.MixProb <= 1, "train.mix_prob %g is outside [0, 1]", t.MixProb)
	check(t.MixSwitchProb >= 0 && t.MixSwitchProb <= 1, "train.mix_switch_prob %g is outside [0, 1]", t.MixSwitchProb)
	check(t.MixProb == 1 || t.Mixup > 0 || t.CutMix > 0, "train.mix_prob %g has no effect: neither train.mixup nor train.cutmix is on", t.MixProb)
	check(t.MixSwitchProb == 0.5 || (t.Mixup > 0 && t.CutMix > 0), "train.mix_switch_prob %g has no effect: it chooses between train.mixup and train.cutmix, and only both on take it", t.MixSwitchProb)
	check(t.WarmupEpochs >= 0, "train.warmup_epochs %g is negative", t.WarmupEpochs)
	check(t.WarmupEpochs == 0 || t.Schedule != ScheduleOneCycle, "train.warmup_epochs %g: the one-cycle schedule warms up over one_cycle_pct_start of the run instead", t.WarmupEpochs)
	check(t.OneCyclePctStart > 0 && t.OneCyclePctStart < 1, "train.one_cycle_pct_start %g is outside (0, 1)", t.OneCyclePctStart)
	check(t.OneCycleDivFactor >= 1, "train.one_cycle_div_factor %g is below 1", t.OneCycleDivFactor)
	check(t.OneCycleFinalDivFactor >= 1, "train.one_cycle_final_div_factor %g is below 1", t.OneCycleFinalDivFactor)
	lo, hi := t.OneCycleMomentumRange[0], t.OneCycleMomentumRange[1]
	check(lo >= 0 && lo <= hi && hi < 1, "train.one_cycle_momentum_range [%g, %g] must satisfy 0 <= base <= max < 1", lo, hi)
	check(!(t.Schedule == ScheduleOneCycle && t.OneCycleMomentum && t.Optimizer == SGD && t.Momentum == 0), "train.one_cycle_momentum cycles SGD's momentum, but train.momentum is 0: set a momentum or one_cycle_momentum: false")
	check(t.EarlyStopping >= 0, "train.early_stopping %d is negative", t.EarlyStopping)
	named("train.best_metric", &t.BestMetric)
	named("train.precision", &t.Precision)
	named("train.device", &t.Device)
	named("train.onednn", &t.OneDNN)
	check(t.CheckpointEverySteps >= 0, "train.checkpoint_every_steps %d is negative", t.CheckpointEverySteps)
	check(t.Threads >= 0, "train.threads %d is negative", t.Threads)
	check(c.Output != "", "output is empty")
	return errors.Join(errs...)
}

// checkArch checks the model settings whose meaning depends on the
// architecture: the trainable stages, the input size, and the head
// settings a torchvision head cannot honour.
func (m ModelConfig) checkArch() error {
	spec, err := vision.LookupArch(m.Arch)
	if err != nil {
		return nil // reported as model.arch
	}
	var errs []error
	if _, err := vision.ParseTrainable(m.Arch, m.TrainableBaseLayers); err != nil {
		errs = append(errs, fmt.Errorf("model.trainable_base_layers: %w", err))
	}
	if m.Arch == vision.ArchViTB16 && m.InputSize%16 != 0 {
		errs = append(errs, fmt.Errorf("model.input_size %d: vit_b_16 takes multiples of its 16-pixel patches", m.InputSize))
	}
	if m.InputSize < spec.MinInputSize {
		errs = append(errs, fmt.Errorf("model.input_size %d is below %s's minimum of %d", m.InputSize, m.Arch, spec.MinInputSize))
	}
	// A value other than the default that the head does not use is a
	// setting that cannot be honoured.
	def := DefaultConfig().Model
	if m.Head != vision.HeadTransfer && m.Hidden != def.Hidden {
		errs = append(errs, fmt.Errorf("model.hidden %d sets the transfer head's width; the %s head has none", m.Hidden, m.Head))
	}
	if m.Head == vision.HeadTorchvision && !isVGG(m.Arch) && m.Dropout != def.Dropout {
		errs = append(errs, fmt.Errorf("model.dropout %g: %s's torchvision head keeps torchvision's dropout; dropout sets the transfer and gap heads'", m.Dropout, m.Arch))
	}
	return errors.Join(errs...)
}

// WriteConfig writes c as YAML.
func WriteConfig(w io.Writer, c Config) error {
	raw, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding config: %w", err)
	}
	_, err = w.Write(raw)
	return err
}
