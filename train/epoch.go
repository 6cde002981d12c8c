package train

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/torch"
)

// stepSeed derives the dropout seed of one step, so that a resumed run
// draws the same masks as an uninterrupted one.
func stepSeed(seed uint64, epoch, step int) uint64 {
	x := seed ^ 0x9e3779b97f4a7c15*uint64(epoch+1) ^ 0xbf58476d1ce4e5b9*uint64(step+1)
	x ^= x >> 31
	x *= 0x94d049bb133111eb
	return x ^ x>>29
}

// dropoutSeed is the run's dropout seed of one step on this rank: rank 0 (and
// a single process) draws stepSeed's masks, every other rank its own.
func (r *run) dropoutSeed(epoch, step int) uint64 {
	s := stepSeed(r.cfg.Train.Seed, epoch, step)
	if rank := r.rank(); rank > 0 {
		s ^= splitmixRank(uint64(rank))
	}
	return s
}

// splitmixRank spreads a rank number over 64 bits.
func splitmixRank(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// trainEpoch runs the epoch's remaining steps.
func (r *run) trainEpoch(ctx context.Context, epoch int) error {
	c := r.cfg
	r.model.SetTraining(true)
	it, err := r.train.Epoch(r.loaderContext(ctx), epoch, r.state.Step)
	if err != nil {
		return err
	}
	defer it.Close()
	steps := it.Steps()
	mix := r.newEpochMix(it)
	bar := newBar(r.log, r.opts.ProgressBar, steps, fmt.Sprintf("epoch %d/%d", epoch+1, c.Train.Epochs))
	bar.Set(r.state.Step)
	defer bar.Finish()
	readEvery := 1
	if r.dev.IsCUDA() {
		readEvery = 10 // reading a value waits for the GPU
	}
	// Each step runs in its own scope; only its two result scalars move to
	// the pending scope until they are read (on CUDA every few steps, since
	// reading waits for the GPU).
	var pendingLoss, pendingCorrect []*torch.Tensor
	var pendingN, pendingGlobalN []int
	pending := torch.NewScope()
	defer func() { pending.Close() }()
	// flush reads the pending results into the epoch's sums, over every
	// rank; the ranks flush at the same steps, and learn there whether one
	// of them was interrupted.
	flush := func() error {
		var d EpochStats
		for i := range pendingLoss {
			l, err := pendingLoss[i].Item()
			if err != nil {
				return err
			}
			k, err := pendingCorrect[i].Item()
			if err != nil {
				return err
			}
			d.LossSum += l * float64(pendingGlobalN[i])
			d.Correct += int64(k)
			d.Samples += int64(pendingN[i])
		}
		pendingLoss, pendingCorrect, pendingN, pendingGlobalN = pendingLoss[:0], pendingCorrect[:0], pendingN[:0], pendingGlobalN[:0]
		r.staging.Synced()
		pending.Close()
		pending = torch.NewScope()
		if err := r.sumStats(ctx, &d); err != nil {
			return err
		}
		r.state.Partial.LossSum += d.LossSum
		r.state.Partial.Correct += d.Correct
		r.state.Partial.Samples += d.Samples
		return nil
	}
	// saveAndStop ends an interrupted epoch: the state is at a step
	// boundary, so it is saved and --resume continues from this step.
	saveAndStop := func(cause error) error {
		if err := flush(); err != nil {
			return err
		}
		if err := r.saveLast(); err != nil {
			return err
		}
		return cause
	}
	if err := r.interrupted(ctx); err != nil {
		return saveAndStop(err)
	}
	for {
		start := time.Now()
		b, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if r.group == nil && ctx.Err() != nil {
				return saveAndStop(err)
			}
			return err
		}
		r.applyRates(epoch, b.Step, steps)
		if err := torch.ManualSeed(r.dropoutSeed(epoch, b.Step)); err != nil {
			b.Release()
			return err
		}
		scope := torch.NewScope()
		res, err := r.step(scope, b, mix)
		n, globalN := b.N, b.GlobalN
		b.Release()
		if err == nil {
			pending.Own(res.Loss, nil)
			pending.Own(res.Correct, nil)
		}
		scope.Close()
		if err == nil {
			err = r.updateAverage(epoch*steps + r.state.Step)
		}
		if err != nil {
			return fmt.Errorf("epoch %d step %d: %w", epoch+1, r.state.Step+1, err)
		}
		pendingLoss = append(pendingLoss, res.Loss)
		pendingCorrect = append(pendingCorrect, res.Correct)
		pendingN = append(pendingN, n)
		pendingGlobalN = append(pendingGlobalN, globalN)
		r.state.Step++
		last := r.state.Step == steps
		checkpoint := c.Train.CheckpointEverySteps > 0 && r.state.Step%c.Train.CheckpointEverySteps == 0 && !last
		if len(pendingLoss) >= readEvery || last || checkpoint {
			if err := flush(); err != nil {
				return err
			}
			p := r.state.Partial
			bar.Describe(fmt.Sprintf("epoch %d/%d loss %.4f acc %.4f", epoch+1, c.Train.Epochs, p.LossSum/float64(p.Samples), float64(p.Correct)/float64(p.Samples)))
		}
		r.state.Partial.Seconds += time.Since(start).Seconds()
		bar.Add(1, globalN)
		if err := r.interrupted(ctx); err != nil && !last {
			return saveAndStop(err)
		}
		if checkpoint {
			if err := r.saveLast(); err != nil {
				return err
			}
		}
	}
	return nil
}

// step uploads a batch and runs one optimisation step in scope, on the
// batch mixed when mix (nil: never) draws so; a rank's share of a global
// batch is normalised by the global batch's denominator.
func (r *run) step(scope *torch.Scope, b *data.Batch, mix *epochMix) (StepResult, error) {
	images := b.Images[:b.N*b.C*b.H*b.W]
	x, y, err := r.staging.Upload(scope, images, b.Labels[:b.N], r.cfg.Train.ChannelsLast)
	if err != nil {
		return StepResult{}, err
	}
	var mixed *MixedLabels
	if mix != nil {
		if x, mixed, err = mix.apply(scope, b, x, y, r.cfg.Train.ChannelsLast); err != nil {
			return StepResult{}, err
		}
	}
	denominator := 0.0 // the batch's mean loss
	if r.group != nil || r.cfg.Train.Accumulate > 1 {
		denominator = r.denominator(b)
	}
	switch {
	case mixed != nil:
		return r.stepper.TrainMixedStep(x, y, *mixed, denominator)
	case r.group == nil && r.cfg.Train.Accumulate <= 1:
		return r.stepper.TrainStep(x, y)
	}
	return r.stepper.TrainShardStep(x, y, denominator)
}
