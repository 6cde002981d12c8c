package torch_test

import (
	"debug/elf"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/torch"
)

// TestParseDeviceWithoutCUDALibtorch: with a CPU-only libtorch, asking for
// CUDA says so and what to install; auto falls back to the CPU.
func TestParseDeviceWithoutCUDALibtorch(t *testing.T) {
	if torch.BuiltWithCUDA() {
		t.Skip("skipping: the shim is built against a CUDA libtorch")
	}
	for _, spec := range []string{"cuda", "CUDA:1"} {
		_, err := torch.ParseDevice(spec)
		want := fmt.Sprintf("device %q requested, but libfertorch was built against libtorch %s without CUDA: install a CUDA "+
			"libtorch (the official download, a CUDA PyTorch wheel or Debian's libtorch-cuda-dev) and rebuild the shim against it "+
			"(make -B shim LIBTORCH=<its folder>), or use --device cpu", strings.ToLower(spec), torch.Version())
		if err == nil || err.Error() != want {
			t.Errorf("ParseDevice(%q):\n got %v\nwant %s", spec, err, want)
		}
	}
	if d, err := torch.ParseDevice("auto"); err != nil || d != torch.CPU() {
		t.Errorf("ParseDevice(auto) = %v, %v; want cpu", d, err)
	}
	if torch.CUDAVersion() != "" || torch.CuDNNVersion() != "" {
		t.Errorf("CPU-only libtorch reports CUDA %q, cuDNN %q", torch.CUDAVersion(), torch.CuDNNVersion())
	}
}

// TestBuildInfo: the description names the version, CUDA and the C++ ABI,
// and the ABI the shim was compiled with is the one libc10 exports.
func TestBuildInfo(t *testing.T) {
	abi := "pre-C++11 ABI"
	if torch.CXX11ABI() {
		abi = "C++11 ABI"
	}
	info := torch.BuildInfo()
	if torch.BuiltWithCUDA() {
		if !regexp.MustCompile(`^\d+\.\d+$`).MatchString(torch.CUDAVersion()) {
			t.Errorf("CUDA libtorch reports CUDA version %q", torch.CUDAVersion())
		}
		want := fmt.Sprintf("%s (built with CUDA: true, CUDA %s, ", torch.Version(), torch.CUDAVersion())
		if !strings.HasPrefix(info, want) || !strings.HasSuffix(info, ", "+abi+")") {
			t.Errorf("BuildInfo() = %q, want %q...%q", info, want, ", "+abi+")")
		}
	} else if want := fmt.Sprintf("%s (built with CUDA: false, %s)", torch.Version(), abi); info != want {
		t.Errorf("BuildInfo() = %q, want %q", info, want)
	}

	// libc10's exported names use std::__cxx11 exactly when it was built
	// with the C++11 ABI.
	lib := loadedLibrary(t, "libc10.so")
	f, err := elf.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	cxx11 := false
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF && strings.Contains(s.Name, "__cxx11") {
			cxx11 = true
			break
		}
	}
	if cxx11 != torch.CXX11ABI() {
		t.Errorf("shim compiled with C++11 ABI %v, but %s exports C++11 ABI names: %v", torch.CXX11ABI(), lib, cxx11)
	}
}

// loadedLibrary is the path of the mapped shared library whose file name
// starts with prefix.
func loadedLibrary(t *testing.T, prefix string) string {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("skipping: no /proc/self/maps: %v", err)
	}
	for _, line := range strings.Split(string(maps), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 6 {
			continue
		}
		path := fields[len(fields)-1]
		if base := path[strings.LastIndex(path, "/")+1:]; strings.HasPrefix(base, prefix) {
			return path
		}
	}
	t.Fatalf("%s is not loaded", prefix)
	return ""
}

// TestCUDAMatchesCPU needs a CUDA device: a matrix product on the GPU equals
// the CPU's, and a tensor comes back from the GPU unchanged.
func TestCUDAMatchesCPU(t *testing.T) {
	if !torch.CUDAIsAvailable() {
		t.Skipf("skipping: no CUDA device: %s", torch.CUDAUnavailableReason())
	}
	dev, err := torch.ParseDevice("cuda")
	if err != nil {
		t.Fatal(err)
	}
	scope := torch.NewScope()
	defer scope.Close()
	a, err := scope.Own(torch.FromFloat32s([]float32{1, 2, 3, 4, 5, 6}, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	b, err := scope.Own(torch.FromFloat32s([]float32{1, 0, -1, 2, 0.5, 3}, 3, 2))
	if err != nil {
		t.Fatal(err)
	}
	ga, err := scope.Own(a.ToDevice(dev))
	if err != nil {
		t.Fatal(err)
	}
	gb, err := scope.Own(b.ToDevice(dev))
	if err != nil {
		t.Fatal(err)
	}
	if ga.Device() != dev {
		t.Fatalf("tensor moved to %v is on %v", dev, ga.Device())
	}
	gc, err := scope.Own(ga.Matmul(gb))
	if err != nil {
		t.Fatal(err)
	}
	got, err := gc.HostFloat32s()
	if err != nil {
		t.Fatal(err)
	}
	// [1 2 3; 4 5 6] x [1 0; -1 2; 0.5 3] = [0.5 13; 2 28]
	want := []float32{0.5, 13, 2, 28}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("CUDA matmul = %v, want %v", got, want)
		}
	}
}
