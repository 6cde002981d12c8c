#!/usr/bin/env bash
# fetch-weights.sh: download torchvision's ImageNet-pretrained VGG16 weights.
#
#   scripts/fetch-weights.sh [--dir DIR]
#
# Downloads https://download.pytorch.org/models/vgg16-397923af.pth (528 MB)
# into DIR (default: weights/ at the top of the repository, or
# $FERTORCH_WEIGHTS_DIR) and checks that the file's SHA-256 starts with the
# hash prefix in its name (397923af), as torch.hub does. Safe to re-run: a
# file that is already there and verified is kept; a corrupt or partial one is
# downloaded again. The download goes to a temporary file in DIR that is
# renamed into place only once verified.
#
# Without internet access, download the file elsewhere, copy it into DIR and
# run this script to verify it.
#
# FERTORCH_WEIGHTS_URL overrides the URL (a mirror, or a file:// URL); its
# file name must keep the NAME-HASHPREFIX.pth form.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${FERTORCH_WEIGHTS_DIR:-$repo/weights}"
url="${FERTORCH_WEIGHTS_URL:-https://download.pytorch.org/models/vgg16-397923af.pth}"

again="scripts/fetch-weights.sh${*:+ $*}"

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "fetch-weights: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || die "--dir needs a directory"; dir="$2"; shift 2 ;;
    --dir=*) dir="${1#--dir=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done

name="${url##*/}"
name="${name%%\?*}"
# torch.hub's convention: NAME-HASHPREFIX.EXT, the prefix being the first
# hex digits of the file's SHA-256.
if [[ ! "$name" =~ -([0-9a-f]{8,64})\.[A-Za-z0-9]+$ ]]; then
  die "cannot tell the expected SHA-256 prefix from the file name '$name' (want NAME-HASHPREFIX.pth)"
fi
prefix="${BASH_REMATCH[1]}"
dest="$dir/$name"

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  else
    die "need sha256sum or shasum to verify the download"
  fi
}

verified() { [[ "$(sha256_of "$1")" == "$prefix"* ]]; }

if [ -f "$dest" ]; then
  if verified "$dest"; then
    echo "fetch-weights: $dest is already there and verified (sha256 $prefix...)"
    exit 0
  fi
  echo "fetch-weights: $dest is corrupt or incomplete (sha256 $(sha256_of "$dest"), want $prefix...); downloading it again"
fi

mkdir -p "$dir" || die "cannot create $dir"
tmp="$(mktemp "$dir/.$name.XXXXXX.part")" || die "cannot write to $dir"
trap 'rm -f "$tmp"' EXIT
trap 'exit 130' INT TERM

offline() {
  local host="${url#*://}"
  host="${host%%/*}"
  cat >&2 <<EOF
fetch-weights: cannot download the pretrained weights: $host is unreachable (no internet connection?).
  On a machine with internet access, download
      $url
  copy it to
      $dest
  and run $again again to verify it.
EOF
  exit 3
}

echo "fetch-weights: downloading $url"
echo "fetch-weights:   into $dest"
if command -v curl >/dev/null 2>&1; then
  progress=(--silent --show-error)
  [ -t 2 ] && progress=(--progress-bar)
  set +e
  curl --fail --location --connect-timeout 20 "${progress[@]}" --output "$tmp" "$url"
  rc=$?
  set -e
  case $rc in
    0) ;;
    5|6|7|28|35|45|52|55|56) offline ;;  # proxy/host resolution, connection, timeout, TLS, network I/O
    *) die "download of $url failed (curl exit status $rc)" ;;
  esac
elif command -v wget >/dev/null 2>&1; then
  set +e
  wget --tries=3 --timeout=20 -O "$tmp" "$url"
  rc=$?
  set -e
  case $rc in
    0) ;;
    4) offline ;;  # network failure
    *) die "download of $url failed (wget exit status $rc)" ;;
  esac
else
  die "need curl or wget to download $url"
fi

sum="$(sha256_of "$tmp")"
if [[ "$sum" != "$prefix"* ]]; then
  die "the downloaded file has sha256 $sum, which does not start with $prefix; not installed (try again)"
fi
mv -f "$tmp" "$dest"
trap - EXIT
echo "fetch-weights: $dest verified (sha256 $sum)"
