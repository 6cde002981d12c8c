# shellcheck shell=bash
# debian-root.sh: what the scripts that build and test fertorch inside a
# cached Debian root share (test-libtorch2.sh, test-cuda-build.sh). Source it
# after setting DROOT_NAME, the prefix of every message.
#
#   droot_preflight                  root, a Go toolchain, debootstrap, unshare, chroot
#   droot_lock ROOT                  waits for, then holds, ROOT's lock until the script ends
#   droot_create ROOT SUITE MIRROR [COMPONENTS]
#                                    debootstrap a minimal root once; reused later
#   droot_missing ROOT PACKAGE...    prints the packages not installed in ROOT
#   droot_apt_install ROOT PACKAGE...
#                                    apt-get installs those missing (nothing when none is)
#   droot_copy_tree REPO ROOT        the working tree (tracked and untracked, not
#                                    ignored files) into ROOT/src
#   droot_run ROOT SCRIPT            bash SCRIPT inside ROOT, with mounts (below)
#
# droot_run works in a private mount namespace, so nothing is left mounted
# when it ends, however it ends. Inside, /proc and /dev are mounted, this
# machine's Go toolchain is at /usr/local/go (read-only) and its module cache
# at /gomodcache; DROOT_SAMPLE (a folder) appears read-only at /sample, and
# each "HOST:INSIDE" of the array DROOT_BINDS is bind-mounted. The script runs
# as root with a clean environment plus the NAME=VALUE words of DROOT_ENV.

DROOT_NAME=${DROOT_NAME:-debian-root}
DROOT_BINDS=()
DROOT_ENV=()
DROOT_SAMPLE=""

droot_say() { echo "$DROOT_NAME: $*" >&2; }
droot_die() {
	droot_say "$*"
	exit 1
}

# droot_preflight checks for root and a Go toolchain (GO, else go on PATH,
# else /usr/local/go/bin/go) and installs debootstrap when it is missing. It
# sets DROOT_GOROOT and DROOT_MODCACHE.
droot_preflight() {
	[ "$(id -u)" = 0 ] || droot_die "needs root (debootstrap and chroot); run it with sudo"
	GO=${GO:-$(command -v go || true)}
	[ -n "$GO" ] || GO=/usr/local/go/bin/go
	[ -x "$GO" ] || droot_die "no Go toolchain found (set GO=/path/to/go)"
	DROOT_GOROOT=$("$GO" env GOROOT)
	DROOT_MODCACHE=$("$GO" env GOMODCACHE)
	local tool
	for tool in debootstrap unshare chroot; do
		if ! command -v "$tool" >/dev/null; then
			droot_say "installing $tool's package with apt"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap util-linux >&2
			break
		fi
	done
}

# droot_lock ROOT takes an exclusive lock on ROOT (ROOT.lock) for the rest of
# the script, so that two runs never work in one root at once.
droot_lock() {
	mkdir -p "$(dirname "$1")"
	exec {DROOT_LOCK_FD}>"$1.lock"
	if ! flock -n "$DROOT_LOCK_FD"; then
		droot_say "waiting for another run to finish with $1"
		flock "$DROOT_LOCK_FD"
	fi
}

# droot_create ROOT SUITE MIRROR [COMPONENTS] makes a minimal Debian root with
# the archive components given (default main) unless ROOT already has one.
droot_create() {
	local root=$1 suite=$2 mirror=$3 components=${4:-main}
	if [ ! -x "$root/usr/bin/apt-get" ]; then
		droot_say "creating a Debian $suite root in $root (once; reused by later runs)"
		rm -rf "$root.partial"
		mkdir -p "$(dirname "$root")"
		debootstrap --variant=minbase --components="$components" "$suite" "$root.partial" "$mirror" >&2
		rm -rf "$root"
		mv "$root.partial" "$root"
	fi
	cp /etc/resolv.conf "$root/etc/resolv.conf"
	# This machine's own name resolves inside the root as it does outside:
	# torchrun's rendezvous hands its workers the host's name.
	cp /etc/hosts "$root/etc/hosts"
}

# droot_missing ROOT PACKAGE... prints, one a line, the packages that are not
# installed in ROOT.
droot_missing() {
	local root=$1
	shift
	local installed
	# shellcheck disable=SC2016 # a dpkg-query format, not a shell expansion
	installed=$(chroot "$root" dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null |
		awk '$2 == "installed" { print $1 }')
	local p
	for p in "$@"; do
		grep -qxF "$p" <<<"$installed" || echo "$p"
	done
}

# droot_apt_install ROOT PACKAGE... installs (without recommends) whichever of
# the packages ROOT lacks; when it lacks none, it does nothing, quietly.
droot_apt_install() {
	local root=$1
	shift
	local missing
	missing=$(droot_missing "$root" "$@")
	[ -n "$missing" ] || return 0
	droot_say "installing in the root: $(echo "$missing" | tr '\n' ' ')"
	# Signatures are checked; a mirror whose unstable Release file has passed
	# its Valid-Until date is still used (the root only runs tests).
	local DROOT_ENV=(MISSING="$(echo "$missing" | tr '\n' ' ')")
	# shellcheck disable=SC2016 # expanded by the inner shell
	droot_run "$root" '
		apt-get -o Acquire::Check-Valid-Until=false update -q >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $MISSING >&2'
}

# droot_copy_tree REPO ROOT copies the working tree as the developer has it
# now (what git tracks plus untracked files it does not ignore) to ROOT/src.
droot_copy_tree() {
	local repo=$1 root=$2
	rm -rf "$root/src"
	mkdir -p "$root/src"
	(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ ! -e "$f" ] || printf '%s\0' "$f"; done |
		tar --null -T - -cf -) | tar -xf - -C "$root/src"
}

# droot_run ROOT SCRIPT runs bash SCRIPT (with -euo pipefail) inside ROOT.
droot_run() {
	local root=$1 script=$2
	local binds
	binds=$(printf '%s\n' "${DROOT_BINDS[@]}")
	# shellcheck disable=SC2016 # expanded by the inner shell, from its arguments
	unshare --mount --propagation private bash -euo pipefail -c '
		root=$1 goroot=$2 modcache=$3 sample=$4 binds=$5 script=$6
		shift 6
		mount -t proc proc "$root/proc"
		mount --rbind /dev "$root/dev"
		mkdir -p "$root/usr/local/go" "$root/gomodcache" "$modcache"
		mount --bind "$goroot" "$root/usr/local/go"
		mount -o remount,bind,ro "$root/usr/local/go"
		mount --bind "$modcache" "$root/gomodcache"
		if [ -n "$sample" ]; then
			mkdir -p "$root/sample"
			mount --bind "$sample" "$root/sample"
			mount -o remount,bind,ro "$root/sample"
		fi
		while IFS= read -r bind; do
			[ -n "$bind" ] || continue
			mkdir -p "${bind%%:*}" "$root/${bind#*:}"
			mount --bind "${bind%%:*}" "$root/${bind#*:}"
		done <<<"$binds"
		exec chroot "$root" env -i HOME=/root \
			PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			GOMODCACHE=/gomodcache GOFLAGS=-buildvcs=false GOTOOLCHAIN=local "$@" \
			bash -euo pipefail -c "$script"
	' droot "$root" "$DROOT_GOROOT" "$DROOT_MODCACHE" "$DROOT_SAMPLE" "$binds" "$script" "${DROOT_ENV[@]}"
}
