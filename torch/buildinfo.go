package torch

/*
#include <stdlib.h>
#include "fertorch.h"
*/
import "C"

import (
	"fmt"
	"strings"
)

// CXX11ABI reports whether the shim was compiled with libstdc++'s C++11 ABI
// (_GLIBCXX_USE_CXX11_ABI=1), which must be libtorch's too.
func CXX11ABI() bool { return C.fer_cxx11_abi() != 0 }

// CUDAVersion is the CUDA runtime version libtorch was built with ("12.4"),
// or "" for a libtorch without CUDA.
func CUDAVersion() string { return cudaVersionString(int64(C.fer_cuda_runtime_version())) }

// CuDNNVersion is the cuDNN version libtorch was built with ("9.0.0"), or ""
// for a libtorch without cuDNN.
func CuDNNVersion() string { return cudnnVersionString(int64(C.fer_cudnn_version())) }

// BuildInfo describes the libtorch the shim was built against, for logs and
// `fer version`: "2.6.0 (built with CUDA: true, CUDA 12.4, cuDNN 9.0.0, C++11
// ABI)" or "1.13.0 (built with CUDA: false, C++11 ABI)".
func BuildInfo() string {
	parts := []string{fmt.Sprintf("built with CUDA: %v", BuiltWithCUDA())}
	if v := CUDAVersion(); v != "" {
		parts = append(parts, "CUDA "+v)
	}
	if v := CuDNNVersion(); v != "" {
		parts = append(parts, "cuDNN "+v)
	}
	parts = append(parts, abiName(CXX11ABI()))
	return fmt.Sprintf("%s (%s)", Version(), strings.Join(parts, ", "))
}

func abiName(cxx11 bool) string {
	if cxx11 {
		return "C++11 ABI"
	}
	return "pre-C++11 ABI"
}

// cudaVersionString turns CUDA's encoding (12040) into "12.4"; 0 is "".
func cudaVersionString(v int64) string {
	if v <= 0 {
		return ""
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}

// cudnnVersionString turns cuDNN's encoding into "major.minor.patch": from
// cuDNN 9 on it is major*10000+minor*100+patch (90000), before it was
// major*1000+minor*100+patch (8906); 0 is "".
func cudnnVersionString(v int64) string {
	switch {
	case v <= 0:
		return ""
	case v >= 90000:
		return fmt.Sprintf("%d.%d.%d", v/10000, v%10000/100, v%100)
	default:
		return fmt.Sprintf("%d.%d.%d", v/1000, v%1000/100, v%100)
	}
}

// DriverState is what the NVIDIA driver library says about itself.
type DriverState int

// Driver states, as fer_cuda_driver_probe reports them.
const (
	// DriverOK: the driver library loads, starts and sees at least one GPU.
	DriverOK DriverState = C.FER_DRIVER_OK
	// DriverMissing: libcuda.so.1 cannot be loaded.
	DriverMissing DriverState = C.FER_DRIVER_MISSING
	// DriverError: libcuda.so.1 loads but cannot start (cuInit fails).
	DriverError DriverState = C.FER_DRIVER_ERROR
	// DriverNoDevice: the driver starts but sees no GPU.
	DriverNoDevice DriverState = C.FER_DRIVER_NO_DEVICE
)

// DriverProbe is the NVIDIA driver library's own account of itself,
// independent of libtorch: whether it loads and starts, the newest CUDA it
// supports, and how many GPUs it sees.
type DriverProbe struct {
	State DriverState
	// CUDA is the newest CUDA version the driver supports ("12.4"), or "".
	CUDA string
	// Devices is the number of GPUs the driver sees.
	Devices int
	// Detail is the dynamic loader's or the driver's message, or "".
	Detail string
}

// ProbeCUDADriver opens the NVIDIA driver library (libcuda.so.1) and asks it
// whether it starts and sees a GPU. It works with any build of the shim.
func ProbeCUDADriver() DriverProbe {
	var version, count C.int
	var detail *C.char
	state := C.fer_cuda_driver_probe(&version, &count, &detail)
	p := DriverProbe{State: DriverState(state), CUDA: cudaVersionString(int64(version)), Devices: int(count)}
	if detail != nil {
		p.Detail = C.GoString(detail)
		C.fer_free_string(detail)
	}
	return p
}

// cudaEnv is what decides whether, and why not, CUDA can be used: how the
// shim was built, what libtorch sees, and what the driver says.
type cudaEnv struct {
	torchVersion string
	builtCUDA    bool
	cudaVersion  string // the CUDA runtime libtorch was built with
	torchDevices int    // devices libtorch sees
	driver       DriverProbe
}

func currentCUDAEnv() cudaEnv {
	e := cudaEnv{torchVersion: Version(), builtCUDA: BuiltWithCUDA()}
	if e.builtCUDA {
		e.cudaVersion = CUDAVersion()
		e.torchDevices = CUDADeviceCount()
	}
	e.driver = ProbeCUDADriver()
	return e
}

// CUDAUnavailableReason says in one sentence why no CUDA device can be used
// and what to install, or "" when libtorch sees a CUDA device. It tells a
// CPU-only libtorch from a CUDA libtorch without a usable driver, and a
// driver that is missing or cannot start from one that sees no GPU.
func CUDAUnavailableReason() string { return cudaUnavailableReason(currentCUDAEnv()) }

func cudaUnavailableReason(e cudaEnv) string {
	if !e.builtCUDA {
		return fmt.Sprintf("libfertorch was built against libtorch %s without CUDA: install a CUDA libtorch "+
			"(the official download, a CUDA PyTorch wheel or Debian's libtorch-cuda-dev) and rebuild the shim "+
			"against it (make -B shim LIBTORCH=<its folder>)", e.torchVersion)
	}
	if e.torchDevices > 0 {
		return ""
	}
	torch := "libtorch " + e.torchVersion + " has CUDA"
	if e.cudaVersion != "" {
		torch += " " + e.cudaVersion
	}
	driver := "the NVIDIA driver"
	if e.driver.CUDA != "" {
		driver += " (CUDA " + e.driver.CUDA + ")"
	}
	detail := ""
	if e.driver.Detail != "" {
		detail = " (" + e.driver.Detail + ")"
	}
	switch e.driver.State {
	case DriverMissing:
		return fmt.Sprintf("the NVIDIA driver library libcuda.so.1 is missing%s, though %s: install the NVIDIA driver "+
			"(Debian: nvidia-driver from non-free; Docker: run with --gpus all and the NVIDIA Container Toolkit)",
			detail, torch)
	case DriverError:
		return fmt.Sprintf("%s cannot start%s, though %s: the driver library and the nvidia kernel module must both "+
			"be installed, of the same version (check nvidia-smi; reboot after a driver upgrade)", driver, detail, torch)
	case DriverNoDevice:
		return fmt.Sprintf("%s works but sees no GPU%s, though %s: check nvidia-smi, CUDA_VISIBLE_DEVICES "+
			"and, in Docker, --gpus all", driver, detail, torch)
	}
	want := "a newer NVIDIA driver"
	if e.cudaVersion != "" {
		want = "an NVIDIA driver that supports CUDA " + e.cudaVersion + " or newer"
	}
	return fmt.Sprintf("%s sees %d GPU(s) but libtorch %s cannot use them: install %s", driver, e.driver.Devices, e.torchVersion, want)
}
