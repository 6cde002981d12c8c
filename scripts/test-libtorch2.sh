#!/usr/bin/env bash
# Builds the shim against libtorch 2.x and runs the Go tests on it, with
# PyTorch 2.x, torchvision and scipy of the same release as the parity peers.
#
# Debian 12 (bookworm) ships libtorch 1.13, Debian 13 (trixie) 2.6 and
# Debian unstable (sid) the newest. This script makes a Debian root once
# (FERTORCH_LIBTORCH2_SUITE, default trixie; debootstrap, cached in
# $FERTORCH_LIBTORCH2_ROOT, default /var/cache/fertorch/<suite>), installs
# libtorch-dev, g++ and the Python peers in it, copies the working tree in
# (tracked and untracked, not ignored files) and runs, inside it with this
# machine's Go toolchain and module cache:
#
#     make shim && go vet ./... && go test -count=1 -timeout 30m $FERTORCH_LIBTORCH2_TESTFLAGS ./...
#
# Mounts live in a private mount namespace, so nothing is left mounted when
# the script ends, however it ends. Needs root (debootstrap, chroot) and
# Debian's package mirror. Usage: scripts/test-libtorch2.sh [--help]
set -euo pipefail

usage() {
	sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
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
suite=${FERTORCH_LIBTORCH2_SUITE:-trixie}
root=${FERTORCH_LIBTORCH2_ROOT:-/var/cache/fertorch/$suite}
mirror=${FERTORCH_LIBTORCH2_MIRROR:-http://deb.debian.org/debian}
testflags=${FERTORCH_LIBTORCH2_TESTFLAGS:-}
packages=(libtorch-dev g++ make ca-certificates python3-torch python3-torchvision
	python3-scipy python3-pil python3-sklearn binutils)

say() { echo "test-libtorch2: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	say "needs root (debootstrap and chroot); run it with sudo"
	exit 1
fi
GO=${GO:-$(command -v go || true)}
[ -n "$GO" ] || GO=/usr/local/go/bin/go
if [ ! -x "$GO" ]; then
	say "no Go toolchain found (set GO=/path/to/go)"
	exit 1
fi
goroot=$("$GO" env GOROOT)
modcache=$("$GO" env GOMODCACHE)
for tool in debootstrap unshare chroot; do
	if ! command -v "$tool" >/dev/null; then
		say "installing $tool's package with apt"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap util-linux >&2
		break
	fi
done

if [ ! -x "$root/usr/bin/apt-get" ]; then
	say "creating a Debian $suite root in $root (once; reused by later runs)"
	rm -rf "$root.partial"
	mkdir -p "$(dirname "$root")"
	debootstrap --variant=minbase "$suite" "$root.partial" "$mirror" >&2
	rm -rf "$root"
	mv "$root.partial" "$root"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"

# Copy the working tree: what git tracks plus untracked files it does not
# ignore, as the developer has them now.
rm -rf "$root/src"
mkdir -p "$root/src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [ ! -e "$f" ] || printf '%s\0' "$f"; done |
	tar --null -T - -cf -) | tar -xf - -C "$root/src"

# What runs inside the root.
cat >"$root/run-tests.sh" <<'INSIDE'
set -euo pipefail
cd /src
echo "libtorch-dev $(dpkg-query -W -f='${Version}' libtorch-dev), $(g++ --version | head -1)"
/usr/bin/python3 -c 'import torch, torchvision, scipy; print("torch", torch.__version__, "torchvision", torchvision.__version__, "scipy", scipy.__version__)'
make shim
go vet ./...
# shellcheck disable=SC2086 # TESTFLAGS holds several flags
go test -count=1 -timeout 30m $TESTFLAGS ./...
INSIDE

sample=""
for candidate in "${FERTORCH_SAMPLE:-}" "$repo/../shared/facial_expressions"; do
	if [ -n "$candidate" ] && [ -f "$candidate/data/legend.csv" ]; then
		sample=$(cd "$candidate" && pwd)
		break
	fi
done

export root goroot modcache sample testflags
pkgs="${packages[*]}"
export pkgs
# shellcheck disable=SC2016 # expanded by the inner shell, from the environment
unshare --mount --propagation private bash -euo pipefail -c '
	mount -t proc proc "$root/proc"
	mount --rbind /dev "$root/dev"
	mkdir -p "$root/usr/local/go" "$root/gomodcache"
	mount --bind "$goroot" "$root/usr/local/go"
	mount -o remount,bind,ro "$root/usr/local/go"
	mkdir -p "$modcache"
	mount --bind "$modcache" "$root/gomodcache"
	samplein=""
	if [ -n "$sample" ]; then
		mkdir -p "$root/sample"
		mount --bind "$sample" "$root/sample"
		mount -o remount,bind,ro "$root/sample"
		samplein=/sample
	fi
	echo "test-libtorch2: installing libtorch and the Python peers in the root" >&2
	# Signatures are checked; a mirror whose unstable Release file has passed
	# its Valid-Until date is still used (the root only runs tests).
	chroot "$root" apt-get -o Acquire::Check-Valid-Until=false update -q >&2
	chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs >&2
	chroot "$root" env -i HOME=/root PATH=/usr/local/go/bin:/usr/bin:/bin \
		GOMODCACHE=/gomodcache GOFLAGS=-buildvcs=false GOTOOLCHAIN=local \
		FERTORCH_SAMPLE="$samplein" TESTFLAGS="$testflags" bash /run-tests.sh
'
say "the shim builds and the tests pass against libtorch 2.x"
