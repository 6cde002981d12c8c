package optim_test

import (
	"math"
	"testing"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/optim"
)

// TestGradScaler: a scaled loss gives, after unscaling, the same update as
// an unscaled one; an overflowing gradient skips the step and halves the
// scale; GrowthInterval good steps double it.
func TestGradScaler(t *testing.T) {
	newParam := func() *torch.Tensor {
		p, _ := torch.FromFloat32s([]float32{0.5, -1, 2}, 3)
		_ = p.SetRequiresGrad(true)
		return p
	}
	plain, scaled := newParam(), newParam()
	defer plain.Free()
	defer scaled.Free()
	group := func(p *torch.Tensor) []optim.Group {
		return []optim.Group{{Params: []torch.NamedTensor{{Name: "p", Tensor: p}}, LR: 0.1}}
	}
	optPlain, _ := optim.NewSGD(group(plain), optim.SGDOptions{})
	optScaled, _ := optim.NewSGD(group(scaled), optim.SGDOptions{})
	scaler := optim.NewGradScaler()
	scaler.GrowthInterval = 2

	lossOf := func(p *torch.Tensor, factor float64) *torch.Tensor {
		sq, _ := p.Square()
		l, _ := sq.Sum()
		sq.Free()
		out, _ := l.MulScalar(factor)
		l.Free()
		return out
	}
	for step := 0; step < 2; step++ {
		l := lossOf(plain, 1)
		_ = l.Backward()
		l.Free()
		_ = optPlain.Step()
		_ = optPlain.ZeroGrad()

		l = lossOf(scaled, 1)
		sl, _ := scaler.ScaleLoss(l)
		_ = sl.Backward()
		l.Free()
		sl.Free()
		ran, err := scaler.Step(optScaled, []*torch.Tensor{scaled})
		if err != nil || !ran {
			t.Fatalf("step %d: ran=%v err=%v", step, ran, err)
		}
		_ = optScaled.ZeroGrad()
	}
	a, _ := plain.Float32s()
	b, _ := scaled.Float32s()
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("scaled training diverged: %v vs %v", a, b)
			break
		}
	}
	if scaler.Scale != 131072 {
		t.Errorf("scale after 2 good steps with interval 2: %g, want 131072", scaler.Scale)
	}
	// An overflow: the step is skipped and the scale backs off.
	before, _ := scaled.Float32s()
	l := lossOf(scaled, math.Inf(1))
	_ = l.Backward()
	l.Free()
	ran, err := scaler.Step(optScaled, []*torch.Tensor{scaled})
	if err != nil || ran {
		t.Fatalf("overflow step: ran=%v err=%v", ran, err)
	}
	after, _ := scaled.Float32s()
	for i := range before {
		if before[i] != after[i] {
			t.Errorf("parameters changed on a skipped step: %v -> %v", before, after)
			break
		}
	}
	if scaler.Scale != 65536 || scaler.GoodSteps() != 0 {
		t.Errorf("after overflow: scale %g good steps %d", scaler.Scale, scaler.GoodSteps())
	}
}
