package train

import (
	"fmt"
	"strings"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/vision"
	"github.com/spf13/pflag"
)

// RegisterFlags adds a flag for every setting of c, with c's values as
// defaults. Use ResolveConfig after parsing to layer them over a config file.
func RegisterFlags(fs *pflag.FlagSet, c *Config) {
	fs.StringVar(&c.Data.Dir, "data", c.Data.Dir, "prepared dataset folder with train/, valid/ and test/ class folders")
	fs.StringVar(&c.Data.Cache, "cache", c.Data.Cache, "file caching decoded, resized pixels between runs (\"\": memory only)")
	fs.IntVar(&c.Data.Workers, "workers", c.Data.Workers, "decode/augment worker goroutines (0: one per core)")
	fs.IntVar(&c.Data.Prefetch, "prefetch", c.Data.Prefetch, "batches prepared ahead of training")

	fs.Var(&c.Model.Arch, "arch", "architecture: "+strings.Join(vision.ArchNames(), ", ")+" (vgg16 is the seed's; vgg16_bn has batch norm and trains from scratch)")
	fs.Var(&c.Model.Head, "head", "classifier head: "+vision.HeadNames()+" (transfer: the seed's Dense-ReLU-Dropout-Dense; torchvision: the architecture's own; gap: Dropout-Dense on pooled features)")
	fs.IntVar(&c.Model.Hidden, "hidden", c.Model.Hidden, "hidden units of the transfer head (other heads have none)")
	fs.Float64Var(&c.Model.Dropout, "dropout", c.Model.Dropout, "dropout probability of the transfer and gap heads (and of VGG's torchvision head)")
	fs.IntVar(&c.Model.InputSize, "input-size", c.Model.InputSize, "square input side in pixels")
	fs.StringVar(&c.Model.Weights, "weights", c.Model.Weights, "pretrained ImageNet weights of the architecture (.pth or .safetensors; default: its torchvision file in weights/, see scripts/fetch-weights.sh --arch)")
	fs.StringVar(&c.Model.TrainableBaseLayers, "trainable-base-layers", c.Model.TrainableBaseLayers, trainableHelp())
	fs.Var(&c.Model.Normalization, "normalization", "input normalisation: "+data.NormalizationNames()+" (imagenet: mean/std; rescale: x/255)")
	fs.Var(&c.Model.Resize, "resize", "resize before augmentation: "+data.ResizeMethodNames()+" (nearest is Keras')")

	fs.BoolVar(&c.Augment.Enabled, "augment", c.Augment.Enabled, "random augmentation of training images")
	fs.Float64Var(&c.Augment.RotationRange, "rotation-range", c.Augment.RotationRange, "rotation range in degrees")
	fs.Float64Var(&c.Augment.WidthShiftRange, "width-shift-range", c.Augment.WidthShiftRange, "horizontal shift range, fraction of the width")
	fs.Float64Var(&c.Augment.HeightShiftRange, "height-shift-range", c.Augment.HeightShiftRange, "vertical shift range, fraction of the height")
	fs.Float64Var(&c.Augment.ShearRange, "shear-range", c.Augment.ShearRange, "shear range in degrees")
	fs.Var(&c.Augment.ZoomRange, "zoom-range", "zoom range: z (factors drawn from [1-z, 1+z]) or lo,hi")
	fs.BoolVar(&c.Augment.HorizontalFlip, "horizontal-flip", c.Augment.HorizontalFlip, "random horizontal flips")
	fs.BoolVar(&c.Augment.VerticalFlip, "vertical-flip", c.Augment.VerticalFlip, "random vertical flips")
	fs.Var(&c.Augment.FillMode, "fill-mode", "points outside the image: "+data.FillModeNames())
	fs.Float64Var(&c.Augment.Cval, "cval", c.Augment.Cval, "fill value for fill-mode constant (0-255 scale)")
	fs.Var(&c.Augment.Semantics, "augment-semantics", "Keras geometry: "+data.SemanticsNames()+" (legacy: keras-preprocessing 1.1.2; fixed: Keras >= 2.9)")
	fs.BoolVar(&c.Augment.Precise, "precise-augment", c.Augment.Precise, "warp with scipy's float64 arithmetic (bit-exact with Keras, a little slower)")

	t := &c.Train
	fs.IntVar(&t.Epochs, "epochs", t.Epochs, "epochs to train")
	fs.IntVar(&t.BatchSize, "batch-size", t.BatchSize, "images per batch: the global batch, which a distributed run splits across its ranks (the same run on 1 or N processes)")
	fs.Var(&t.Optimizer, "optimizer", "optimizer: "+OptimizerNameNames())
	fs.Float64Var(&t.LR, "lr", t.LR, "learning rate (of the head)")
	fs.Float64Var(&t.BaseLR, "base-lr", t.BaseLR, "learning rate of the trainable base layers (0: same as --lr)")
	fs.Float64Var(&t.WeightDecay, "weight-decay", t.WeightDecay, "weight decay")
	fs.Float64Var(&t.AdamEps, "adam-eps", t.AdamEps, "Adam epsilon (Keras 1e-7, PyTorch 1e-8)")
	fs.Float64Var(&t.Momentum, "momentum", t.Momentum, "SGD momentum")
	fs.BoolVar(&t.Nesterov, "nesterov", t.Nesterov, "SGD with Nesterov momentum")
	fs.BoolVar(&t.ClassWeights, "class-weights", t.ClassWeights, "weight the loss by min(max_count/count, cap) per class")
	fs.Float64Var(&t.ClassWeightCap, "class-weight-cap", t.ClassWeightCap, "cap of the class weights")
	fs.Var(&t.LossNormalization, "loss-normalization", "weighted loss: "+LossNormalizationNames()+" (keras: sum(w*CE)/batch; pytorch: sum(w*CE)/sum(w))")
	fs.BoolVar(&t.Oversample, "oversample", t.Oversample, "oversample rare classes")
	fs.Float64Var(&t.LabelSmoothing, "label-smoothing", t.LabelSmoothing, "label smoothing")
	fs.BoolVar(&t.DropLast, "drop-last", t.DropLast, "drop the last partial batch of each epoch")
	fs.Var(&t.Schedule, "schedule", "learning-rate schedule: "+ScheduleNameNames())
	fs.IntVar(&t.StepEpochs, "step-epochs", t.StepEpochs, "step schedule: epochs between decays")
	fs.Float64Var(&t.StepGamma, "step-gamma", t.StepGamma, "step schedule: decay factor")
	fs.IntVar(&t.PlateauPatience, "plateau-patience", t.PlateauPatience, "plateau schedule: epochs without improvement before decaying")
	fs.Float64Var(&t.PlateauFactor, "plateau-factor", t.PlateauFactor, "plateau schedule: decay factor")
	fs.Float64Var(&t.MinLR, "min-lr", t.MinLR, "lowest learning rate a schedule reaches")
	fs.Float64Var(&t.WarmupEpochs, "warmup-epochs", t.WarmupEpochs, "linear warm-up of the rate over this many epochs, stepped per batch (not with one-cycle)")
	fs.Float64Var(&t.OneCyclePctStart, "one-cycle-pct-start", t.OneCyclePctStart, "one-cycle: fraction of the run spent warming up")
	fs.Float64Var(&t.OneCycleDivFactor, "one-cycle-div-factor", t.OneCycleDivFactor, "one-cycle: the rate starts at --lr divided by this")
	fs.Float64Var(&t.OneCycleFinalDivFactor, "one-cycle-final-div-factor", t.OneCycleFinalDivFactor, "one-cycle: the rate ends at the start rate divided by this")
	fs.BoolVar(&t.OneCycleMomentum, "one-cycle-momentum", t.OneCycleMomentum, "one-cycle: cycle SGD's momentum or Adam's beta1 inversely to the rate")
	fs.IntVar(&t.EarlyStopping, "early-stopping", t.EarlyStopping, "stop after this many epochs without improvement (0: never)")
	fs.Var(&t.BestMetric, "best-metric", "metric choosing the best checkpoint and driving early stopping: "+MetricNames())
	fs.Uint64Var(&t.Seed, "seed", t.Seed, "seed for initialisation, shuffling, augmentation and dropout")
	fs.Var(&t.Device, "device", "device: "+torch.DeviceSpecNames())
	fs.Var(&t.Precision, "precision", "arithmetic: "+PrecisionNames()+" (autocast forward; fp16 with loss scaling, CUDA only)")
	fs.BoolVar(&t.ChannelsLast, "channels-last", t.ChannelsLast, "NHWC memory format (faster convolutions on recent GPUs)")
	fs.IntVar(&t.CheckpointEverySteps, "checkpoint-every", t.CheckpointEverySteps, "also save the last checkpoint every N steps inside an epoch (0: epoch ends only)")
	fs.BoolVar(&t.EpochCheckpoints, "epoch-checkpoints", t.EpochCheckpoints, "keep one weights file per epoch")
	fs.IntVar(&t.Threads, "threads", t.Threads, "libtorch CPU threads (0: one per core, divided among the ranks of a machine)")
	fs.Var(&t.OneDNN, "onednn", torch.OneDNNFlagUsage)
	fs.IntVar(&t.FineTune, "fine-tune", t.FineTune, "train the head alone for this many epochs, then the trainable base layers too at --base-lr (fastai's fine_tune; one-cycle runs one cycle per phase)")
	fs.Float64Var(&t.EMA, "ema", t.EMA, "exponential moving average of the weights with this decay (e.g. 0.999), used by validation and the saved weights (0: off)")
	fs.BoolVar(&t.EMAWarmup, "ema-warmup", t.EMAWarmup, "with --ema: ramp the decay up as min(DECAY, (1+n)/(10+n)) after n steps, as TensorFlow's ExponentialMovingAverage does, so the average soon forgets the initial weights (false: the fixed decay, as timm's ModelEmaV2)")
	fs.Float64Var(&t.Mixup, "mixup", t.Mixup, "Mixup (timm's, per batch): blend each training batch with the reversed global batch, weight lambda ~ Beta(A, A), the loss weighted the same between the two labels; A e.g. 0.2-0.8 (0: off); training accuracy counts the label of the larger weight")
	fs.Float64Var(&t.CutMix, "cutmix", t.CutMix, "CutMix (timm's, per batch): paste a box of the reversed global batch's images, of area 1-lambda with lambda ~ Beta(A, A), into each training batch, the loss weighted by the areas; A e.g. 1 (0: off)")
	fs.Float64Var(&t.MixProb, "mix-prob", t.MixProb, "probability that a training batch is mixed by --mixup or --cutmix")
	fs.Float64Var(&t.MixSwitchProb, "mix-switch-prob", t.MixSwitchProb, "with both --mixup and --cutmix: probability that a mixed batch takes CutMix rather than Mixup")
	fs.IntVar(&t.Accumulate, "accumulate", t.Accumulate, "gradient accumulation: split each batch into N micro-batches, one optimizer step per batch (the memory of batch/N images)")
	fs.BoolVar(&t.SyncBN, "sync-bn", t.SyncBN, "distributed runs: batch norm statistics over all ranks' shares of the global batch (SyncBatchNorm) instead of each rank's own")

	fs.StringVarP(&c.Output, "output", "o", c.Output, "run folder for checkpoints, history and plots")
}

// trainableHelp explains --trainable-base-layers with each architecture's
// number of stages.
func trainableHelp() string {
	var counts []string
	for _, spec := range vision.Archs() {
		counts = append(counts, fmt.Sprintf("%s %d", spec.Arch, spec.Stages))
	}
	return "stages of the base trained, counted from the top (0: only the head trains), or all; for vgg16 they are Keras' base layers (4, the seed's, trains block5), " +
		"for resnets stem and layer1-4; stages per architecture: " + strings.Join(counts, ", ") + " (fer summary lists them); batch norms of frozen stages stay in evaluation mode"
}

// ResolveConfig builds the effective config: DefaultConfig, then the YAML
// file at configPath (if any), then every flag set on the command line.
func ResolveConfig(parsed *pflag.FlagSet, configPath string) (Config, error) {
	cfg := DefaultConfig()
	if configPath != "" {
		var err error
		if cfg, err = LoadConfig(configPath); err != nil {
			return cfg, err
		}
	}
	overlay := pflag.NewFlagSet("overlay", pflag.ContinueOnError)
	RegisterFlags(overlay, &cfg)
	var err error
	parsed.Visit(func(f *pflag.Flag) {
		if err != nil || overlay.Lookup(f.Name) == nil {
			return
		}
		if e := overlay.Set(f.Name, f.Value.String()); e != nil {
			err = fmt.Errorf("--%s: %w", f.Name, e)
		}
	})
	if parsed.Changed("weights") {
		cfg.Model.weightsGiven = true
	}
	return cfg, err
}
