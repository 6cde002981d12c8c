#!/usr/bin/env bash
# install-libtorch.sh: make sure a libtorch (headers + shared libraries) is available.
#
#   LIBTORCH=/path/to/libtorch scripts/install-libtorch.sh
#       Use an existing libtorch: an official download from pytorch.org (CPU or
#       CUDA, cxx11 ABI or not) or the one inside a PyTorch wheel
#       ($(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')).
#       Nothing is installed; the layout is checked.
#
#   scripts/install-libtorch.sh
#       On Debian/Ubuntu, install Debian's libtorch-dev (CPU) and libgloo-dev
#       (the Gloo headers that distributed training, torch/dist, compiles
#       against) with apt when they are missing. Needs root or sudo.
#
# With --with-test-tools it also installs what the tests use: the Python peers
# they compare against (python3-torch, python3-torchvision, python3-scipy,
# python3-pil, python3-sklearn), python3-flask for the serving benchmark's
# peer, chromium for the web page's browser test and shellcheck for the
# scripts. They serve tests and benchmarks only, never fertorch itself.
set -euo pipefail

with_tools=0
for arg in "$@"; do
  case "$arg" in
    --with-test-tools) with_tools=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "install-libtorch: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

die() { echo "install-libtorch: $*" >&2; exit 1; }

if [ -n "${LIBTORCH:-}" ]; then
  [ -d "$LIBTORCH" ] || die "LIBTORCH=$LIBTORCH is not a directory"
  [ -f "$LIBTORCH/include/torch/csrc/api/include/torch/torch.h" ] ||
    die "LIBTORCH=$LIBTORCH has no include/torch/csrc/api/include/torch/torch.h (is it a libtorch folder?)"
  ls "$LIBTORCH"/lib/libtorch*.so >/dev/null 2>&1 || die "LIBTORCH=$LIBTORCH has no lib/libtorch*.so"
  echo "install-libtorch: using libtorch at $LIBTORCH"
  [ "$with_tools" = 0 ] && exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "need root or sudo to install packages with apt"
  SUDO=sudo
fi

pkgs=()
if [ -z "${LIBTORCH:-}" ]; then
  for p in libtorch-dev libgloo-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
  done
fi
if [ "$with_tools" = 1 ]; then
  for p in python3-torch python3-torchvision python3-scipy python3-pil python3-sklearn python3-flask chromium shellcheck; do
    dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
  done
fi
if [ "${#pkgs[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || die "apt-get not found: set LIBTORCH=/path/to/libtorch instead"
  echo "install-libtorch: installing ${pkgs[*]} with apt"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" g++ make
fi
if [ -z "${LIBTORCH:-}" ]; then
  [ -f /usr/include/torch/csrc/api/include/torch/torch.h ] || die "libtorch-dev installed but torch.h not found"
  echo "install-libtorch: using Debian's libtorch ($(dpkg-query -W -f='${Version}' libtorch-dev))"
fi
