package torch

import "testing"

func TestVersionStrings(t *testing.T) {
	for v, want := range map[int64]string{0: "", 11080: "11.8", 12040: "12.4", 12060: "12.6", 13000: "13.0"} {
		if got := cudaVersionString(v); got != want {
			t.Errorf("cudaVersionString(%d) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[int64]string{0: "", 8700: "8.7.0", 8906: "8.9.6", 90000: "9.0.0", 90100: "9.1.0", 90501: "9.5.1"} {
		if got := cudnnVersionString(v); got != want {
			t.Errorf("cudnnVersionString(%d) = %q, want %q", v, got, want)
		}
	}
}

// TestCUDAUnavailableReason: each way CUDA can be out of reach has its own
// words and remedy.
func TestCUDAUnavailableReason(t *testing.T) {
	cudaTorch := cudaEnv{torchVersion: "2.6.0", builtCUDA: true, cudaVersion: "12.4"}
	with := func(e cudaEnv, d DriverProbe, devices int) cudaEnv {
		e.driver = d
		e.torchDevices = devices
		return e
	}
	for _, c := range []struct {
		name string
		env  cudaEnv
		want string
	}{
		{"cpu-only libtorch", cudaEnv{torchVersion: "1.13.0", driver: DriverProbe{State: DriverOK, CUDA: "12.4", Devices: 1}},
			"libfertorch was built against libtorch 1.13.0 without CUDA: install a CUDA libtorch (the official download, " +
				"a CUDA PyTorch wheel or Debian's libtorch-cuda-dev) and rebuild the shim against it (make -B shim LIBTORCH=<its folder>)"},
		{"no driver library", with(cudaTorch, DriverProbe{State: DriverMissing, Detail: "libcuda.so.1: cannot open shared object file: No such file or directory"}, 0),
			"the NVIDIA driver library libcuda.so.1 is missing (libcuda.so.1: cannot open shared object file: No such file " +
				"or directory), though libtorch 2.6.0 has CUDA 12.4: install the NVIDIA driver (Debian: nvidia-driver from non-free; " +
				"Docker: run with --gpus all and the NVIDIA Container Toolkit)"},
		{"driver cannot start", with(cudaTorch, DriverProbe{State: DriverError, CUDA: "12.4", Detail: "cuInit: CUDA_ERROR_UNKNOWN (unknown error)"}, 0),
			"the NVIDIA driver (CUDA 12.4) cannot start (cuInit: CUDA_ERROR_UNKNOWN (unknown error)), though libtorch 2.6.0 has CUDA 12.4: " +
				"the driver library and the nvidia kernel module must both be installed, of the same version (check nvidia-smi; " +
				"reboot after a driver upgrade)"},
		{"no GPU", with(cudaTorch, DriverProbe{State: DriverNoDevice, CUDA: "12.4", Detail: "cuInit: CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)"}, 0),
			"the NVIDIA driver (CUDA 12.4) works but sees no GPU (cuInit: CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)), " +
				"though libtorch 2.6.0 has CUDA 12.4: check nvidia-smi, CUDA_VISIBLE_DEVICES and, in Docker, --gpus all"},
		{"driver too old", with(cudaTorch, DriverProbe{State: DriverOK, CUDA: "11.8", Devices: 2}, 0),
			"the NVIDIA driver (CUDA 11.8) sees 2 GPU(s) but libtorch 2.6.0 cannot use them: install an NVIDIA driver that supports CUDA 12.4 or newer"},
		{"usable", with(cudaTorch, DriverProbe{State: DriverOK, CUDA: "12.4", Devices: 1}, 1), ""},
	} {
		if got := cudaUnavailableReason(c.env); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}
