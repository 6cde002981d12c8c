package optim_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/internal/pyref"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/optim"
)

// optimTolerance bounds the difference from torch.optim after every step.
const optimTolerance = 1e-6

type optimConfig struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	LRs         []float64 `json:"lrs"`
	Beta1       float64   `json:"beta1"`
	Beta2       float64   `json:"beta2"`
	Eps         float64   `json:"eps"`
	WeightDecay float64   `json:"weight_decay"`
	AMSGrad     bool      `json:"amsgrad"`
	Momentum    float64   `json:"momentum"`
	Dampening   float64   `json:"dampening"`
	Nesterov    bool      `json:"nesterov"`
}

func (c optimConfig) build(params []*torch.Tensor) (optim.Optimizer, error) {
	var groups []optim.Group
	for i, p := range params {
		groups = append(groups, optim.Group{
			Params:      []torch.NamedTensor{{Name: "p" + string(rune('0'+i)), Tensor: p}},
			LR:          c.LRs[i],
			WeightDecay: c.WeightDecay,
		})
	}
	switch c.Kind {
	case "adam", "adamw":
		return optim.NewAdam(groups, optim.AdamOptions{Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps, AMSGrad: c.AMSGrad, Decoupled: c.Kind == "adamw"})
	default:
		return optim.NewSGD(groups, optim.SGDOptions{Momentum: c.Momentum, Dampening: c.Dampening, Nesterov: c.Nesterov})
	}
}

func randomFloats(rng *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = scale * float32(rng.NormFloat64())
	}
	return v
}

// setGrads makes each parameter's gradient exactly grads[i] by
// back-propagating sum_i sum(p_i * g_i).
func setGrads(t *testing.T, params []*torch.Tensor, grads [][]float32) {
	t.Helper()
	scope := torch.NewScope()
	defer scope.Close()
	var total *torch.Tensor
	for i, p := range params {
		g, err := scope.Own(torch.FromFloat32s(grads[i], p.Shape()...))
		if err != nil {
			t.Fatal(err)
		}
		prod, err := scope.Own(p.Mul(g))
		if err != nil {
			t.Fatal(err)
		}
		s, err := prod.Sum()
		if err != nil {
			t.Fatal(err)
		}
		if total == nil {
			total = s
		} else if total, err = total.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := total.Backward(); err != nil {
		t.Fatal(err)
	}
}

// TestOptimizerParityWithPyTorch runs 20 steps of Adam, AdamW and SGD
// variants on the same parameters and gradients as torch.optim and compares
// the parameters after every step. Each run is also split in two halves
// with a State/LoadState round trip into a fresh optimizer in between, which
// must not change the trajectory.
func TestOptimizerParityWithPyTorch(t *testing.T) {
	py := pyref.Require(t, "torch", "numpy")
	dir := t.TempDir()
	const steps = 20
	shapes := [][]int64{{3, 4}, {5}}
	rng := rand.New(rand.NewPCG(1, 2))
	init := make([][]float32, len(shapes))
	grads := make([][][]float32, steps)
	for i, s := range shapes {
		n := int(s[0])
		if len(s) > 1 {
			n *= int(s[1])
		}
		init[i] = randomFloats(rng, n, 1)
		pyref.MustWriteFloat32s(t, filepath.Join(dir, "p"+string(rune('0'+i))+".init.bin"), init[i])
	}
	for k := range grads {
		grads[k] = make([][]float32, len(shapes))
		for i := range shapes {
			grads[k][i] = randomFloats(rng, len(init[i]), 0.5)
			pyref.MustWriteFloat32s(t, filepath.Join(dir, "p"+string(rune('0'+i))+".grad"+itoa(k)+".bin"), grads[k][i])
		}
	}
	configs := []optimConfig{
		{Name: "adam_default", Kind: "adam", LRs: []float64{1e-3, 1e-3}, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		{Name: "adam_groups_wd_keras_eps", Kind: "adam", LRs: []float64{1e-2, 1e-4}, Beta1: 0.9, Beta2: 0.999, Eps: 1e-7, WeightDecay: 0.05},
		{Name: "adam_amsgrad", Kind: "adam", LRs: []float64{5e-3, 5e-3}, Beta1: 0.8, Beta2: 0.99, Eps: 1e-8, AMSGrad: true},
		{Name: "adamw", Kind: "adamw", LRs: []float64{1e-2, 1e-3}, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1},
		{Name: "sgd_plain", Kind: "sgd", LRs: []float64{0.1, 0.1}},
		{Name: "sgd_momentum_dampening_wd", Kind: "sgd", LRs: []float64{0.05, 0.05}, Momentum: 0.9, Dampening: 0.1, WeightDecay: 1e-3},
		{Name: "sgd_nesterov_groups", Kind: "sgd", LRs: []float64{0.05, 0.01}, Momentum: 0.9, Nesterov: true},
	}
	spec, _ := json.Marshal(map[string]any{"shapes": shapes, "steps": steps, "configs": configs})
	if err := os.WriteFile(filepath.Join(dir, "spec.json"), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := pyref.Run(py, "testdata/optim.py", dir); err != nil {
		t.Fatal(err)
	}
	before := torch.LiveTensors()
	for _, cfg := range configs {
		t.Run(cfg.Name, func(t *testing.T) {
			want := pyref.MustReadFloat32s(t, filepath.Join(dir, cfg.Name+".traj.bin"))
			params := make([]*torch.Tensor, len(shapes))
			for i, s := range shapes {
				p, err := torch.FromFloat32s(init[i], s...)
				if err != nil {
					t.Fatal(err)
				}
				if err := p.SetRequiresGrad(true); err != nil {
					t.Fatal(err)
				}
				params[i] = p
				defer p.Free()
			}
			opt, err := cfg.build(params)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { opt.Free() }()
			offset := 0
			worst := 0.0
			for k := 0; k < steps; k++ {
				if k == steps/2 {
					// Continue from saved state in a fresh optimizer.
					st, err := opt.State()
					if err != nil {
						t.Fatal(err)
					}
					opt.Free()
					if opt, err = cfg.build(params); err != nil {
						t.Fatal(err)
					}
					if err := opt.LoadState(st); err != nil {
						t.Fatal(err)
					}
					st.Free()
				}
				if err := opt.ZeroGrad(); err != nil {
					t.Fatal(err)
				}
				setGrads(t, params, grads[k])
				if err := opt.Step(); err != nil {
					t.Fatal(err)
				}
				for _, p := range params {
					got, err := p.Float32s()
					if err != nil {
						t.Fatal(err)
					}
					for j, g := range got {
						worst = math.Max(worst, math.Abs(float64(g)-float64(want[offset+j])))
					}
					offset += len(got)
				}
			}
			if offset != len(want) {
				t.Fatalf("compared %d values, reference has %d", offset, len(want))
			}
			if worst > optimTolerance {
				t.Errorf("max abs diff over %d steps %.3g > %g", steps, worst, optimTolerance)
			}
			t.Logf("max abs diff over %d steps: %.3g", steps, worst)
		})
	}
	if after := torch.LiveTensors(); after != before {
		t.Errorf("live tensors %d after the runs, %d before", after, before)
	}
}

func itoa(k int) string {
	s := ""
	for {
		s = string(rune('0'+k%10)) + s
		k /= 10
		if k == 0 {
			return s
		}
	}
}

func TestLoadStateRejectsMismatches(t *testing.T) {
	p, _ := torch.FromFloat32s([]float32{1, 2}, 2)
	defer p.Free()
	_ = p.SetRequiresGrad(true)
	groups := []optim.Group{{Params: []torch.NamedTensor{{Name: "w", Tensor: p}}, LR: 0.1}}
	sgd, err := optim.NewSGD(groups, optim.SGDOptions{Momentum: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	adam, err := optim.NewAdam(groups, optim.DefaultAdamOptions())
	if err != nil {
		t.Fatal(err)
	}
	st, err := sgd.State()
	if err != nil {
		t.Fatal(err)
	}
	if err := adam.LoadState(st); err == nil || !strings.Contains(err.Error(), `cannot load "sgd" optimizer state`) {
		t.Errorf("adam loading sgd state: %v", err)
	}
	extra, _ := torch.FromFloat32s([]float32{0}, 1)
	st.Tensors = append(st.Tensors, torch.NamedTensor{Name: "other.momentum_buffer", Tensor: extra})
	if err := sgd.LoadState(st); err == nil || !strings.Contains(err.Error(), "unknown parameters: [other.momentum_buffer]") {
		t.Errorf("sgd loading state with an unknown entry: %v", err)
	}
	st.Free()
	if _, err := optim.NewSGD(groups, optim.SGDOptions{Nesterov: true}); err == nil {
		t.Error("Nesterov without momentum accepted")
	}
	dup := []optim.Group{{Params: []torch.NamedTensor{{Name: "w", Tensor: p}, {Name: "w", Tensor: p}}, LR: 0.1}}
	if _, err := optim.NewAdam(dup, optim.DefaultAdamOptions()); err == nil || !strings.Contains(err.Error(), `"w" appears twice`) {
		t.Errorf("duplicate names: %v", err)
	}
}
