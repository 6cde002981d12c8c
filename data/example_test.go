package data_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/fertorch/fertorch/data"
)

// Prepare writes data/{train,valid,test}/<class>/ from the legend and
// prints the report.
func ExamplePrepare() {
	rep, err := data.Prepare(context.Background(), data.PrepareConfig{
		LegendFile: "facial_expressions/data/legend.csv",
		ImagesDir:  "facial_expressions/images",
		OutDir:     "data",
		Split:      data.DefaultSplitConfig(42),
		Verify:     true,
	})
	if err != nil {
		log.Fatal(err)
	}
	rep.Write(os.Stdout)
}

// A training epoch: open the layout, decode once, then iterate over
// augmented batches, resuming at a step if the run was interrupted.
func ExampleLoader() {
	ctx := context.Background()
	train, err := data.OpenDir("data/train", data.DirOptions{})
	if err != nil {
		log.Fatal(err)
	}
	decoded, stats, err := train.Decode(ctx, data.DecodeOptions{Height: 224, Width: 224, CacheFile: "data/train.cache"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d images (%d from the cache)\n", decoded.Len(), stats.Cached)
	data.WriteSkipReport(os.Stdout, decoded.Skipped)
	weights := data.ClassWeights(decoded.Counts(), data.DefaultWeightCap)
	_ = weights // for the loss
	loader, err := data.NewLoader(decoded, data.LoaderConfig{
		BatchSize: 64, Shuffle: true, Seed: 1,
		Augment:   data.KerasTutorialAugment(),
		Normalize: data.NormImageNet,
	})
	if err != nil {
		log.Fatal(err)
	}
	epoch, resumeStep := 3, 17
	for b, err := range loader.All(ctx, epoch, resumeStep) {
		if err != nil {
			log.Fatal(err)
		}
		// b.Images is N*3*224*224 float32 (NCHW), b.Labels N int64.
		b.Release()
	}
}
