#!/usr/bin/env bash
# Builds the shim against libtorch 2.x and runs the Go tests on it, with
# PyTorch 2.x, torchvision and scipy of the same release as the parity peers.
#
# Debian 12 (bookworm) ships libtorch 1.13, Debian 13 (trixie) 2.6 and
# Debian unstable (sid) the newest. This script makes a Debian root once
# (FERTORCH_LIBTORCH2_SUITE, default trixie; debootstrap, cached in
# $FERTORCH_LIBTORCH2_ROOT, default /var/cache/fertorch/<suite>), installs
# libtorch-dev, libgloo-dev, g++ and the Python peers in it, copies the working tree in
# (tracked and untracked, not ignored files) and runs, inside it with this
# machine's Go toolchain and module cache:
#
#     make shim && go vet ./... && go test -count=1 -timeout 45m $FERTORCH_LIBTORCH2_TESTFLAGS $FERTORCH_LIBTORCH2_PACKAGES
#     (through internal/testlog, which adds a list of the slowest tests)
#
# FERTORCH_LIBTORCH2_PACKAGES defaults to ./... (every package). The
# timeout is longer than make test's: where oneDNN computes wrong results
# (trixie's on AVX-512 CPUs), training runs on the slower native kernels.
# FERTORCH_LIBTORCH2_ONEDNN_ISA, when set, is passed as ONEDNN_MAX_CPU_ISA
# (oneDNN's cap on the instruction sets its kernels use).
# Packages are installed once; delete the root to start over with the
# suite's newest packages. Mounts live in a private mount namespace, so
# nothing is left mounted when the script ends, however it ends (see
# scripts/lib/debian-root.sh). Needs root (debootstrap, chroot) and Debian's
# package mirror. Usage: scripts/test-libtorch2.sh [--help]
set -euo pipefail

usage() {
	sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
}
case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
"") ;;
*)
	echo "test-libtorch2: unknown argument ${1} (try --help)" >&2
	exit 2
	;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
DROOT_NAME=test-libtorch2
# shellcheck source-path=SCRIPTDIR source=lib/debian-root.sh
. "$repo/scripts/lib/debian-root.sh"
suite=${FERTORCH_LIBTORCH2_SUITE:-trixie}
root=${FERTORCH_LIBTORCH2_ROOT:-/var/cache/fertorch/$suite}
mirror=${FERTORCH_LIBTORCH2_MIRROR:-http://deb.debian.org/debian}
testflags=${FERTORCH_LIBTORCH2_TESTFLAGS:-}
testpackages=${FERTORCH_LIBTORCH2_PACKAGES:-./...}
onednn_isa=${FERTORCH_LIBTORCH2_ONEDNN_ISA:-}
packages=(libtorch-dev libgloo-dev g++ make ca-certificates python3-torch python3-torchvision
	python3-scipy python3-pil python3-sklearn binutils)

droot_preflight
droot_lock "$root"
droot_create "$root" "$suite" "$mirror"
droot_apt_install "$root" "${packages[@]}"
droot_copy_tree "$repo" "$root"

for candidate in "${FERTORCH_SAMPLE:-}" "$repo/../shared/facial_expressions"; do
	if [ -n "$candidate" ] && [ -f "$candidate/data/legend.csv" ]; then
		DROOT_SAMPLE=$(cd "$candidate" && pwd)
		break
	fi
done
DROOT_ENV=(TESTFLAGS="$testflags" TESTPACKAGES="$testpackages" FERTORCH_SAMPLE="${DROOT_SAMPLE:+/sample}")
if [ -n "$onednn_isa" ]; then
	DROOT_ENV+=(ONEDNN_MAX_CPU_ISA="$onednn_isa")
fi
# shellcheck disable=SC2016 # expanded inside the root
droot_run "$root" '
	cd /src
	echo "libtorch-dev $(dpkg-query -W -f="\${Version}" libtorch-dev), $(g++ --version | head -1)"
	/usr/bin/python3 -c "import torch, torchvision, scipy; print(\"torch\", torch.__version__, \"torchvision\", torchvision.__version__, \"scipy\", scipy.__version__)"
	make shim
	go vet ./...
	go run ./internal/testlog -count=1 -timeout 45m $TESTFLAGS $TESTPACKAGES
'
droot_say "the shim builds and the tests pass against libtorch 2.x"
