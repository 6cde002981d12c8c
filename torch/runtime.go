package torch

/*
#include "fertorch.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
)

func init() {
	// libtorch may start with a single intra-op thread; default to every
	// core unless the user set OMP_NUM_THREADS or FERTORCH_NUM_THREADS.
	n := runtime.NumCPU()
	for _, env := range []string{"FERTORCH_NUM_THREADS", "OMP_NUM_THREADS"} {
		if v, err := strconv.Atoi(os.Getenv(env)); err == nil && v > 0 {
			n = v
			break
		}
	}
	_ = SetNumThreads(n)
}

// SetNumThreads sets libtorch's intra-op thread count (default: all cores).
func SetNumThreads(n int) error {
	return takeError("set_num_threads", C.fer_set_num_threads(C.int(n)))
}

// NumThreads is libtorch's intra-op thread count.
func NumThreads() int { return int(C.fer_get_num_threads()) }

// ManualSeed seeds libtorch's generators (CPU and every CUDA device): it
// fixes parameter initialisation, dropout masks and Rand/Randn.
func ManualSeed(seed uint64) error {
	return takeError("manual_seed", C.fer_manual_seed(C.uint64_t(seed)))
}

// CUDAIsAvailable reports whether libtorch can use a CUDA device.
func CUDAIsAvailable() bool { return C.fer_cuda_is_available() != 0 }

// CUDADeviceCount is the number of visible CUDA devices.
func CUDADeviceCount() int { return int(C.fer_cuda_device_count()) }

// CuDNNIsAvailable reports whether cuDNN can be used.
func CuDNNIsAvailable() bool { return C.fer_cudnn_is_available() != 0 }

// Synchronize waits for all work queued on a CUDA device (no-op on CPU).
func Synchronize(dev Device) error {
	if !dev.IsCUDA() {
		return nil
	}
	return takeError("cuda_synchronize", C.fer_cuda_synchronize(C.int(dev.Index)))
}

// SetCuDNNBenchmark lets cuDNN time several convolution algorithms and keep
// the fastest (worth it when input shapes do not change).
func SetCuDNNBenchmark(on bool) { C.fer_set_cudnn_benchmark(cbool(on)) }

// SetDeterministic asks libtorch for deterministic algorithms where they
// exist (warning, not failing, where they do not).
func SetDeterministic(on bool) error {
	return takeError("set_deterministic", C.fer_set_deterministic(cbool(on)))
}

// Autocast runs fn with automatic mixed precision on the device type: ops
// that benefit run in dtype (Float16 or BFloat16), the rest in float32, as
// torch.autocast does. The goroutine stays on one OS thread while fn runs,
// because autocast state is per thread.
func Autocast(dev Device, dtype DType, fn func() error) error {
	if dtype != Float16 && dtype != BFloat16 {
		return fmt.Errorf("torch: autocast: dtype must be float16 or bfloat16, got %s", dtype)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dt := C.int(dev.Type)
	if C.fer_autocast_enabled(dt) != 0 {
		return fn() // already inside an autocast region
	}
	if err := takeError("autocast", C.fer_autocast_set(dt, 1, C.int(dtype))); err != nil {
		return err
	}
	defer C.fer_autocast_set(dt, 0, C.int(dtype))
	return fn()
}
