#!/usr/bin/env bash
# Builds the shim against Debian's CUDA build of libtorch (libtorch-cuda-dev
# 2.6 in Debian 13 contrib: CUDA 12.4, cuDNN 9, NCCL, Gloo) and checks it the
# way a user's machine would, without needing a GPU:
#
#   - the Makefile detects CUDA in Debian's multiarch layout (LIBTORCH unset)
#     and NCCL (nccl.h and cuda_runtime_api.h in /usr/include), and the shim,
#     its distributed unit's NCCL path included, compiles with -Werror
#     (libtorch's headers stay -isystem);
#   - libtorch_cuda.so and libc10_cuda.so are NEEDED entries of the shim;
#   - it exports every fer_* function cgo/fertorch.h declares, and
#     fer_built_with_cuda() and fer_dist_has_nccl() return 1 when called from
#     C; fer_dist_init on a CUDA device gets as far as creating
#     ProcessGroupNCCL, which fails for want of a GPU;
#   - the Go programs link against it;
#   - fer version runs against it, without the NVIDIA driver library and with
#     it (libcuda1 unpacked) but no GPU, and fer train --device cuda fails with
#     the line that names each case;
#   - go test $FERTORCH_CUDA_TESTFLAGS ./... (default -short) passes against it.
#
# The Debian trixie root (main, contrib, non-free) is made once, in
# $FERTORCH_CUDA_ROOT (default /var/cache/fertorch/trixie-cuda), apart from
# test-libtorch2's because libtorch-cuda-dev conflicts with libtorch-dev.
# libtorch-cuda-2.6 depends on nvidia-cudnn, an installer that downloads cuDNN
# from NVIDIA, so its packages are fetched with apt-get download (kept in
# $FERTORCH_CUDA_DEBS, default /var/cache/fertorch/debs/trixie-cuda) and
# unpacked, not installed. Of libnccl-dev and nvidia-cuda-dev (1 GB of .debs,
# mostly static libraries) only the headers are unpacked, into the root's
# /usr/include; the .debs are not kept, their headers are (a .tar.gz each in
# that folder, 2 MB in all). Without cuDNN (libcudnn.so.9) nothing can load a
# CUDA libtorch: the load checks then use a stub libcudnn.so.9 and say so, or
# a real one from FERTORCH_CUDNN_DIR; FERTORCH_CUDNN_STUB=0 fails instead.
# Needs root (debootstrap, chroot) and Debian's package mirror.
# Usage: scripts/test-cuda-build.sh [--help]
set -euo pipefail

usage() {
	sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'
}
case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
"") ;;
*)
	echo "test-cuda-build: unknown argument ${1} (try --help)" >&2
	exit 2
	;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
DROOT_NAME=test-cuda-build
# shellcheck source-path=SCRIPTDIR source=lib/debian-root.sh
. "$repo/scripts/lib/debian-root.sh"
root=${FERTORCH_CUDA_ROOT:-/var/cache/fertorch/trixie-cuda}
debs=${FERTORCH_CUDA_DEBS:-/var/cache/fertorch/debs/trixie-cuda}
mirror=${FERTORCH_CUDA_MIRROR:-http://deb.debian.org/debian}
testflags=${FERTORCH_CUDA_TESTFLAGS--short}
cudnn=${FERTORCH_CUDNN_DIR:-}
if [ -n "$cudnn" ] && [ ! -e "$cudnn/libcudnn.so.9" ]; then
	droot_die "FERTORCH_CUDNN_DIR=$cudnn holds no libcudnn.so.9"
fi

droot_preflight
droot_lock "$root"
droot_create "$root" trixie "$mirror" main,contrib,non-free

# Installed in the root: g++ and make, libgloo-cuda-dev (so that the distributed
# unit, cgo/fertorch_dist.cpp, is built with Gloo), libcu++-dev (<nv/target>,
# which the CUDA headers include), libtorch-cuda's dependencies that apt can
# install (all but nvidia-cudnn and the driver), and, unpacked from .debs,
# libtorch-cuda itself, the headers of libnccl-dev and nvidia-cuda-dev (so
# that it is built with NCCL too; nvidia-cuda-dev itself would install the
# driver library) and, in /opt/nvidia-driver where the loader only finds it
# when asked to, the driver library. Done once: a stamp holds this recipe's
# checksum, so changing the recipe redoes it.
# shellcheck disable=SC2016 # expanded inside the root
setup='
	apt-get -o Acquire::Check-Valid-Until=false update -q >&2
	deps=$(apt-cache show --no-all-versions libtorch-cuda-2.6 libtorch-cuda-dev | sed -n "s/^Depends: //p" |
		tr , "\n" | sed "s/|.*//; s/(.*)//; s/[[:space:]]//g" | grep -vxE "nvidia-cudnn|libcuda1|libtorch-cuda-2\.6" | sort -u)
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		g++ make binutils ca-certificates libgloo-cuda-dev libcu++-dev $deps >&2
	cd /debs
	for p in libtorch-cuda-2.6 libtorch-cuda-dev libcuda1 libnvidia-ptxjitcompiler1; do
		v=$(apt-cache show --no-all-versions "$p" | sed -n "s/^Version: //p" | sed "s/^[0-9]*://")
		ls "${p}_${v}_"*.deb >/dev/null 2>&1 || apt-get download -q -o APT::Sandbox::User=root "$p" >&2
		f=$(ls "${p}_${v}_"*.deb)
		case $p in
		libtorch-cuda*) dpkg -x "$f" / ;;
		*) dpkg -x "$f" /tmp/nvidia-driver ;;
		esac
	done
	rm -rf /opt/nvidia-driver
	mv "/tmp/nvidia-driver/usr/lib/$(gcc -print-multiarch)/nvidia/current" /opt/nvidia-driver
	rm -rf /tmp/nvidia-driver
	for p in libnccl-dev nvidia-cuda-dev; do
		v=$(apt-cache show --no-all-versions "$p" | sed -n "s/^Version: //p" | sed "s/^[0-9]*://")
		h=/debs/${p}_${v}_include.tar.gz
		if [ ! -e "$h" ]; then
			rm -rf /tmp/headers
			mkdir -p /tmp/headers/root
			cd /tmp/headers
			apt-get download -q -o APT::Sandbox::User=root "$p" >&2
			dpkg-deb --fsys-tarfile "${p}_"*.deb | tar -x -C root ./usr/include
			tar -czf "$h.partial" -C root/usr/include .
			mv "$h.partial" "$h"
			cd /debs
			rm -rf /tmp/headers
		fi
		tar -xzf "$h" --no-overwrite-dir -C /usr/include
	done
	ldconfig
	apt-cache show --no-all-versions libtorch-cuda-dev | sed -n "s/^Version: //p" >/.fertorch-cuda-version
'
stamp=$(sha256sum <<<"$setup" | cut -c1-16)
if [ "$(cat "$root/.fertorch-cuda-stamp" 2>/dev/null)" != "$stamp" ]; then
	droot_say "installing libtorch-cuda 2.6 and what it needs in the root (once; .debs kept in $debs)"
	mkdir -p "$debs"
	DROOT_BINDS=("$debs:/debs")
	droot_run "$root" "$setup"
	DROOT_BINDS=()
	echo "$stamp" >"$root/.fertorch-cuda-stamp"
fi

droot_copy_tree "$repo" "$root"
[ -z "$cudnn" ] || DROOT_BINDS=("$(cd "$cudnn" && pwd):/cudnn")
DROOT_ENV=(TESTFLAGS="$testflags" CUDNN_STUB="${FERTORCH_CUDNN_STUB:-1}" CUDNN_DIR="${cudnn:+/cudnn}")
droot_run "$root" 'cd /src && bash scripts/lib/cuda-build-check.sh'
droot_say "the shim builds, links and loads against Debian's CUDA libtorch $(cat "$root/.fertorch-cuda-version") (${SECONDS}s)"
