package train

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/fertorch/fertorch/torch"
)

// configureRuntime sets libtorch's thread count and device settings and
// checks that the prepared data is there, before anything is written (a
// wrong --data is the common mistake). It returns the thread count.
func (r *run) configureRuntime() (int, error) {
	c := r.cfg
	threads := c.Train.Threads
	if threads == 0 {
		threads = r.localCores()
	}
	if err := torch.SetNumThreads(threads); err != nil {
		return 0, err
	}
	note, err := c.Train.OneDNN.Apply(r.dev)
	if err != nil {
		return 0, err
	}
	if note != "" {
		r.printf("%s\n", note)
	}
	if c.Train.Precision == FP16 && !r.dev.IsCUDA() {
		return 0, fmt.Errorf("precision fp16 needs a CUDA device (the CPU supports bf16)")
	}
	if r.dev.IsCUDA() {
		torch.SetCuDNNBenchmark(true)
	}
	for _, part := range []string{"train", "valid"} {
		if _, err := os.Stat(filepath.Join(c.Data.Dir, part)); err != nil {
			return 0, fmt.Errorf("%w (run `fer prepare` first?)", err)
		}
	}
	return threads, nil
}
