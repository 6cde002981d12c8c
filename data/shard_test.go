package data

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"testing"
)

// shardLoaders makes one loader per rank over d with cfg's settings.
func shardLoaders(t *testing.T, d *Dataset, cfg LoaderConfig, count int, keepTail bool) []*Loader {
	t.Helper()
	out := make([]*Loader, count)
	for r := range out {
		c := cfg
		c.Shard = Shard{Rank: r, Count: count, KeepTail: keepTail}
		l, err := NewLoader(d, c)
		if err != nil {
			t.Fatal(err)
		}
		out[r] = l
	}
	return out
}

func TestShareSizes(t *testing.T) {
	for _, tc := range []struct {
		n, count int
		want     [][2]int
	}{
		{8, 2, [][2]int{{0, 4}, {4, 8}}},
		{8, 3, [][2]int{{0, 3}, {3, 6}, {6, 8}}},
		{5, 3, [][2]int{{0, 2}, {2, 4}, {4, 5}}},
		{7, 4, [][2]int{{0, 2}, {2, 4}, {4, 6}, {6, 7}}},
		{3, 1, [][2]int{{0, 3}}},
	} {
		for r, w := range tc.want {
			if lo, hi := share(tc.n, r, tc.count); lo != w[0] || hi != w[1] {
				t.Errorf("share(%d, rank %d, %d ranks) = [%d, %d), want [%d, %d)", tc.n, r, tc.count, lo, hi, w[0], w[1])
			}
		}
	}
}

// TestShardSeesEveryImageOnce checks that across ranks every training
// image is seen exactly once per epoch when no final global batch is
// dropped, that the ranks take the same number of steps, and that a final
// global batch smaller than the rank count is dropped whole (and kept,
// unevenly, with KeepTail).
func TestShardSeesEveryImageOnce(t *testing.T) {
	for _, tc := range []struct {
		n, batch, count int
		steps           int
		dropped         int // samples of the final global batch dropped
	}{
		{48, 8, 2, 6, 0}, // the count divides batch and dataset
		{48, 8, 4, 6, 0},
		{37, 8, 2, 5, 0}, // final global batch of 5 split 3+2
		{37, 8, 3, 5, 0}, // 5 split 2+2+1
		{37, 8, 5, 5, 0}, // 5 split 1+1+1+1+1
		{37, 8, 6, 4, 5}, // 5 < 6 ranks: dropped
		{33, 8, 2, 4, 1}, // 1 < 2 ranks: dropped
	} {
		t.Run(fmt.Sprintf("n%d_b%d_ranks%d", tc.n, tc.batch, tc.count), func(t *testing.T) {
			d := memDataset(tc.n, 4, 12, 10)
			cfg := LoaderConfig{BatchSize: tc.batch, Workers: 2, Shuffle: true, Seed: 7, Normalize: NormNone}
			loaders := shardLoaders(t, d, cfg, tc.count, false)
			for epoch := 0; epoch < 2; epoch++ {
				order := loaders[0].Order(epoch)
				var seen []int
				for r, l := range loaders {
					if got := l.StepsPerEpoch(); got != tc.steps {
						t.Fatalf("rank %d: %d steps per epoch, want %d", r, got, tc.steps)
					}
					bs := epochBatchesFull(t, l, epoch)
					if len(bs) != tc.steps {
						t.Fatalf("rank %d: %d batches, want %d", r, len(bs), tc.steps)
					}
					for s, b := range bs {
						glo := s * tc.batch
						gn := min(tc.batch, tc.n-glo)
						lo, hi := share(gn, r, tc.count)
						if b.GlobalN != gn || b.Offset != lo || b.N != hi-lo {
							t.Fatalf("rank %d step %d: N %d GlobalN %d Offset %d, want %d %d %d", r, s, b.N, b.GlobalN, b.Offset, hi-lo, gn, lo)
						}
						if want := order[glo+lo : glo+hi]; !slices.Equal(b.Indices, want) {
							t.Fatalf("rank %d step %d: indices %v, want %v", r, s, b.Indices, want)
						}
						seen = append(seen, b.Indices...)
					}
				}
				slices.Sort(seen)
				want := slices.Clone(order[:tc.n-tc.dropped])
				slices.Sort(want)
				if !slices.Equal(seen, want) {
					t.Fatalf("epoch %d: the ranks saw %v, want %v", epoch, seen, want)
				}
				if tc.dropped == 0 {
					for i, v := range seen {
						if v != i {
							t.Fatalf("epoch %d: image %d not seen exactly once: %v", epoch, i, seen)
						}
					}
				}
			}
			// KeepTail sees every image once; the ranks with no share of
			// the final global batch take one step fewer.
			tails := shardLoaders(t, d, cfg, tc.count, true)
			var seen []int
			for r, l := range tails {
				steps := (tc.n + tc.batch - 1) / tc.batch
				if lo, hi := share(tc.n%tc.batch, r, tc.count); tc.n%tc.batch != 0 && lo == hi {
					steps--
				}
				if got := l.StepsPerEpoch(); got != steps {
					t.Fatalf("KeepTail rank %d: %d steps, want %d", r, got, steps)
				}
				for _, b := range epochBatchesFull(t, l, 0) {
					seen = append(seen, b.Indices...)
				}
			}
			slices.Sort(seen)
			for i, v := range seen {
				if v != i || len(seen) != tc.n {
					t.Fatalf("KeepTail: images seen %v, want each of %d once", seen, tc.n)
				}
			}
		})
	}
}

// epochBatchesFull is epochBatches keeping the global fields.
func epochBatchesFull(t *testing.T, l *Loader, epoch int) []Batch {
	t.Helper()
	var out []Batch
	for b, err := range l.All(t.Context(), epoch, 0) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Batch{N: b.N, C: b.C, H: b.H, W: b.W, Epoch: b.Epoch, Step: b.Step,
			GlobalN: b.GlobalN, Offset: b.Offset, GlobalCounts: slices.Clone(b.GlobalCounts),
			Images:  append([]float32(nil), b.Images[:b.N*b.C*b.H*b.W]...),
			Labels:  append([]int64(nil), b.Labels[:b.N]...),
			Indices: append([]int(nil), b.Indices[:b.N]...)})
		b.Release()
	}
	return out
}

// TestShardUnionIsSingleProcessBatch checks that the ranks' batches of a
// step, concatenated in rank order, are the single-process batch of that
// step: the same samples in the same order with the same augmentation
// draws, and that every rank knows the global batch's size and label
// counts. With oversampling too, and from a mid-epoch start.
func TestShardUnionIsSingleProcessBatch(t *testing.T) {
	d := memDataset(37, 4, 24, 20)
	for _, oversample := range []bool{false, true} {
		cfg := trainConfig(3)
		cfg.Oversample = oversample
		single, err := NewLoader(d, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, count := range []int{2, 3} {
			loaders := shardLoaders(t, d, cfg, count, false)
			for epoch := 0; epoch < 2; epoch++ {
				want := epochBatchesFull(t, single, epoch)
				parts := make([][]Batch, count)
				for r, l := range loaders {
					parts[r] = epochBatchesFull(t, l, epoch)
					if len(parts[r]) != len(want) {
						t.Fatalf("rank %d: %d steps, single process %d", r, len(parts[r]), len(want))
					}
				}
				for s, w := range want {
					var images []float32
					var labels []int64
					var indices []int
					for r := range parts {
						b := parts[r][s]
						if b.GlobalN != w.N || !slices.Equal(b.GlobalCounts, w.GlobalCounts) {
							t.Fatalf("oversample %v, %d ranks, rank %d step %d: global batch %d with counts %v, want %d with %v", oversample, count, r, s, b.GlobalN, b.GlobalCounts, w.N, w.GlobalCounts)
						}
						images = append(images, b.Images...)
						labels = append(labels, b.Labels...)
						indices = append(indices, b.Indices...)
					}
					if !slices.Equal(indices, w.Indices) || !slices.Equal(labels, w.Labels) || !slices.Equal(images, w.Images) {
						t.Fatalf("oversample %v, %d ranks, epoch %d step %d: the ranks' batches differ from the single-process batch", oversample, count, epoch, s)
					}
					counts := make([]int, len(d.Classes))
					for _, y := range w.Labels {
						counts[y]++
					}
					if !slices.Equal(counts, w.GlobalCounts) {
						t.Fatalf("single process step %d: GlobalCounts %v, want %v", s, w.GlobalCounts, counts)
					}
				}
			}
			// A mid-epoch start serves the same shares.
			for r, l := range loaders {
				full := epochBatchesFull(t, l, 1)
				from := epochBatches(t, l, 1, 2)
				for k := range from {
					if !reflect.DeepEqual(from[k].Images, full[k+2].Images) || !slices.Equal(from[k].Indices, full[k+2].Indices) {
						t.Fatalf("rank %d: step %d started mid-epoch differs", r, k+2)
					}
				}
			}
		}
	}
}

func TestShardErrors(t *testing.T) {
	d := memDataset(10, 2, 8, 8)
	for _, tc := range []struct {
		cfg  LoaderConfig
		want string
	}{
		{LoaderConfig{BatchSize: 4, Shard: Shard{Rank: 2, Count: 2}}, "loader: shard rank 2 is outside [0, 2)"},
		{LoaderConfig{BatchSize: 4, Shard: Shard{Rank: -1, Count: 2}}, "loader: shard rank -1 is outside [0, 2)"},
		{LoaderConfig{BatchSize: 4, Shard: Shard{Rank: 1}}, "loader: shard rank 1 is outside [0, 1)"},
		{LoaderConfig{BatchSize: 2, Shard: Shard{Rank: 0, Count: 3}}, "loader: batch size 2 is smaller than the 3 ranks it is split across (every rank needs a sample per step)"},
	} {
		if _, err := NewLoader(d, tc.cfg); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: error %v, want %q", tc.cfg.Shard, err, tc.want)
		}
	}
}

// TestRenderIsTheRanksSample: every rank renders any sample of a step's
// global batch, in any order of positions, exactly as the single-process
// batch holds it (augmentation and oversampling on, the final global batch
// short), and bad requests are errors.
func TestRenderIsTheRanksSample(t *testing.T) {
	d := memDataset(37, 4, 24, 20)
	for _, oversample := range []bool{false, true} {
		cfg := trainConfig(3)
		cfg.Oversample = oversample
		single, err := NewLoader(d, cfg)
		if err != nil {
			t.Fatal(err)
		}
		want := epochBatchesFull(t, single, 1)
		chw := 3 * 24 * 20
		for r, l := range shardLoaders(t, d, cfg, 3, false) {
			it, err := l.Epoch(t.Context(), 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			s := 0
			for ; ; s++ {
				b, err := it.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				w := want[s]
				gs := make([]int, b.GlobalN)
				for k := range gs {
					gs[k] = b.GlobalN - 1 - k // the reversed global batch
				}
				images, labels := make([]float32, len(gs)*chw), make([]int64, len(gs))
				if err := it.Render(images, labels, b, gs); err != nil {
					t.Fatal(err)
				}
				for k, g := range gs {
					if labels[k] != w.Labels[g] || !slices.Equal(images[k*chw:(k+1)*chw], w.Images[g*chw:(g+1)*chw]) {
						t.Fatalf("oversample %v, rank %d step %d: rendered position %d differs from the single-process batch", oversample, r, s, g)
					}
				}
				if err := it.Render(images[:chw], labels[:1], b, []int{b.GlobalN}); err == nil || err.Error() != fmt.Sprintf("loader: render: position %d is outside the global batch of %d", b.GlobalN, b.GlobalN) {
					t.Errorf("position past the batch: %v", err)
				}
				if err := it.Render(images[:chw], labels[:2], b, []int{0, 1}); err == nil {
					t.Error("a destination too short is accepted")
				}
				b.Release()
			}
			it.Close()
			if s != len(want) {
				t.Fatalf("rank %d: %d steps, single process %d", r, s, len(want))
			}
		}
	}
}
