package train

import (
	"math"
	"reflect"
	"testing"

	"github.com/fertorch/fertorch/torch"
)

// TestWeightAverage checks the moving average's arithmetic (floating
// tensors averaged, integer ones copied), the swap that evaluation uses,
// and its round trip through checkpoint entries.
func TestWeightAverage(t *testing.T) {
	mk := func(v []float32) *torch.Tensor {
		x, err := torch.FromFloat32s(v, int64(len(v)))
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	w, b := mk([]float32{1, 2}), mk([]float32{0})
	count, err := torch.FromInt64s([]int64{3}, 1)
	if err != nil {
		t.Fatal(err)
	}
	state := []torch.NamedTensor{{Name: "w", Tensor: w}, {Name: "b", Tensor: b}, {Name: "n", Tensor: count}}
	avg, err := newWeightAverage(state)
	if err != nil {
		t.Fatal(err)
	}
	defer avg.free()
	set := func(x *torch.Tensor, v []float32) {
		if err := x.CopyFrom(mk(v)); err != nil {
			t.Fatal(err)
		}
	}
	floats := func(x *torch.Tensor) []float32 {
		v, err := x.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	set(w, []float32{3, 4})
	set(b, []float32{8})
	if err := count.CopyFrom(mustInt64(t, 7)); err != nil {
		t.Fatal(err)
	}
	if err := avg.update(state, 0.5); err != nil {
		t.Fatal(err)
	}
	set(w, []float32{5, 6})
	if err := avg.update(state, 0.5); err != nil {
		t.Fatal(err)
	}
	// w: 0.5*(0.5*[1 2] + 0.5*[3 4]) + 0.5*[5 6]; b: 0.5*(0.5*0 + 0.5*8) + 0.5*8.
	if got := floats(avg.avg[0]); !reflect.DeepEqual(got, []float32{3.5, 4.5}) {
		t.Errorf("average of w %v, want [3.5 4.5]", got)
	}
	if got := floats(avg.avg[1]); !reflect.DeepEqual(got, []float32{6}) {
		t.Errorf("average of b %v, want [6]", got)
	}
	if n, err := avg.avg[2].Int64s(); err != nil || !reflect.DeepEqual(n, []int64{7}) {
		t.Errorf("the batch count %v (%v), want the current 7", n, err)
	}
	if err := avg.swap(state); err != nil {
		t.Fatal(err)
	}
	if got := floats(w); !reflect.DeepEqual(got, []float32{3.5, 4.5}) {
		t.Errorf("after a swap the model holds %v, want the average", got)
	}
	if err := avg.swap(state); err != nil {
		t.Fatal(err)
	}
	if got, a := floats(w), floats(avg.avg[0]); !reflect.DeepEqual(got, []float32{5, 6}) || !reflect.DeepEqual(a, []float32{3.5, 4.5}) {
		t.Errorf("two swaps: model %v, average %v; want them back", got, a)
	}
	// Checkpoint round trip: "ema."-prefixed entries load; others pass.
	entries, err := torch.ToEntries(append(avg.named(emaPrefix), torch.NamedTensor{Name: "w.exp_avg", Tensor: mk([]float32{9, 9})}))
	if err != nil {
		t.Fatal(err)
	}
	back, err := newWeightAverage(state)
	if err != nil {
		t.Fatal(err)
	}
	defer back.free()
	rest, err := back.load(entries)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 1 || rest[0].Name != "w.exp_avg" || !reflect.DeepEqual(floats(back.avg[0]), []float32{3.5, 4.5}) {
		t.Errorf("load: rest %v, average %v", rest, floats(back.avg[0]))
	}
	_, err = back.load(entries[1:])
	if err == nil || err.Error() != "ema: the checkpoint holds the average of 2 of the model's 3 tensors (was it saved without --ema?)" {
		t.Errorf("a checkpoint without the whole average: %v", err)
	}
	if err := avg.update(state[:2], 0.5); err == nil || err.Error() != "ema: 2 tensors, the average has 3" {
		t.Errorf("update with other tensors: %v", err)
	}
}

func mustInt64(t *testing.T, v int64) *torch.Tensor {
	t.Helper()
	x, err := torch.FromInt64s([]int64{v}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestEMADecay: with warm-up the decay is TensorFlow's
// min(decay, (1+n)/(10+n)) after n updates, and the fixed decay without.
func TestEMADecay(t *testing.T) {
	for _, c := range []struct {
		decay  float64
		warmup bool
		n      int
		want   float64
	}{
		{0.999, true, 0, 0.1},
		{0.999, true, 90, 0.91},
		{0.999, true, 8990, 0.999},
		{0.999, true, 100000, 0.999},
		{0.8, true, 26, 0.75},
		{0.8, true, 35, 0.8},
		{0.999, false, 0, 0.999},
		{0.999, false, 5000, 0.999},
	} {
		if got := emaDecay(c.decay, c.warmup, c.n); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("emaDecay(%g, %v, %d) = %g, want %g", c.decay, c.warmup, c.n, got, c.want)
		}
	}
}
