package train

import (
	"math"
	"testing"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/optim"
	"github.com/fertorch/fertorch/vision"
)

// TestLossNormalizations checks the two weighted reductions against values
// computed by hand: Keras divides sum(w_i*CE_i) by the batch size, PyTorch
// by sum(w_i).
func TestLossNormalizations(t *testing.T) {
	scope := torch.NewScope()
	defer scope.Close()
	logits := [][]float64{{2, 0, -1}, {0.5, 0.5, 0}, {-1, 3, 0}, {0, 0, 0}}
	labels := []int64{0, 2, 1, 1}
	weights := []float64{1, 2.5, 3}
	flat := make([]float32, 0, 12)
	for _, row := range logits {
		for _, v := range row {
			flat = append(flat, float32(v))
		}
	}
	x, _ := scope.Own(torch.FromFloat32s(flat, 4, 3))
	y, _ := scope.Own(torch.FromInt64s(labels, 4))
	w, _ := scope.Own(torch.FromFloat32s([]float32{1, 2.5, 3}, 3))
	var sumWL, sumW, sumL float64
	for i, row := range logits {
		lse := 0.0
		for _, v := range row {
			lse += math.Exp(v)
		}
		ce := math.Log(lse) - row[labels[i]]
		wi := weights[labels[i]]
		sumWL += wi * ce
		sumW += wi
		sumL += ce
	}
	cases := []struct {
		name string
		lc   LossConfig
		want float64
	}{
		{"keras", LossConfig{ClassWeights: w, KerasNormalization: true}, sumWL / 4},
		{"pytorch", LossConfig{ClassWeights: w}, sumWL / sumW},
		{"unweighted", LossConfig{KerasNormalization: true}, sumL / 4},
	}
	for _, c := range cases {
		l, err := c.lc.Loss(x, y)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := l.Item()
		if math.Abs(got-c.want) > 1e-6 {
			t.Errorf("%s: loss %.7f, want %.7f", c.name, got, c.want)
		}
	}
}

// TestShardLossesAddUp: the shard losses of a batch split across ranks,
// each divided by the global batch's denominator, add up to the batch's
// loss, for each normalisation, with and without label smoothing.
func TestShardLossesAddUp(t *testing.T) {
	scope := torch.NewScope()
	defer scope.Close()
	flat := []float32{2, 0, -1, 0.5, 0.5, 0, -1, 3, 0, 0, 0, 0, 1, -2, 0.5}
	labels := []int64{0, 2, 1, 1, 0}
	weights := []float64{1, 2.5, 3}
	x, _ := scope.Own(torch.FromFloat32s(flat, 5, 3))
	y, _ := scope.Own(torch.FromInt64s(labels, 5))
	w, _ := scope.Own(torch.FromFloat32s([]float32{1, 2.5, 3}, 3))
	batch := &data.Batch{GlobalN: 5, GlobalCounts: []int{2, 2, 1}}
	for _, smoothing := range []float64{0, 0.1} {
		for _, c := range []struct {
			name    string
			norm    LossNormalization
			weights []float64
			lc      LossConfig
		}{
			{"keras", KerasLoss, weights, LossConfig{ClassWeights: w, KerasNormalization: true}},
			{"pytorch", PyTorchLoss, weights, LossConfig{ClassWeights: w}},
			{"unweighted", PyTorchLoss, nil, LossConfig{}},
		} {
			c.lc.LabelSmoothing = smoothing
			r := &run{classWeights: c.weights}
			r.cfg.Train.LossNormalization = c.norm
			den := r.denominator(batch)
			whole, err := c.lc.Loss(x, y)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := whole.Item()
			got := 0.0
			for _, part := range [][2]int64{{0, 3}, {3, 2}} {
				xs, _ := x.Narrow(0, part[0], part[1])
				ys, _ := y.Narrow(0, part[0], part[1])
				l, err := c.lc.ShardLoss(xs, ys, den)
				if err != nil {
					t.Fatal(err)
				}
				v, _ := l.Item()
				got += v
			}
			if math.Abs(got-want) > 1e-6 {
				t.Errorf("%s, label smoothing %g: shard losses add up to %.7f, the batch's loss is %.7f", c.name, smoothing, got, want)
			}
		}
	}
	if _, err := (LossConfig{}).ShardLoss(x, y, 0); err == nil || err.Error() != "shard loss: denominator 0 is not positive" {
		t.Errorf("zero denominator: %v", err)
	}
}

// TestBF16AutocastOnCPU: the seed's model under CPU bfloat16 autocast gives
// logits within 2% (of the largest logit) of float32, bfloat16 keeping 8
// bits of mantissa, and not identical ones (autocast really ran in bf16).
func TestBF16AutocastOnCPU(t *testing.T) {
	if err := torch.ManualSeed(3); err != nil {
		t.Fatal(err)
	}
	m, err := vision.NewVGG16(vision.VGG16Config{InputSize: 32, NumClasses: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	m.SetTraining(false)
	scope := torch.NewScope()
	defer scope.Close()
	x, _ := scope.Own(torch.Randn([]int64{6, 3, 32, 32}, torch.Options{}))
	logits := map[Precision][]float32{}
	for _, p := range []Precision{FP32, BF16} {
		s, err := NewStepper(m, nil, LossConfig{}, torch.CPU(), p)
		if err != nil {
			t.Fatal(err)
		}
		err = torch.NoGrad(func() error {
			out, err := s.forward(x)
			if err != nil {
				return err
			}
			if f, err := out.ToDType(torch.Float32); err == nil {
				logits[p], err = f.Float32s()
				return err
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	worst, scale := 0.0, 0.0
	for i := range logits[FP32] {
		worst = math.Max(worst, math.Abs(float64(logits[FP32][i]-logits[BF16][i])))
		scale = math.Max(scale, math.Abs(float64(logits[FP32][i])))
	}
	if worst > 0.02*scale {
		t.Errorf("bf16 autocast logits differ from fp32 by %.4g (largest logit %.4g)", worst, scale)
	}
	if worst == 0 {
		t.Error("bf16 autocast gave bit-identical logits: autocast did not run")
	}
	t.Logf("max abs diff of logits, fp32 vs bf16 autocast: %.3g (largest logit %.3g)", worst, scale)
}

// TestAccumulationEqualsTheLargeBatch trains two copies of a small VGG16
// (no batch norm, no dropout) for three SGD steps on the same class-weighted
// batch of 16: one in a single pass, one in micro-batches (4 of 4 images,
// and 3 uneven ones). The parameters must agree within 1e-5, and the
// reported loss and correct count must be the whole batch's.
func TestAccumulationEqualsTheLargeBatch(t *testing.T) {
	scope := torch.NewScope()
	defer scope.Close()
	if err := torch.ManualSeed(11); err != nil {
		t.Fatal(err)
	}
	x, _ := scope.Own(torch.Randn([]int64{16, 3, 32, 32}, torch.Options{}))
	labels := []int64{0, 1, 2, 3, 0, 0, 1, 2, 0, 0, 0, 3, 1, 0, 2, 0}
	y, _ := scope.Own(torch.FromInt64s(labels, 16))
	w, _ := scope.Own(torch.FromFloat32s([]float32{1, 2.5, 3, 1.5}, 4))
	build := func(accumulate int, keras bool) (*vision.VGG16, *Stepper) {
		t.Helper()
		if err := torch.ManualSeed(5); err != nil {
			t.Fatal(err)
		}
		m, err := vision.NewVGG16(vision.VGG16Config{InputSize: 32, NumClasses: 4, Hidden: 16, Dropout: 0})
		if err != nil {
			t.Fatal(err)
		}
		opt, err := optim.NewSGD([]optim.Group{{Params: m.Parameters(), LR: 0.05}}, optim.SGDOptions{Momentum: 0.9})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewStepper(m, opt, LossConfig{ClassWeights: w, KerasNormalization: keras}, torch.CPU(), FP32)
		if err != nil {
			t.Fatal(err)
		}
		s.Accumulate = accumulate
		return m, s
	}
	for _, keras := range []bool{true, false} {
		denominator := 16.0
		if !keras {
			denominator = 0
			for _, l := range labels {
				denominator += []float64{1, 2.5, 3, 1.5}[l]
			}
		}
		ref, refStep := build(1, keras)
		var refLoss, refCorrect []float64
		for range 3 {
			res, err := refStep.TrainStep(x, y)
			if err != nil {
				t.Fatal(err)
			}
			l, _ := res.Loss.Item()
			k, _ := res.Correct.Item()
			refLoss, refCorrect = append(refLoss, l), append(refCorrect, k)
		}
		for _, parts := range []int{4, 3} {
			m, s := build(parts, keras)
			for step := range 3 {
				res, err := s.TrainShardStep(x, y, denominator)
				if err != nil {
					t.Fatal(err)
				}
				l, _ := res.Loss.Item()
				if math.Abs(l-refLoss[step]) > 1e-5*math.Max(1, math.Abs(refLoss[step])) {
					t.Errorf("keras=%v, %d micro-batches, step %d: loss %.7f, the whole batch's %.7f", keras, parts, step+1, l, refLoss[step])
				}
				if k, _ := res.Correct.Item(); k != refCorrect[step] {
					t.Errorf("keras=%v, %d micro-batches, step %d: %g correct, the whole batch %g", keras, parts, step+1, k, refCorrect[step])
				}
			}
			worst := 0.0
			for i, p := range m.Parameters() {
				a, _ := p.Tensor.Float32s()
				b, _ := ref.Parameters()[i].Tensor.Float32s()
				for j := range a {
					worst = math.Max(worst, math.Abs(float64(a[j]-b[j])))
				}
			}
			t.Logf("keras=%v, %d micro-batches: max abs parameter difference after 3 steps %.3g", keras, parts, worst)
			if worst > 1e-5 {
				t.Errorf("keras=%v, %d micro-batches: parameters differ from the whole batch's by %.3g (> 1e-5)", keras, parts, worst)
			}
			m.Free()
		}
		ref.Free()
	}
	// Accumulation without the batch's denominator is refused.
	m, s := build(2, true)
	defer m.Free()
	if _, err := s.TrainStep(x, y); err == nil || err.Error() != "gradient accumulation needs the batch's loss denominator, got 0" {
		t.Errorf("TrainStep with Accumulate 2: %v", err)
	}
}
