# fertorch build. `make test` sets everything up on Debian and runs the tests;
# `make demo` runs the whole flow on a generated dataset; `make train` is the
# real run (for a CUDA box). Set LIBTORCH=/path/to/libtorch to build against an
# official libtorch or the one inside a PyTorch wheel instead of Debian's.

SHELL := /bin/bash
GO ?= go
CXX ?= g++

# ---- libtorch location and flags -------------------------------------------
# LIBTORCH may be an official libtorch download or a PyTorch wheel's torch/
# folder: both have include/, include/torch/csrc/api/include, lib/ and
# share/cmake/Torch/TorchConfig.cmake.
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
ifneq ($(strip $(LIBTORCH)),)
  TORCH_INCROOT := $(LIBTORCH)/include
  TORCH_INCLUDES := -isystem $(LIBTORCH)/include -isystem $(LIBTORCH)/include/torch/csrc/api/include
  TORCH_LIBDIR := $(LIBTORCH)/lib
  TORCH_CMAKE := $(LIBTORCH)/share/cmake/Torch/TorchConfig.cmake
else
  TORCH_INCROOT := /usr/include
  TORCH_INCLUDES := -isystem /usr/include/torch/csrc/api/include
  TORCH_LIBDIR := /usr/lib/$(MULTIARCH)
  TORCH_CMAKE := /usr/lib/$(MULTIARCH)/cmake/Torch/TorchConfig.cmake
endif
# The libstdc++ ABI must match the one libtorch was built with. TorchConfig.cmake
# states it (=0 in PyTorch wheels before 2.7); releases built only with the
# cxx11 ABI may leave the line out, so then libc10's exported symbols decide
# (std::__cxx11 names mean the cxx11 ABI), and the cxx11 ABI is the default.
TORCH_ABI := $(shell grep -o -m1 '_GLIBCXX_USE_CXX11_ABI=[01]' $(TORCH_CMAKE) 2>/dev/null)
ifeq ($(TORCH_ABI),)
  TORCH_ABI := $(shell syms=$$(nm -D --defined-only $(TORCH_LIBDIR)/libc10.so 2>/dev/null) && [ -n "$$syms" ] && \
    { if printf '%s\n' "$$syms" | grep -q __cxx11; then echo _GLIBCXX_USE_CXX11_ABI=1; else echo _GLIBCXX_USE_CXX11_ABI=0; fi; } || \
    echo _GLIBCXX_USE_CXX11_ABI=1)
endif
# Newer libtorch headers stop with #error below C++20; the shim is C++17 and
# C++20 clean. The later -std on the compiler's command line wins.
TORCH_STD := $(if $(shell grep -lsE 'C\+\+20 or later|__cplusplus < 202002L' $(TORCH_INCROOT)/ATen/ATen.h $(TORCH_INCROOT)/torch/csrc/api/include/torch/all.h),c++20,c++17)
TORCH_INCLUDES += $(if $(filter c++20,$(TORCH_STD)),-std=c++20)
# CUDA builds ship libtorch_cuda/libc10_cuda; link them (no-as-needed) so their
# kernels register even though the shim calls nothing in them directly.
TORCH_CUDA := $(if $(wildcard $(TORCH_LIBDIR)/libtorch_cuda.so),1,0)
TORCH_CUDA_LIBS := $(if $(filter 1,$(TORCH_CUDA)),-ltorch_cuda -lc10_cuda)
TORCH_LIBS := -L$(TORCH_LIBDIR) -Wl,-rpath,$(TORCH_LIBDIR) -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 $(TORCH_CUDA_LIBS) -Wl,--as-needed

CXXFLAGS ?= -O2 -g0
SHIM_FLAGS := -std=c++17 -fPIC -Wall -Wextra -Wno-unused-parameter -D$(TORCH_ABI) -DFER_WITH_CUDA=$(TORCH_CUDA) $(TORCH_INCLUDES)

# Distributed training (cgo/fertorch_dist.cpp) needs libtorch's c10d headers
# and gloo's (Debian: libgloo-dev); without them the unit is built with
# FER_WITH_DIST=0 and says so at run time. NCCL also needs a CUDA libtorch,
# nccl.h and the CUDA runtime headers (Debian: libnccl-dev, nvidia-cuda-dev);
# without them it is left out and fer_dist_has_nccl() returns 0.
DIST_C10D := $(TORCH_INCROOT)/torch/csrc/distributed/c10d/ProcessGroupGloo.hpp
DIST_GLOO := $(firstword $(wildcard $(TORCH_INCROOT)/gloo/config.h /usr/include/gloo/config.h))
# A PyTorch wheel's torch/ folder has them beside it, in the nvidia-* wheels
# (site-packages/nvidia/nccl/include, nvidia/cuda_runtime/include).
DIST_NCCL_H := $(firstword $(wildcard $(TORCH_INCROOT)/nccl.h $(if $(LIBTORCH),$(LIBTORCH)/../nvidia/nccl/include/nccl.h) /usr/include/nccl.h /usr/local/cuda/include/nccl.h))
DIST_CUDA_H := $(firstword $(wildcard $(if $(LIBTORCH),$(LIBTORCH)/../nvidia/cuda_runtime/include/cuda_runtime_api.h) /usr/include/cuda_runtime_api.h /usr/local/cuda/include/cuda_runtime_api.h))
ifeq ($(wildcard $(DIST_C10D)),)
  DIST_FLAGS := -DFER_WITH_DIST=0 -DFER_DIST_MISSING='"$(DIST_C10D) not found"'
else ifeq ($(DIST_GLOO),)
  DIST_FLAGS := -DFER_WITH_DIST=0 -DFER_DIST_MISSING='"gloo/config.h not found in $(TORCH_INCROOT) or /usr/include (Debian: apt-get install libgloo-dev)"'
else
  DIST_FLAGS := -DFER_WITH_DIST=1 -DUSE_DISTRIBUTED -DUSE_C10D_GLOO
  ifeq ($(TORCH_CUDA)$(if $(DIST_NCCL_H),y)$(if $(DIST_CUDA_H),y)$(if $(wildcard $(TORCH_INCROOT)/torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp),y),1yyy)
    DIST_FLAGS += -DUSE_C10D_NCCL $(sort $(foreach h,$(DIST_NCCL_H) $(DIST_CUDA_H),$(if $(filter /usr/include/%,$(h)),,-isystem $(dir $(h)))))
  endif
endif

BUILD := build
SHIM := $(BUILD)/libfertorch.so
SHIM_OBJS := $(BUILD)/fertorch.o $(BUILD)/fertorch_dist.o
BINARIES := $(BUILD)/fer

.PHONY: all shim build deps test test-short test-libtorch2 test-cuda-build vet fmt lint fuzz bench bench-ops bench-data bench-train bench-weights bench-serve bench-dist bench-onednn demo train clean help

all: build

help:
	@echo "make test         install what is missing (apt, Go modules), build, vet and run all tests"
	@echo "make demo         generate a small synthetic dataset and run prepare/train/eval/predict on it (CPU)"
	@echo "make train        real run: fetch data and weights, prepare, train VGG16, eval (CUDA box)"
	@echo "make build        build $(SHIM) and the fer command into $(BUILD)/"
	@echo "make test-libtorch2  build the shim and run the tests against libtorch 2.x (Debian trixie root; root needed)"
	@echo "make test-cuda-build  build, link and load the shim against Debian's CUDA libtorch 2.6, without a GPU (root needed)"
	@echo "make bench        all benchmarks (bench-ops, bench-data, bench-weights, bench-train, bench-serve, bench-dist)"
	@echo "make bench-onednn  PyTorch's oneDNN convolutions against its native ones, per instruction-set cap"
	@echo "LIBTORCH=/path    build against that libtorch instead of Debian's libtorch-dev"

deps:
	scripts/install-libtorch.sh --with-test-tools
	$(GO) mod download

shim: $(SHIM)

$(BUILD)/fertorch.o: cgo/fertorch.cpp cgo/fertorch.h cgo/fertorch_internal.hpp Makefile
	@mkdir -p $(BUILD)
	$(CXX) $(CXXFLAGS) $(SHIM_FLAGS) -c -o $@ cgo/fertorch.cpp

$(BUILD)/fertorch_dist.o: cgo/fertorch_dist.cpp cgo/fertorch_dist.h cgo/fertorch.h cgo/fertorch_internal.hpp Makefile
	@mkdir -p $(BUILD)
	$(CXX) $(CXXFLAGS) $(SHIM_FLAGS) $(DIST_FLAGS) -c -o $@ cgo/fertorch_dist.cpp

$(SHIM): $(SHIM_OBJS)
	$(CXX) $(CXXFLAGS) -shared -o $@ $(SHIM_OBJS) $(TORCH_LIBS) -ldl

build: $(SHIM)
	$(GO) build -o $(BUILD)/ ./cmd/...

vet: $(SHIM)
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

fmt:
	gofmt -w $$(find . -name '*.go' -not -path './build/*')

# Packages that do not use libtorch also run under the race detector.
PURE_DIRS := data checkpoint launch torch/tensorfile train/metrics train/plot internal/atomicfile internal/choice
PURE_PKGS = $(foreach d,$(PURE_DIRS),$(if $(wildcard $(d)/*.go),./$(d)/...))

# internal/testlog runs go test and prints its usual output, then the
# slowest tests.
test: deps $(SHIM) vet
	GO=$(GO) $(GO) run ./internal/testlog -count=1 -timeout 30m ./...
	$(if $(strip $(PURE_PKGS)),$(GO) test -count=1 -race $(PURE_PKGS))
	$(MAKE) fuzz

test-short: $(SHIM)
	$(GO) test -short -count=1 ./...

# The same tests against libtorch 2.x and PyTorch 2.x peers, in a Debian
# trixie root made and cached by the script (root needed; see its --help).
test-libtorch2:
	scripts/test-libtorch2.sh

# The shim built, linked and loaded against a CUDA libtorch (Debian trixie's
# libtorch-cuda 2.6) without a GPU, in a Debian root made and cached by the
# script (root needed; see its --help).
test-cuda-build:
	scripts/test-cuda-build.sh

FUZZTIME ?= 5s
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh

bench: bench-ops bench-data bench-weights bench-train bench-serve bench-dist

bench-ops: $(SHIM)
	$(GO) run ./bench/ops

bench-data:
	$(GO) run ./bench/data

bench-weights:
	$(GO) run ./bench/weights

bench-train: build
	$(GO) run ./bench/train

bench-serve: build
	$(GO) run ./bench/serve

bench-dist: build
	$(GO) run ./bench/dist

# PyTorch's oneDNN convolutions against its native ones, once per oneDNN
# instruction-set cap (the peer fer's --onednn auto check stands for).
bench-onednn:
	for isa in "" AVX2 AVX; do ONEDNN_MAX_CPU_ISA=$$isa /usr/bin/python3 bench/onednn/sweep.py || exit 1; done

demo: build
	$(GO) build -o $(BUILD)/ ./internal/pagedriver/pageshot
	scripts/demo.sh

train: build
	scripts/train.sh

clean:
	rm -rf $(BUILD)
