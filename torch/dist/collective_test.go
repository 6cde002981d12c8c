package dist_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fertorch/fertorch/torch"
	"github.com/fertorch/fertorch/torch/dist"
)

// join is Init for a worker, failing the test on error.
func join(t *testing.T, env dist.Env, timeout time.Duration) *dist.Group {
	t.Helper()
	g, err := dist.Init(env, dist.Options{Timeout: timeout, Device: torch.CPU()})
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	if g.Rank() != env.Rank || g.Size() != env.WorldSize {
		t.Fatalf("group is rank %d of %d, want %d of %d", g.Rank(), g.Size(), env.Rank, env.WorldSize)
	}
	return g
}

func f32(t *testing.T, data []float32, shape ...int64) *torch.Tensor {
	t.Helper()
	x, err := torch.FromFloat32s(data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func values(t *testing.T, x *torch.Tensor) []float32 {
	t.Helper()
	v, err := x.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func expect(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestCollectives(t *testing.T) {
	if scenario, env, ok := worker(t); ok {
		collectivesWorker(t, scenario, env)
		return
	}
	needDist(t)
	for _, n := range []int{2, 3} {
		res := runJob(t, "collectives", n, localEnv(n, freePort(t)), time.Minute)
		mustPass(t, fmt.Sprintf("%d ranks", n), res)
		for _, r := range res {
			if got := reported(r.out, "checked"); got != "yes" {
				t.Errorf("%d ranks: rank %d did not run its checks:\n%s", n, r.rank, r.out)
			}
		}
	}
}

func collectivesWorker(t *testing.T, _ string, env dist.Env) {
	g := join(t, env, 20*time.Second)
	defer g.Close()
	n, r := float32(env.WorldSize), float32(env.Rank)
	s := n * (n + 1) / 2 // sum over ranks of rank+1

	// Broadcast from root 1: a float32 matrix, an int64 vector, a
	// non-contiguous view (written through to its base) and a parameter
	// that requires grad.
	a := f32(t, []float32{r*10 + 1, r*10 + 2, r*10 + 3, r*10 + 4, r*10 + 5, r*10 + 6}, 2, 3)
	ids, err := torch.FromInt64s([]int64{int64(env.Rank), 7, int64(env.Rank) * 100}, 3)
	if err != nil {
		t.Fatal(err)
	}
	base := f32(t, []float32{r, r + 1, r + 2, r + 3, r + 4, r + 5}, 3, 2)
	view, err := base.Transpose(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	param := f32(t, []float32{r, -r}, 2)
	if err := param.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	if err := g.Broadcast([]*torch.Tensor{a, ids, view, param}, 1); err != nil {
		t.Fatalf("Broadcast: %v", err)
	}
	expect(t, "broadcast a", values(t, a), []float32{11, 12, 13, 14, 15, 16})
	gotIDs, err := ids.Int64s()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotIDs, []int64{1, 7, 100}) {
		t.Errorf("broadcast ids = %v, want [1 7 100]", gotIDs)
	}
	expect(t, "broadcast view's base", values(t, base), []float32{1, 2, 3, 4, 5, 6})
	expect(t, "broadcast param", values(t, param), []float32{1, -1})
	if !param.RequiresGrad() {
		t.Error("the broadcast parameter no longer requires grad")
	}

	// All-reduce (sum): rank-dependent values in float32 and int64.
	x := f32(t, []float32{r + 1, 2 * (r + 1), 3 * (r + 1)}, 3)
	k, err := torch.FromInt64s([]int64{int64(env.Rank), 1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.AllReduceSum([]*torch.Tensor{x, k}); err != nil {
		t.Fatalf("AllReduceSum: %v", err)
	}
	expect(t, "all_reduce x", values(t, x), []float32{s, 2 * s, 3 * s})
	gotK, err := k.Int64s()
	if err != nil {
		t.Fatal(err)
	}
	ws := int64(env.WorldSize)
	if !slices.Equal(gotK, []int64{ws * (ws - 1) / 2, ws}) {
		t.Errorf("all_reduce k = %v, want [%d %d]", gotK, ws*(ws-1)/2, ws)
	}
	if err := g.AllReduceSum(nil); err != nil {
		t.Errorf("AllReduceSum(nil): %v", err)
	}

	// All-gather: every rank's tensor in rank order.
	parts, err := g.AllGather(f32(t, []float32{r, r * r}, 2))
	if err != nil {
		t.Fatalf("AllGather: %v", err)
	}
	if len(parts) != env.WorldSize {
		t.Fatalf("AllGather gave %d tensors, want %d", len(parts), env.WorldSize)
	}
	for i, p := range parts {
		fi := float32(i)
		expect(t, fmt.Sprintf("all_gather[%d]", i), values(t, p), []float32{fi, fi * fi})
	}

	// Results join the input's scope.
	scope := torch.NewScope()
	in, err := scope.Own(torch.FromFloat32s([]float32{r}, 1))
	if err != nil {
		t.Fatal(err)
	}
	scoped, err := g.AllGather(in)
	if err != nil {
		t.Fatalf("AllGather: %v", err)
	}
	summed, err := g.AllReduceSumGrad(in)
	if err != nil {
		t.Fatalf("AllReduceSumGrad: %v", err)
	}
	scope.Close()
	if !scoped[0].Released() || !summed.Released() {
		t.Error("results outlive their input's scope")
	}

	if err := g.Barrier(); err != nil {
		t.Fatalf("Barrier: %v", err)
	}

	// Bad arguments are errors, not crashes, and name the operation.
	if err := g.Broadcast([]*torch.Tensor{a}, env.WorldSize); err == nil ||
		err.Error() != fmt.Sprintf("dist: broadcast on rank %d: root %d out of range for world size %d", env.Rank, env.WorldSize, env.WorldSize) {
		t.Errorf("Broadcast to root %d: %v", env.WorldSize, err)
	}
	freed := f32(t, []float32{1}, 1)
	freed.Free()
	if err := g.AllReduceSum([]*torch.Tensor{x, freed}); err == nil ||
		err.Error() != fmt.Sprintf("dist: all_reduce on rank %d: tensor 1 is nil or released", env.Rank) {
		t.Errorf("AllReduceSum of a freed tensor: %v", err)
	}
	report("checked", "yes")
}

func TestReducer(t *testing.T) {
	if scenario, env, ok := worker(t); ok {
		reducerWorker(t, scenario, env)
		return
	}
	needDist(t)
	for _, n := range []int{2, 3} {
		res := runJob(t, "reducer", n, localEnv(n, freePort(t)), time.Minute)
		mustPass(t, fmt.Sprintf("%d ranks", n), res)
		for _, r := range res {
			if got := reported(r.out, "buckets"); got != "3" {
				t.Errorf("%d ranks: rank %d has %q buckets, want 3:\n%s", n, r.rank, got, r.out)
			}
		}
	}
}

func reducerWorker(t *testing.T, _ string, env dist.Env) {
	g := join(t, env, 20*time.Second)
	defer g.Close()
	n, r := float32(env.WorldSize), float32(env.Rank)
	s := n * (n + 1) / 2

	param := func(size int) *torch.Tensor {
		p, err := torch.Zeros([]int64{int64(size)}, torch.Options{DType: torch.Float32})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.SetRequiresGrad(true); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// 12, 16, 20 and 8 bytes with 16-byte buckets, in reverse order: the
	// unused parameter (8) and p2 (20) fill the first bucket, p1 (16) the
	// second and p0 the third.
	p0, p1, p2, unused := param(3), param(4), param(5), param(2)
	params := []*torch.Tensor{p0, p1, p2, unused}
	red, err := g.NewReducer(params, 16)
	if err != nil {
		t.Fatalf("NewReducer: %v", err)
	}
	defer red.Free()
	report("buckets", red.Buckets())

	// loss = sum_i c_i * p_i with rank-dependent c: d loss/d p = c.
	lossOf := func(scale float32) *torch.Tensor {
		var loss *torch.Tensor
		for i, p := range []*torch.Tensor{p0, p1, p2} {
			c := make([]float32, p.Numel())
			for j := range c {
				c[j] = scale * float32(i*10+j+1) * (r + 1)
			}
			term, err := p.Mul(f32(t, c, int64(len(c))))
			if err != nil {
				t.Fatal(err)
			}
			if term, err = term.Sum(); err != nil {
				t.Fatal(err)
			}
			if loss == nil {
				loss = term
			} else if loss, err = loss.Add(term); err != nil {
				t.Fatal(err)
			}
		}
		return loss
	}
	// Two backwards between Prepare and Finish are an error (on every
	// rank alike here), and the reducer recovers at the next Prepare.
	if err := red.Prepare(); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	loss := lossOf(1)
	if err := loss.BackwardWith(nil, true); err != nil {
		t.Fatal(err)
	}
	if err := loss.Backward(); err != nil {
		t.Fatal(err)
	}
	err = red.Finish()
	prefix := fmt.Sprintf("dist: gradient all_reduce on rank %d: in a gradient hook: parameter ", env.Rank)
	const suffix = " received a second gradient before Finish (one backward per Prepare/Finish)"
	if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.HasSuffix(err.Error(), suffix) {
		t.Errorf("Finish after two backwards: %v", err)
	}

	// Steps as training runs them: gradients zeroed, then one backward
	// inside Prepare/Finish; the last step accumulates a first backward
	// outside them (gradient accumulation), which Finish sums too.
	for step, scale := range []float32{1, 10, 100} {
		for _, p := range params {
			if err := p.ZeroGrad(); err != nil {
				t.Fatal(err)
			}
		}
		factor := scale
		if step == 2 {
			if err := lossOf(1).Backward(); err != nil {
				t.Fatalf("Backward outside Prepare/Finish: %v", err)
			}
			factor++
		}
		if err := red.Prepare(); err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		if err := lossOf(scale).Backward(); err != nil {
			t.Fatalf("Backward: %v", err)
		}
		if err := red.Finish(); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		for i, p := range []*torch.Tensor{p0, p1, p2} {
			want := make([]float32, p.Numel())
			for j := range want {
				want[j] = factor * float32(i*10+j+1) * s
			}
			gr, err := p.Grad()
			if err != nil {
				t.Fatal(err)
			}
			expect(t, fmt.Sprintf("step %d: grad of p%d", step, i), values(t, gr), want)
		}
		gr, err := unused.Grad()
		if err != nil || gr == nil {
			t.Fatalf("step %d: the unused parameter has no grad after Finish (%v)", step, err)
		}
		expect(t, fmt.Sprintf("step %d: grad of the unused parameter", step), values(t, gr), []float32{0, 0})
	}

	// Misuse is an error: Finish without Prepare, a frozen parameter.
	if err := red.Finish(); err == nil ||
		err.Error() != fmt.Sprintf("dist: gradient all_reduce on rank %d: Finish without Prepare", env.Rank) {
		t.Errorf("Finish without Prepare: %v", err)
	}
	frozen, err := torch.Zeros([]int64{2}, torch.Options{DType: torch.Float32})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.NewReducer([]*torch.Tensor{p0, frozen}, 16); err == nil ||
		err.Error() != fmt.Sprintf("dist: reducer on rank %d: parameter 1 [2] does not require grad (pass only trainable parameters)", env.Rank) {
		t.Errorf("NewReducer with a frozen parameter: %v", err)
	}
	// The reducer outlives a closed group safely.
	if err := g.Barrier(); err != nil {
		t.Fatal(err)
	}
	g.Close()
	red.Free()
}

func TestAllReduceSumGrad(t *testing.T) {
	if scenario, env, ok := worker(t); ok {
		sumGradWorker(t, scenario, env)
		return
	}
	needDist(t)
	for _, n := range []int{2, 3} {
		res := runJob(t, "sumgrad", n, localEnv(n, freePort(t)), time.Minute)
		mustPass(t, fmt.Sprintf("%d ranks", n), res)
		for _, r := range res {
			if got := reported(r.out, "checked"); got != "yes" {
				t.Errorf("%d ranks: rank %d did not run its checks:\n%s", n, r.rank, r.out)
			}
		}
	}
}

func sumGradWorker(t *testing.T, _ string, env dist.Env) {
	g := join(t, env, 20*time.Second)
	defer g.Close()
	n, r := float32(env.WorldSize), float32(env.Rank)
	s := n * (n + 1) / 2
	x := f32(t, []float32{r + 1, 2 * (r + 1)}, 2)
	if err := x.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	y, err := g.AllReduceSumGrad(x)
	if err != nil {
		t.Fatalf("AllReduceSumGrad: %v", err)
	}
	expect(t, "forward", values(t, y), []float32{s, 2 * s})
	// loss_r = sum(y * w_r), w_r = [r+1, 1]: the gradient of the sum of
	// every rank's loss with respect to x_r is sum_r w_r = [s, n].
	loss, err := y.Mul(f32(t, []float32{r + 1, 1}, 2))
	if err != nil {
		t.Fatal(err)
	}
	if loss, err = loss.Sum(); err != nil {
		t.Fatal(err)
	}
	if err := loss.Backward(); err != nil {
		t.Fatalf("Backward: %v", err)
	}
	gr, err := x.Grad()
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "x.grad", values(t, gr), []float32{s, n})
	report("checked", "yes")
}
