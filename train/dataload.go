package train

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/torch"
)

// openSplit lists one part of the prepared layout and fingerprints it.
func (r *run) openSplit(part string) (*data.Dataset, data.Fingerprint, error) {
	dir := filepath.Join(r.cfg.Data.Dir, part)
	ds, err := data.OpenDir(dir, data.DirOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w (run `fer prepare` first?)", dir, err)
	}
	if ds.Len() == 0 {
		return nil, nil, fmt.Errorf("%s: no images found in its class folders", dir)
	}
	fp, err := data.FingerprintOf(ds)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	return ds, fp, nil
}

// decodeSplit decodes one opened part of the layout at the input size.
func (r *run) decodeSplit(ctx context.Context, part string, ds *data.Dataset) (*data.Dataset, error) {
	dir := filepath.Join(r.cfg.Data.Dir, part)
	opt := data.DecodeOptions{Height: r.cfg.Model.InputSize, Width: r.cfg.Model.InputSize, Resize: r.cfg.Model.Resize, Workers: r.workers()}
	if r.cfg.Data.Cache != "" {
		// Rank 0 alone writes the cache the ranks share.
		opt.CacheFile, opt.KeepCache = r.cfg.Data.Cache+"."+part, !r.writes()
	}
	bar := newBar(r.log, r.opts.ProgressBar, ds.Len(), "decoding "+part)
	opt.Progress = func(done, total int) { bar.Set(done) }
	start := time.Now()
	dec, stats, err := ds.Decode(ctx, opt)
	bar.Finish()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	r.printf("%s: %d images (%d decoded, %d from cache) in %.1fs\n", part, dec.Len(), stats.Decoded, stats.Cached, time.Since(start).Seconds())
	if stats.CacheError != "" {
		r.printf("  pixel cache not used: %s\n", stats.CacheError)
	}
	r.skipped = append(r.skipped, dec.Skipped...)
	if dec.Len() == 0 {
		return nil, fmt.Errorf("%s: none of the images could be used", dir)
	}
	return dec, nil
}

func (r *run) loadData(ctx context.Context) error {
	c := r.cfg
	trainAll, trainFP, err := r.openSplit("train")
	if err != nil {
		return err
	}
	validAll, validFP, err := r.openSplit("valid")
	if err != nil {
		return err
	}
	if err := r.pinData(trainFP, validFP); err != nil {
		return err
	}
	trainDS, err := r.decodeSplit(ctx, "train", trainAll)
	if err != nil {
		return err
	}
	validDS, err := r.decodeSplit(ctx, "valid", validAll)
	if err != nil {
		return err
	}
	if err := sameClasses(trainDS.Classes, validDS.Classes); err != nil {
		return fmt.Errorf("%s: %w", c.Data.Dir, err)
	}
	r.classes = trainDS.Classes
	norm := c.Model.Normalization
	var aug *data.AugmentConfig
	if c.Augment.Enabled {
		aug = &c.Augment.AugmentConfig
	}
	r.train, err = data.NewLoader(trainDS, data.LoaderConfig{
		BatchSize: c.Train.BatchSize, Workers: r.workers(), Prefetch: c.Data.Prefetch,
		Shuffle: true, DropLast: c.Train.DropLast, Seed: c.Train.Seed,
		Oversample: c.Train.Oversample, WeightCap: c.Train.ClassWeightCap,
		Augment: aug, Normalize: norm, Shard: r.shard(false),
	})
	if err != nil {
		return err
	}
	r.valid, err = data.NewLoader(validDS, data.LoaderConfig{
		BatchSize: c.Train.BatchSize, Workers: r.workers(), Prefetch: c.Data.Prefetch, Normalize: norm,
		Shard: r.shard(true),
	})
	if err != nil {
		return err
	}
	counts := trainDS.Counts()
	cw := data.ClassWeights(counts, c.Train.ClassWeightCap)
	r.printf("\n%-12s %8s %8s %8s\n", "class", "train", "valid", "weight")
	vc := validDS.Counts()
	for i, name := range r.classes {
		w := "-"
		if c.Train.ClassWeights {
			w = fmt.Sprintf("%.3f", cw[i])
		}
		r.printf("%-12s %8d %8d %8s\n", name, counts[i], vc[i], w)
	}
	r.printf("\n")
	if c.Train.ClassWeights {
		r.classWeights = cw
		w32 := make([]float32, len(cw))
		for i, v := range cw {
			w32[i] = float32(v)
		}
		t, err := torch.FromFloat32s(w32, int64(len(w32)))
		if err != nil {
			return err
		}
		if r.weights, err = t.ToDevice(r.dev); err != nil {
			t.Free()
			return err
		}
		t.Free()
	}
	return nil
}

func sameClasses(a, b []string) error {
	if len(a) != len(b) {
		return fmt.Errorf("train has classes %v but valid has %v", a, b)
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Errorf("train has classes %v but valid has %v", a, b)
		}
	}
	return nil
}
