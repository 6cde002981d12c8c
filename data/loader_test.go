package data

import (
	"context"
	"errors"
	"io"
	"math"
	"reflect"
	"runtime"
	"testing"
	"time"
)

// memDataset is a decoded dataset of n synthetic images (some grayscale).
func memDataset(n, classes, h, w int) *Dataset {
	d := &Dataset{height: h, width: w}
	for c := 0; c < classes; c++ {
		d.Classes = append(d.Classes, string(rune('a'+c)))
	}
	for i := 0; i < n; i++ {
		c := 3
		if i%3 == 0 {
			c = 1
		}
		im := parityInput(h, w, c)
		for k := range im.Pix {
			im.Pix[k] += uint8(i * 13)
		}
		label := i % classes
		if i%5 == 0 {
			label = 0 // class 0 is the common one
		}
		d.Samples = append(d.Samples, Sample{Path: string(rune('A'+i%26)) + ".png", Label: label})
		d.images = append(d.images, im)
	}
	return d
}

// epochBatches collects an epoch's batches (copied) from step start on.
func epochBatches(t *testing.T, l *Loader, epoch, start int) []Batch {
	t.Helper()
	var out []Batch
	for b, err := range l.All(context.Background(), epoch, start) {
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Images) != b.N*b.C*b.H*b.W || len(b.Labels) != b.N || len(b.Indices) != b.N || b.C != 3 {
			t.Fatalf("batch of %d with %d values, %d labels, %d indices, C=%d", b.N, len(b.Images), len(b.Labels), len(b.Indices), b.C)
		}
		c := Batch{N: b.N, C: b.C, H: b.H, W: b.W, Epoch: b.Epoch, Step: b.Step,
			Images:  append([]float32(nil), b.Images[:b.N*b.C*b.H*b.W]...),
			Labels:  append([]int64(nil), b.Labels[:b.N]...),
			Indices: append([]int(nil), b.Indices[:b.N]...)}
		out = append(out, c)
		b.Release()
	}
	return out
}

func trainConfig(workers int) LoaderConfig {
	return LoaderConfig{BatchSize: 8, Workers: workers, Prefetch: 3, Shuffle: true, Seed: 2024,
		Augment: KerasTutorialAugment(), Normalize: NormImageNet}
}

func TestLoaderDeterministicAcrossWorkers(t *testing.T) {
	d := memDataset(37, 4, 48, 40)
	l1, err := NewLoader(d, trainConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	l8, _ := NewLoader(d, trainConfig(8))
	for epoch := 0; epoch < 2; epoch++ {
		a, b := epochBatches(t, l1, epoch, 0), epochBatches(t, l8, epoch, 0)
		if len(a) != 5 || len(b) != 5 {
			t.Fatalf("%d and %d batches, want 5", len(a), len(b))
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("epoch %d: 1 and 8 workers give different batches", epoch)
		}
		if a[4].N != 5 {
			t.Fatalf("last batch has %d samples, want 5", a[4].N)
		}
		seen := map[int]bool{}
		for s, bt := range a {
			if bt.Step != s || bt.Epoch != epoch {
				t.Fatalf("batch %d says step %d epoch %d", s, bt.Step, bt.Epoch)
			}
			for j, idx := range bt.Indices {
				seen[idx] = true
				if bt.Labels[j] != int64(d.Samples[idx].Label) {
					t.Fatalf("label %d for sample %d, want %d", bt.Labels[j], idx, d.Samples[idx].Label)
				}
			}
		}
		if len(seen) != 37 {
			t.Fatalf("epoch covers %d samples, want 37", len(seen))
		}
	}
	e0, e1 := epochBatches(t, l1, 0, 0), epochBatches(t, l1, 1, 0)
	if reflect.DeepEqual(e0[0].Indices, e1[0].Indices) || reflect.DeepEqual(e0[0].Images, e1[0].Images) {
		t.Fatal("two epochs have the same order or augmentation")
	}
	// Another seed gives other batches.
	cfg := trainConfig(2)
	cfg.Seed = 7
	l7, _ := NewLoader(d, cfg)
	if reflect.DeepEqual(epochBatches(t, l7, 0, 0)[0].Images, e0[0].Images) {
		t.Fatal("seed does not change the batches")
	}
}

func TestLoaderResumeMidEpoch(t *testing.T) {
	d := memDataset(37, 4, 32, 32)
	l, _ := NewLoader(d, trainConfig(3))
	full := epochBatches(t, l, 3, 0)
	for _, k := range []int{1, 3, 4, 5} {
		part := epochBatches(t, l, 3, k)
		if !reflect.DeepEqual(part, full[k:]) && !(len(part) == 0 && k == len(full)) {
			t.Fatalf("resuming at step %d differs from the uninterrupted epoch", k)
		}
	}
	if _, err := l.Epoch(context.Background(), 3, 6); err == nil {
		t.Fatal("start step past the end accepted")
	}
	// One sample alone matches its place in the batch.
	dst := make([]float32, 3*32*32)
	b := full[2]
	if err := l.Sample(dst, 3, 2*8+1, b.Indices[1]); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dst, b.Images[3*32*32:2*3*32*32]) {
		t.Fatal("Sample differs from the batch")
	}
}

func TestLoaderEvalAndSteps(t *testing.T) {
	d := memDataset(20, 3, 16, 16)
	for _, tc := range []struct {
		bs       int
		dropLast bool
		steps    int
	}{{8, false, 3}, {8, true, 2}, {20, true, 1}, {21, true, 0}, {1, false, 20}} {
		l, err := NewLoader(d, LoaderConfig{BatchSize: tc.bs, DropLast: tc.dropLast})
		if err != nil {
			t.Fatal(err)
		}
		if got := l.StepsPerEpoch(); got != tc.steps {
			t.Errorf("batch %d dropLast %v: %d steps, want %d", tc.bs, tc.dropLast, got, tc.steps)
		}
		if got := len(epochBatches(t, l, 0, 0)); got != tc.steps {
			t.Errorf("batch %d dropLast %v: %d batches, want %d", tc.bs, tc.dropLast, got, tc.steps)
		}
	}
	// Without augmentation or shuffling, batches are the images in order,
	// normalized: rescale is float32(p)*float32(1/255); ImageNet is
	// (p/255 - mean)/std per channel.
	for _, norm := range []Normalization{NormRescale, NormImageNet, NormNone} {
		l, _ := NewLoader(d, LoaderConfig{BatchSize: 8, Normalize: norm})
		bs := epochBatches(t, l, 0, 0)
		for s, b := range bs {
			for j := 0; j < b.N; j++ {
				idx := s*8 + j
				if b.Indices[j] != idx {
					t.Fatalf("eval order: index %d at %d", b.Indices[j], idx)
				}
				im := d.images[idx]
				for _, px := range []int{0, 17, 255} {
					for k := 0; k < 3; k++ {
						p := im.Pix[px*im.C+min(k, im.C-1)]
						var want float32
						switch norm {
						case NormRescale:
							want = float32(p) * float32(1.0/255)
						case NormImageNet:
							mean, std := ImageNetStats()
							want = (float32(p)/255 - mean[k]) / std[k]
						default:
							want = float32(p)
						}
						if got := b.Images[j*3*256+k*256+px]; got != want {
							t.Fatalf("%v: sample %d pixel %d channel %d = %v, want %v", norm, idx, px, k, got, want)
						}
					}
				}
			}
		}
	}
}

func TestLoaderAugmentationDistribution(t *testing.T) {
	// The loader's draws follow Keras' distributions: check the parameters
	// it derives for many positions.
	cfg := KerasTutorialAugment()
	var flips int
	const n = 20000
	minT, maxT := math.Inf(1), math.Inf(-1)
	var sumZx float64
	for pos := 0; pos < n; pos++ {
		r := newRNG(1, streamAugment, 0, uint64(pos))
		var u [8]float64
		for k := range u {
			u[k] = r.Float64()
		}
		tr := cfg.fromUniforms(224, 224, &u)
		if tr.FlipH {
			flips++
		}
		if tr.FlipV || math.Abs(tr.Tx) > 22.4 || math.Abs(tr.Ty) > 22.4 || math.Abs(tr.Shear) > 0.01 || tr.Zx < 0.9 || tr.Zx > 1.1 || tr.Zy < 0.9 || tr.Zy > 1.1 {
			t.Fatalf("draw out of range: %+v", tr)
		}
		minT, maxT = math.Min(minT, tr.Theta), math.Max(maxT, tr.Theta)
		sumZx += tr.Zx
	}
	if f := float64(flips) / n; math.Abs(f-0.5) > 0.015 {
		t.Errorf("flip rate %.3f", f)
	}
	if minT > -19.9 || maxT < 19.9 || minT < -20 || maxT > 20 {
		t.Errorf("theta range [%.2f, %.2f]", minT, maxT)
	}
	if m := sumZx / n; math.Abs(m-1) > 0.002 {
		t.Errorf("mean zx %.4f", m)
	}
}

func TestLoaderOversampling(t *testing.T) {
	d := memDataset(60, 3, 8, 8)
	counts := d.Counts()
	cfg := LoaderConfig{BatchSize: 10, Oversample: true, Seed: 3, Workers: 2}
	l, err := NewLoader(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := ClassWeights(counts, DefaultWeightCap)
	got := make([]float64, 3)
	const epochs = 200
	for e := 0; e < epochs; e++ {
		for _, idx := range l.Order(e) {
			got[d.Samples[idx].Label]++
		}
	}
	var z float64
	for c := range counts {
		z += float64(counts[c]) * w[c]
	}
	for c := range counts {
		want := float64(counts[c]) * w[c] / z
		frac := got[c] / (epochs * 60)
		if math.Abs(frac-want) > 0.02 {
			t.Errorf("class %d drawn %.3f of the time, want %.3f (counts %v weights %v)", c, frac, want, counts, w)
		}
	}
	if reflect.DeepEqual(l.Order(0), l.Order(1)) {
		t.Fatal("oversampled epochs are identical")
	}
}

func TestLoaderCancelAndClose(t *testing.T) {
	d := memDataset(64, 2, 64, 64)
	base := runtime.NumGoroutine()
	l, _ := NewLoader(d, LoaderConfig{BatchSize: 4, Workers: 4, Prefetch: 2, Augment: KerasTutorialAugment()})
	ctx, cancel := context.WithCancel(context.Background())
	it, err := l.Epoch(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := it.Next()
	if err != nil || b.Step != 0 {
		t.Fatalf("first batch %v %v", b, err)
	}
	b.Release()
	cancel()
	var cerr error
	for i := 0; i < 20; i++ {
		if _, cerr = it.Next(); cerr != nil {
			break
		}
	}
	if !errors.Is(cerr, context.Canceled) {
		t.Fatalf("after cancel: %v, want context.Canceled", cerr)
	}
	it.Close()
	it.Close()
	// Closing early without cancelling also stops every goroutine.
	it2, _ := l.Epoch(context.Background(), 1, 0)
	it2.Next()
	it2.Close()
	if _, err := it2.Next(); err == nil {
		t.Fatal("Next after Close succeeded")
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		t.Fatalf("%d goroutines left running, %d before", n, base)
	}
	// The range form stops cleanly when the loop breaks.
	for b, err := range l.All(context.Background(), 2, 0) {
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
		break
	}
	// Reading to the end gives io.EOF.
	it3, _ := l.Epoch(context.Background(), 0, l.StepsPerEpoch())
	if _, err := it3.Next(); err != io.EOF {
		t.Fatalf("empty remainder: %v, want io.EOF", err)
	}
	it3.Close()
}

func TestLoaderSteadyStateAllocations(t *testing.T) {
	d := memDataset(16, 2, 32, 32)
	l, _ := NewLoader(d, LoaderConfig{BatchSize: 2, Workers: 2, Prefetch: 2, Shuffle: true, Augment: KerasTutorialAugment()})
	run := func(steps int) float64 {
		return testing.AllocsPerRun(5, func() {
			it, _ := l.Epoch(context.Background(), 0, l.StepsPerEpoch()-steps)
			for {
				b, err := it.Next()
				if err != nil {
					break
				}
				b.Release()
			}
			it.Close()
		})
	}
	run(8) // warm the pool
	short, long := run(2), run(8)
	t.Logf("allocations: epoch of 2 steps %.0f, of 8 steps %.0f", short, long)
	if perBatch := (long - short) / 6; perBatch > 0.5 {
		t.Fatalf("%.2f allocations per batch in steady state (epoch of 2: %.0f, of 8: %.0f)", perBatch, short, long)
	}
}

func TestNewLoaderErrors(t *testing.T) {
	if _, err := NewLoader(&Dataset{}, LoaderConfig{BatchSize: 1}); err == nil {
		t.Fatal("undecoded dataset accepted")
	}
	d := memDataset(4, 2, 8, 8)
	if _, err := NewLoader(d, LoaderConfig{}); err == nil {
		t.Fatal("batch size 0 accepted")
	}
	bad := KerasTutorialAugment()
	bad.ZoomRange = [2]float64{1.2, 0.8}
	if _, err := NewLoader(d, LoaderConfig{BatchSize: 2, Augment: bad}); err == nil {
		t.Fatal("inverted zoom range accepted")
	}
}

func TestClassWeights(t *testing.T) {
	// The reference's example: whole-dataset counts of the eight emotions.
	got := ClassWeights([]int{252, 9, 208, 21, 5696, 6868, 268, 368}, 3)
	want := []float64{3, 3, 3, 3, 1.2057584269662922, 1, 3, 3}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("weights %v, want %v", got, want)
	}
	if got := ClassWeights([]int{10, 0, 4}, 0); !reflect.DeepEqual(got, []float64{1, 0, 2.5}) {
		t.Fatalf("uncapped %v", got)
	}
	if got := ClassWeights([]int{10, 0, 4}, 2); !reflect.DeepEqual(got, []float64{1, 2, 2}) {
		t.Fatalf("capped with an empty class %v", got)
	}
}
