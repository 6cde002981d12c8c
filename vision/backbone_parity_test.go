package vision_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fertorch/fertorch/internal/pyref"
	"github.com/fertorch/fertorch/internal/testkernels"
	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/vision"
)

// backboneCase says how one architecture is checked against torchvision.
type backboneCase struct {
	arch vision.Arch
	// classes is the size of the classifier (not 1000, so that the
	// classifier's shape follows the configuration).
	classes int
	// evalSize is the square side of the eval-mode logits comparison,
	// gradSize that of the training step (batch gradBatch).
	evalSize, gradSize, gradBatch int
	// head is torchvision's classifier module, whose input is Features.
	head string
	// imageSize is passed to torchvision as image_size (ViT).
	imageSize int
	// heavy cases are skipped with -short.
	heavy bool
}

// Tolerances of the backbone tests: eval-mode logits and features (max
// abs diff), gradients (max abs diff relative to the tensor's largest
// reference gradient).
const (
	logitTolerance = 1e-4
	gradTolerance  = 1e-4
)

type tvKeys struct {
	Keys       [][3]json.RawMessage `json:"keys"`
	Params     int64                `json:"params"`
	Params1000 int64                `json:"params_1000"`
}

func randomFloats(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func maxAbs(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// checkBackbone builds c.arch in fertorch and in torchvision and checks:
// state-dict keys, shapes and dtypes in torchvision's order; parameter
// counts (and the table's count at 1000 classes); that torchvision's state
// dict loads strictly; eval-mode logits and features on the same weights
// and input; one training step's loss, gradients and batch-norm
// statistics, with stochastic depth and dropout drawn after the same seed.
// Each gradient tensor must be within gradTolerance of torchvision's,
// relative to its largest value (or to 1e-3 of the network's largest
// gradient, for tensors whose exact gradient is zero).
func checkBackbone(t *testing.T, c backboneCase) {
	if c.heavy && testing.Short() {
		t.Skipf("skipping %s in -short mode", c.arch)
	}
	// Where oneDNN is wrong on this CPU, the backbones are compared with
	// oneDNN off on both sides, as fer's --onednn auto runs them:
	// comparing two wrong results would prove nothing. (There its
	// convolution backward can also die with SIGFPE, as resnet50's did
	// with Debian's libtorch 2.6, in PyTorch and fertorch alike.)
	nativeOnly := testkernels.OneDNNWrong(t)
	if nativeOnly {
		t.Logf("oneDNN computes wrong convolutions on this CPU: both sides run with oneDNN off")
		defer torch.SetOneDNN(torch.OneDNNEnabled())
		torch.SetOneDNN(false)
	}
	py := pyref.Require(t, "torch", "torchvision", "numpy")
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(len(c.arch)), 17))
	xEval := randomFloats(rng, 2*3*c.evalSize*c.evalSize)
	xGrad := randomFloats(rng, c.gradBatch*3*c.gradSize*c.gradSize)
	labels := make([]int64, c.gradBatch)
	for i := range labels {
		labels[i] = rng.Int64N(int64(c.classes))
	}
	pyref.MustWriteFloat32s(t, filepath.Join(dir, "xeval.bin"), xEval)
	pyref.MustWriteFloat32s(t, filepath.Join(dir, "xgrad.bin"), xGrad)
	lb := make([]byte, 8*len(labels))
	for i, l := range labels {
		for k := range 8 {
			lb[8*i+k] = byte(uint64(l) >> (8 * k))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "labels.bin"), lb, 0o644); err != nil {
		t.Fatal(err)
	}
	sizes, _ := json.Marshal(map[string]any{"eval": c.evalSize, "grad": c.gradSize, "batch": c.gradBatch, "threads": torch.NumThreads(), "onednn": !nativeOnly})
	if err := os.WriteFile(filepath.Join(dir, "sizes.json"), sizes, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{dir, string(c.arch), fmt.Sprint(c.classes), c.head}
	if c.imageSize > 0 {
		args = append(args, fmt.Sprint(c.imageSize))
	}
	if _, err := pyref.Run(py, "testdata/tv_backbone.py", args...); err != nil {
		t.Fatal(err)
	}
	var ref tvKeys
	raw, err := os.ReadFile(filepath.Join(dir, "keys.json"))
	if err == nil {
		err = json.Unmarshal(raw, &ref)
	}
	if err != nil {
		t.Fatal(err)
	}

	size := c.imageSize
	if size == 0 {
		size = 224
	}
	m, err := vision.NewBackbone(c.arch, vision.BackboneConfig{NumClasses: c.classes, InputSize: size})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()

	// Keys, shapes and dtypes, in order.
	state := m.StateTensors()
	var got, want []string
	for _, p := range state {
		shape, _ := json.Marshal(p.Tensor.Shape())
		got = append(got, fmt.Sprintf("%s %s %s", p.Name, shape, p.Tensor.DType()))
	}
	for _, k := range ref.Keys {
		var name, dtype string
		var shape []int64
		if json.Unmarshal(k[0], &name) != nil || json.Unmarshal(k[1], &shape) != nil || json.Unmarshal(k[2], &dtype) != nil {
			t.Fatalf("bad reference key %s", k)
		}
		s, _ := json.Marshal(shape)
		want = append(want, fmt.Sprintf("%s %s %s", name, s, dtype))
	}
	if !slices.Equal(got, want) {
		for i := range max(len(got), len(want)) {
			g, w := "(none)", "(none)"
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Fatalf("state dict entry %d is %q, torchvision's is %q (%d vs %d entries)", i, g, w, len(got), len(want))
			}
		}
	}

	// Parameter counts.
	var count int64
	for _, p := range m.Parameters() {
		count += p.Tensor.Numel()
	}
	spec, err := vision.LookupArch(c.arch)
	if err != nil {
		t.Fatal(err)
	}
	if count != ref.Params || spec.Params != ref.Params1000 {
		t.Errorf("parameters: %d (table at 1000 classes: %d), torchvision: %d (%d)", count, spec.Params, ref.Params, ref.Params1000)
	}
	if m.FeatureWidth() != spec.FeatureWidth {
		t.Errorf("feature width %d, table says %d", m.FeatureWidth(), spec.FeatureWidth)
	}

	// torchvision's state dict loads strictly.
	file, err := vision.ReadWeights(filepath.Join(dir, "state.pth"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := vision.LoadStateDict(state, file, vision.LoadOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Loaded) != len(ref.Keys) {
		t.Fatalf("loaded %d of %d tensors", len(rep.Loaded), len(ref.Keys))
	}

	// Eval-mode logits and features.
	m.SetTraining(false)
	var logits, feats []float32
	err = torch.NoGrad(func() error {
		scope := torch.NewScope()
		defer scope.Close()
		x, err := scope.Own(torch.FromFloat32s(xEval, 2, 3, int64(c.evalSize), int64(c.evalSize)))
		if err != nil {
			return err
		}
		f, err := m.Features(x)
		if err != nil {
			return err
		}
		if feats, err = f.Float32s(); err != nil {
			return err
		}
		y, err := m.Forward(x)
		if err != nil {
			return err
		}
		logits, err = y.Float32s()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, cmp := range []struct {
		what string
		got  []float32
		file string
	}{{"logits", logits, "logits_eval.bin"}, {"features", feats, "features_eval.bin"}} {
		want := pyref.MustReadFloat32s(t, filepath.Join(dir, cmp.file))
		if len(cmp.got) != len(want) {
			t.Fatalf("%s: %d values, torchvision has %d", cmp.what, len(cmp.got), len(want))
		}
		d := maxAbs(cmp.got, want)
		if d > logitTolerance {
			t.Errorf("eval %s at %dx%d: max abs diff %.3g > %g", cmp.what, c.evalSize, c.evalSize, d, logitTolerance)
		}
		t.Logf("eval %s at %dx%d: max abs diff %.3g (largest |value| %.3g)", cmp.what, c.evalSize, c.evalSize, d, maxAbs(want, make([]float32, len(want))))
	}

	// One training step: loss, gradients, running statistics.
	m.SetTraining(true)
	scope := torch.NewScope()
	defer scope.Close()
	x, err := scope.Own(torch.FromFloat32s(xGrad, int64(c.gradBatch), 3, int64(c.gradSize), int64(c.gradSize)))
	if err != nil {
		t.Fatal(err)
	}
	lt, err := scope.Own(torch.FromInt64s(labels, int64(len(labels))))
	if err != nil {
		t.Fatal(err)
	}
	if err := torch.ManualSeed(123); err != nil {
		t.Fatal(err)
	}
	y, err := m.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := y.CrossEntropy(lt, torch.CrossEntropyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := loss.Backward(); err != nil {
		t.Fatal(err)
	}
	lv, _ := loss.Item()
	wantLoss := pyref.MustReadFloat32s(t, filepath.Join(dir, "loss.bin"))[0]
	if d := math.Abs(lv - float64(wantLoss)); d > 1e-5 {
		t.Errorf("training loss %.7g, torchvision %.7g", lv, wantLoss)
	}
	grads := pyref.MustReadFloat32s(t, filepath.Join(dir, "grads.bin"))
	// Some gradients are zero in exact arithmetic (a batch norm's bias
	// right before another batch norm in training mode: the second one
	// removes any constant shift), so both sides hold rounding noise of
	// about 1e-8 (mobilenet_v3_large). Such tensors are compared against
	// gradFloor times the largest gradient of the whole network instead of
	// their own largest: an absolute tolerance of 1e-7 of that gradient.
	const gradFloor = 1e-3
	globalMax := maxAbs(grads, make([]float32, len(grads)))
	off, worst, worstName := 0, 0.0, ""
	for _, p := range m.Parameters() {
		g, err := p.Tensor.Grad()
		if err != nil || g == nil {
			t.Fatalf("no gradient for %s (%v)", p.Name, err)
		}
		gv, err := g.Float32s()
		g.Free()
		if err != nil {
			t.Fatal(err)
		}
		if off+len(gv) > len(grads) {
			t.Fatalf("torchvision has fewer gradient values than our parameters")
		}
		w := grads[off : off+len(gv)]
		off += len(gv)
		scale := math.Max(maxAbs(w, make([]float32, len(w))), gradFloor*globalMax)
		d := maxAbs(gv, w)
		rel := 0.0
		if d > 0 {
			rel = d / math.Max(scale, 1e-30)
		}
		if rel > worst {
			worst, worstName = rel, p.Name
		}
		if rel > gradTolerance {
			t.Errorf("gradient of %s: max abs diff %.3g, %.3g relative to %.3g", p.Name, d, rel, scale)
		}
		_ = p.Tensor.ZeroGrad()
	}
	if off != len(grads) {
		t.Errorf("compared %d gradient values, torchvision has %d", off, len(grads))
	}
	t.Logf("training step at %dx%d, batch %d: loss %.6g (torchvision %.6g), worst relative gradient diff %.3g (%s; largest gradient %.3g)", c.gradSize, c.gradSize, c.gradBatch, lv, wantLoss, worst, worstName, globalMax)
	bufs := pyref.MustReadFloat32s(t, filepath.Join(dir, "buffers.bin"))
	params := map[*torch.Tensor]bool{}
	for _, p := range m.Parameters() {
		params[p.Tensor] = true
	}
	off = 0
	worstBuf := 0.0
	for _, p := range state {
		if params[p.Tensor] || !p.Tensor.DType().IsFloat() {
			continue
		}
		v, err := p.Tensor.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		worstBuf = math.Max(worstBuf, maxAbs(v, bufs[off:off+len(v)]))
		off += len(v)
	}
	if off != len(bufs) || worstBuf > 1e-5 {
		t.Errorf("running statistics after the step: %d of %d values, max abs diff %.3g", off, len(bufs), worstBuf)
	}
}

// TestResNetParity checks resnet18 and resnet50 against torchvision: keys,
// counts, strict loading, eval logits and features at 224x224 (batch 2), a
// training step at 64x64 (batch 4). resnet50 is skipped with -short.
func TestResNetParity(t *testing.T) {
	for _, c := range []backboneCase{
		{arch: vision.ArchResNet18, classes: 8, evalSize: 224, gradSize: 64, gradBatch: 4, head: "fc"},
		{arch: vision.ArchResNet50, classes: 8, evalSize: 224, gradSize: 64, gradBatch: 4, head: "fc", heavy: true},
	} {
		t.Run(string(c.arch), func(t *testing.T) { checkBackbone(t, c) })
	}
}

// TestMobileParity checks mobilenet_v3_large and efficientnet_b0 against
// torchvision: eval logits and features at 224x224 (batch 2); a training
// step at 96x96 (batch 4) with dropout and, for efficientnet_b0,
// stochastic depth drawn after the same seed. Skipped with -short.
func TestMobileParity(t *testing.T) {
	for _, c := range []backboneCase{
		{arch: vision.ArchMobileNetV3Large, classes: 8, evalSize: 224, gradSize: 96, gradBatch: 4, head: "classifier", heavy: true},
		{arch: vision.ArchEfficientNetB0, classes: 8, evalSize: 224, gradSize: 96, gradBatch: 4, head: "classifier", heavy: true},
	} {
		t.Run(string(c.arch), func(t *testing.T) { checkBackbone(t, c) })
	}
}

// TestConvNeXtParity checks convnext_tiny against torchvision: eval logits
// and features at 224x224 (batch 2), a training step at 64x64 (batch 4)
// with stochastic depth drawn after the same seed. Skipped with -short.
func TestConvNeXtParity(t *testing.T) {
	checkBackbone(t, backboneCase{arch: vision.ArchConvNeXtTiny, classes: 8, evalSize: 224, gradSize: 64, gradBatch: 4, head: "classifier", heavy: true})
}

// TestViTParity checks vit_b_16 against torchvision at its own 224x224 (196
// patches and the class token): eval logits and features (batch 2) and a
// training step (batch 2); and built for 32x32 inputs (torchvision's
// image_size=32: 4 patches, the position embedding sized to match), a
// training step of batch 4. Skipped with -short.
func TestViTParity(t *testing.T) {
	t.Run("224", func(t *testing.T) {
		checkBackbone(t, backboneCase{arch: vision.ArchViTB16, classes: 8, evalSize: 224, gradSize: 224, gradBatch: 2, head: "heads", heavy: true})
	})
	t.Run("32", func(t *testing.T) {
		checkBackbone(t, backboneCase{arch: vision.ArchViTB16, classes: 8, evalSize: 32, gradSize: 32, gradBatch: 4, head: "heads", imageSize: 32, heavy: true})
	})
}
