package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/dist"
	"github.com/fertorch/fertorch/torch/nn"
)

// A data-parallel run has one process per rank (Options.Dist). Every rank
// builds the same model, takes rank 0's parameters and buffers, and trains
// on its share of every global batch (data.Shard; --batch-size is the
// global batch). Each share's loss is its summed loss over the global
// batch's denominator, and the Reducer sums the gradients across ranks
// between backward and the optimizer step, so that every rank takes the
// step one process takes on the global batch. Validation is sharded too
// and its confusion matrix and loss sums are added up across ranks, so
// every rank computes the single-process metrics and takes the same
// decisions. Rank 0 alone writes files and logs. Everything in this file
// is a no-op on one process (r.group == nil).

// gradientBucketBytes is the size of the flattened gradient buckets the
// Reducer all-reduces while backward still runs (DDP's default).
const gradientBucketBytes = dist.DefaultBucketBytes

// ErrPeerInterrupted is returned by the ranks of a distributed run that
// stopped because another rank was interrupted (Ctrl-C or SIGTERM); rank 0
// saved the last checkpoint first.
var ErrPeerInterrupted = errors.New("stopped because another rank was interrupted (Ctrl-C or SIGTERM); the last checkpoint is saved")

// RankDevice is the device a rank of a distributed run trains on: the
// setting's device, a CUDA one being cuda:localRank (one GPU per process).
// An explicit cuda:N names one GPU, so it fits one process per machine only.
func RankDevice(spec torch.DeviceSpec, localRank, localWorldSize int) (torch.Device, error) {
	dev, err := spec.Resolve()
	if err != nil || !dev.IsCUDA() {
		return dev, err
	}
	if strings.HasPrefix(string(spec), "cuda:") {
		if localWorldSize > 1 {
			return torch.Device{}, fmt.Errorf("--device %s names one GPU for the %d processes of this machine; use --device cuda, which gives each local rank its own (cuda:LOCAL_RANK)", spec, localWorldSize)
		}
		return dev, nil
	}
	return torch.ParseDevice(fmt.Sprintf("cuda:%d", localRank))
}

// rank is this process's rank (0 on one process).
func (r *run) rank() int {
	if r.group == nil {
		return 0
	}
	return r.group.Rank()
}

// ranks is the number of processes of the run (1 on one process).
func (r *run) ranks() int {
	if r.group == nil {
		return 1
	}
	return r.group.Size()
}

// writes is the gate of side effects: only rank 0 (or the one process)
// writes into the run folder, logs and draws progress; lr-find never
// writes.
func (r *run) writes() bool { return r.rank() == 0 && !r.noFiles }

// device resolves the training device (RankDevice on several ranks).
func (r *run) device() (torch.Device, error) {
	if r.group == nil {
		return r.cfg.Train.Device.Resolve()
	}
	return RankDevice(r.cfg.Train.Device, r.opts.LocalRank, r.opts.LocalWorldSize)
}

// localCores is this process's share of the machine's cores: what the
// thread and worker settings' 0 means.
func (r *run) localCores() int {
	n := runtime.NumCPU()
	if r.group != nil && r.opts.LocalWorldSize > 1 {
		n = max(1, n/r.opts.LocalWorldSize)
	}
	return n
}

// workers is the data workers setting, 0 (one per core) meaning this
// process's share of the cores on several ranks.
func (r *run) workers() int {
	if w := r.cfg.Data.Workers; w != 0 || r.group == nil {
		return w
	}
	return r.localCores()
}

// checkRanks checks the settings a run on several ranks needs.
func (r *run) checkRanks() error {
	if n := r.ranks(); r.cfg.Train.BatchSize < n {
		return fmt.Errorf("--batch-size %d is the global batch, split across the %d ranks: it must be at least %d", r.cfg.Train.BatchSize, n, n)
	}
	return nil
}

// shard is this rank's part of the loaders' batches; validation keeps the
// final global batch whole (KeepTail) so that every image is evaluated.
func (r *run) shard(eval bool) data.Shard {
	if r.group == nil {
		return data.Shard{}
	}
	return data.Shard{Rank: r.rank(), Count: r.ranks(), KeepTail: eval}
}

// loaderContext is the context the loaders run under. On several ranks an
// interruption must not stop one rank's loader on its own: the ranks stop
// together at a step they agree on (see sumStats).
func (r *run) loaderContext(ctx context.Context) context.Context {
	if r.group == nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// interrupted says whether the run must stop now: on one process when ctx
// is cancelled, on several ranks when one of them was interrupted, as
// learnt at the last sumStats.
func (r *run) interrupted(ctx context.Context) error {
	if r.group == nil {
		return ctx.Err()
	}
	if !r.stopping {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return ErrPeerInterrupted
}

// sumStats adds a flush's training sums up across ranks, together with a
// flag saying whether any rank was interrupted: one small all-reduce at
// the steps where the ranks read their results.
func (r *run) sumStats(ctx context.Context, d *EpochStats) error {
	if r.group == nil {
		return nil
	}
	stop := 0.0
	if ctx.Err() != nil {
		stop = 1
	}
	v := []float64{stop, d.LossSum, float64(d.Correct), float64(d.Samples)}
	if err := r.sumAcross(v); err != nil {
		return fmt.Errorf("training sums: %w", err)
	}
	if v[0] > 0 {
		r.stopping = true
	}
	d.LossSum, d.Correct, d.Samples = v[1], int64(math.Round(v[2])), int64(math.Round(v[3]))
	return nil
}

// sumAcross replaces v by its element-wise sum over the ranks (float64,
// so that counts stay exact), on the group's device.
func (r *run) sumAcross(v []float64) error {
	if r.group == nil {
		return nil
	}
	scope := torch.NewScope()
	defer scope.Close()
	t, err := scope.Own(torch.FromFloat64s(v, int64(len(v))))
	if err != nil {
		return err
	}
	if dev := r.group.Device(); dev.IsCUDA() {
		if t, err = t.ToDevice(dev); err != nil {
			return err
		}
	}
	if err := r.group.AllReduceSum([]*torch.Tensor{t}); err != nil {
		return err
	}
	out, err := t.Float64s()
	if err != nil {
		return err
	}
	copy(v, out)
	return nil
}

// denominator is what the global batch's summed loss is divided by: its
// size, or with class weights and PyTorch's normalisation the sum of its
// samples' class weights (as float32, the weights tensor's precision).
func (r *run) denominator(b *data.Batch) float64 {
	if r.classWeights == nil || r.cfg.Train.LossNormalization == KerasLoss {
		return float64(b.GlobalN)
	}
	sum := 0.0
	for c, n := range b.GlobalCounts {
		sum += float64(n) * float64(float32(r.classWeights[c]))
	}
	return sum
}

// agree makes every rank learn whether every other one got ready: err is
// this rank's setup error. A rank that failed returns its own error; the
// others return one naming the ranks that failed, instead of waiting for
// them at the first collective until the timeout.
func (r *run) agree(err error) error {
	if r.group == nil {
		return err
	}
	failed := make([]float64, r.ranks())
	if err != nil {
		failed[r.rank()] = 1
	}
	if e := r.sumAcross(failed); e != nil {
		if err != nil {
			return err
		}
		return fmt.Errorf("waiting for the other ranks to get ready: %w", e)
	}
	if err != nil {
		return err
	}
	var names []string
	for rank, f := range failed {
		if f > 0 {
			names = append(names, fmt.Sprint(rank))
		}
	}
	if len(names) > 0 {
		return fmt.Errorf("stopped: rank %s failed to start (see its error)", strings.Join(names, ", "))
	}
	return nil
}

// joinRanks starts data-parallel training once every rank is ready: rank
// 0's parameters and buffers go to every rank, batch norm synchronises its
// statistics when asked, and the gradients get a Reducer.
func (r *run) joinRanks() error {
	g := r.group
	if g == nil {
		return nil
	}
	state := r.model.StateTensors()
	ts := make([]*torch.Tensor, len(state))
	for i, s := range state {
		ts[i] = s.Tensor
	}
	if err := g.Broadcast(ts, 0); err != nil {
		return fmt.Errorf("broadcasting rank 0's parameters: %w", err)
	}
	synced := 0
	if r.cfg.Train.SyncBN {
		nn.Walk(r.model, func(_ string, m nn.Module) bool {
			if bn, ok := m.(*nn.BatchNorm2d); ok {
				bn.Sync = g
				synced++
			}
			return true
		})
	}
	if err := r.newReducer(); err != nil {
		return err
	}
	bn := "per-rank batch norm statistics"
	if r.cfg.Train.SyncBN {
		bn = fmt.Sprintf("batch norm synchronised across ranks (%d layers)", synced)
	}
	lo, hi := r.cfg.Train.BatchSize/r.ranks(), (r.cfg.Train.BatchSize+r.ranks()-1)/r.ranks()
	share := fmt.Sprint(lo)
	if hi != lo {
		share = fmt.Sprintf("%d-%d", lo, hi)
	}
	ranks := "ranks"
	if r.ranks() == 1 {
		ranks = "rank"
	}
	r.printf("data-parallel on %d %s: global batch %d, %s images per rank and step, gradients summed in %d MiB buckets, %s\n",
		r.ranks(), ranks, r.cfg.Train.BatchSize, share, gradientBucketBytes>>20, bn)
	return nil
}

// newReducer (re)makes the gradient reducer over the parameters that train
// now: at the start, and when a fine-tune phase changes what trains.
func (r *run) newReducer() error {
	if r.group == nil {
		return nil
	}
	if r.reducer != nil {
		r.reducer.Free()
		r.reducer, r.stepper.Sync = nil, nil
	}
	red, err := r.group.NewReducer(r.stepper.trainable(), gradientBucketBytes)
	if err != nil {
		return fmt.Errorf("gradient reducer: %w", err)
	}
	r.reducer = red
	r.stepper.Sync = red
	return nil
}

// changeRanks continues a run saved by another number of ranks. Step s of
// an epoch is the same global batch on any number of ranks, so the run
// continues with the same batches, but its sums are added in another order:
// the continuation is bitwise that of an uninterrupted run only on the same
// number of ranks. A final global batch smaller than the rank count is
// dropped (data.Shard), so an epoch may have one step fewer than when saved.
func (r *run) changeRanks(was int) {
	now := r.ranks()
	r.state.Ranks = now
	if was == now {
		return
	}
	r.printf("the run was saved by %d rank(s) and continues on %d: the same global batches of %d, summed in another order (close to, not bitwise, an uninterrupted run)\n", was, now, r.cfg.Train.BatchSize)
	if steps := r.train.StepsPerEpoch(); r.state.Step > steps {
		r.state.Step = steps
	}
}

// rankOptions makes the log and warnings of ranks other than 0 silent:
// they report only their errors, which Train returns.
func rankOptions(opts Options) Options {
	if opts.Dist != nil && opts.Dist.Rank() != 0 {
		opts.Log, opts.Warnings, opts.ProgressBar = nil, nil, false
	}
	return opts
}
