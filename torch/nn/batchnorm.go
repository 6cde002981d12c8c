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
	// Sync, when set, makes training mode normalise with the statistics of
	// the whole data-parallel batch, over every process of the job, as
	// PyTorch's SyncBatchNorm does (nil: this process's batch only).
	Sync     Summer
	training bool
}

// Summer sums a tensor over the processes of a data-parallel job,
// differentiably: the gradient flowing back is the sum of every process's
// gradient (dist.Group's AllReduceSumGrad).
type Summer interface {
	AllReduceSumGrad(t *torch.Tensor) (*torch.Tensor, error)
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
	if b.training && b.Sync != nil {
		y, err := b.syncForward(x)
		if err != nil {
			return nil, fmt.Errorf("sync batch_norm: %w", err)
		}
		return y, nil
	}
	return x.BatchNorm(b.Weight, b.Bias, b.RunningMean, b.RunningVar, torch.BatchNormOptions{Training: b.training, Momentum: b.Momentum, Eps: b.Eps})
}

// syncForward normalises x [N, C, H, W] with the mean and biased variance
// of every process's batch: each process sums x, x^2 and its count per
// channel, one differentiable all-reduce adds them up, and autograd carries
// the gradient back through the sums to every process's inputs. The
// running statistics are updated as SyncBatchNorm updates them, with the
// variance made unbiased by the global count.
func (b *BatchNorm2d) syncForward(x *torch.Tensor) (*torch.Tensor, error) {
	shape := x.Shape()
	if len(shape) != 4 || shape[1] != b.Features {
		return nil, fmt.Errorf("expects [N %d H W], got %v", b.Features, shape)
	}
	xf := x
	if x.DType() != torch.Float32 {
		var err error
		if xf, err = x.ToDType(torch.Float32); err != nil {
			return nil, err
		}
	}
	c := b.Features
	s1, err := xf.SumDims(false, 0, 2, 3)
	if err != nil {
		return nil, err
	}
	sq, err := xf.Square()
	if err != nil {
		return nil, err
	}
	s2, err := sq.SumDims(false, 0, 2, 3)
	if err != nil {
		return nil, err
	}
	count, err := torch.Full([]int64{c}, float64(shape[0]*shape[2]*shape[3]), torch.Options{DType: torch.Float32, Device: x.Device()})
	if err != nil {
		return nil, err
	}
	local, err := torch.Cat([]*torch.Tensor{s1, s2, count}, 0)
	count.Free()
	if err != nil {
		return nil, err
	}
	sums, err := b.Sync.AllReduceSumGrad(local)
	if err != nil {
		return nil, err
	}
	parts := make([]*torch.Tensor, 3)
	for i := range parts {
		if parts[i], err = sums.Narrow(0, int64(i)*c, c); err != nil {
			return nil, err
		}
	}
	n := parts[2]
	mean, err := parts[0].Div(n)
	if err != nil {
		return nil, err
	}
	ex2, err := parts[1].Div(n)
	if err != nil {
		return nil, err
	}
	m2, err := mean.Square()
	if err != nil {
		return nil, err
	}
	variance, err := ex2.Sub(m2)
	if err != nil {
		return nil, err
	}
	std, err := variance.AddScalar(b.Eps)
	if err == nil {
		std, err = std.Sqrt()
	}
	if err != nil {
		return nil, err
	}
	// y = x*scale + shift with scale = weight/std, shift = bias - mean*scale.
	scale, err := b.Weight.Div(std)
	if err != nil {
		return nil, err
	}
	ms, err := mean.Mul(scale)
	if err != nil {
		return nil, err
	}
	shift, err := b.Bias.Sub(ms)
	if err != nil {
		return nil, err
	}
	if scale, err = scale.View(1, c, 1, 1); err != nil {
		return nil, err
	}
	if shift, err = shift.View(1, c, 1, 1); err != nil {
		return nil, err
	}
	y, err := xf.Mul(scale)
	if err == nil {
		y, err = y.Add(shift)
	}
	if err != nil {
		return nil, err
	}
	if err := b.updateRunning(mean, variance, n); err != nil {
		return nil, err
	}
	if x.DType() != torch.Float32 {
		return y.ToDType(x.DType())
	}
	return y, nil
}

// updateRunning moves the running statistics towards the batch's mean and
// unbiased variance (biased variance * n/(n-1)), without autograd.
func (b *BatchNorm2d) updateRunning(mean, variance, n *torch.Tensor) error {
	return torch.NoGrad(func() error {
		nm1, err := n.SubScalar(1)
		if err != nil {
			return err
		}
		ratio, err := n.Div(nm1)
		if err != nil {
			return err
		}
		unbiased, err := variance.Mul(ratio)
		if err != nil {
			return err
		}
		for _, u := range []struct{ run, batch *torch.Tensor }{{b.RunningMean, mean}, {b.RunningVar, unbiased}} {
			v, err := u.batch.Detach()
			if err != nil {
				return err
			}
			if err := u.run.MulScalarInPlace(1 - b.Momentum); err != nil {
				return err
			}
			if err := u.run.AddInPlace(v, b.Momentum); err != nil {
				return err
			}
		}
		return nil
	})
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
