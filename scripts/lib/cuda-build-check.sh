#!/usr/bin/env bash
# cuda-build-check.sh: the checks of scripts/test-cuda-build.sh, run inside
# its Debian root (Debian's CUDA libtorch installed in the multiarch layout,
# the NVIDIA driver library unpacked in /opt/nvidia-driver, no GPU), from a
# copy of the working tree. Environment: TESTFLAGS (go test flags),
# CUDNN_STUB (0: no stub libcudnn.so.9), CUDNN_DIR (a folder holding a real
# libcudnn.so.9, or empty).
set -euo pipefail

say() { echo "test-cuda-build: [${SECONDS}s] $*" >&2; }
fail() {
	say "FAIL: $*"
	exit 1
}
# fer_out CMD...: runs CMD, keeping stdout and stderr in $out and the
# exit status in $status.
fer_out() {
	status=0
	out=$("$@" 2>&1) || status=$?
}

TESTFLAGS=${TESTFLAGS-}
libdir=/usr/lib/$(gcc -print-multiarch)
driverdir=/opt/nvidia-driver
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# ---- build: the Makefile's own CUDA detection, warnings as errors ----------
if ! make -B shim CXXFLAGS="-O2 -g0 -Werror" >"$log" 2>&1; then
	cat "$log" >&2
	fail "the shim does not build against libtorch-cuda $(cat /.fertorch-cuda-version) with -Werror"
fi
grep -q -- '-DFER_WITH_CUDA=1' "$log" ||
	fail "the Makefile did not detect CUDA ($libdir/libtorch_cuda.so): $(grep -- ' -shared ' "$log")"
# The distributed unit with NCCL: the Makefile asks for it when it finds
# these three headers.
if ! grep -q -- '-DUSE_C10D_NCCL' "$log"; then
	missing=""
	for h in /usr/include/nccl.h /usr/include/cuda_runtime_api.h /usr/include/torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp; do
		[ -e "$h" ] || missing+=" $h"
	done
	fail "the Makefile did not build the distributed unit with NCCL (-DUSE_C10D_NCCL; missing:${missing:- nothing}): $(grep -- 'fertorch_dist' "$log")"
fi

# ---- NEEDED entries and exported functions ---------------------------------
if ! shimcheck=$(scripts/lib/cuda-shim-check.sh build/libfertorch.so 2>&1); then
	fail "$(tail -n 1 <<<"$shimcheck" | sed 's/^cuda-shim-check: //')"
fi
while IFS= read -r line; do say "${line#cuda-shim-check: }"; done <<<"$shimcheck"

# ---- what loading needs ----------------------------------------------------
ldpath=""
if [ -n "${CUDNN_DIR:-}" ]; then
	ldpath=$CUDNN_DIR
fi
unresolved=$(LD_LIBRARY_PATH=$ldpath ldd build/libfertorch.so | awk '/not found/ { print $1 }' | sort -u | tr '\n' ' ')
if [ -n "$unresolved" ]; then
	if [ "$unresolved" != "libcudnn.so.9 " ] || [ "${CUDNN_STUB:-1}" = 0 ]; then
		fail "the shim cannot load: not found: $unresolved"
	fi
	say "libcudnn.so.9 (cuDNN 9) cannot be had here: Debian's nvidia-cudnn only downloads it from NVIDIA when installed;" \
		"the checks below load a stub libcudnn.so.9 instead (every cudnn* call fails), so they do not exercise cuDNN" \
		"(CUDNN_DIR=<folder with libcudnn.so.9> uses a real one)"
	stub=/opt/cudnn-stub
	if [ ! -e "$stub/libcudnn.so.9" ] || [ "$libdir/libtorch_cuda.so" -nt "$stub/libcudnn.so.9" ]; then
		mkdir -p "$stub"
		{
			echo '/* A stand-in libcudnn.so.9 for load checks only: every entry point fails. */'
			echo '#include <stddef.h>'
			for lib in "$libdir"/libtorch*.so "$libdir"/libc10*.so "$libdir"/libcaffe2*.so; do
				{ nm -D --undefined-only "$lib" 2>/dev/null || true; } | awk '$2 ~ /@libcudnn\.so\.9$/ { sub(/@.*/, "", $2); print $2 }'
			done | sort -u | while read -r sym; do
				case $sym in
				cudnnGetErrorString) echo "const char* $sym(int s) { (void)s; return \"cuDNN stub: not cuDNN\"; }" ;;
				cudnnGet*Version) echo "size_t $sym(void) { return 0; }" ;;
				*) echo "int $sym(void) { return 1001; /* CUDNN_STATUS_NOT_INITIALIZED */ }" ;;
				esac
			done
		} >"$stub/stub.c"
		echo 'libcudnn.so.9 { global: *; };' >"$stub/stub.map"
		gcc -shared -fPIC -o "$stub/libcudnn.so.9" -Wl,-soname,libcudnn.so.9 \
			-Wl,--version-script="$stub/stub.map" "$stub/stub.c"
	fi
	ldpath=$stub
	unresolved=$(LD_LIBRARY_PATH=$ldpath ldd -r build/libfertorch.so 2>&1 | grep -E 'not found|undefined symbol' || true)
	[ -z "$unresolved" ] || fail "the shim cannot load even with the stub: $unresolved"
fi

# ---- call the shim from C, as the Go package does --------------------------
cat >/tmp/probe.c <<'C'
#include <stdio.h>
#include "fertorch_dist.h"
int main(void) {
  printf("fer_built_with_cuda=%d fer_dist_has_nccl=%d fer_torch_version=%s fer_cxx11_abi=%d fer_cuda_runtime_version=%lld fer_cudnn_version=%lld\n",
         fer_built_with_cuda(), fer_dist_has_nccl(), fer_torch_version(), fer_cxx11_abi(),
         (long long)fer_cuda_runtime_version(), (long long)fer_cudnn_version());
  return 0;
}
C
LD_LIBRARY_PATH=$ldpath gcc -Wall -Werror -Icgo -o /tmp/probe /tmp/probe.c -Lbuild -lfertorch -Wl,-rpath,/src/build
probe=$(LD_LIBRARY_PATH=$ldpath /tmp/probe)
say "$probe"
grep -q 'fer_built_with_cuda=1 ' <<<"$probe" || fail "fer_built_with_cuda() is not 1"
grep -q 'fer_dist_has_nccl=1 ' <<<"$probe" || fail "fer_dist_has_nccl() is not 1: the shim was built without ProcessGroupNCCL"
# A group ends with ProcessGroupNCCL::shutdown() where libtorch has it (2.x).
# (nm's output is read whole: with pipefail, grep -q closing the pipe early
# would fail the check by SIGPIPE although the symbol is there.)
undefined=$(nm -D --undefined-only build/libfertorch.so)
grep -q '_ZN4c10d16ProcessGroupNCCL8shutdownEv' <<<"$undefined" ||
	fail "the shim does not call ProcessGroupNCCL::shutdown(): its groups would end by abort"
grep -q 'fer_cuda_runtime_version=0 ' <<<"$probe" && fail "libtorch's CUDA hooks are not registered (libtorch_cuda not loaded)"

# A one-rank job on CUDA device 0 (the driver library, no GPU): the store
# and the rendezvous work, then ProcessGroupNCCL's constructor, from
# libtorch_cuda, refuses for want of a GPU and the error comes back as a
# string. With a GPU the group is made and its barrier (an all-reduce) runs.
cat >/tmp/probe-nccl.c <<'C'
#include <stdio.h>
#include "fertorch_dist.h"
int main(void) {
  fer_dist_group g = NULL;
  char* err = fer_dist_init("127.0.0.1", 0, 0, 1, 1, "", "", FER_CUDA, 0, 60000, &g);
  if (err != NULL) {
    printf("fer_dist_init(FER_CUDA): %s\n", err);
    fer_free_string(err);
    return 0;
  }
  err = fer_dist_barrier(g);
  printf("fer_dist_init(FER_CUDA): a group; fer_dist_barrier: %s\n", err == NULL ? "done" : err);
  fer_free_string(err);
  fer_dist_group_free(g);
  return 0;
}
C
LD_LIBRARY_PATH=$ldpath gcc -Wall -Werror -Icgo -o /tmp/probe-nccl /tmp/probe-nccl.c -Lbuild -lfertorch -Wl,-rpath,/src/build
fer_out env LD_LIBRARY_PATH="$ldpath:$driverdir" /tmp/probe-nccl
say "$out"
[ "$status" = 0 ] || fail "fer_dist_init on a CUDA device: exit $status: $out"
grep -qE '^fer_dist_init\(FER_CUDA\): (creating the NCCL process group: |a group; fer_dist_barrier: done$)' <<<"$out" ||
	fail "fer_dist_init on a CUDA device did not reach ProcessGroupNCCL: $out"

# ---- the Go programs link against this shim --------------------------------
LD_LIBRARY_PATH=$ldpath go build -o build/ ./cmd/... || fail "the Go programs do not link against the CUDA shim"

# ---- fer without the driver library, then with it (no GPU either way) -----
check_fer() { # LABEL LD_LIBRARY_PATH WANT-in-the-error
	local label=$1 path=$2 want=$3
	fer_out env LD_LIBRARY_PATH="$path" build/fer version
	[ "$status" = 0 ] || fail "fer version ($label): exit $status: $out"
	head -n 1 <<<"$out" | grep -qE '^libtorch [0-9.]+ \(built with CUDA: true, CUDA [0-9]+\.[0-9]+, ' ||
		fail "fer version ($label) does not report a CUDA libtorch: $out"
	grep -qx 'distributed training: Gloo (CPU) and NCCL (CUDA)' <<<"$out" ||
		fail "fer version ($label) does not report NCCL: $out"
	local devices
	devices=$(grep '^CUDA devices:' <<<"$out")
	say "fer version ($label): $(head -n 1 <<<"$out"); ${devices:0:200}"
	if grep -qE '^CUDA devices: [1-9]' <<<"$devices"; then
		return 0 # a GPU is visible: nothing more to check here
	fi
	grep -qF "CUDA devices: none (" <<<"$devices" || fail "fer version ($label): $out"
	fer_out env LD_LIBRARY_PATH="$path" build/fer train --device cuda --data /nonexistent --progress off
	if [ "$status" != 1 ] || [ "$(wc -l <<<"$out")" != 1 ] || ! grep -qF "$want" <<<"$out"; then
		fail "fer train --device cuda ($label): exit $status, want 1 and one line with \"$want\": $out"
	fi
	say "fer train --device cuda ($label): $out"
}
check_fer "no driver library" "$ldpath" \
	'requested, but the NVIDIA driver library libcuda.so.1 is missing (libcuda.so.1: cannot open shared object file: No such file or directory), though libtorch 2.6.0 has CUDA 12.4: install the NVIDIA driver'
check_fer "driver library, no GPU" "$ldpath:$driverdir" \
	'requested, but the NVIDIA driver (CUDA 12.4) works but sees no GPU (cuInit: CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)), though libtorch 2.6.0 has CUDA 12.4: check nvidia-smi'

# ---- the Go tests against the CUDA build -----------------------------------
# Those of the packages that use libtorch (the others never load the shim).
export LD_LIBRARY_PATH=$ldpath:$driverdir
pkgs=$(go list -f '{{.ImportPath}} {{join .Deps " "}}' ./... |
	awk '{ for (i = 1; i <= NF; i++) if ($i ~ /\/fertorch\/torch$/) { print $1; break } }')
# shellcheck disable=SC2086 # TESTFLAGS holds several flags, pkgs several packages
if ! go test -count=1 -timeout 30m $TESTFLAGS $pkgs >"$log" 2>&1; then
	cat "$log" >&2
	fail "go test -count=1${TESTFLAGS:+ $TESTFLAGS} (the $(wc -w <<<"$pkgs") packages that use libtorch) against the CUDA build"
fi
say "go test -count=1${TESTFLAGS:+ $TESTFLAGS}: the $(grep -c '^ok' "$log") packages that use libtorch and have tests pass ($(grep -c '^?' "$log") have none)"
skip=$(go test -count=1 -run '^TestCUDAMatchesCPU$' -v ./torch 2>&1 | grep -E 'skipping|^--- ' | sed 's/^ *//' | tr '\n' ' ')
say "the CUDA-only test: $skip"
