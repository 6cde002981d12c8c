package train

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
	"github.com/fertorch/fertorch/torch/optim"
	"github.com/fertorch/fertorch/vision"
)

// Net is the network training, evaluation and prediction run: any
// architecture of vision's table with its head, behind the Backbone seam.
type Net = vision.Backbone

// BuildNet builds the network a model config describes for numClasses
// classes, with fresh weights (torchvision's initialisation for the base,
// Keras' for the transfer and gap heads). It is the one constructor of
// training, evaluation and prediction: a checkpoint's State.Config.Model
// rebuilds the network it holds.
func BuildNet(m ModelConfig, numClasses int) (Net, error) { return m.Build(numClasses) }

// DefaultWeightsFor is where scripts/fetch-weights.sh --arch puts an
// architecture's torchvision ImageNet weights (torchvision's DEFAULT file).
func DefaultWeightsFor(a vision.Arch) string {
	spec, err := vision.LookupArch(a)
	if err != nil || len(spec.Weights) == 0 {
		return DefaultWeights
	}
	return filepath.ToSlash(filepath.Join("weights", spec.Weights[0].FileName()))
}

// resolveWeights makes the built-in default weights file the
// architecture's own: a run of another architecture that names no file
// looks for that architecture's torchvision file, not VGG16's.
func (m *ModelConfig) resolveWeights() {
	if !m.weightsGiven && m.Weights == DefaultWeights {
		m.Weights = DefaultWeightsFor(m.Arch)
	}
}

// isVGG is true for the architectures with Keras-style base layers.
func isVGG(a vision.Arch) bool { return a == vision.ArchVGG16 || a == vision.ArchVGG16BN }

// freezeNet applies model.trainable_base_layers and describes what trains.
func freezeNet(net Net, setting string) (string, error) {
	n, err := vision.ParseTrainable(net.Arch(), setting)
	if err != nil {
		return "", err
	}
	names, err := vision.FreezeTop(net, n)
	if err != nil {
		return "", err
	}
	spec, err := vision.LookupArch(net.Arch())
	if err != nil {
		return "", err
	}
	unit := "stages"
	if isVGG(net.Arch()) {
		unit = "base layers (Keras counting)"
	}
	switch {
	case n == 0:
		return fmt.Sprintf("trainable %s: none (the base is frozen; only the head trains)", unit), nil
	case n == spec.Stages:
		return fmt.Sprintf("trainable %s: all %d", unit, n), nil
	}
	return fmt.Sprintf("trainable %s: the last %d of %d: %s (earlier stages frozen, their batch norms in evaluation mode)", unit, n, spec.Stages, strings.Join(names, ", ")), nil
}

// buildModel creates the network, loads pretrained weights or the
// checkpoint's, freezes, moves it to the device and creates the optimizer.
func (r *run) buildModel(resume *LoadedCheckpoint) error {
	c := r.cfg
	if err := torch.ManualSeed(c.Train.Seed); err != nil {
		return err
	}
	var err error
	if r.model, err = BuildNet(c.Model, len(r.classes)); err != nil {
		return err
	}
	if resume == nil {
		if err := r.loadPretrained(); err != nil {
			return err
		}
	} else {
		rep, err := vision.LoadStateDict(r.model.StateTensors(), resume.Model, vision.LoadOptions{Strict: true})
		if err != nil {
			return fmt.Errorf("resume %s: %w", resume.Path, err)
		}
		r.printf("resumed weights from %s (%d tensors)\n", resume.Path, len(rep.Loaded))
	}
	line, err := freezeNet(r.model, c.Model.TrainableBaseLayers)
	if err != nil {
		return err
	}
	r.printf("%s\n", line)
	summary, err := r.model.Summary()
	if err != nil {
		return err
	}
	r.printf("%s\n", summary)
	if r.writes() {
		if err := SaveModelPNG(summary, filepath.Join(c.Output, ModelPNG)); err != nil {
			return err
		}
	}
	if err := nn.MoveTo(r.model, r.dev, torch.Float32, c.Train.ChannelsLast); err != nil {
		return err
	}
	base, headParams := vision.SplitTrainable(r.model)
	baseLR := c.Train.BaseLR
	if baseLR == 0 {
		baseLR = c.Train.LR
	}
	var groups []optim.Group
	if len(base) > 0 {
		groups = append(groups, optim.Group{Params: base, LR: baseLR, WeightDecay: c.Train.WeightDecay})
		r.baseLRs = append(r.baseLRs, baseLR)
	}
	groups = append(groups, optim.Group{Params: headParams, LR: c.Train.LR, WeightDecay: c.Train.WeightDecay})
	r.baseLRs = append(r.baseLRs, c.Train.LR)
	switch c.Train.Optimizer {
	case Adam, AdamW:
		r.opt, err = optim.NewAdam(groups, optim.AdamOptions{Beta1: 0.9, Beta2: 0.999, Eps: c.Train.AdamEps, Decoupled: c.Train.Optimizer == AdamW})
	case SGD:
		r.opt, err = optim.NewSGD(groups, optim.SGDOptions{Momentum: c.Train.Momentum, Nesterov: c.Train.Nesterov})
	}
	if err != nil {
		return err
	}
	r.stepper, err = NewStepper(r.model, r.opt, LossConfig{
		ClassWeights: r.weights, KerasNormalization: c.Train.LossNormalization == KerasLoss, LabelSmoothing: c.Train.LabelSmoothing,
	}, r.dev, c.Train.Precision)
	if err != nil {
		return err
	}
	r.stepper.Accumulate = c.Train.Accumulate
	s := int64(c.Model.InputSize)
	r.staging, err = NewStaging(r.dev, []int64{int64(c.Train.BatchSize), 3, s, s})
	return err
}

// pretrainedOptions says what of an ImageNet file loads: everything but
// the tensors the head's shape or the class count change (the whole file
// for the torchvision head with 1000 classes), strictly.
func pretrainedOptions(net Net, numClasses int) vision.LoadOptions {
	opts := vision.LoadOptions{Strict: true, Exclude: []string{net.Classifier()}}
	if net.Config().Head == vision.HeadTorchvision && numClasses == 1000 {
		opts.Exclude = nil
	}
	return opts
}

// loadPretrained loads the ImageNet weights read by readPretrained, if any.
func (r *run) loadPretrained() error {
	file := r.pretrained
	if file == nil {
		if r.cfg.Model.Weights == "" {
			r.printf("no pretrained weights configured: the base starts from random weights\n")
		}
		return nil
	}
	r.pretrained = nil
	path := r.cfg.Model.Weights
	opts := pretrainedOptions(r.model, len(r.classes))
	rep, err := vision.LoadStateDict(r.model.StateTensors(), file, opts)
	if err != nil {
		return fmt.Errorf("%s is not a %s weights file for this model (fetch one with scripts/fetch-weights.sh --arch %s): %w", path, r.cfg.Model.Arch, r.cfg.Model.Arch, err)
	}
	what := "the head " + strings.TrimSuffix(r.model.Classifier(), ".") + " is new"
	if opts.Exclude == nil {
		what = "the whole network, head included"
	}
	r.printf("pretrained weights from %s: %s (%s)\n", path, rep, what)
	return nil
}
