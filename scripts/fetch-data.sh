#!/usr/bin/env bash
# fetch-data.sh: get the facial_expressions dataset (github.com/muxspace/facial_expressions):
# its data/ folder (legend.csv: user.id,image,emotion) and its images/ folder.
#
#   scripts/fetch-data.sh [--force] [DEST]
#       Download the repository archive from GitHub and unpack data/ and images/
#       into DEST (default: work/facial_expressions under the repository root).
#       Does nothing when DEST already has data/legend.csv and images/, unless
#       --force is given.
#
#   scripts/fetch-data.sh --from ARCHIVE_OR_FOLDER [--force] [DEST]
#       No download: take data/ and images/ from a copy obtained elsewhere, either
#       the archive (master.tar.gz) or a folder holding data/legend.csv (an
#       unpacked archive or a git clone). This is the way on a machine offline.
#
# FER_DATA_URL overrides the download address (a mirror of the same archive).
# Only DEST/data and DEST/images are replaced; nothing else in DEST is touched.
set -euo pipefail

ARCHIVE_URL="https://github.com/muxspace/facial_expressions/archive/refs/heads/master.tar.gz"
url="${FER_DATA_URL:-https://codeload.github.com/muxspace/facial_expressions/tar.gz/refs/heads/master}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$repo_root/work/facial_expressions"
force=0
from=""

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "fetch-data: $*" >&2; exit 1; }

dest_given=0
while [ $# -gt 0 ]; do
  case "$1" in
    -f|--force) force=1 ;;
    --from) [ $# -ge 2 ] || die "--from needs an archive or a folder"; from="$2"; shift ;;
    --from=*) from="${1#--from=}" ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "fetch-data: unknown option: $1 (try --help)" >&2; exit 2 ;;
    *)
      [ "$dest_given" = 0 ] || die "more than one destination given: $dest and $1 (try --help)"
      dest="$1"; dest_given=1 ;;
  esac
  shift
done

count_images() { find "$1" -maxdepth 1 -type f | wc -l | tr -d ' '; }
count_rows() { echo $(( $(wc -l < "$1") - 1 )); }

have_dataset() {
  [ -f "$1/data/legend.csv" ] && [ -d "$1/images" ] &&
    [ -n "$(find "$1/images" -maxdepth 1 -type f -print -quit)" ]
}

if have_dataset "$dest" && [ "$force" = 0 ]; then
  echo "fetch-data: $dest already has the dataset ($(count_images "$dest/images") images," \
    "$(count_rows "$dest/data/legend.csv") legend rows); nothing to do (--force fetches it again)"
  exit 0
fi

manual_help() {
  cat >&2 <<EOF
fetch-data: to install the dataset by hand:
  1. on a machine with internet access, download
       $ARCHIVE_URL
     (or: git clone https://github.com/muxspace/facial_expressions)
  2. bring it here and run
       scripts/fetch-data.sh --from master.tar.gz $dest
     (--from also takes the unpacked folder or the clone), or copy its data/ and
     images/ folders yourself so that these exist:
       $dest/data/legend.csv
       $dest/images/*.jpg
Without the real data, 'make demo' runs the whole flow on a generated dataset.
EOF
}

parent="$(dirname "$dest")"
mkdir -p "$parent" || die "cannot create $parent"
tmp="$(mktemp -d "$parent/.fetch-data.XXXXXX")" || die "cannot create a temporary folder in $parent"
trap 'rm -rf "$tmp"' EXIT

src=""
if [ -n "$from" ]; then
  if [ -d "$from" ]; then
    src="$from"
  elif [ -f "$from" ]; then
    echo "fetch-data: unpacking $from"
    mkdir "$tmp/unpacked"
    tar -xzf "$from" -C "$tmp/unpacked" || die "$from is not a readable .tar.gz archive"
  else
    die "--from $from: no such file or folder"
  fi
else
  command -v curl >/dev/null 2>&1 || { echo "fetch-data: curl is not installed (apt-get install curl)" >&2; manual_help; exit 1; }
  echo "fetch-data: downloading $url (about 300 MB)"
  set +e
  curl -fL --retry 2 --connect-timeout 20 --speed-limit 1024 --speed-time 60 \
    -o "$tmp/facial_expressions.tar.gz" "$url"
  rc=$?
  set -e
  if [ "$rc" != 0 ]; then
    case "$rc" in
      5|6|7|28|35|52|55|56)
        echo "fetch-data: cannot reach $(echo "$url" | sed -E 's#^[a-zA-Z]+://([^/]+).*#\1#') (curl exit $rc): this machine looks offline or behind a firewall." >&2 ;;
      22)
        echo "fetch-data: the server refused $url (curl exit 22: HTTP error); check the address or FER_DATA_URL." >&2 ;;
      *)
        echo "fetch-data: download failed (curl exit $rc)." >&2 ;;
    esac
    manual_help
    exit 1
  fi
  echo "fetch-data: unpacking"
  mkdir "$tmp/unpacked"
  tar -xzf "$tmp/facial_expressions.tar.gz" -C "$tmp/unpacked" || die "the download is not a valid .tar.gz archive"
  rm -f "$tmp/facial_expressions.tar.gz"
fi

if [ -z "$src" ]; then
  legend="$(find "$tmp/unpacked" -maxdepth 3 -path '*/data/legend.csv' -print -quit)"
  [ -n "$legend" ] || die "the archive has no data/legend.csv; is it muxspace/facial_expressions?"
  src="$(dirname "$(dirname "$legend")")"
fi
[ -f "$src/data/legend.csv" ] || die "$src has no data/legend.csv"
[ -d "$src/images" ] || die "$src has no images/ folder"
header="$(head -n 1 "$src/data/legend.csv" | tr -d '\r')"
[ "$header" = "user.id,image,emotion" ] ||
  die "$src/data/legend.csv starts with '$header', expected 'user.id,image,emotion'"
[ -n "$(find "$src/images" -maxdepth 1 -type f -print -quit)" ] || die "$src/images is empty"

mkdir -p "$dest" || die "cannot create $dest"
# Move the old folders aside first so that a failure leaves the old dataset in
# place, never a mix; the trap deletes what was moved aside once all went well.
mkdir "$tmp/old"
restore_old() {
  rm -rf "$dest/data" "$dest/images"
  for d in data images; do
    if [ -e "$tmp/old/$d" ]; then mv "$tmp/old/$d" "$dest/$d"; fi
  done
}
for d in data images; do
  if [ -e "$dest/$d" ]; then mv "$dest/$d" "$tmp/old/$d" || { restore_old; die "cannot move the old $dest/$d aside"; }; fi
done
if [ -n "$from" ] && [ -d "$from" ]; then
  install() { cp -R "$src/data" "$dest/data" && cp -R "$src/images" "$dest/images"; }
else
  install() { mv "$src/data" "$dest/data" && mv "$src/images" "$dest/images"; }
fi
if ! install; then
  restore_old
  die "installing data/ and images/ into $dest failed; the previous content is back in place"
fi
echo "fetch-data: $dest: $(count_images "$dest/images") images, $(count_rows "$dest/data/legend.csv") legend rows"
