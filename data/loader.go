package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"runtime"
	"sync"
	"sync/atomic"
)

// LoaderConfig controls a Loader.
type LoaderConfig struct {
	// BatchSize is the number of samples per batch (required, > 0).
	BatchSize int
	// Workers is the number of goroutines preparing samples (default
	// GOMAXPROCS). The batches do not depend on it.
	Workers int
	// Prefetch is how many batches may be prepared ahead of the consumer
	// (default 2).
	Prefetch int
	// Shuffle draws a new seeded order every epoch; without it samples come
	// in dataset order.
	Shuffle bool
	// DropLast drops the final partial batch of an epoch.
	DropLast bool
	// Seed drives the order, the oversampling and every augmentation draw.
	Seed uint64
	// Oversample draws each epoch's samples with replacement, each with
	// probability proportional to its class weight min(max/count, WeightCap),
	// so rare classes are seen more often. When it is on, the training loss
	// should usually not be class-weighted as well.
	Oversample bool
	// WeightCap caps the oversampling weights (default DefaultWeightCap).
	WeightCap float64
	// Augment is the random augmentation, or nil for none (evaluation).
	Augment *AugmentConfig
	// Normalize is applied last (default NormRescale, Keras' 1/255).
	Normalize Normalization
	// Shard makes the loader serve one process's part of every batch in
	// data-parallel training (the zero value: the whole batch).
	Shard Shard
}

// Shard is one rank's part of every global batch in data-parallel
// training. Every rank draws the same epoch order (same seed); the global
// batch of step s is order[s*BatchSize:(s+1)*BatchSize], and rank r takes
// the r-th contiguous share of it. Shares differ by at most one sample, the
// first ranks taking the extra ones: a global batch of n samples gives rank
// r n/Count samples, plus one when r < n%Count. Augmentation draws depend
// on a sample's position in the epoch, not on the rank, so the ranks'
// batches of a step, concatenated in rank order, are the single-process
// batch of that step.
//
// A final global batch smaller than Count (some ranks would get no sample)
// is dropped, so that every rank takes the same number of steps, each with
// at least one sample; unless KeepTail is set.
type Shard struct {
	// Rank is this process's index in [0, Count).
	Rank int
	// Count is the number of ranks; 0 and 1 mean no sharding.
	Count int
	// KeepTail keeps a final global batch smaller than Count: the ranks
	// with no share of it then have one step fewer. It is meant for
	// evaluation, where every sample must be seen and the ranks do not
	// meet at each step.
	KeepTail bool
}

// share returns the part [lo, hi) of a global batch of n samples that
// rank takes when it is split across count ranks.
func share(n, rank, count int) (lo, hi int) {
	if count <= 1 {
		return 0, n
	}
	q, rem := n/count, n%count
	lo = rank*q + min(rank, rem)
	hi = lo + q
	if rank < rem {
		hi++
	}
	return lo, hi
}

// Batch is one batch of samples in plain Go memory. Its slices are exactly
// N samples long.
type Batch struct {
	// Images holds N*C*H*W normalized values, NCHW.
	Images []float32
	// N is the number of samples (less than the batch size only for an
	// epoch's last batch), C is 3.
	N, C, H, W int
	// Labels are the class indices.
	Labels []int64
	// Indices are the samples' indices in the dataset.
	Indices []int
	// Epoch and Step say where the batch belongs.
	Epoch, Step int
	// GlobalN is the number of samples of the global batch this batch is a
	// share of (N when the loader is not sharded), and Offset is the
	// position of the batch's first sample in it. A loss normalised over
	// the global batch divides by GlobalN.
	GlobalN, Offset int
	// GlobalCounts counts the global batch's labels per class, so that a
	// loss can be normalised by the sum of the global batch's class
	// weights (nn.CrossEntropyLoss's weighted mean).
	GlobalCounts []int

	owner *Loader
}

// Release returns the batch's buffers to its loader for reuse, so that a
// training loop that releases every batch allocates nothing per batch. Do
// not use the batch afterwards, and release it once.
func (b *Batch) Release() {
	if b == nil || b.owner == nil {
		return
	}
	l := b.owner
	b.owner = nil
	select {
	case l.free <- b:
	default:
	}
}

// Loader serves batches of a decoded dataset.
type Loader struct {
	ds      *Dataset
	cfg     LoaderConfig
	labels  []int
	weights []float64
	warper  warper
	h, w    int
	free    chan *Batch
}

// NewLoader checks the configuration and prepares a loader for a decoded
// dataset (see Dataset.Decode).
func NewLoader(ds *Dataset, cfg LoaderConfig) (*Loader, error) {
	if ds == nil || !ds.Decoded() {
		return nil, errors.New("loader: the dataset is not decoded (call Dataset.Decode first)")
	}
	if cfg.BatchSize <= 0 {
		return nil, fmt.Errorf("loader: batch size must be > 0, got %d", cfg.BatchSize)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 2
	}
	if cfg.WeightCap == 0 {
		cfg.WeightCap = DefaultWeightCap
	}
	if cfg.Normalize < NormRescale || cfg.Normalize > NormNone {
		return nil, fmt.Errorf("loader: unknown normalization %d", int(cfg.Normalize))
	}
	if sh := cfg.Shard; sh.Count < 0 || sh.Rank < 0 || (sh.Count > 0 && sh.Rank >= sh.Count) || (sh.Count == 0 && sh.Rank != 0) {
		return nil, fmt.Errorf("loader: shard rank %d is outside [0, %d)", sh.Rank, max(sh.Count, 1))
	}
	if cfg.Shard.Count > cfg.BatchSize {
		return nil, fmt.Errorf("loader: batch size %d is smaller than the %d ranks it is split across (every rank needs a sample per step)", cfg.BatchSize, cfg.Shard.Count)
	}
	if cfg.Augment != nil {
		if err := cfg.Augment.Validate(); err != nil {
			return nil, fmt.Errorf("loader: %w", err)
		}
		a := *cfg.Augment
		cfg.Augment = &a
	}
	h, w := ds.Size()
	for i, im := range ds.images {
		if err := im.check(); err != nil || im.H != h || im.W != w {
			return nil, fmt.Errorf("loader: sample %d (%s): bad pixels: %v", i, ds.Samples[i].Path, err)
		}
	}
	l := &Loader{
		ds:     ds,
		cfg:    cfg,
		labels: ds.Labels(),
		warper: warper{norm: newNormTable(cfg.Normalize)},
		h:      h,
		w:      w,
		free:   make(chan *Batch, cfg.Prefetch+2),
	}
	l.weights = ClassWeights(ds.Counts(), cfg.WeightCap)
	return l, nil
}

// Len is the number of samples in an epoch (over all ranks when sharded).
func (l *Loader) Len() int { return len(l.labels) }

// StepsPerEpoch is the number of batches in an epoch. A sharded loader has
// the same number on every rank (see Shard for the final global batch).
func (l *Loader) StepsPerEpoch() int {
	n, b := len(l.labels), l.cfg.BatchSize
	if l.cfg.DropLast {
		return n / b
	}
	steps := (n + b - 1) / b
	sh := l.cfg.Shard
	if tail := n % b; tail > 0 && sh.Count > 1 && tail < sh.Count {
		if lo, hi := share(tail, sh.Rank, sh.Count); !sh.KeepTail || lo == hi {
			steps--
		}
	}
	return steps
}

// Config returns the effective configuration (defaults filled in).
func (l *Loader) Config() LoaderConfig {
	c := l.cfg
	if c.Augment != nil {
		a := *c.Augment
		c.Augment = &a
	}
	return c
}

func (l *Loader) getBatch() *Batch {
	select {
	case b := <-l.free:
		b.owner = l
		return b
	default:
	}
	_, bs := share(l.cfg.BatchSize, 0, l.cfg.Shard.Count) // rank 0's share is the largest
	return &Batch{
		Images:       make([]float32, bs*3*l.h*l.w),
		Labels:       make([]int64, bs),
		Indices:      make([]int, bs),
		GlobalCounts: make([]int, len(l.ds.Classes)),
		C:            3, H: l.h, W: l.w,
		owner: l,
	}
}

// Order returns the dataset indices of an epoch, in the order the batches
// use them (a function of seed and epoch only).
func (l *Loader) Order(epoch int) []int {
	return epochOrder(l.labels, l.weights, l.cfg.Shuffle, l.cfg.Oversample, l.cfg.Seed, epoch)
}

// Sample writes the sample at position pos of an epoch's order into dst
// (3*H*W values, CHW), exactly as the batches contain it.
func (l *Loader) Sample(dst []float32, epoch, pos, index int) error {
	if index < 0 || index >= len(l.labels) {
		return fmt.Errorf("loader: sample index %d out of range", index)
	}
	if len(dst) != 3*l.h*l.w {
		return fmt.Errorf("loader: destination has %d values, want %d", len(dst), 3*l.h*l.w)
	}
	l.fill(dst, epoch, pos, index)
	return nil
}

// fill prepares one sample. Its randomness depends only on (seed, epoch,
// pos), pos being the sample's position in the epoch.
func (l *Loader) fill(dst []float32, epoch, pos, index int) {
	img := l.ds.images[index]
	aug := l.cfg.Augment
	if aug == nil {
		l.warper.copy(dst, img, false, false)
		return
	}
	r := newRNG(l.cfg.Seed, streamAugment, uint64(epoch), uint64(pos))
	var u [8]float64
	for k, n := 0, aug.NumDraws(); k < n; k++ {
		u[k] = r.Float64()
	}
	t := aug.fromUniforms(l.h, l.w, &u)
	a := t.Matrix(l.h, l.w, aug.Semantics)
	l.warper.warp(dst, img, a, t.FlipH, t.FlipV, aug.FillMode, aug.Cval, aug.Precise)
}

// EpochIter yields one epoch's batches in order. It must be closed, and it
// is meant for one consuming goroutine.
type EpochIter struct {
	l      *Loader
	ctx    context.Context
	parent context.Context
	cancel context.CancelFunc
	epoch  int
	order  []int
	next   int
	steps  int
	slots  []epochSlot
	sem    chan struct{}
	wg     sync.WaitGroup
	closed bool
}

type epochSlot struct {
	b         *Batch
	remaining atomic.Int32
	ready     chan *Batch
}

type sampleJob struct {
	slot *epochSlot
	j    int
}

// Epoch starts producing an epoch's batches from step start on (0 for a
// whole epoch). Batches from step k on are identical to those of an epoch
// started at 0, so a run stopped mid-epoch resumes exactly. Workers stop
// when ctx is cancelled or the iterator is closed.
func (l *Loader) Epoch(ctx context.Context, epoch, start int) (*EpochIter, error) {
	steps := l.StepsPerEpoch()
	if start < 0 || start > steps {
		return nil, fmt.Errorf("loader: start step %d outside [0, %d]", start, steps)
	}
	if epoch < 0 {
		return nil, fmt.Errorf("loader: negative epoch %d", epoch)
	}
	cctx, cancel := context.WithCancel(ctx)
	it := &EpochIter{
		l: l, ctx: cctx, parent: ctx, cancel: cancel,
		epoch: epoch, order: l.Order(epoch), next: start, steps: steps,
		slots: make([]epochSlot, l.cfg.Prefetch),
		sem:   make(chan struct{}, l.cfg.Prefetch),
	}
	for i := range it.slots {
		it.slots[i].ready = make(chan *Batch, 1)
	}
	jobs := make(chan sampleJob, l.cfg.BatchSize)
	it.wg.Add(1)
	go it.dispatch(start, jobs)
	for w := 0; w < l.cfg.Workers; w++ {
		it.wg.Add(1)
		go it.work(jobs)
	}
	return it, nil
}

// Steps is the number of batches in the epoch (including skipped ones).
func (it *EpochIter) Steps() int { return it.steps }

func (it *EpochIter) dispatch(start int, jobs chan<- sampleJob) {
	defer it.wg.Done()
	defer close(jobs)
	l := it.l
	bs := l.cfg.BatchSize
	n := len(it.order)
	done := it.ctx.Done()
	for s := start; s < it.steps; s++ {
		select {
		case it.sem <- struct{}{}:
		case <-done:
			return
		}
		sl := &it.slots[s%len(it.slots)]
		b := l.getBatch()
		lo := s * bs
		hi := min(lo+bs, n)
		from, to := share(hi-lo, l.cfg.Shard.Rank, l.cfg.Shard.Count)
		b.N, b.Epoch, b.Step, b.GlobalN, b.Offset = to-from, it.epoch, s, hi-lo, from
		b.Images = b.Images[: b.N*3*l.h*l.w : cap(b.Images)]
		b.Labels = b.Labels[:b.N:cap(b.Labels)]
		b.Indices = b.Indices[:b.N:cap(b.Indices)]
		for j := 0; j < b.N; j++ {
			idx := it.order[lo+from+j]
			b.Indices[j] = idx
			b.Labels[j] = int64(l.labels[idx])
		}
		clear(b.GlobalCounts)
		for _, idx := range it.order[lo:hi] {
			if c := l.labels[idx]; c >= 0 && c < len(b.GlobalCounts) {
				b.GlobalCounts[c]++
			}
		}
		sl.b = b
		sl.remaining.Store(int32(b.N))
		for j := 0; j < b.N; j++ {
			select {
			case jobs <- sampleJob{slot: sl, j: j}:
			case <-done:
				return
			}
		}
	}
}

func (it *EpochIter) work(jobs <-chan sampleJob) {
	defer it.wg.Done()
	l := it.l
	chw := 3 * l.h * l.w
	bs := l.cfg.BatchSize
	for job := range jobs {
		if it.ctx.Err() != nil {
			continue
		}
		b := job.slot.b
		pos := b.Step*bs + b.Offset + job.j
		l.fill(b.Images[job.j*chw:(job.j+1)*chw], it.epoch, pos, b.Indices[job.j])
		if job.slot.remaining.Add(-1) == 0 {
			job.slot.ready <- b
		}
	}
}

// Render writes samples of the global batch that b, a batch of this epoch,
// is a share of: the sample at position gs[k] of the global batch (0 <=
// gs[k] < b.GlobalN) goes to dst[k*3*H*W:(k+1)*3*H*W] (CHW) and its label
// to labels[k], exactly as the batch of the rank whose share holds it
// contains it (a sample's augmentation depends on its position in the
// epoch, not on the rank). So a rank sees samples of other ranks' shares
// without communicating; data-parallel Mixup and CutMix pair samples
// across the global batch this way. As many goroutines as the loader has
// workers prepare them, while the epoch's own workers run on.
func (it *EpochIter) Render(dst []float32, labels []int64, b *Batch, gs []int) error {
	l := it.l
	chw := 3 * l.h * l.w
	if b.Epoch != it.epoch || b.Step < 0 || b.Step >= it.steps {
		return fmt.Errorf("loader: render: batch of epoch %d step %d is not of this epoch %d (%d steps)", b.Epoch, b.Step, it.epoch, it.steps)
	}
	if len(dst) != len(gs)*chw || len(labels) != len(gs) {
		return fmt.Errorf("loader: render: %d values and %d labels for %d samples of %d values", len(dst), len(labels), len(gs), chw)
	}
	base := b.Step * l.cfg.BatchSize
	for k, g := range gs {
		if g < 0 || g >= b.GlobalN {
			return fmt.Errorf("loader: render: position %d is outside the global batch of %d", g, b.GlobalN)
		}
		labels[k] = int64(l.labels[it.order[base+g]])
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(l.cfg.Workers, len(gs)) {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < len(gs); k = int(next.Add(1) - 1) {
				pos := base + gs[k]
				l.fill(dst[k*chw:(k+1)*chw], it.epoch, pos, it.order[pos])
			}
		})
	}
	wg.Wait()
	return nil
}

// Next returns the next batch, io.EOF after the last one, or the context's
// error once it is cancelled. The caller owns the batch and should Release
// it when done.
func (it *EpochIter) Next() (*Batch, error) {
	if it.closed {
		return nil, errors.New("loader: Next on a closed epoch")
	}
	if it.next >= it.steps {
		return nil, io.EOF
	}
	sl := &it.slots[it.next%len(it.slots)]
	select {
	case b := <-sl.ready:
		it.next++
		<-it.sem
		return b, nil
	case <-it.ctx.Done():
		if err := it.parent.Err(); err != nil {
			return nil, err
		}
		return nil, it.ctx.Err()
	}
}

// Close stops the workers, waits for them and recycles unread batches. It
// is safe to call more than once.
func (it *EpochIter) Close() {
	if it.closed {
		return
	}
	it.closed = true
	it.cancel()
	it.wg.Wait()
	for i := range it.slots {
		select {
		case b := <-it.slots[i].ready:
			b.Release()
		default:
		}
	}
}

// All iterates over an epoch's batches from step start on; the loop body
// owns each batch (and should Release it). An error, including the
// context's, is yielded once and ends the loop.
func (l *Loader) All(ctx context.Context, epoch, start int) iter.Seq2[*Batch, error] {
	return func(yield func(*Batch, error) bool) {
		it, err := l.Epoch(ctx, epoch, start)
		if err != nil {
			yield(nil, err)
			return
		}
		defer it.Close()
		for {
			b, err := it.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(b, nil) {
				return
			}
		}
	}
}
