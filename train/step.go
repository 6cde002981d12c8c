package train

import (
	"fmt"
	"runtime"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/optim"
)

// Precision is the arithmetic of the forward pass.
type Precision string

// Precisions: float32 everywhere, or autocast to bfloat16 / float16 (the
// latter with dynamic loss scaling).
const (
	FP32 Precision = "fp32"
	BF16 Precision = "bf16"
	FP16 Precision = "fp16"
)

// Model is what the step runs: a forward pass and its parameters.
type Model interface {
	Forward(x *torch.Tensor) (*torch.Tensor, error)
	Parameters() []torch.NamedTensor
	SetTraining(training bool)
}

// LossConfig says how the class-weighted cross-entropy is reduced.
type LossConfig struct {
	// ClassWeights has one weight per class, on the step's device (nil: none).
	ClassWeights *torch.Tensor
	// KerasNormalization divides sum(w_i*CE_i) by the batch size, as Keras'
	// class_weight does; otherwise by sum(w_i), as nn.CrossEntropyLoss does.
	KerasNormalization bool
	LabelSmoothing     float64
}

// Loss is the training loss of logits [N, C] against labels [N] (a scalar
// float32 tensor in logits' scope).
func (lc LossConfig) Loss(logits, labels *torch.Tensor) (*torch.Tensor, error) {
	if logits.DType() != torch.Float32 {
		f, err := logits.ToDType(torch.Float32)
		if err != nil {
			return nil, err
		}
		logits = f
	}
	if lc.ClassWeights == nil || !lc.KerasNormalization {
		return logits.CrossEntropy(labels, torch.CrossEntropyOptions{Weight: lc.ClassWeights, LabelSmoothing: lc.LabelSmoothing})
	}
	// With weights and reduction "none", PyTorch returns w_{y_i} * CE_i.
	per, err := logits.CrossEntropy(labels, torch.CrossEntropyOptions{Weight: lc.ClassWeights, Reduction: torch.ReductionNone, LabelSmoothing: lc.LabelSmoothing})
	if err != nil {
		return nil, err
	}
	return per.Mean()
}

// ShardLoss is the loss of one rank's share of a global batch: the sum over
// the share of what Loss averages, divided by the global batch's
// denominator (see run.denominator), so that the ranks' losses, and their
// gradients, add up to the loss and gradient of the global batch on one
// process. With weights and reduction "sum", PyTorch's cross-entropy is
// sum(w_i*CE_i), label smoothing included; Loss divides that by the batch
// size (Keras) or by sum(w_i) (nn.CrossEntropyLoss).
func (lc LossConfig) ShardLoss(logits, labels *torch.Tensor, denominator float64) (*torch.Tensor, error) {
	if !(denominator > 0) {
		return nil, fmt.Errorf("shard loss: denominator %g is not positive", denominator)
	}
	if logits.DType() != torch.Float32 {
		f, err := logits.ToDType(torch.Float32)
		if err != nil {
			return nil, err
		}
		logits = f
	}
	sum, err := logits.CrossEntropy(labels, torch.CrossEntropyOptions{Weight: lc.ClassWeights, Reduction: torch.ReductionSum, LabelSmoothing: lc.LabelSmoothing})
	if err != nil {
		return nil, err
	}
	return sum.DivScalar(denominator)
}

// GradSync makes a step's gradients the sums over every rank of a
// data-parallel run (dist.Reducer): Prepare runs before backward, Finish
// after it, before the optimizer step.
type GradSync interface {
	Prepare() error
	Finish() error
}

// Stepper runs optimisation steps: forward (under autocast when asked),
// loss, backward (with loss scaling for float16), optimizer step.
type Stepper struct {
	Model     Model
	Optimizer optim.Optimizer
	Loss      LossConfig
	Device    torch.Device
	Precision Precision
	// Scaler is used with FP16 (created by NewStepper).
	Scaler *optim.GradScaler
	// Sync, when set, sums the gradients across ranks between backward and
	// the optimizer step.
	Sync GradSync
	// Accumulate splits a step's batch into this many micro-batches whose
	// gradients add up before the one optimizer step (gradient
	// accumulation: the memory of a micro-batch, the update of the whole
	// batch; batch norm sees micro-batches). 0 or 1: none. It needs the
	// loss denominator of TrainShardStep.
	Accumulate int
	params     []*torch.Tensor
}

// NewStepper prepares a Stepper; params are the trainable parameters the
// optimizer updates.
func NewStepper(m Model, opt optim.Optimizer, loss LossConfig, dev torch.Device, prec Precision) (*Stepper, error) {
	switch prec {
	case FP32, BF16, FP16:
	default:
		return nil, fmt.Errorf("unknown precision %q (want fp32, bf16 or fp16)", prec)
	}
	s := &Stepper{Model: m, Optimizer: opt, Loss: loss, Device: dev, Precision: prec}
	for _, p := range m.Parameters() {
		if p.Tensor.RequiresGrad() {
			s.params = append(s.params, p.Tensor)
		}
	}
	if prec == FP16 {
		s.Scaler = optim.NewGradScaler()
	}
	return s, nil
}

// forward runs the model under the step's precision.
func (s *Stepper) forward(x *torch.Tensor) (*torch.Tensor, error) {
	var dtype torch.DType
	switch s.Precision {
	case BF16:
		dtype = torch.BFloat16
	case FP16:
		dtype = torch.Float16
	default:
		return s.Model.Forward(x)
	}
	var out *torch.Tensor
	err := torch.Autocast(s.Device, dtype, func() error {
		var err error
		out, err = s.Model.Forward(x)
		return err
	})
	return out, err
}

// StepResult is what a training step reports; the tensors live in the
// step's scope (they are device scalars, read them when needed).
type StepResult struct {
	// Loss is the mean training loss of the batch.
	Loss *torch.Tensor
	// Correct counts the batch's correct predictions (int64).
	Correct *torch.Tensor
	// Stepped is false when float16 loss scaling skipped the update.
	Stepped bool
}

// TrainStep runs one optimisation step on a batch x [N,3,H,W] with labels y
// [N], both on the step's device and owned by the caller's scope.
func (s *Stepper) TrainStep(x, y *torch.Tensor) (StepResult, error) {
	return s.trainStep(x, y, nil, 0)
}

// TrainShardStep is TrainStep on one rank's share of a global batch whose
// loss denominator is given (see LossConfig.ShardLoss); the result's Loss
// is the share's part of the global batch's mean loss.
func (s *Stepper) TrainShardStep(x, y *torch.Tensor, denominator float64) (StepResult, error) {
	return s.trainStep(x, y, nil, denominator)
}

// TrainMixedStep is the step on a Mixup or CutMix batch x whose loss is
// mix.Lambda*L(y) + (1-mix.Lambda)*L(mix.Partner), L being the step's loss:
// Loss with a denominator of 0, else the ShardLoss of TrainShardStep. The
// result's Correct counts the labels of the larger weight.
func (s *Stepper) TrainMixedStep(x, y *torch.Tensor, mix MixedLabels, denominator float64) (StepResult, error) {
	return s.trainStep(x, y, &mix, denominator)
}

func (s *Stepper) trainStep(x, y *torch.Tensor, mix *MixedLabels, denominator float64) (StepResult, error) {
	// The whole step runs on one OS thread. Autograd numbers a graph's
	// nodes with a counter per thread and backward runs the ready nodes in
	// that order; Go moves a goroutine between threads at any cgo call, so
	// a forward pass spread over threads gets a backward order that can
	// differ from rank to rank. With collectives inside backward
	// (synchronised batch norm) beside the gradient buckets', the ranks
	// would then issue collectives in different orders, which Gloo answers
	// with "op.preamble.length <= op.nbytes" and NCCL with a hang; and even
	// on one process, gradients that meet at a node would be summed in an
	// order that changes from run to run.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if s.Accumulate > 1 {
		return s.accumulatedStep(x, y, mix, denominator)
	}
	var r StepResult
	logits, err := s.forward(x)
	if err != nil {
		return r, err
	}
	loss, err := s.loss(logits, y, mix, denominator)
	if err != nil {
		return r, fmt.Errorf("loss: %w", err)
	}
	if err := s.Optimizer.ZeroGrad(); err != nil {
		return r, err
	}
	backward := loss
	if s.Scaler != nil {
		if backward, err = s.Scaler.ScaleLoss(loss); err != nil {
			return r, err
		}
	}
	if s.Sync != nil {
		if err := s.Sync.Prepare(); err != nil {
			return r, fmt.Errorf("gradient sync: %w", err)
		}
	}
	if err := backward.Backward(); err != nil {
		return r, fmt.Errorf("backward: %w", err)
	}
	if s.Sync != nil {
		if err := s.Sync.Finish(); err != nil {
			return r, fmt.Errorf("gradient sync: %w", err)
		}
	}
	if r.Stepped, err = s.optimizerStep(); err != nil {
		return r, err
	}
	r.Loss, err = loss.Detach()
	if err != nil {
		return r, err
	}
	r.Correct, err = countCorrect(logits, targets(y, mix))
	return r, err
}

// loss is the batch's loss: LossConfig.Loss, or ShardLoss over a positive
// denominator, of y, or of y and the partners of a mixed batch.
func (s *Stepper) loss(logits, y *torch.Tensor, mix *MixedLabels, denominator float64) (*torch.Tensor, error) {
	one := func(labels *torch.Tensor) (*torch.Tensor, error) {
		if denominator > 0 {
			return s.Loss.ShardLoss(logits, labels, denominator)
		}
		return s.Loss.Loss(logits, labels)
	}
	if mix == nil {
		return one(y)
	}
	return mix.loss(y, one)
}

// targets is the labels the accuracy counts: y, or a mixed batch's
// labels of the larger weight.
func targets(y *torch.Tensor, mix *MixedLabels) *torch.Tensor {
	if mix == nil {
		return y
	}
	return mix.dominant(y)
}

// optimizerStep steps the optimizer, through the gradient scaler when
// there is one (which skips a step whose gradients overflowed); it reports
// whether the weights moved.
func (s *Stepper) optimizerStep() (bool, error) {
	if s.Scaler != nil {
		stepped, err := s.Scaler.Step(s.Optimizer, s.trainable())
		if err != nil {
			return false, fmt.Errorf("optimizer step: %w", err)
		}
		return stepped, nil
	}
	if err := s.Optimizer.Step(); err != nil {
		return false, fmt.Errorf("optimizer step: %w", err)
	}
	return true, nil
}

// trainable is the optimizer's parameters that train now (a fine-tune
// phase may have frozen some since NewStepper).
func (s *Stepper) trainable() []*torch.Tensor {
	var ts []*torch.Tensor
	for _, p := range s.params {
		if p.RequiresGrad() {
			ts = append(ts, p)
		}
	}
	return ts
}

// accumulatedStep is one optimisation step over Accumulate micro-batches
// of x: each one's loss is its part of the batch's (ShardLoss over the
// batch's denominator), their gradients accumulate in .grad, and only the
// last backward runs inside Sync's Prepare/Finish, which sums what .grad
// holds across ranks. The result's Loss and Correct are the batch's.
func (s *Stepper) accumulatedStep(x, y *torch.Tensor, mix *MixedLabels, denominator float64) (StepResult, error) {
	var r StepResult
	if !(denominator > 0) {
		return r, fmt.Errorf("gradient accumulation needs the batch's loss denominator, got %g", denominator)
	}
	n := x.Shape()[0]
	parts := min(int64(s.Accumulate), n)
	if err := s.Optimizer.ZeroGrad(); err != nil {
		return r, err
	}
	var lossSum, correctSum *torch.Tensor
	for k, off := int64(0), int64(0); k < parts; k++ {
		size := n / parts
		if k < n%parts {
			size++
		}
		xk, err := x.Narrow(0, off, size)
		if err != nil {
			return r, err
		}
		yk, err := y.Narrow(0, off, size)
		if err != nil {
			return r, err
		}
		var mk *MixedLabels
		if mix != nil {
			if mk, err = mix.narrow(off, size); err != nil {
				return r, err
			}
		}
		off += size
		logits, err := s.forward(xk)
		if err != nil {
			return r, err
		}
		loss, err := s.loss(logits, yk, mk, denominator)
		if err != nil {
			return r, fmt.Errorf("loss: %w", err)
		}
		backward := loss
		if s.Scaler != nil {
			if backward, err = s.Scaler.ScaleLoss(loss); err != nil {
				return r, err
			}
		}
		last := k == parts-1
		if last && s.Sync != nil {
			if err := s.Sync.Prepare(); err != nil {
				return r, fmt.Errorf("gradient sync: %w", err)
			}
		}
		if err := backward.Backward(); err != nil {
			return r, fmt.Errorf("backward of micro-batch %d of %d: %w", k+1, parts, err)
		}
		if last && s.Sync != nil {
			if err := s.Sync.Finish(); err != nil {
				return r, fmt.Errorf("gradient sync: %w", err)
			}
		}
		detached, err := loss.Detach()
		if err != nil {
			return r, err
		}
		correct, err := countCorrect(logits, targets(yk, mk))
		if err != nil {
			return r, err
		}
		if lossSum == nil {
			lossSum, correctSum = detached, correct
		} else {
			if lossSum, err = lossSum.Add(detached); err != nil {
				return r, err
			}
			if correctSum, err = correctSum.Add(correct); err != nil {
				return r, err
			}
		}
	}
	var err error
	if r.Stepped, err = s.optimizerStep(); err != nil {
		return r, err
	}
	r.Loss, r.Correct = lossSum, correctSum
	return r, nil
}

// countCorrect is the number of rows whose argmax equals the label.
func countCorrect(logits, y *torch.Tensor) (*torch.Tensor, error) {
	pred, err := logits.Argmax(1, false)
	if err != nil {
		return nil, err
	}
	eq, err := pred.Eq(y)
	if err != nil {
		return nil, err
	}
	return eq.Sum()
}

// Predict returns softmax probabilities [N, C] (float32) for a batch in
// evaluation mode without autograd. With flipTTA the probabilities are
// averaged with those of the horizontally flipped batch.
func (s *Stepper) Predict(x *torch.Tensor, flipTTA bool) (*torch.Tensor, error) {
	var probs *torch.Tensor
	err := torch.NoGrad(func() error {
		p, err := s.probabilities(x)
		if err != nil || !flipTTA {
			probs = p
			return err
		}
		flipped, err := x.Flip(3)
		if err != nil {
			return err
		}
		q, err := s.probabilities(flipped)
		if err != nil {
			return err
		}
		sum, err := p.Add(q)
		if err != nil {
			return err
		}
		probs, err = sum.MulScalar(0.5)
		return err
	})
	return probs, err
}

func (s *Stepper) probabilities(x *torch.Tensor) (*torch.Tensor, error) {
	logits, err := s.forward(x)
	if err != nil {
		return nil, err
	}
	if logits.DType() != torch.Float32 {
		if logits, err = logits.ToDType(torch.Float32); err != nil {
			return nil, err
		}
	}
	return logits.Softmax(1)
}
