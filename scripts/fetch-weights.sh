#!/usr/bin/env bash
# fetch-weights.sh: download torchvision's ImageNet-pretrained weights.
#
#   scripts/fetch-weights.sh [--arch NAME] [--dir DIR] [--print-url]
#
# Downloads torchvision's default ImageNet weights of architecture NAME
# (vgg16 by default: https://download.pytorch.org/models/vgg16-397923af.pth,
# 528 MB; the others: vgg16_bn, resnet18, resnet50, mobilenet_v3_large,
# efficientnet_b0, convnext_tiny, vit_b_16, the files of fertorch's
# architecture table) into DIR (default: weights/ at the top of the
# repository, where fer train looks for them, or
# $FERTORCH_WEIGHTS_DIR) and checks that the file's SHA-256 starts with the
# hash prefix in its name (397923af), as torch.hub does. --print-url prints
# the URL and the destination and exits without downloading. Safe to re-run: a
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
arch=vgg16
print_url=false

# torchvision 0.14's default ImageNet file of each architecture, as in
# vision's architecture table (a test keeps the two equal).
weights_file() {
  case "$1" in
    vgg16) echo vgg16-397923af.pth ;;
    vgg16_bn) echo vgg16_bn-6c64b313.pth ;;
    resnet18) echo resnet18-f37072fd.pth ;;
    resnet50) echo resnet50-11ad3fa6.pth ;;
    mobilenet_v3_large) echo mobilenet_v3_large-5c1a4163.pth ;;
    efficientnet_b0) echo efficientnet_b0_rwightman-3dd342df.pth ;;
    convnext_tiny) echo convnext_tiny-983f1562.pth ;;
    vit_b_16) echo vit_b_16-c867db91.pth ;;
    *) return 1 ;;
  esac
}
archs="vgg16, vgg16_bn, resnet18, resnet50, mobilenet_v3_large, efficientnet_b0, convnext_tiny, vit_b_16"

again="scripts/fetch-weights.sh${*:+ $*}"

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "fetch-weights: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || die "--dir needs a directory"; dir="$2"; shift 2 ;;
    --dir=*) dir="${1#--dir=}"; shift ;;
    --arch) [ $# -ge 2 ] || die "--arch needs an architecture ($archs)"; arch="$2"; shift 2 ;;
    --arch=*) arch="${1#--arch=}"; shift ;;
    --print-url) print_url=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done

file="$(weights_file "$arch")" || die "unknown architecture '$arch' (want one of $archs)"
url="${FERTORCH_WEIGHTS_URL:-https://download.pytorch.org/models/$file}"

name="${url##*/}"
name="${name%%\?*}"
# torch.hub's convention: NAME-HASHPREFIX.EXT, the prefix being the first
# hex digits of the file's SHA-256.
if [[ ! "$name" =~ -([0-9a-f]{8,64})\.[A-Za-z0-9]+$ ]]; then
  die "cannot tell the expected SHA-256 prefix from the file name '$name' (want NAME-HASHPREFIX.pth)"
fi
prefix="${BASH_REMATCH[1]}"
dest="$dir/$name"
if $print_url; then
  echo "$url $dest"
  exit 0
fi

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
