package nn_test

import (
	"math"
	"testing"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/nn"
)

// twoRanks stands for the all-reduce of two ranks holding the same batch:
// the sum is twice the tensor, and the gradient flowing back is the sum of
// both ranks' gradients, twice this one's.
type twoRanks struct{}

func (twoRanks) AllReduceSumGrad(t *torch.Tensor) (*torch.Tensor, error) { return t.MulScalar(2) }

// relDiff is max |a - b| over max |b|.
func relDiff(t *testing.T, a, b *torch.Tensor) float64 {
	t.Helper()
	x, err := a.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if len(x) != len(y) {
		t.Fatalf("%d values against %d", len(x), len(y))
	}
	d, scale := 0.0, 0.0
	for i := range x {
		d = max(d, math.Abs(float64(x[i])-float64(y[i])))
		scale = max(scale, math.Abs(float64(y[i])))
	}
	return d / scale
}

// TestSyncBatchNormMatchesBatchNormOfTheWholeBatch runs synchronized batch
// norm on one rank's batch x as if a second rank held the same batch, and
// checks it against ordinary batch norm of the whole batch [x; x]: the same
// output, the same running statistics (variance unbiased with the global
// count), the same input gradient, and weight and bias gradients that are
// half the whole batch's (the other half comes from the other rank), all
// within 1e-6 or 1e-5 of their largest value. The channels' mean is large
// against their spread, where E[x^2] - E[x]^2 would lose most digits.
func TestSyncBatchNormMatchesBatchNormOfTheWholeBatch(t *testing.T) {
	if err := torch.ManualSeed(3); err != nil {
		t.Fatal(err)
	}
	scope := torch.NewScope()
	defer scope.Close()
	x, err := scope.Own(torch.Randn([]int64{4, 3, 5, 5}, torch.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	// Channels whose mean is large against their spread, as after a
	// convolution, are where E[x^2]-E[x]^2 loses digits.
	x, _ = x.MulScalar(0.05)
	x, _ = x.AddScalar(20)
	r, _ := scope.Own(torch.Randn([]int64{4, 3, 5, 5}, torch.Options{}))
	xx, _ := torch.Cat([]*torch.Tensor{x, x}, 0)
	rr, _ := torch.Cat([]*torch.Tensor{r, r}, 0)
	x, _ = x.Detach()
	xx, _ = xx.Detach()
	if err := x.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	if err := xx.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}

	run := func(bn *nn.BatchNorm2d, in, weights *torch.Tensor) *torch.Tensor {
		t.Helper()
		y, err := bn.Forward(in)
		if err != nil {
			t.Fatal(err)
		}
		p, err := y.Mul(weights)
		if err == nil {
			p, err = p.Sum()
		}
		if err == nil {
			err = p.Backward()
		}
		if err != nil {
			t.Fatal(err)
		}
		return y
	}
	whole, err := nn.NewBatchNorm2d(3)
	if err != nil {
		t.Fatal(err)
	}
	defer nn.Free(whole)
	synced, err := nn.NewBatchNorm2d(3)
	if err != nil {
		t.Fatal(err)
	}
	defer nn.Free(synced)
	synced.Sync = twoRanks{}
	yWhole := run(whole, xx, rr)
	ySync := run(synced, x, r)

	firstHalf, _ := yWhole.Narrow(0, 0, 4)
	check := func(what string, d, tol float64) {
		t.Helper()
		if d > tol {
			t.Errorf("%s: relative difference %.3g > %g", what, d, tol)
		}
	}
	check("output", relDiff(t, ySync, firstHalf), 1e-6)
	check("running_mean", relDiff(t, synced.RunningMean, whole.RunningMean), 1e-6)
	check("running_var", relDiff(t, synced.RunningVar, whole.RunningVar), 1e-6)
	gx, _ := scope.Own(x.Grad())
	gxx, _ := scope.Own(xx.Grad())
	gFirst, _ := gxx.Narrow(0, 0, 4)
	check("input gradient", relDiff(t, gx, gFirst), 1e-5)
	for _, p := range []struct {
		name string
		a, b *torch.Tensor
	}{{"weight", synced.Weight, whole.Weight}, {"bias", synced.Bias, whole.Bias}} {
		ga, _ := scope.Own(p.a.Grad())
		gb, _ := scope.Own(p.b.Grad())
		twice, _ := ga.MulScalar(2)
		check(p.name+" gradient x2", relDiff(t, twice, gb), 1e-5)
	}
	if n, _ := synced.NumBatchesTracked.Item(); n != 1 {
		t.Errorf("num_batches_tracked %g, want 1", n)
	}
	// Everything a synchronized step makes belongs to the step's scope.
	live := torch.LiveTensors()
	step := torch.NewScope()
	in, err := step.Own(torch.Randn([]int64{2, 3, 4, 4}, torch.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := step.Own(torch.Randn([]int64{2, 3, 4, 4}, torch.Options{}))
	run(synced, in, w)
	step.Close()
	if got := torch.LiveTensors(); got != live {
		t.Errorf("%d tensors live after a step, %d before", got, live)
	}
}
