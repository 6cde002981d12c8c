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
// of every process's batch, computed as the native training-mode kernel
// computes them, so that a channel's statistics, and the output, match
// ordinary batch norm of the whole batch: per channel the sum of x and the
// count (in float64, one differentiable all-reduce) give the mean, rounded
// to float32; the sum of the float32 (x - mean)^2 (in float64, a second
// all-reduce) gives the variance and 1/sqrt(var + eps). (One all-reduce of
// the sums of x and x^2 would do, but E[x^2] - E[x]^2 loses most digits
// on channels whose mean is large against their spread.) The output is the
// native kernel's x*alpha + beta, run in evaluation mode with the global
// statistics; autograd carries the gradient back through both all-reduces
// to every process's inputs. The running statistics are updated as
// SyncBatchNorm updates them, with the variance unbiased by the global
// count.
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
	// sumsOver is the float64 sums of t per channel, over all ranks.
	sumsOver := func(t *torch.Tensor, extra *torch.Tensor) (*torch.Tensor, error) {
		t64, err := t.ToDType(torch.Float64)
		if err != nil {
			return nil, err
		}
		s, err := t64.SumDims(false, 0, 2, 3)
		t64.Free()
		if err != nil {
			return nil, err
		}
		if extra != nil {
			if s, err = torch.Cat([]*torch.Tensor{s, extra}, 0); err != nil {
				return nil, err
			}
		}
		return b.Sync.AllReduceSumGrad(s)
	}
	count, err := torch.Full([]int64{c}, float64(shape[0]*shape[2]*shape[3]), torch.Options{DType: torch.Float64, Device: x.Device()})
	if err != nil {
		return nil, err
	}
	sums, err := sumsOver(xf, count)
	count.Free()
	if err != nil {
		return nil, err
	}
	sum, err := sums.Narrow(0, 0, c)
	if err != nil {
		return nil, err
	}
	n, err := sums.Narrow(0, c, c)
	if err != nil {
		return nil, err
	}
	mean, err := sum.Div(n)
	if err != nil {
		return nil, err
	}
	mean32, err := mean.ToDType(torch.Float32)
	if err != nil {
		return nil, err
	}
	mean4, err := mean32.View(1, c, 1, 1)
	if err != nil {
		return nil, err
	}
	centred, err := xf.Sub(mean4)
	if err != nil {
		return nil, err
	}
	sq, err := centred.Square()
	if err != nil {
		return nil, err
	}
	m2, err := sumsOver(sq, nil)
	if err != nil {
		return nil, err
	}
	variance, err := m2.Div(n)
	if err != nil {
		return nil, err
	}
	invstd, err := variance.AddScalar(b.Eps)
	if err == nil {
		invstd, err = invstd.Sqrt()
	}
	if err == nil {
		invstd, err = invstd.Reciprocal()
	}
	if err == nil {
		invstd, err = invstd.ToDType(torch.Float32)
	}
	if err != nil {
		return nil, err
	}
	// The kernel computes alpha = invstd*weight and beta = bias -
	// mean*alpha; with a running variance of 1 and eps 0 its invstd is 1,
	// so alpha is ours. It does not differentiate through the mean it is
	// given: the term (mean - mean) * -alpha, zero, carries that gradient.
	alpha, err := invstd.Mul(b.Weight)
	if err != nil {
		return nil, err
	}
	fixedMean, err := mean32.Detach()
	if err != nil {
		return nil, err
	}
	ones, err := torch.Full([]int64{c}, 1, torch.Options{DType: torch.Float32, Device: x.Device()})
	if err != nil {
		return nil, err
	}
	y, err := xf.BatchNorm(alpha, b.Bias, fixedMean, ones, torch.BatchNormOptions{})
	ones.Free()
	if err != nil {
		return nil, err
	}
	zero, err := mean32.Sub(fixedMean)
	if err != nil {
		return nil, err
	}
	meanPath, err := zero.Mul(alpha)
	if err == nil {
		meanPath, err = meanPath.Neg()
	}
	if err == nil {
		meanPath, err = meanPath.View(1, c, 1, 1)
	}
	if err == nil {
		y, err = y.Add(meanPath)
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
			v, err := u.batch.ToDType(u.run.DType())
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
