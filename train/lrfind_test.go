package train

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// softmaxProblem is multinomial logistic regression on Gaussian clusters,
// trained by mini-batch SGD: a small problem whose good learning rate a
// grid search finds.
type softmaxProblem struct {
	x      [][]float64
	y      []int
	c, d   int
	w      []float64 // c x (d+1), bias last
	rng    *rand.Rand
	batch  int
	cursor int
}

func newSoftmaxProblem(seed uint64) *softmaxProblem {
	const n, c, d = 512, 4, 10
	rng := rand.New(rand.NewPCG(seed, 1))
	means := make([][]float64, c)
	for k := range means {
		means[k] = make([]float64, d)
		for j := range means[k] {
			means[k][j] = 1.5 * rng.NormFloat64()
		}
	}
	p := &softmaxProblem{c: c, d: d, batch: 32, rng: rand.New(rand.NewPCG(seed, 2))}
	for i := 0; i < n; i++ {
		k := i % c
		row := make([]float64, d)
		for j := range row {
			row[j] = means[k][j] + 2*rng.NormFloat64()
		}
		p.x, p.y = append(p.x, row), append(p.y, k)
	}
	p.reset()
	return p
}

func (p *softmaxProblem) reset() {
	p.w = make([]float64, p.c*(p.d+1))
	p.cursor = 0
}

// lossAndGrad is the mean cross-entropy of samples idx and its gradient.
func (p *softmaxProblem) lossAndGrad(idx []int, grad []float64) float64 {
	var loss float64
	logits := make([]float64, p.c)
	for _, i := range idx {
		mx := math.Inf(-1)
		for k := 0; k < p.c; k++ {
			z := p.w[k*(p.d+1)+p.d]
			for j := 0; j < p.d; j++ {
				z += p.w[k*(p.d+1)+j] * p.x[i][j]
			}
			logits[k] = z
			mx = math.Max(mx, z)
		}
		var sum float64
		for k := range logits {
			sum += math.Exp(logits[k] - mx)
		}
		loss += mx + math.Log(sum) - logits[p.y[i]]
		if grad == nil {
			continue
		}
		for k := 0; k < p.c; k++ {
			g := math.Exp(logits[k]-mx) / sum
			if k == p.y[i] {
				g--
			}
			g /= float64(len(idx))
			for j := 0; j < p.d; j++ {
				grad[k*(p.d+1)+j] += g * p.x[i][j]
			}
			grad[k*(p.d+1)+p.d] += g
		}
	}
	return loss / float64(len(idx))
}

// step trains one mini-batch at lr and returns its loss.
func (p *softmaxProblem) step(lr float64) (float64, error) {
	idx := make([]int, p.batch)
	for j := range idx {
		idx[j] = p.rng.IntN(len(p.x))
	}
	grad := make([]float64, len(p.w))
	loss := p.lossAndGrad(idx, grad)
	for i := range p.w {
		p.w[i] -= lr * grad[i]
	}
	return loss, nil
}

func (p *softmaxProblem) fullLoss() float64 {
	all := make([]int, len(p.x))
	for i := range all {
		all[i] = i
	}
	return p.lossAndGrad(all, nil)
}

// TestLRFindSuggestsAGoodRate runs the range test on the softmax problem and
// compares its suggestions with the rate a grid search finds best for 100
// steps of training: both must lie within a factor of 10 of it (fastai's
// suggestions are meant as starting points, an order of magnitude apart).
func TestLRFindSuggestsAGoodRate(t *testing.T) {
	p := newSoftmaxProblem(7)
	bestLR, bestLoss := 0.0, math.Inf(1)
	for e := -3.0; e <= 1.5; e += 0.25 {
		lr := math.Pow(10, e)
		p.reset()
		for i := 0; i < 100; i++ {
			if _, err := p.step(lr); err != nil {
				t.Fatal(err)
			}
		}
		if l := p.fullLoss(); l < bestLoss {
			bestLR, bestLoss = lr, l
		}
	}
	p.reset()
	res, err := sweepLR(context.Background(), LRFindOptions{StartLR: 1e-5, EndLR: 1e3, Steps: 100}, p.step)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("grid search: best rate %.3g (loss %.4f); lr-find: steepest %.3g, minimum/10 %.3g, %d steps, %s", bestLR, bestLoss, res.Steepest, res.Minimum, len(res.LR), res.Stop)
	for name, s := range map[string]float64{"steepest": res.Steepest, "minimum/10": res.Minimum} {
		if ratio := s / bestLR; ratio < 1.0/3 || ratio > 3 {
			t.Errorf("%s suggestion %.3g is %.3gx the grid search's best rate %.3g", name, s, ratio, bestLR)
		}
	}
	if !strings.HasPrefix(res.Stop, "diverged at rate") {
		t.Errorf("a sweep to rate 1e3 should diverge, stopped because %s", res.Stop)
	}
	if n := len(res.LR); n < 20 || n == 100 || len(res.Loss) != n || len(res.Smoothed) != n {
		t.Errorf("sweep lengths: %d rates, %d losses, %d smoothed", n, len(res.Loss), len(res.Smoothed))
	}
}

// TestLRFindRates checks the sweep's rates, smoothing and refusal of bad
// settings.
func TestLRFindRates(t *testing.T) {
	var seen []float64
	res, err := sweepLR(context.Background(), LRFindOptions{StartLR: 1e-4, EndLR: 1, Steps: 21, Smoothing: 0.5}, func(lr float64) (float64, error) {
		seen = append(seen, lr)
		return 2, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, lr := range seen {
		want := 1e-4 * math.Pow(10, float64(i)/5)
		if math.Abs(lr-want) > 1e-12*want {
			t.Errorf("step %d: rate %g, want %g", i, lr, want)
		}
		// Bias-corrected smoothing of a constant is the constant.
		if math.Abs(res.Smoothed[i]-2) > 1e-12 {
			t.Errorf("step %d: smoothed %g, want 2", i, res.Smoothed[i])
		}
	}
	if len(seen) != 21 || res.Stop != "reached the end rate 1" {
		t.Errorf("%d steps, stop %q", len(seen), res.Stop)
	}
	for _, c := range []struct {
		o    LRFindOptions
		want string
	}{
		{LRFindOptions{StartLR: 1, EndLR: 0.1}, "lr-find: the rates must satisfy 0 < start (1) < end (0.1)"},
		{LRFindOptions{Steps: 5}, "lr-find: 5 steps are too few for a curve (at least 10)"},
		{LRFindOptions{DivergeFactor: 0.5}, "lr-find: divergence factor 0.5 must be above 1"},
	} {
		_, err := sweepLR(context.Background(), c.o, func(float64) (float64, error) { return 1, nil })
		if err == nil || err.Error() != c.want {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
	_, err = sweepLR(context.Background(), LRFindOptions{Steps: 50}, func(lr float64) (float64, error) { return math.NaN(), nil })
	if err == nil || !strings.Contains(err.Error(), "too early to suggest a rate: lower the start rate") {
		t.Errorf("a loss that is NaN from the start: %v", err)
	}
}
