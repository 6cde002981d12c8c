package train

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/train/metrics"
	"github.com/fertorch/fertorch/train/plot"
)

// Evaluation is a model's predictions over a dataset.
type Evaluation struct {
	Probs  [][]float32
	Labels []int
	Loss   float64 // mean unweighted cross-entropy
	// lossSum is Loss times the number of samples.
	lossSum float64
}

// evaluate runs the model over every batch of a loader without autograd.
func evaluate(ctx context.Context, s *Stepper, staging *Staging, loader *data.Loader, channelsLast, flipTTA bool) (*Evaluation, error) {
	it, err := loader.Epoch(ctx, 0, 0)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	ev := &Evaluation{}
	var lossSum float64
	for {
		b, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		err = func() error {
			defer b.Release()
			scope := torch.NewScope()
			defer scope.Close()
			x, y, err := staging.Upload(scope, b.Images[:b.N*b.C*b.H*b.W], b.Labels[:b.N], channelsLast)
			if err != nil {
				return err
			}
			probs, err := s.Predict(x, flipTTA)
			if err != nil {
				return err
			}
			logp, err := probs.Clamp(1e-12, 1)
			if err == nil {
				logp, err = logp.Log()
			}
			if err != nil {
				return err
			}
			var nll *torch.Tensor
			err = torch.NoGrad(func() error {
				var err error
				nll, err = nllSum(logp, y)
				return err
			})
			if err != nil {
				return err
			}
			v, err := nll.Item()
			if err != nil {
				return err
			}
			staging.Synced()
			lossSum += v
			host, err := probs.Float32s()
			if err != nil {
				return err
			}
			c := len(host) / b.N
			for i := 0; i < b.N; i++ {
				ev.Probs = append(ev.Probs, host[i*c:(i+1)*c:(i+1)*c])
				ev.Labels = append(ev.Labels, int(b.Labels[i]))
			}
			return nil
		}()
		if err != nil {
			return nil, err
		}
	}
	if len(ev.Labels) > 0 {
		ev.Loss = lossSum / float64(len(ev.Labels))
	}
	ev.lossSum = lossSum
	return ev, nil
}

// nllSum is -sum_i logp[i, y_i].
func nllSum(logp, y *torch.Tensor) (*torch.Tensor, error) {
	// cross_entropy(log p) = -log softmax(log p)[y] = -log p[y] because the
	// rows of p sum to 1.
	return logp.CrossEntropy(y, torch.CrossEntropyOptions{Reduction: torch.ReductionSum})
}

// validate computes validation loss and metrics after an epoch. Each rank
// evaluates its shard of the validation set; the confusion matrix, loss
// sum and sample count are added up across ranks, so that every rank gets
// the metrics of the whole set.
func (r *run) validate(ctx context.Context, epoch int) (plot.Epoch, *metrics.Report, error) {
	p := r.state.Partial
	row := plot.Epoch{Epoch: epoch + 1, Seconds: p.Seconds, ValLoss: math.NaN(), ValAcc: math.NaN()}
	if p.Samples > 0 {
		row.TrainLoss = p.LossSum / float64(p.Samples)
		row.TrainAcc = float64(p.Correct) / float64(p.Samples)
	}
	r.model.SetTraining(false)
	start := time.Now()
	var ev *Evaluation
	err := r.withAverage(func() error {
		var err error
		ev, err = evaluate(r.loaderContext(ctx), r.stepper, r.staging, r.valid, r.cfg.Train.ChannelsLast, false)
		return err
	})
	if err != nil {
		return row, nil, fmt.Errorf("validation: %w", err)
	}
	pred, err := metrics.Argmax(ev.Probs)
	if err != nil {
		return row, nil, fmt.Errorf("validation: %w", err)
	}
	// The confusion matrix row by row, then the loss sum and the count.
	n := len(r.classes)
	sums := make([]float64, n*n+2)
	for i, y := range ev.Labels {
		sums[y*n+pred[i]]++
	}
	sums[n*n], sums[n*n+1] = ev.lossSum, float64(len(ev.Labels))
	if err := r.sumAcross(sums); err != nil {
		return row, nil, fmt.Errorf("validation: %w", err)
	}
	cm := make([][]int, n)
	for t := range cm {
		cm[t] = make([]int, n)
		for p := range cm[t] {
			cm[t][p] = int(math.Round(sums[t*n+p]))
		}
	}
	report, err := metrics.FromConfusion(cm, r.classes)
	if err != nil {
		return row, nil, err
	}
	row.ValLoss, row.ValAcc = sums[n*n]/sums[n*n+1], report.Accuracy
	row.Seconds += time.Since(start).Seconds()
	return row, report, nil
}
