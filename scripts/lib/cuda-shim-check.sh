#!/usr/bin/env bash
# cuda-shim-check.sh SHIM: checks that a libfertorch.so built against a CUDA
# libtorch links libtorch's CUDA libraries and exports the whole C API, without
# loading it (no GPU, driver or cuDNN needed):
#   - libtorch_cuda.so and libc10_cuda.so are NEEDED entries (the Makefile links
#     them with --no-as-needed: the shim calls nothing in them directly, but
#     without them libtorch's CUDA kernels and hooks never load);
#   - every fer_* function cgo/fertorch.h and cgo/fertorch_dist.h declare, so
#     every one torch/ calls, is exported.
# Used by scripts/test-cuda-build.sh, scripts/gpu-check.sh and Dockerfile.cuda.
set -euo pipefail

name=cuda-shim-check
[ $# = 1 ] || {
	echo "usage: $0 path/to/libfertorch.so" >&2
	exit 2
}
shim=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
fail() {
	echo "$name: $*" >&2
	exit 1
}
[ -f "$shim" ] || fail "$shim does not exist"

needed=$(readelf -d "$shim" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ' | sed 's/ $//')
for lib in libtorch_cuda.so libc10_cuda.so; do
	grep -qE "(^| )${lib//./\\.}(\.[0-9.]+)?( |$)" <<<"$needed" ||
		fail "$lib is not among the NEEDED entries of $shim ($needed): link it with -Wl,--no-as-needed -ltorch_cuda -lc10_cuda"
done
echo "$name: NEEDED: $needed"

declared=$(grep -ohE '\bfer_[a-z0-9_]+\(' "$repo/cgo/fertorch.h" "$repo/cgo/fertorch_dist.h" | tr -d '(' | sort -u)
calls=$(grep -rhoE '\bC\.fer_[a-z0-9_]+' --include='*.go' "$repo/torch" | sed 's/^C\.//' | sort -u |
	comm -12 - <(echo "$declared"))
exported=$(nm -D --defined-only "$shim" | awk '$2 == "T" && $3 ~ /^fer_/ { print $3 }' | sort -u)
missing=$(comm -23 <(echo "$declared") <(echo "$exported") | tr '\n' ' ')
[ -z "$missing" ] || fail "declared in cgo/fertorch.h or cgo/fertorch_dist.h but not exported by $shim: $missing"
echo "$name: exports all $(wc -l <<<"$declared") fer_* functions cgo/fertorch.h and cgo/fertorch_dist.h declare ($(wc -l <<<"$calls") called from torch/)"
