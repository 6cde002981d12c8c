package torch_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/fertorch/fertorch/internal/pyref"
	"github.com/fertorch/fertorch/torch"
)

// parityTolerance is the largest absolute difference allowed between our
// float32 results and PyTorch's, forward and backward.
const parityTolerance = 1e-5

type parityInput struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"`
	DType string  `json:"dtype"`
	Grad  bool    `json:"grad"`
	File  string  `json:"file"`

	f32 []float32
	i64 []int64
}

type parityCase struct {
	Name   string         `json:"name"`
	Op     string         `json:"op"`
	Inputs []*parityInput `json:"inputs"`
	Args   map[string]any `json:"args,omitempty"`

	run func(in map[string]*torch.Tensor) ([]*torch.Tensor, error)
}

type parityResult struct {
	Outputs []struct {
		File  string  `json:"file"`
		Shape []int64 `json:"shape"`
		DType string  `json:"dtype"`
	} `json:"outputs"`
	Grads map[string]string `json:"grads"`
	// Native says why the reference is its native kernels' results: its
	// oneDNN disagrees with them on this CPU. fertorch then runs the case
	// with oneDNN off.
	Native string `json:"native"`
}

func numel(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}

// floats makes a float32 input with values uniform in [lo, hi).
func floats(rng *rand.Rand, name string, grad bool, lo, hi float32, shape ...int64) *parityInput {
	v := make([]float32, numel(shape))
	for i := range v {
		v[i] = lo + (hi-lo)*rng.Float32()
	}
	return &parityInput{Name: name, Shape: shape, DType: "float32", Grad: grad, f32: v}
}

// ints makes an int64 input with values in [0, n).
func ints(rng *rand.Rand, name string, n int64, shape ...int64) *parityInput {
	v := make([]int64, numel(shape))
	for i := range v {
		v[i] = rng.Int64N(n)
	}
	return &parityInput{Name: name, Shape: shape, DType: "int64", i64: v}
}

func one(t *torch.Tensor, err error) ([]*torch.Tensor, error) { return []*torch.Tensor{t}, err }

func parityCases() []*parityCase {
	rng := rand.New(rand.NewPCG(7, 11))
	x := func(shape ...int64) *parityInput { return floats(rng, "x", true, -2, 2, shape...) }
	pair := func(sa, sb []int64) []*parityInput {
		return []*parityInput{floats(rng, "a", true, -2, 2, sa...), floats(rng, "b", true, 0.5, 2, sb...)}
	}
	conv := func(name string, stride, pad, dil, groups int64, bias bool) *parityCase {
		in := []*parityInput{x(2, 4, 9, 8), floats(rng, "w", true, -0.5, 0.5, 6, 4/groups, 3, 3)}
		if bias {
			in = append(in, floats(rng, "b", true, -0.5, 0.5, 6))
		}
		return &parityCase{Name: name, Op: "conv2d", Inputs: in,
			Args: map[string]any{"stride": []int64{stride, stride}, "padding": []int64{pad, pad}, "dilation": []int64{dil, dil}, "groups": groups},
			run: func(in map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				return one(in["x"].Conv2d(in["w"], in["b"], torch.Conv2dOptions{
					Stride: [2]int64{stride, stride}, Padding: [2]int64{pad, pad}, Dilation: [2]int64{dil, dil}, Groups: groups}))
			}}
	}
	binop := func(op string, sa, sb []int64, f func(a, b *torch.Tensor) (*torch.Tensor, error)) *parityCase {
		return &parityCase{Name: op + fmt.Sprint(sa, sb), Op: op, Inputs: pair(sa, sb),
			run: func(in map[string]*torch.Tensor) ([]*torch.Tensor, error) { return one(f(in["a"], in["b"])) }}
	}
	unop := func(op string, in *parityInput, args map[string]any, f func(x *torch.Tensor) (*torch.Tensor, error)) *parityCase {
		return &parityCase{Name: op + fmt.Sprint(in.Shape, args), Op: op, Inputs: []*parityInput{in}, Args: args,
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) { return one(f(m["x"])) }}
	}
	ceWeight := floats(rng, "weight", false, 0.5, 3, 5)
	ce := func(name, reduction string, red torch.Reduction, weighted bool, smoothing float64) *parityCase {
		in := []*parityInput{floats(rng, "logits", true, -3, 3, 12, 5), ints(rng, "target", 5, 12)}
		if weighted {
			in = append(in, ceWeight)
		}
		return &parityCase{Name: name, Op: "cross_entropy", Inputs: in,
			Args: map[string]any{"reduction": reduction, "label_smoothing": smoothing},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				return one(m["logits"].CrossEntropy(m["target"], torch.CrossEntropyOptions{Weight: m["weight"], Reduction: red, LabelSmoothing: smoothing}))
			}}
	}
	eqA := ints(rng, "a", 3, 4, 5)
	eqB := ints(rng, "b", 3, 4, 5)
	for _, p := range []*parityInput{eqA, eqB} {
		p.DType, p.f32 = "float32", make([]float32, len(p.i64))
		for i, v := range p.i64 {
			p.f32[i] = float32(v)
		}
		p.i64 = nil
	}
	idx := ints(rng, "index", 6, 9)

	return []*parityCase{
		conv("conv2d_plain", 1, 0, 1, 1, true),
		conv("conv2d_pad1", 1, 1, 1, 1, true),
		conv("conv2d_stride2_pad2_nobias", 2, 2, 1, 1, false),
		conv("conv2d_dilation2_groups2", 1, 1, 2, 2, true),
		{Name: "max_pool2d_2x2", Op: "max_pool2d", Inputs: []*parityInput{x(2, 3, 8, 10)},
			Args: map[string]any{"kernel": []int64{2, 2}, "stride": []int64{2, 2}, "padding": []int64{0, 0}, "dilation": []int64{1, 1}, "ceil_mode": false},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				return one(m["x"].MaxPool2d(torch.MaxPool2dOptions{Kernel: [2]int64{2, 2}}))
			}},
		{Name: "max_pool2d_3s2p1_ceil", Op: "max_pool2d", Inputs: []*parityInput{x(2, 3, 9, 7)},
			Args: map[string]any{"kernel": []int64{3, 3}, "stride": []int64{2, 2}, "padding": []int64{1, 1}, "dilation": []int64{1, 1}, "ceil_mode": true},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				return one(m["x"].MaxPool2d(torch.MaxPool2dOptions{Kernel: [2]int64{3, 3}, Stride: [2]int64{2, 2}, Padding: [2]int64{1, 1}, CeilMode: true}))
			}},
		unop("adaptive_avg_pool2d", x(2, 3, 9, 7), map[string]any{"size": []int64{7, 7}}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.AdaptiveAvgPool2d(7, 7) }),
		unop("adaptive_avg_pool2d", x(2, 3, 14, 14), map[string]any{"size": []int64{3, 2}}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.AdaptiveAvgPool2d(3, 2) }),
		unop("relu", x(3, 17), nil, (*torch.Tensor).Relu),
		// In place on an intermediate result, as VGG's ReLU(inplace=True).
		{Name: "relu_inplace", Op: "relu", Inputs: []*parityInput{x(3, 17)},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				y, err := m["x"].MulScalar(1)
				if err != nil {
					return nil, err
				}
				return one(y.ReluInPlace())
			}},
		{Name: "linear_bias", Op: "linear", Inputs: []*parityInput{x(5, 7), floats(rng, "w", true, -1, 1, 4, 7), floats(rng, "b", true, -1, 1, 4)},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) { return one(m["x"].Linear(m["w"], m["b"])) }},
		{Name: "linear_nobias_3d", Op: "linear", Inputs: []*parityInput{x(2, 5, 7), floats(rng, "w", true, -1, 1, 4, 7)},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) { return one(m["x"].Linear(m["w"], nil)) }},
		binop("matmul", []int64{5, 6}, []int64{6, 3}, (*torch.Tensor).Matmul),
		binop("matmul", []int64{2, 5, 6}, []int64{6, 3}, (*torch.Tensor).Matmul),
		unop("dropout", x(4, 50), map[string]any{"p": 0.5, "train": false, "seed": 3}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.Dropout(0.5, false) }),
		// In training mode the mask comes from libtorch's generator: the same
		// seed gives PyTorch's mask.
		unop("dropout", x(4, 50), map[string]any{"p": 0.3, "train": true, "seed": 5}, func(x *torch.Tensor) (*torch.Tensor, error) {
			if err := torch.ManualSeed(5); err != nil {
				return nil, err
			}
			return x.Dropout(0.3, true)
		}),
		binop("add", []int64{4, 5}, []int64{4, 5}, (*torch.Tensor).Add),
		binop("add", []int64{2, 3, 4, 5}, []int64{3, 1, 1}, (*torch.Tensor).Add),
		binop("sub", []int64{4, 5}, []int64{5}, (*torch.Tensor).Sub),
		binop("mul", []int64{4, 1}, []int64{1, 5}, (*torch.Tensor).Mul),
		binop("div", []int64{2, 4, 5}, []int64{4, 5}, (*torch.Tensor).Div),
		unop("add_scalar", x(3, 4), map[string]any{"s": 1.25}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.AddScalar(1.25) }),
		unop("mul_scalar", x(3, 4), map[string]any{"s": -0.5}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.MulScalar(-0.5) }),
		unop("sum", x(3, 4, 5), nil, (*torch.Tensor).Sum),
		unop("sum_dims", x(3, 4, 5), map[string]any{"dims": []int64{0, 2}, "keepdim": true}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.SumDims(true, 0, 2) }),
		unop("mean", x(3, 4, 5), nil, (*torch.Tensor).Mean),
		unop("mean_dims", x(3, 4, 5), map[string]any{"dims": []int64{1}, "keepdim": false}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.MeanDims(false, 1) }),
		unop("softmax", x(6, 8), map[string]any{"dim": 1}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.Softmax(1) }),
		unop("softmax", x(3, 6, 8), map[string]any{"dim": 0}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.Softmax(0) }),
		unop("log_softmax", x(6, 8), map[string]any{"dim": -1}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.LogSoftmax(-1) }),
		unop("argmax", x(6, 8), map[string]any{"dim": 1, "keepdim": false}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.Argmax(1, false) }),
		unop("argmax", x(6, 8), map[string]any{"dim": 0, "keepdim": true}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.Argmax(0, true) }),
		{Name: "topk_3", Op: "topk", Inputs: []*parityInput{x(6, 8)}, Args: map[string]any{"k": 3, "dim": 1},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				v, i, err := m["x"].TopK(3, 1)
				return []*torch.Tensor{v, i}, err
			}},
		{Name: "eq", Op: "eq", Inputs: []*parityInput{eqA, eqB},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) { return one(m["a"].Eq(m["b"])) }},
		unop("exp", x(4, 6), nil, (*torch.Tensor).Exp),
		unop("log", floats(rng, "x", true, 0.1, 3, 4, 6), nil, (*torch.Tensor).Log),
		unop("sqrt", floats(rng, "x", true, 0.1, 3, 4, 6), nil, (*torch.Tensor).Sqrt),
		unop("sigmoid", x(4, 6), nil, (*torch.Tensor).Sigmoid),
		unop("tanh", x(4, 6), nil, (*torch.Tensor).Tanh),
		ce("cross_entropy_mean", "mean", torch.ReductionMean, false, 0),
		ce("cross_entropy_weighted_mean", "mean", torch.ReductionMean, true, 0),
		ce("cross_entropy_weighted_sum", "sum", torch.ReductionSum, true, 0),
		ce("cross_entropy_weighted_none", "none", torch.ReductionNone, true, 0),
		ce("cross_entropy_smoothing", "mean", torch.ReductionMean, true, 0.1),
		unop("reshape", x(2, 3, 4), map[string]any{"shape": []int64{4, -1}}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.Reshape(4, -1) }),
		unop("flatten", x(2, 3, 4, 5), map[string]any{"start": 1, "end": -1}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.Flatten(1, -1) }),
		unop("permute", x(2, 3, 4, 5), map[string]any{"dims": []int64{0, 2, 3, 1}}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.Permute(0, 2, 3, 1) }),
		unop("transpose", x(2, 3, 4), map[string]any{"d0": 0, "d1": 2}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.Transpose(0, 2) }),
		unop("narrow", x(6, 3, 4), map[string]any{"dim": 0, "start": 2, "length": 3}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.Narrow(0, 2, 3) }),
		unop("flip", x(2, 3, 4, 5), map[string]any{"dims": []int64{3}}, func(x *torch.Tensor) (*torch.Tensor, error) { return x.Flip(3) }),
		{Name: "index_select", Op: "index_select", Inputs: []*parityInput{x(6, 5), idx}, Args: map[string]any{"dim": 0},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				return one(m["x"].IndexSelect(0, m["index"]))
			}},
		{Name: "cat", Op: "cat", Inputs: pair([]int64{2, 3}, []int64{4, 3}), Args: map[string]any{"dim": 0},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				return one(torch.Cat([]*torch.Tensor{m["a"], m["b"]}, 0))
			}},
		{Name: "stack", Op: "stack", Inputs: pair([]int64{2, 3}, []int64{2, 3}), Args: map[string]any{"dim": 1},
			run: func(m map[string]*torch.Tensor) ([]*torch.Tensor, error) {
				return one(torch.Stack([]*torch.Tensor{m["a"], m["b"]}, 1))
			}},
	}
}

func writeInput(dir string, c *parityCase, in *parityInput) error {
	in.File = c.Name + "." + in.Name + ".in.bin"
	var data any = in.f32
	if in.DType == "int64" {
		data = in.i64
	}
	f, err := os.Create(filepath.Join(dir, in.File))
	if err != nil {
		return err
	}
	if err := binary.Write(f, binary.LittleEndian, data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readRaw(t *testing.T, path, dtype string, n int) ([]float64, error) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := make([]float64, n)
	switch dtype {
	case "float32":
		if len(b) != 4*n {
			return nil, fmt.Errorf("%s: %d bytes, want %d", path, len(b), 4*n)
		}
		for i := range out {
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
	case "int64":
		if len(b) != 8*n {
			return nil, fmt.Errorf("%s: %d bytes, want %d", path, len(b), 8*n)
		}
		for i := range out {
			out[i] = float64(int64(binary.LittleEndian.Uint64(b[8*i:])))
		}
	case "bool":
		if len(b) != n {
			return nil, fmt.Errorf("%s: %d bytes, want %d", path, len(b), n)
		}
		for i := range out {
			out[i] = float64(b[i])
		}
	default:
		return nil, fmt.Errorf("unexpected dtype %s", dtype)
	}
	return out, nil
}

// values reads any tensor we compare as float64s.
func values(t *torch.Tensor) ([]float64, error) {
	f, err := t.ToDType(torch.Float64)
	if err != nil {
		return nil, err
	}
	defer f.Free()
	return f.Float64s()
}

func maxAbsDiff(a, b []float64) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(a[i]-b[i]))
	}
	return m
}

func sameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestOpParityWithPyTorch runs every op forward and backward in fertorch
// and in PyTorch on the same inputs and compares outputs and gradients.
func TestOpParityWithPyTorch(t *testing.T) {
	runParity(t, "testdata/parity.py", parityCases())
}

// runParity computes cases with the reference script (parity.py or one
// that extends its op table) and compares our outputs and gradients with
// its own.
func runParity(t *testing.T, script string, cases []*parityCase) {
	py := pyref.Require(t, "torch", "numpy")
	dir := t.TempDir()
	for _, c := range cases {
		for _, in := range c.Inputs {
			if err := writeInput(dir, c, in); err != nil {
				t.Fatal(err)
			}
		}
	}
	spec, _ := json.Marshal(cases)
	if err := os.WriteFile(filepath.Join(dir, "cases.json"), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := pyref.Run(py, script, dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]parityResult{}
	if err := json.Unmarshal(raw, &results); err != nil {
		t.Fatal(err)
	}
	if len(results) != len(cases) {
		t.Fatalf("reference computed %d cases, want %d", len(results), len(cases))
	}

	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			ref := results[c.Name]
			if ref.Native != "" {
				t.Logf("compared with oneDNN off: %s", ref.Native)
				was := torch.OneDNNEnabled()
				torch.SetOneDNN(false)
				defer torch.SetOneDNN(was)
			}
			scope := torch.NewScope()
			defer scope.Close()
			in := map[string]*torch.Tensor{}
			for _, p := range c.Inputs {
				var tt *torch.Tensor
				var err error
				if p.DType == "int64" {
					tt, err = scope.Own(torch.FromInt64s(p.i64, p.Shape...))
				} else {
					tt, err = scope.Own(torch.FromFloat32s(p.f32, p.Shape...))
				}
				if err != nil {
					t.Fatal(err)
				}
				if p.Grad {
					if err := tt.SetRequiresGrad(true); err != nil {
						t.Fatal(err)
					}
				}
				in[p.Name] = tt
			}
			outs, err := c.run(in)
			if err != nil {
				t.Fatal(err)
			}
			if len(outs) != len(ref.Outputs) {
				t.Fatalf("%d outputs, reference has %d", len(outs), len(ref.Outputs))
			}
			for k, o := range outs {
				want := ref.Outputs[k]
				if got := o.Shape(); !sameShape(got, want.Shape) {
					t.Fatalf("output %d shape %v, want %v", k, got, want.Shape)
				}
				if got := o.DType().String(); got != want.DType {
					t.Fatalf("output %d dtype %s, want %s", k, got, want.DType)
				}
				gotV, err := values(o)
				if err != nil {
					t.Fatal(err)
				}
				wantV, err := readRaw(t, filepath.Join(dir, want.File), want.DType, len(gotV))
				if err != nil {
					t.Fatal(err)
				}
				d := maxAbsDiff(gotV, wantV)
				if d > parityTolerance {
					t.Errorf("output %d: max abs diff %.3g > %g", k, d, parityTolerance)
				}
				t.Logf("output %d: max abs diff %.3g", k, d)
			}
			if len(ref.Grads) == 0 {
				return
			}
			first := outs[0]
			n := int(first.Numel())
			w := make([]float32, n)
			for i := range w {
				w[i] = float32(math.Cos(float64(i)))
			}
			wt, err := scope.Own(torch.FromFloat32s(w, first.Shape()...))
			if err != nil {
				t.Fatal(err)
			}
			prod, err := first.Mul(wt)
			if err != nil {
				t.Fatal(err)
			}
			loss, err := prod.Sum()
			if err != nil {
				t.Fatal(err)
			}
			if err := loss.Backward(); err != nil {
				t.Fatal(err)
			}
			for name, file := range ref.Grads {
				g, err := in[name].Grad()
				if err != nil || g == nil {
					t.Fatalf("grad of %s: %v (nil=%v)", name, err, g == nil)
				}
				gotV, err := values(g)
				if err != nil {
					t.Fatal(err)
				}
				wantV, err := readRaw(t, filepath.Join(dir, file), "float32", len(gotV))
				if err != nil {
					t.Fatal(err)
				}
				d := maxAbsDiff(gotV, wantV)
				if d > parityTolerance {
					t.Errorf("grad of %s: max abs diff %.3g > %g", name, d, parityTolerance)
				}
				t.Logf("grad of %s: max abs diff %.3g", name, d)
			}
		})
	}
}
