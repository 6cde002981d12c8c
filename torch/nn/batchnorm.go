package nn

import (
	"fmt"

	"github.com/fertorch/fertorch/torch"
)

// BatchNorm2d is torch.nn.BatchNorm2d: per-channel normalisation with a
// learned scale (weight) and shift (bias) and running statistics used in
// evaluation mode. Its state dict holds weight, bias, running_mean,
// running_var and num_batches_tracked, as PyTorch's does.
type BatchNorm2d struct {
	Features          int64
	Eps, Momentum     float64
	Weight, Bias      *torch.Tensor
	RunningMean       *torch.Tensor
	RunningVar        *torch.Tensor
	NumBatchesTracked *torch.Tensor
	training          bool
}

// NewBatchNorm2d creates a layer with PyTorch's defaults: weight 1, bias 0,
// running mean 0 and variance 1, eps 1e-5, momentum 0.1, training mode.
func NewBatchNorm2d(features int64) (*BatchNorm2d, error) {
	if features <= 0 {
		return nil, fmt.Errorf("nn: batch_norm needs a positive channel count, got %d", features)
	}
	b := &BatchNorm2d{Features: features, Eps: 1e-5, Momentum: 0.1, training: true}
	var err error
	mk := func(value float64, dtype torch.DType, grad bool) *torch.Tensor {
		if err != nil {
			return nil
		}
		shape := []int64{features}
		if dtype == torch.Int64 {
			shape = []int64{}
		}
		var t *torch.Tensor
		if t, err = torch.Full(shape, value, torch.Options{DType: dtype}); err == nil && grad {
			err = t.SetRequiresGrad(true)
		}
		return t
	}
	b.Weight = mk(1, torch.Float32, true)
	b.Bias = mk(0, torch.Float32, true)
	b.RunningMean = mk(0, torch.Float32, false)
	b.RunningVar = mk(1, torch.Float32, false)
	b.NumBatchesTracked = mk(0, torch.Int64, false)
	if err != nil {
		Free(b)
		return nil, fmt.Errorf("nn: batch_norm state: %w", err)
	}
	return b, nil
}

// Forward normalises x with the batch's statistics (updating the running
// ones) in training mode, with the running statistics otherwise.
func (b *BatchNorm2d) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	if b.training {
		one, err := torch.Full(nil, 1, torch.Options{DType: torch.Int64, Device: b.NumBatchesTracked.Device()})
		if err == nil {
			err = b.NumBatchesTracked.AddInPlace(one, 1)
			one.Free()
		}
		if err != nil {
			return nil, fmt.Errorf("batch_norm: counting batches: %w", err)
		}
	}
	return x.BatchNorm(b.Weight, b.Bias, b.RunningMean, b.RunningVar, torch.BatchNormOptions{Training: b.training, Momentum: b.Momentum, Eps: b.Eps})
}

// Parameters are "weight" and "bias".
func (b *BatchNorm2d) Parameters() []torch.NamedTensor { return weightAndBias(b.Weight, b.Bias) }

// StateTensors adds the running statistics to the parameters.
func (b *BatchNorm2d) StateTensors() []torch.NamedTensor {
	return append(b.Parameters(),
		torch.NamedTensor{Name: "running_mean", Tensor: b.RunningMean},
		torch.NamedTensor{Name: "running_var", Tensor: b.RunningVar},
		torch.NamedTensor{Name: "num_batches_tracked", Tensor: b.NumBatchesTracked})
}

// SetTraining chooses batch statistics (true) or running ones.
func (b *BatchNorm2d) SetTraining(training bool) { b.training = training }

// Training reports the mode.
func (b *BatchNorm2d) Training() bool { return b.training }

// OutputShape of batch normalisation is its input shape.
func (b *BatchNorm2d) OutputShape(in []int64) ([]int64, error) {
	if len(in) != 4 || in[1] != b.Features {
		return nil, fmt.Errorf("batch_norm expects [N %d H W], got %v", b.Features, in)
	}
	return in, nil
}
