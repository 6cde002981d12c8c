package torch_test

import (
	"errors"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/torch"
)

func mustFloats(t *testing.T, x *torch.Tensor) []float32 {
	t.Helper()
	v, err := x.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func equalFloats(a, b []float32) bool {
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

func TestBadShapeIsAnErrorNotACrash(t *testing.T) {
	x, _ := torch.FromFloat32s([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	defer x.Free()
	w, _ := torch.Zeros([]int64{8, 3, 3, 3}, torch.Options{})
	defer w.Free()
	before := torch.LiveTensors()
	y, err := x.Conv2d(w, nil, torch.Conv2dOptions{})
	if y != nil || err == nil {
		t.Fatalf("conv2d on a 2-D input: got %v, %v", y, err)
	}
	var te *torch.Error
	if !errors.As(err, &te) || te.Op != "conv2d" {
		t.Fatalf("error %T %v is not a conv2d *torch.Error", err, err)
	}
	msg := err.Error()
	for _, want := range []string{"conv2d", "input [2 3] float32", "weight [8 3 3 3] float32", "Expected 3D (unbatched) or 4D (batched) input"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "Exception raised from") {
		t.Errorf("error carries a C++ backtrace: %q", msg)
	}
	if got := torch.LiveTensors(); got != before {
		t.Errorf("failed op leaked handles: %d -> %d", before, got)
	}

	// More failures libtorch reports by exception; the process survives all.
	a, _ := torch.Zeros([]int64{2, 3}, torch.Options{})
	b, _ := torch.Zeros([]int64{4, 5}, torch.Options{})
	defer a.Free()
	defer b.Free()
	if _, err := a.Matmul(b); err == nil || !strings.Contains(err.Error(), "matmul(self [2 3] float32, other [4 5] float32)") {
		t.Errorf("matmul mismatch: %v", err)
	}
	if _, err := a.Add(b); err == nil || !strings.Contains(err.Error(), "add(") {
		t.Errorf("add mismatch: %v", err)
	}
	if _, err := a.Reshape(7); err == nil || !strings.Contains(err.Error(), "shape '[7]' is invalid") {
		t.Errorf("reshape: %v", err)
	}
	logits, _ := torch.Zeros([]int64{2, 3}, torch.Options{})
	target, _ := torch.FromInt64s([]int64{0, 7}, 2)
	defer logits.Free()
	defer target.Free()
	if _, err := logits.CrossEntropy(target, torch.CrossEntropyOptions{}); err == nil || !strings.Contains(err.Error(), "out of bounds") {
		t.Errorf("cross_entropy with target 7 of 3 classes: %v", err)
	}
	if _, err := torch.FromFloat32s([]float32{1, 2, 3}, 2, 2); err == nil || !strings.Contains(err.Error(), "3 values do not fill shape [2 2]") {
		t.Errorf("FromFloat32s size mismatch: %v", err)
	}
	if _, err := a.Int64s(); err == nil || !strings.Contains(err.Error(), "dtype is float32, not int64") {
		t.Errorf("Int64s on float32: %v", err)
	}
	if _, err := a.Dropout(1.5, true); err == nil || !strings.Contains(err.Error(), "dropout probability") {
		t.Errorf("dropout p=1.5: %v", err)
	}
	if _, err := torch.ParseDevice("tpu"); err == nil || !strings.Contains(err.Error(), `unknown device "tpu"`) {
		t.Errorf("ParseDevice(tpu): %v", err)
	}
}

func TestUseAfterFreeIsAnError(t *testing.T) {
	x, _ := torch.FromFloat32s([]float32{1, 2}, 2)
	x.Free()
	x.Free() // idempotent
	if _, err := x.Relu(); err == nil || !strings.Contains(err.Error(), "relu: tensor tensor is nil or already released") {
		t.Errorf("relu on a freed tensor: %v", err)
	}
	var nilT *torch.Tensor
	if _, err := nilT.Add(x); err == nil {
		t.Error("add on nil tensor succeeded")
	}
	if got := x.Shape(); got != nil {
		t.Errorf("freed tensor shape %v", got)
	}
}

func TestDataRoundTripsAndDTypes(t *testing.T) {
	scope := torch.NewScope()
	defer scope.Close()
	f, err := scope.Own(torch.FromFloat32s([]float32{1.5, -2.25, 3, 0}, 2, 2))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustFloats(t, f); !equalFloats(got, []float32{1.5, -2.25, 3, 0}) {
		t.Errorf("float32 round trip %v", got)
	}
	if f.Dim() != 2 || f.Numel() != 4 || f.DType() != torch.Float32 || f.Device() != torch.CPU() {
		t.Errorf("metadata: dim %d numel %d dtype %s device %s", f.Dim(), f.Numel(), f.DType(), f.Device())
	}
	// Conversions through every supported dtype and back.
	for _, dt := range []torch.DType{torch.Float16, torch.BFloat16, torch.Float64, torch.Int64, torch.Int32, torch.Int8, torch.Uint8, torch.Bool} {
		c, err := f.ToDType(dt)
		if err != nil {
			t.Fatalf("to %s: %v", dt, err)
		}
		if c.DType() != dt {
			t.Errorf("to %s gave %s", dt, c.DType())
		}
		b, err := c.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 4*dt.Size() {
			t.Errorf("%s: %d bytes for 4 elements", dt, len(b))
		}
		back, err := c.ToDType(torch.Float32)
		if err != nil {
			t.Fatal(err)
		}
		want := map[torch.DType][]float32{
			torch.Float16: {1.5, -2.25, 3, 0}, torch.BFloat16: {1.5, -2.25, 3, 0}, torch.Float64: {1.5, -2.25, 3, 0},
			torch.Int64: {1, -2, 3, 0}, torch.Int32: {1, -2, 3, 0}, torch.Int8: {1, -2, 3, 0},
			torch.Uint8: {1, 254, 3, 0}, torch.Bool: {1, 1, 1, 0},
		}[dt]
		if got := mustFloats(t, back); !equalFloats(got, want) {
			t.Errorf("float32 -> %s -> float32 = %v, want %v", dt, got, want)
		}
	}
	// bfloat16 rounds to 8 bits of mantissa: 1/3 becomes 0.333984375.
	third, _ := scope.Own(torch.FromFloat32s([]float32{1.0 / 3}, 1))
	bf, _ := third.ToDType(torch.BFloat16)
	bfb, _ := bf.Bytes()
	if bfb[0] != 0xab || bfb[1] != 0x3e {
		t.Errorf("bfloat16(1/3) bytes % x, want ab 3e", bfb)
	}
	i, _ := scope.Own(torch.FromInt64s([]int64{math.MaxInt64, -1}, 2))
	if got, _ := i.Int64s(); got[0] != math.MaxInt64 || got[1] != -1 {
		t.Errorf("int64 round trip %v", got)
	}
	u, _ := scope.Own(torch.FromUint8s([]uint8{0, 255}, 2))
	if got, _ := u.Uint8s(); got[0] != 0 || got[1] != 255 {
		t.Errorf("uint8 round trip %v", got)
	}
	bo, _ := scope.Own(torch.FromBools([]bool{true, false}, 2))
	if got, _ := bo.Bools(); !got[0] || got[1] {
		t.Errorf("bool round trip %v", got)
	}
	raw := []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0} // 1.0, -2.0
	rb, err := scope.Own(torch.FromBytes(raw, torch.Float32, torch.CPU(), 2))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustFloats(t, rb); !equalFloats(got, []float32{1, -2}) {
		t.Errorf("FromBytes %v", got)
	}
	if err := rb.CopyFloat32s([]float32{7, 8}); err != nil {
		t.Fatal(err)
	}
	if got := mustFloats(t, rb); !equalFloats(got, []float32{7, 8}) {
		t.Errorf("CopyFloat32s %v", got)
	}
	if err := rb.CopyFloat32s([]float32{7}); err == nil || !strings.Contains(err.Error(), "buffer holds 4 bytes, tensor needs 8") {
		t.Errorf("short CopyFloat32s: %v", err)
	}
	host, err := rb.HostFloat32s()
	if err != nil {
		t.Fatal(err)
	}
	host[0] = 42
	if v, _ := rb.Select(0, 0); v != nil {
		if x, _ := v.Item(); x != 42 {
			t.Errorf("write through HostFloat32s not visible: %v", x)
		}
	}
}

func TestViewsAndIndexing(t *testing.T) {
	scope := torch.NewScope()
	defer scope.Close()
	vals := make([]float32, 24)
	for i := range vals {
		vals[i] = float32(i)
	}
	x, _ := scope.Own(torch.FromFloat32s(vals, 2, 3, 4))
	p, err := x.Permute(2, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Shape(); got[0] != 4 || got[1] != 2 || got[2] != 3 || p.IsContiguous() {
		t.Errorf("permute shape %v contiguous %v", got, p.IsContiguous())
	}
	// permute(2,0,1)[k][i][j] = x[i][j][k] = 12i + 4j + k.
	if got := mustFloats(t, p); got[1] != 4 || got[3] != 12 || got[6] != 1 {
		t.Errorf("permuted values %v", got[:8])
	}
	if _, err := p.View(24); err == nil {
		t.Error("view of a non-contiguous permutation succeeded")
	}
	c, _ := p.Contiguous()
	if !c.IsContiguous() {
		t.Error("Contiguous is not contiguous")
	}
	if v, err := c.View(24); err != nil || v.Numel() != 24 {
		t.Errorf("view of contiguous: %v", err)
	}
	n, _ := x.Narrow(0, 1, 1)
	if got := mustFloats(t, n); got[0] != 12 || len(got) != 12 {
		t.Errorf("narrow batch: %v", got)
	}
	idx, _ := scope.Own(torch.FromInt64s([]int64{1, 0, 1}, 3))
	sel, _ := x.IndexSelect(0, idx)
	if got := sel.Shape(); got[0] != 3 {
		t.Errorf("index_select shape %v", got)
	}
	if got := mustFloats(t, sel); got[0] != 12 || got[12] != 0 || got[24] != 12 {
		t.Errorf("index_select values %v %v %v", got[0], got[12], got[24])
	}
	s, _ := x.Select(1, 2)
	if got := mustFloats(t, s); !equalFloats(got, []float32{8, 9, 10, 11, 20, 21, 22, 23}) {
		t.Errorf("select %v", got)
	}
	fl, _ := x.Flatten(1, -1)
	if got := fl.Shape(); len(got) != 2 || got[1] != 12 {
		t.Errorf("flatten %v", got)
	}
	u, _ := x.Unsqueeze(0)
	sq, _ := u.Squeeze(0)
	if got := sq.Shape(); len(got) != 3 {
		t.Errorf("unsqueeze/squeeze %v", got)
	}
	img, _ := scope.Own(torch.FromFloat32s([]float32{1, 2, 3, 4, 5, 6, 7, 8}, 1, 2, 2, 2))
	cl, err := img.ChannelsLast()
	if err != nil {
		t.Fatal(err)
	}
	// Logical values are unchanged by the memory format.
	if got := mustFloats(t, cl); !equalFloats(got, []float32{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("channels-last logical values %v", got)
	}
	if cl.IsContiguous() {
		t.Error("channels-last tensor reports NCHW-contiguous")
	}
	top, err := img.Flatten(0, -1)
	if err != nil {
		t.Fatal(err)
	}
	v, i, err := top.TopK(2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustFloats(t, v); !equalFloats(got, []float32{8, 7}) {
		t.Errorf("topk values %v", got)
	}
	if got, _ := i.Int64s(); got[0] != 7 || got[1] != 6 {
		t.Errorf("topk indices %v", got)
	}
}

func TestScopeReleasesEverythingItOwns(t *testing.T) {
	base := torch.LiveTensors()
	param, _ := torch.FromFloat32s([]float32{1, 2, 3}, 3)
	scope := torch.NewScope()
	x, _ := scope.Own(torch.FromFloat32s([]float32{4, 5, 6}, 3))
	y, _ := x.Mul(param) // joins x's scope
	z, _ := y.Sum()
	kept, _ := y.Add(param)
	scope.Keep(kept)
	if n := scope.Len(); n != 3 {
		t.Errorf("scope owns %d tensors, want 3 (x, y, z)", n)
	}
	if got := torch.LiveTensors() - base; got != 5 {
		t.Errorf("%d live tensors, want 5", got)
	}
	scope.Close()
	if !x.Released() || !y.Released() || !z.Released() {
		t.Error("scope close left tensors alive")
	}
	if kept.Released() || param.Released() {
		t.Error("scope close released a kept or unscoped tensor")
	}
	if got := mustFloats(t, kept); !equalFloats(got, []float32{5, 12, 21}) {
		t.Errorf("kept values %v", got)
	}
	kept.Free()
	param.Free()
	if got := torch.LiveTensors(); got != base {
		t.Errorf("live tensors %d, want %d", got, base)
	}
}

func TestNoGradAndBackward(t *testing.T) {
	scope := torch.NewScope()
	defer scope.Close()
	w, _ := scope.Own(torch.FromFloat32s([]float32{1, -2, 3}, 3))
	if err := w.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	err := torch.NoGrad(func() error {
		if torch.GradEnabled() {
			t.Error("grad enabled inside NoGrad")
		}
		y, err := w.MulScalar(2)
		if err != nil {
			return err
		}
		if y.RequiresGrad() {
			t.Error("result of an op under NoGrad requires grad")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !torch.GradEnabled() {
		t.Error("grad mode not restored after NoGrad")
	}
	sq, _ := w.Square()
	loss, _ := sq.Sum()
	if err := loss.Backward(); err != nil {
		t.Fatal(err)
	}
	g, err := w.Grad()
	if err != nil || g == nil {
		t.Fatalf("grad: %v", err)
	}
	if got := mustFloats(t, g); !equalFloats(got, []float32{2, -4, 6}) {
		t.Errorf("d/dw sum(w^2) = %v", got)
	}
	// Gradients accumulate until ZeroGrad, as in PyTorch.
	sq2, _ := w.Square()
	loss2, _ := sq2.Sum()
	_ = loss2.Backward()
	g2, _ := w.Grad()
	if got := mustFloats(t, g2); !equalFloats(got, []float32{4, -8, 12}) {
		t.Errorf("accumulated grad %v", got)
	}
	if err := w.ZeroGrad(); err != nil {
		t.Fatal(err)
	}
	if g3, _ := w.Grad(); g3 != nil {
		t.Errorf("grad after ZeroGrad: %v", g3)
	}
	c, _ := scope.Own(torch.FromFloat32s([]float32{1}, 1))
	if err := c.Backward(); err == nil || !strings.Contains(err.Error(), "does not require grad") {
		t.Errorf("backward on a constant: %v", err)
	}
}

func TestManualSeedAndThreads(t *testing.T) {
	draw := func() []float32 {
		if err := torch.ManualSeed(123); err != nil {
			t.Fatal(err)
		}
		r, _ := torch.Randn([]int64{5}, torch.Options{})
		defer r.Free()
		return mustFloats(t, r)
	}
	a, b := draw(), draw()
	if !equalFloats(a, b) {
		t.Errorf("same seed, different draws: %v %v", a, b)
	}
	// Threads default to every core unless the environment says otherwise.
	want := 0
	for _, env := range []string{"FERTORCH_NUM_THREADS", "OMP_NUM_THREADS"} {
		if n, err := strconv.Atoi(os.Getenv(env)); err == nil && n > 0 {
			want = n
			break
		}
	}
	if want == 0 {
		want = runtime.NumCPU()
	}
	if got := torch.NumThreads(); got != want {
		t.Errorf("default thread count %d, want %d", got, want)
	}
	if err := torch.SetNumThreads(0); err == nil {
		t.Error("SetNumThreads(0) accepted")
	}
}

func TestOwnMovesBetweenScopes(t *testing.T) {
	base := torch.LiveTensors()
	a, b := torch.NewScope(), torch.NewScope()
	x, _ := a.Own(torch.FromFloat32s([]float32{1, 2}, 2))
	y, _ := x.MulScalar(3) // in a
	b.Own(y, nil)
	a.Close()
	if !x.Released() || y.Released() {
		t.Fatalf("after closing a: x released %v, y released %v", x.Released(), y.Released())
	}
	if got := mustFloats(t, y); !equalFloats(got, []float32{3, 6}) {
		t.Errorf("moved tensor %v", got)
	}
	b.Close()
	if !y.Released() || torch.LiveTensors() != base {
		t.Errorf("after closing b: y released %v, live %d (base %d)", y.Released(), torch.LiveTensors(), base)
	}
}

// onThread runs f on an OS thread of its own, as cgo calls from different
// goroutines may run.
func onThread(f func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(done)
		f()
	}()
	<-done
}

// TestThreadCountReachesEveryOSThread: a thread count set on one OS thread
// holds on an OS thread that had already run parallel work with another
// count (libtorch's OpenMP count is per thread), so a reduction there sums
// in the same chunks, bit for bit, as on the thread that set it. The sum of
// 4M normal draws differs between 1 and 2 threads in its low bits, which
// the test checks first so that it can tell.
func TestThreadCountReachesEveryOSThread(t *testing.T) {
	defer torch.SetNumThreads(torch.NumThreads())
	if err := torch.ManualSeed(7); err != nil {
		t.Fatal(err)
	}
	x, err := torch.Randn([]int64{1 << 22}, torch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Free()
	sum := func() float64 {
		s, err := x.Sum()
		if err != nil {
			t.Error(err)
			return 0
		}
		defer s.Free()
		v, err := s.Item()
		if err != nil {
			t.Error(err)
		}
		return v
	}
	// Thread A sums with 2 threads, and keeps running (idle) so that the
	// later calls land on the same OS thread.
	calls := make(chan func())
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for f := range calls {
			f()
			done <- struct{}{}
		}
	}()
	defer close(calls)
	onA := func(f func()) { calls <- f; <-done }
	var twoThreads, oneThread, afterSet float64
	var countOnA int
	onA(func() {
		if err := torch.SetNumThreads(2); err != nil {
			t.Error(err)
		}
		twoThreads = sum()
	})
	onThread(func() {
		if err := torch.SetNumThreads(1); err != nil {
			t.Error(err)
		}
		oneThread = sum()
	})
	onA(func() {
		afterSet = sum()
		countOnA = torch.NumThreads()
	})
	if twoThreads == oneThread {
		t.Fatalf("1 and 2 threads sum to the same %v: the check cannot tell them apart", oneThread)
	}
	if afterSet != oneThread || countOnA != 1 {
		t.Errorf("after SetNumThreads(1) on another OS thread, this one sums %v with %d threads; 1 thread sums %v (2 threads %v)", afterSet, countOnA, oneThread, twoThreads)
	}
}
