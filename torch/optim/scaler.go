package optim

import (
	"fmt"

	"github.com/fertorch/fertorch/torch"
)

// GradScaler is dynamic loss scaling for float16 mixed-precision training,
// as torch.cuda.amp.GradScaler: the loss is multiplied by Scale before
// backward so that small float16 gradients do not flush to zero; before the
// optimizer step the gradients are divided back, and a step whose gradients
// overflowed is skipped and the scale halved. After GrowthInterval
// consecutive good steps the scale doubles. bfloat16 does not need it.
type GradScaler struct {
	Scale          float64
	GrowthFactor   float64
	BackoffFactor  float64
	GrowthInterval int
	goodSteps      int
}

// NewGradScaler starts at PyTorch's defaults: scale 65536, growth x2 every
// 2000 good steps, backoff x0.5.
func NewGradScaler() *GradScaler {
	return &GradScaler{Scale: 65536, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 2000}
}

// ScaleLoss returns loss * Scale (joining loss's scope).
func (s *GradScaler) ScaleLoss(loss *torch.Tensor) (*torch.Tensor, error) {
	return loss.MulScalar(s.Scale)
}

// Step unscales the gradients of params, runs opt.Step unless a gradient
// is inf or NaN, and updates the scale. It reports whether the step ran.
func (s *GradScaler) Step(opt Optimizer, params []*torch.Tensor) (bool, error) {
	if s.Scale <= 0 {
		return false, fmt.Errorf("grad scaler: scale %g is not positive", s.Scale)
	}
	foundInf, err := torch.UnscaleGrads(params, 1/s.Scale)
	if err != nil {
		return false, fmt.Errorf("grad scaler: %w", err)
	}
	if foundInf {
		s.Scale *= s.BackoffFactor
		s.goodSteps = 0
		return false, nil
	}
	if err := opt.Step(); err != nil {
		return false, err
	}
	s.goodSteps++
	if s.GrowthInterval > 0 && s.goodSteps >= s.GrowthInterval {
		s.Scale *= s.GrowthFactor
		s.goodSteps = 0
	}
	return true, nil
}

// GoodSteps is the number of consecutive finite steps since the scale last
// changed (saved in checkpoints with Scale).
func (s *GradScaler) GoodSteps() int { return s.goodSteps }

// SetGoodSteps restores the counter saved with GoodSteps.
func (s *GradScaler) SetGoodSteps(n int) { s.goodSteps = n }
