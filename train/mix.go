package train

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/torch"
)

// Mixup and CutMix follow timm's Mixup class (timm/data/mixup.py) in its
// 'batch' mode, one draw per batch:
//
//   - with probability mix_prob the batch is mixed (_params_per_batch);
//     with both on, CutMix is chosen with probability switch_prob, else
//     Mixup; lambda ~ Beta(a, a) with the chosen one's concentration;
//   - Mixup: x = lambda*x + (1-lambda)*x.flip(0) (_mix_batch);
//   - CutMix: rand_bbox's box (cut_rat = sqrt(1-lambda), cut_h =
//     int(H*cut_rat), cut_w = int(W*cut_rat), centre cy, cx uniform in
//     [0, H) and [0, W), edges clipped to the image) of x.flip(0) is pasted
//     into x, and lambda becomes 1 - box area/(H*W) (cutmix_bbox_and_lam
//     with correct_lam);
//   - the loss is lambda*L(y) + (1-lambda)*L(y.flip(0)), L being the run's
//     own loss (class weights, label smoothing, normalisation). timm mixes
//     one-hot targets and takes the soft-target cross-entropy, which is
//     the same for an unweighted mean loss because cross-entropy is linear
//     in its target (label smoothing included); class weights are
//     fertorch's and apply per label.
//
// timm pairs sample i with sample B-1-i of the batch (flip(0)). Here the
// pairs are those of the global batch: on N ranks, sample j of the global
// batch of G pairs with sample G-1-j, which another rank usually holds;
// each rank renders its partners itself through the loader
// (data.EpochIter.Render: a sample is a function of the seed, epoch and
// position), so N ranks train on the mixed batches of one process. The
// draws come from a generator seeded by the run's seed, the epoch and the
// step, so every rank and a resumed run draw the same; they do not touch
// libtorch's generator (dropout's).
//
// Unlike timm, which asserts an even batch, an odd batch (an epoch's last)
// pairs its middle sample with itself. Validation, evaluation and lr-find
// never mix. The training accuracy of a mixed batch counts the label of
// the larger weight: y when lambda >= 0.5, else the partner's.

// mixStream separates the mixing draws of a step from its other seeds.
const mixStream = 0x6d69787570 // "mixup"

// mixer holds the mixing settings (TrainConfig's Mixup, CutMix, MixProb
// and MixSwitchProb).
type mixer struct {
	mixup, cutmix, prob, switchProb float64
}

// newMixer returns the settings of t, or nil when mixing is off.
func newMixer(t TrainConfig) *mixer {
	if t.Mixup <= 0 && t.CutMix <= 0 {
		return nil
	}
	return &mixer{mixup: t.Mixup, cutmix: t.CutMix, prob: t.MixProb, switchProb: t.MixSwitchProb}
}

// mixDraw is one batch's draws: whether it is mixed, how, lambda (the
// Beta draw, before CutMix's correction) and CutMix's box centre.
type mixDraw struct {
	Mixed  bool    `json:"mixed"`
	CutMix bool    `json:"cutmix"`
	Lambda float64 `json:"lambda"`
	CY     int     `json:"cy"`
	CX     int     `json:"cx"`
}

// draw is the draws of a step of an epoch for images of h x w, in timm's
// order: apply (u < prob), switch (u < switchProb, with both on), lambda,
// then the box centre's row and column. A lambda of exactly 1 leaves the
// batch unmixed, as timm's _mix_batch does.
func (m *mixer) draw(seed uint64, epoch, step, h, w int) mixDraw {
	g := mixRNG{rand.NewPCG(stepSeed(seed, epoch, step), mixStream)}
	var d mixDraw
	if !(g.float64() < m.prob) {
		return d
	}
	alpha := m.mixup
	switch {
	case m.mixup > 0 && m.cutmix > 0:
		d.CutMix = g.float64() < m.switchProb
	case m.cutmix > 0:
		d.CutMix = true
	}
	if d.CutMix {
		alpha = m.cutmix
	}
	d.Lambda = g.beta(alpha)
	if d.CutMix {
		d.CY, d.CX = g.intN(h), g.intN(w)
	}
	d.Mixed = d.Lambda != 1
	return d
}

// cutBox is timm's rand_bbox (without margin) for lambda and a drawn
// centre: rows [yl, yh) and columns [xl, xh) of an h x w image. Its
// sides are even (2*(cut/2)) before clipping, as timm's are.
func cutBox(h, w int, lambda float64, cy, cx int) (yl, yh, xl, xh int) {
	ratio := math.Sqrt(1 - lambda)
	cutH, cutW := int(float64(h)*ratio), int(float64(w)*ratio)
	clip := func(v, hi int) int { return min(max(v, 0), hi) }
	return clip(cy-cutH/2, h), clip(cy+cutH/2, h), clip(cx-cutW/2, w), clip(cx+cutW/2, w)
}

// cutLambda is lambda corrected to the box's share of the image
// (cutmix_bbox_and_lam with correct_lam): the weight of the batch's own
// labels is the area it keeps.
func cutLambda(h, w, yl, yh, xl, xh int) float64 {
	return 1 - float64((yh-yl)*(xh-xl))/float64(h*w)
}

// mixImages mixes a batch x [N,C,H,W] with its partners [N,C,H,W] (sample
// i's partner at i) as d says, and returns the mixed batch and the weight
// of x's labels; an unmixed draw returns x and 1.
func mixImages(x, partner *torch.Tensor, d mixDraw) (*torch.Tensor, float64, error) {
	if !d.Mixed {
		return x, 1, nil
	}
	if !d.CutMix {
		a, err := x.MulScalar(d.Lambda)
		if err != nil {
			return nil, 0, err
		}
		b, err := partner.MulScalar(1 - d.Lambda)
		if err != nil {
			return nil, 0, err
		}
		out, err := a.Add(b)
		return out, d.Lambda, err
	}
	shape := x.Shape()
	h, w := int(shape[2]), int(shape[3])
	yl, yh, xl, xh := cutBox(h, w, d.Lambda, d.CY, d.CX)
	out, err := x.Clone()
	if err != nil || yh == yl || xh == xl {
		return out, cutLambda(h, w, yl, yh, xl, xh), err
	}
	box := func(t *torch.Tensor) (*torch.Tensor, error) {
		rows, err := t.Narrow(2, int64(yl), int64(yh-yl))
		if err != nil {
			return nil, err
		}
		return rows.Narrow(3, int64(xl), int64(xh-xl))
	}
	dst, err := box(out)
	if err != nil {
		return nil, 0, err
	}
	src, err := box(partner)
	if err != nil {
		return nil, 0, err
	}
	if err := dst.CopyFrom(src); err != nil {
		return nil, 0, fmt.Errorf("cutmix box: %w", err)
	}
	return out, cutLambda(h, w, yl, yh, xl, xh), nil
}

// MixedLabels are a mixed batch's second labels: sample i's partner's
// label at i, and Lambda, the weight of the batch's own labels. The loss
// is Lambda*L(logits, y) + (1-Lambda)*L(logits, Partner).
type MixedLabels struct {
	Partner *torch.Tensor
	Lambda  float64
}

// loss combines one loss function's values for y and the partners.
func (m *MixedLabels) loss(y *torch.Tensor, one func(labels *torch.Tensor) (*torch.Tensor, error)) (*torch.Tensor, error) {
	own, err := one(y)
	if err != nil {
		return nil, err
	}
	other, err := one(m.Partner)
	if err != nil {
		return nil, err
	}
	if own, err = own.MulScalar(m.Lambda); err != nil {
		return nil, err
	}
	if other, err = other.MulScalar(1 - m.Lambda); err != nil {
		return nil, err
	}
	return own.Add(other)
}

// dominant is the labels the training accuracy counts: those of the
// larger weight.
func (m *MixedLabels) dominant(y *torch.Tensor) *torch.Tensor {
	if m.Lambda >= 0.5 {
		return y
	}
	return m.Partner
}

// narrow is the labels of the micro-batch [off, off+size).
func (m *MixedLabels) narrow(off, size int64) (*MixedLabels, error) {
	p, err := m.Partner.Narrow(0, off, size)
	if err != nil {
		return nil, err
	}
	return &MixedLabels{Partner: p, Lambda: m.Lambda}, nil
}

// epochMix mixes an epoch's training batches: the settings, the epoch's
// iterator (which renders a rank's partners) and buffers for them.
type epochMix struct {
	*mixer
	seed   uint64
	it     *data.EpochIter
	images []float32
	labels []int64
	pos    []int
}

// newEpochMix prepares the epoch's mixing, nil when it is off.
func (r *run) newEpochMix(it *data.EpochIter) *epochMix {
	m := newMixer(r.cfg.Train)
	if m == nil {
		return nil
	}
	return &epochMix{mixer: m, seed: r.cfg.Train.Seed, it: it}
}

// apply draws batch b's mixing and mixes its uploaded images x and labels
// y: it returns the batch to train on and its second labels, nil when the
// draw leaves it unmixed. A batch that is the whole global batch pairs
// with itself flipped; a rank's share of one pairs with the samples of
// the reversed global batch at its positions, rendered through the loader.
func (m *epochMix) apply(scope *torch.Scope, b *data.Batch, x, y *torch.Tensor, channelsLast bool) (*torch.Tensor, *MixedLabels, error) {
	d := m.draw(m.seed, b.Epoch, b.Step, b.H, b.W)
	if !d.Mixed {
		return x, nil, nil
	}
	var xp, yp *torch.Tensor
	var err error
	if b.N == b.GlobalN {
		if xp, err = x.Flip(0); err == nil {
			yp, err = y.Flip(0)
		}
	} else {
		xp, yp, err = m.partners(scope, b, x.Device(), channelsLast)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("mix partners: %w", err)
	}
	mixed, lambda, err := mixImages(x, xp, d)
	if err != nil {
		return nil, nil, fmt.Errorf("mix: %w", err)
	}
	if channelsLast {
		if mixed, err = mixed.ChannelsLast(); err != nil {
			return nil, nil, err
		}
	}
	return mixed, &MixedLabels{Partner: yp, Lambda: lambda}, nil
}

// partners renders the partners of a rank's share b of a global batch:
// sample j of the share (position Offset+j of the global batch) pairs
// with position GlobalN-1-(Offset+j).
func (m *epochMix) partners(scope *torch.Scope, b *data.Batch, dev torch.Device, channelsLast bool) (x, y *torch.Tensor, err error) {
	chw := b.C * b.H * b.W
	m.images = grow(m.images, b.N*chw)
	m.labels = grow(m.labels, b.N)
	m.pos = m.pos[:0]
	for j := range b.N {
		m.pos = append(m.pos, b.GlobalN-1-(b.Offset+j))
	}
	if err := m.it.Render(m.images, m.labels, b, m.pos); err != nil {
		return nil, nil, err
	}
	if x, err = scope.Own(torch.FromFloat32s(m.images, int64(b.N), int64(b.C), int64(b.H), int64(b.W))); err != nil {
		return nil, nil, err
	}
	if y, err = scope.Own(torch.FromInt64s(m.labels, int64(b.N))); err != nil {
		return nil, nil, err
	}
	if dev.IsCUDA() {
		if x, err = x.ToDevice(dev); err != nil {
			return nil, nil, err
		}
		if y, err = y.ToDevice(dev); err != nil {
			return nil, nil, err
		}
	}
	if channelsLast {
		x, err = x.ChannelsLast()
	}
	return x, y, err
}

// grow returns s with length n, reallocated only when too small.
func grow[E any](s []E, n int) []E {
	if cap(s) < n {
		return make([]E, n)
	}
	return s[:n]
}

// mixRNG draws the mixing decisions from a PCG generator with its own
// uniform, integer, normal, gamma and beta variates, so that the draws do
// not depend on math/rand's implementation of them.
type mixRNG struct{ src *rand.PCG }

// float64 is uniform in [0, 1) with 53 random bits.
func (g mixRNG) float64() float64 { return float64(g.src.Uint64()>>11) * 0x1p-53 }

// intN is uniform in [0, n) without modulo bias (Lemire's method).
func (g mixRNG) intN(n int) int {
	if n <= 1 {
		return 0
	}
	un := uint64(n)
	for {
		hi, lo := bits.Mul64(g.src.Uint64(), un)
		if lo >= un || lo >= (-un)%un {
			return int(hi)
		}
	}
}

// normal is a standard normal variate (Box-Muller, one of the pair).
func (g mixRNG) normal() float64 {
	u := 1 - g.float64() // (0, 1]
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*g.float64())
}

// logGamma is the logarithm of a Gamma(a, 1) variate, a > 0: Marsaglia and
// Tsang's method ("A simple method for generating gamma variables", 2000)
// for a >= 1, and for a < 1 their boost Gamma(a) = Gamma(a+1)*U^(1/a),
// taken in logarithms so that small concentrations do not underflow.
func (g mixRNG) logGamma(a float64) float64 {
	if a < 1 {
		u := 1 - g.float64() // (0, 1]
		return g.logGamma(a+1) + math.Log(u)/a
	}
	d := a - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := g.normal()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := g.float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return math.Log(d * v)
		}
	}
}

// beta is a Beta(a, a) variate, X/(X+Y) for X, Y ~ Gamma(a, 1), computed
// as 1/(1+exp(log Y - log X)).
func (g mixRNG) beta(a float64) float64 {
	lx := g.logGamma(a)
	ly := g.logGamma(a)
	return 1 / (1 + math.Exp(ly-lx))
}
