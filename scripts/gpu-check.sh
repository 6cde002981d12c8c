#!/usr/bin/env bash
# gpu-check.sh: check fertorch on this machine's NVIDIA GPU and compare its
# training speed with PyTorch eager, within a fixed time budget.
#
#   scripts/gpu-check.sh [options] OUTDIR
#
# Meant for a GPU machine that has Python with a CUDA PyTorch wheel, g++ and
# make, but no Go: the working tree arrives with a prebuilt build/fer (from
# `make build` on another machine) and only the shim is rebuilt here, against
# the libtorch inside the wheel (make shim LIBTORCH=<torch folder>). Then it
# runs, each under a timeout, going on past any failure:
#   - the shim links libtorch_cuda and libc10_cuda and exports the whole C API
#     (scripts/lib/cuda-shim-check.sh, as in CI's make test-cuda-build)
#   - fer version; VGG16 logits on the CPU vs CUDA at 224 (fp32, without and
#     with channels-last): the max abs diff
#   - fer benchmark: training images/s at 224x224, batch 64, for fp32, bf16
#     autocast and bf16 + channels-last, while nvidia-smi samples the GPU's
#     utilisation every 200 ms (mean/max over the timed steps)
#   - bench/gpu/pytorch_train_bench.py, the same model and step in PyTorch
#     eager, for the same settings, and the ratio fertorch/PyTorch
#   - fer train as a one-rank distributed job (torchrun's variables) on a
#     tiny synthetic layout: c10d's NCCL (Gloo on the CPU) on the device
# OUTDIR receives gpu-check.log (every command and its output) and
# summary.json, which is also printed at the end. The exit status is 0 when
# every step passed, 1 when one failed (the summary says which), 2 for a
# wrong command line.
#
# Without a visible GPU (or with --cpu-dry-run) the same steps run on the CPU
# with tiny settings (input 64, batch 4, 2 steps): a check of the script
# itself, not a measurement.
#
# Options:
#   --cpu-dry-run       run on the CPU with tiny settings even if a GPU is visible
#   --libtorch DIR      libtorch to build the shim against (default: $LIBTORCH,
#                       else the torch folder of the chosen Python's PyTorch; in
#                       a CPU dry run without either, Debian's libtorch-dev)
#   --python PY         Python with PyTorch (default: the best of python3,
#                       /usr/bin/python3 and python: CUDA first, then torchvision)
#   --fer PATH          the fer binary (default: build/fer)
#   --skip-build        use build/libfertorch.so as it is
#   --gpu ID            GPU index or UUID (default: first of CUDA_VISIBLE_DEVICES, else 0)
#   --steps N           timed training steps (default 40; dry run 2)
#   --warmup N          warm-up steps (default 8; dry run 1)
#   --budget SECONDS    time limit for the steps (default 420; the summary comes after)
#   -h, --help          this text
#
# Example, on a GPU machine:
#   scripts/gpu-check.sh gpu-check-out && cat gpu-check-out/summary.json
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
START=$(date +%s)

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die_usage() { echo "gpu-check: $*" >&2; echo "try: $0 --help" >&2; exit 2; }

OUTDIR="" DRY=0 LIBTORCH_DIR="${LIBTORCH:-}" PY="" FER="" SKIP_BUILD=0 GPU_ID="" STEPS="" WARMUP="" BUDGET=420
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --cpu-dry-run) DRY=1 ;;
    --skip-build) SKIP_BUILD=1 ;;
    --libtorch|--python|--fer|--gpu|--steps|--warmup|--budget)
      [ $# -ge 2 ] || die_usage "$1 needs a value"
      case "$1" in
        --libtorch) LIBTORCH_DIR=$2 ;;
        --python) PY=$2 ;;
        --fer) FER=$2 ;;
        --gpu) GPU_ID=$2 ;;
        --steps) STEPS=$2 ;;
        --warmup) WARMUP=$2 ;;
        --budget) BUDGET=$2 ;;
      esac
      shift ;;
    --*) die_usage "unknown option $1" ;;
    *) [ -z "$OUTDIR" ] || die_usage "one OUTDIR only (got '$OUTDIR' and '$1')"; OUTDIR=$1 ;;
  esac
  shift
done
[ -n "$OUTDIR" ] || die_usage "missing OUTDIR (where gpu-check.log and summary.json go)"
for n in "$BUDGET" ${STEPS:+"$STEPS"} ${WARMUP:+"$WARMUP"}; do
  [[ "$n" =~ ^[0-9]+$ ]] || die_usage "not a whole number: $n"
done
command -v timeout >/dev/null || { echo "gpu-check: the timeout command (coreutils) is missing" >&2; exit 1; }

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
LOG="$OUTDIR/gpu-check.log"
SUMMARY="$OUTDIR/summary.json"
rm -f "$SUMMARY"
: >"$LOG"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
SAMPLER_PID=""
SUMMARY_DONE=0
RESERVE=20   # seconds kept for the summary
MIN_STEP=15  # a step gets at least this long or is skipped

say() { printf '%s\n' "$*" | tee -a "$LOG"; }
elapsed() { echo $(($(date +%s) - START)); }

# record NAME STATUS RC SECONDS MESSAGE: one line of steps.tsv.
record() {
  local msg=${5//$'\t'/ }
  msg=${msg//$'\n'/ }
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${msg:0:400}" >>"$WORK/steps.tsv"
}

# run_step NAME MAX_SECONDS CMD...: runs CMD under a timeout (capped by what is
# left of the budget) with its output in the log and in $WORK/NAME.out.
# Returns CMD's status; a failure is recorded, never fatal.
run_step() {
  local name=$1 max=$2
  shift 2
  local left=$((BUDGET - $(elapsed) - RESERVE))
  if [ "$left" -lt "$MIN_STEP" ]; then
    record "$name" skipped "" 0 "not run: the time budget of ${BUDGET}s is used up"
    say "[skip] $name: the time budget of ${BUDGET}s is used up"
    return 1
  fi
  local t=$((max < left ? max : left))
  say "[run ] $name (timeout ${t}s)"
  printf -- '----- %s: %s\n' "$name" "$*" >>"$LOG"
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  timeout -k 10 "$t" "$@" >"$WORK/$name.out" 2>&1 </dev/null || rc=$?
  t1=$(date +%s.%N)
  cat "$WORK/$name.out" >>"$LOG"
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  if [ "$rc" -eq 0 ]; then
    record "$name" ok 0 "$secs" ""
    say "[ ok ] $name (${secs}s) $(grep -v '^[[:space:]]*$' "$WORK/$name.out" | tail -n 1 | cut -c1-160)"
    return 0
  fi
  local msg status=failed
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    status=timeout msg="timed out after ${t}s"
  else
    msg=$(grep -v '^[[:space:]]*$' "$WORK/$name.out" | tail -n 1 | cut -c1-300)
    msg=${msg:-"exit status $rc"}
  fi
  record "$name" "$status" "$rc" "$secs" "$msg"
  say "[FAIL] $name (exit $rc, ${secs}s): $msg"
  return "$rc"
}

# fail_check NAME MESSAGE: records a failed check that ran no command.
fail_check() {
  record "$1" failed 1 0 "$2"
  say "[FAIL] $1: $2"
}

start_sampler() {
  SAMPLER_PID=""
  [ "$MODE" = gpu ] || return 0
  timeout -k 2 600 nvidia-smi -i "$GPU_ID" --query-gpu=timestamp,utilization.gpu,memory.used \
    --format=csv,noheader,nounits -lms 200 >"$1" 2>>"$LOG" </dev/null &
  SAMPLER_PID=$!
}

stop_sampler() {
  if [ -n "$SAMPLER_PID" ]; then
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
  fi
}

write_summary() {
  [ "$SUMMARY_DONE" = 0 ] || return 0
  SUMMARY_DONE=1
  local spy=""
  for c in "$PY" python3 /usr/bin/python3 python; do
    if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then spy=$c; break; fi
  done
  if [ -n "$spy" ] && (cd "$WORK" && timeout -k 5 25 "$spy" "$ROOT/bench/gpu/gpu_check_summary.py" "$WORK" "$SUMMARY") 2>&1 | tee -a "$LOG"; then
    [ -f "$SUMMARY" ] && { say "----- summary.json"; tee -a "$LOG" <"$SUMMARY"; }
    return 0
  fi
  # No Python at all: a minimal summary that still says what happened.
  printf '{\n  "tool": "scripts/gpu-check.sh",\n  "mode": "%s",\n  "ok": false,\n  "error": "no Python 3 to write the full summary; see gpu-check.log"\n}\n' "${MODE:-unknown}" >"$SUMMARY"
  say "gpu-check: no Python 3 to write the full summary; see $LOG"
  cat "$SUMMARY"
}

# shellcheck disable=SC2317  # called by the EXIT trap
on_exit() {
  local rc=$?
  stop_sampler
  if [ "$SUMMARY_DONE" = 0 ]; then
    export GC_ABORTED="the script stopped early (exit $rc)"
    write_summary || true
  fi
  rm -rf "$WORK"
}
trap on_exit EXIT
trap 'echo "gpu-check: interrupted" >&2; exit 130' INT TERM

# ---- what is here ------------------------------------------------------------
export GC_START=$START GC_BUDGET=$BUDGET
GC_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
GC_HOSTNAME=$(hostname 2>/dev/null || uname -n)
GC_OS=$(sed -n 's/^PRETTY_NAME=//p' /etc/os-release 2>/dev/null | tr -d '"' || true)
GC_KERNEL=$(uname -sr)
GC_CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
GC_CPUS=$(nproc 2>/dev/null || echo "")
GC_GLIBC=$(ldd --version 2>/dev/null | head -n 1 || true)
GC_GXX=$(g++ --version 2>/dev/null | head -n 1 || true)
GC_NVCC=$(nvcc --version 2>/dev/null | tail -n 1 || true)
export GC_DATE GC_HOSTNAME GC_OS GC_KERNEL GC_CPU GC_CPUS GC_GLIBC GC_GXX GC_NVCC
say "gpu-check: $GC_DATE on $GC_HOSTNAME ($GC_OS, $GC_KERNEL), budget ${BUDGET}s, output in $OUTDIR"

MODE=gpu GC_DRY_REASON=""
if [ "$DRY" = 1 ]; then
  MODE=cpu-dry-run GC_DRY_REASON="--cpu-dry-run was given"
elif ! command -v nvidia-smi >/dev/null 2>&1; then
  MODE=cpu-dry-run GC_DRY_REASON="nvidia-smi not found: no NVIDIA driver here"
elif ! grep -q '^GPU ' <<<"$(timeout 30 nvidia-smi -L 2>>"$LOG" || true)"; then
  MODE=cpu-dry-run GC_DRY_REASON="nvidia-smi lists no GPU"
fi
export GC_MODE=$MODE GC_DRY_REASON

if [ "$MODE" = gpu ]; then
  if [ -z "$GPU_ID" ]; then
    GPU_ID=${CUDA_VISIBLE_DEVICES:-0}
    GPU_ID=${GPU_ID%%,*}
    GPU_ID=${GPU_ID:-0}
  fi
  # One GPU, numbered as nvidia-smi numbers it, is cuda:0 for both programs.
  export CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=$GPU_ID
  GC_GPU_QUERY=$(timeout 30 nvidia-smi -i "$GPU_ID" --query-gpu=name,driver_version,memory.total,compute_cap \
    --format=csv,noheader,nounits 2>/dev/null ||
    timeout 30 nvidia-smi -i "$GPU_ID" --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits 2>>"$LOG" || true)
  GC_GPU_QUERY=$(head -n 1 <<<"$GC_GPU_QUERY")
  { echo "----- nvidia-smi"; timeout 30 nvidia-smi 2>&1 || true; } >>"$LOG"
  GC_NVSMI_CUDA=$(grep -o 'CUDA Version: [0-9.]*' "$LOG" | head -n 1 | sed 's/.*: //' || true)
  export GC_GPU_ID=$GPU_ID GC_GPU_QUERY GC_NVSMI_CUDA
  say "GPU $GPU_ID: ${GC_GPU_QUERY:-unknown} (CUDA driver API ${GC_NVSMI_CUDA:-?})"
  DEVICE=cuda SIZE=224 BATCH=64 PARITY_SIZE=224
  STEPS=${STEPS:-40} WARMUP=${WARMUP:-8}
else
  say "CPU dry run ($GC_DRY_REASON): tiny settings, the numbers are not GPU measurements"
  DEVICE=cpu SIZE=64 BATCH=4 PARITY_SIZE=64
  STEPS=${STEPS:-2} WARMUP=${WARMUP:-1}
fi
export GC_DEVICE=$DEVICE GC_SIZE=$SIZE GC_BATCH=$BATCH GC_STEPS=$STEPS GC_WARMUP=$WARMUP GC_PARITY_SIZE=$PARITY_SIZE

# ---- Python with PyTorch -----------------------------------------------------
# Probed from / so that the repository's Go package folder named torch/ does
# not shadow PyTorch.
PROBE='
import json, os, sys
import torch
assert hasattr(torch, "__version__"), "not PyTorch"
info = {"python": sys.version.split()[0], "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "torch_dir": os.path.dirname(os.path.abspath(torch.__file__)), "cuda_available": False,
        "cudnn": None, "torchvision": None, "cxx11_abi": getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", None)}
if sys.argv[1] == "gpu":
    info["cuda_available"] = torch.cuda.is_available()
    if info["cuda_available"]:
        info["cudnn"] = torch.backends.cudnn.version()
try:
    import torchvision
    info["torchvision"] = torchvision.__version__
except Exception:
    pass
score = (4 if info["cuda_available"] else 0) + (2 if info["torch_cuda"] else 0) + (1 if info["torchvision"] else 0)
print(score)
print(json.dumps(info))
'
GC_PY_PROBE=""
best=-1
if [ -n "$PY" ]; then candidates=("$PY"); else candidates=(python3 /usr/bin/python3 python); fi
seen=" "
for c in "${candidates[@]}"; do
  p=$(command -v "$c" 2>/dev/null) || continue
  real=$(readlink -f "$p" 2>/dev/null || echo "$p")
  case "$seen" in *" $real "*) continue ;; esac
  seen="$seen$real "
  if out=$(cd / && timeout 60 "$p" -c "$PROBE" "$MODE" 2>>"$LOG"); then
    score=$(head -n 1 <<<"$out")
    echo "python candidate $p: score $score $(tail -n 1 <<<"$out")" >>"$LOG"
    if [ "$score" -gt "$best" ]; then best=$score PYBIN=$p GC_PY_PROBE=$(tail -n 1 <<<"$out"); fi
  else
    echo "python candidate $p: no usable PyTorch" >>"$LOG"
  fi
done
if [ "$best" -ge 0 ]; then
  PY=$PYBIN
  say "Python: $PY $GC_PY_PROBE"
  if [ "$MODE" = gpu ] && [ "$best" -lt 4 ]; then
    fail_check python-cuda "the PyTorch of $PY cannot use CUDA here (torch.cuda.is_available() is False)"
  fi
else
  PY=""
  fail_check python "no Python with PyTorch found (tried: ${candidates[*]}); pass --python"
fi
export GC_PYTHON=$PY GC_PY_PROBE

# ---- libtorch and the shim ---------------------------------------------------
if [ -z "$LIBTORCH_DIR" ] && [ "$MODE" = gpu ] && [ -n "$GC_PY_PROBE" ]; then
  LIBTORCH_DIR=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["torch_dir"])' "$GC_PY_PROBE" 2>>"$LOG" || true)
fi
if [ -n "$LIBTORCH_DIR" ]; then
  LIBTORCH_DIR=$(cd "$LIBTORCH_DIR" 2>/dev/null && pwd || echo "$LIBTORCH_DIR")
  TORCH_LIB=$LIBTORCH_DIR/lib
  missing=""
  for f in include/torch/csrc/api/include/torch/torch.h lib/libtorch.so lib/libtorch_cpu.so lib/libc10.so; do
    [ -e "$LIBTORCH_DIR/$f" ] || missing="$missing $f"
  done
  if [ -n "$missing" ]; then
    fail_check libtorch-layout "$LIBTORCH_DIR is not a libtorch folder: missing$missing"
  elif [ "$MODE" = gpu ] && [ ! -e "$TORCH_LIB/libtorch_cuda.so" ]; then
    fail_check libtorch-layout "$LIBTORCH_DIR has no lib/libtorch_cuda.so: a CPU-only libtorch"
  fi
elif [ "$MODE" = gpu ]; then
  TORCH_LIB=""
  fail_check libtorch-layout "no libtorch: pass --libtorch DIR or set LIBTORCH (or install a CUDA PyTorch wheel)"
else
  TORCH_LIB=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
fi
export GC_LIBTORCH=${LIBTORCH_DIR:-"Debian libtorch-dev"} GC_TORCH_LIB=$TORCH_LIB
say "libtorch: ${LIBTORCH_DIR:-Debian libtorch-dev} (libraries in ${TORCH_LIB:-?})"

SHIM=$ROOT/build/libfertorch.so
if [ "$SKIP_BUILD" = 1 ]; then
  GC_BUILD_MODE=skipped
  record build-shim skipped-by-option "" 0 "--skip-build: using $SHIM as it is"
  say "[skip] build-shim: --skip-build"
elif ! command -v make >/dev/null 2>&1 || ! command -v g++ >/dev/null 2>&1; then
  GC_BUILD_MODE=failed
  fail_check build-shim "make and g++ are needed to build the shim"
else
  # make tracks the sources, not the libtorch: rebuild from scratch unless the
  # shim already points (RUNPATH) at this libtorch's libraries.
  runpath=$(readelf -d "$SHIM" 2>/dev/null | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p; s/.*(RPATH).*\[\(.*\)\]/\1/p' | head -n 1 || true)
  make_args=(-C "$ROOT" shim)
  [ -n "$LIBTORCH_DIR" ] && make_args+=("LIBTORCH=$LIBTORCH_DIR")
  if [ -n "$TORCH_LIB" ] && [ "$runpath" = "$TORCH_LIB" ]; then
    GC_BUILD_MODE=incremental
  else
    GC_BUILD_MODE=forced make_args=(-B "${make_args[@]}")
  fi
  run_step build-shim 240 make "${make_args[@]}" || GC_BUILD_MODE=failed
fi
export GC_BUILD_MODE
{ echo "----- shim"; readelf -d "$SHIM" 2>&1 | grep -E 'NEEDED|RPATH|RUNPATH' || true; } >>"$LOG"
# A CUDA shim must link libtorch_cuda and libc10_cuda (NEEDED entries) and
# export the whole C API: what make test-cuda-build checks in CI.
if [ "$MODE" = gpu ] && [ -f "$SHIM" ]; then
  run_step cuda-link 30 bash "$ROOT/scripts/lib/cuda-shim-check.sh" "$SHIM" || true
fi

# ---- fer: version and CPU-vs-device parity -----------------------------------
FER=${FER:-$ROOT/build/fer}
export GC_FER=$FER
LDPATH=$ROOT/build${TORCH_LIB:+:$TORCH_LIB}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ ! -f "$FER" ]; then
  fail_check fer-binary "$FER is missing: build it with 'make build' on a machine with Go and bring build/fer along"
else
  [ -x "$FER" ] || chmod +x "$FER" 2>/dev/null || true
  { echo "----- ldd $FER"; env LD_LIBRARY_PATH="$LDPATH" ldd "$FER" 2>&1 || true; } >>"$LOG"
fi

export GC_FER_VERSION=""
if run_step fer-version 60 env LD_LIBRARY_PATH="$LDPATH" "$FER" version; then
  GC_FER_VERSION=$(tr '\n' ';' <"$WORK/fer-version.out" | sed 's/;$//; s/;/; /g')
  if [ "$MODE" = gpu ]; then
    if ! grep -q 'built with CUDA: true' "$WORK/fer-version.out"; then
      fail_check fer-cuda "the shim is not built with CUDA (see build-shim in the log)"
    elif grep -q 'CUDA devices: none' "$WORK/fer-version.out"; then
      # fer says why: no driver library, a driver that cannot start, no GPU
      # visible, or a driver too old for libtorch's CUDA.
      fail_check fer-cuda "libtorch sees no CUDA device: $(sed -n 's/^CUDA devices: none (\(.*\))$/\1/p' "$WORK/fer-version.out")"
    fi
  fi
fi

for cl in 0 1; do
  name=parity-fp32 flags=()
  [ "$cl" = 1 ] && name=parity-fp32-channels-last flags=(--channels-last)
  run_step "$name" 120 env LD_LIBRARY_PATH="$LDPATH" "$FER" benchmark --parity --device "$DEVICE" \
    "${flags[@]}" --input-size "$PARITY_SIZE" --json "$WORK/$name.json" || true
done

# ---- training throughput: fertorch and PyTorch, setting by setting ----------
for setting in fp32 bf16 bf16-channels-last; do
  prec=${setting%%-*} flags=()
  [ "$setting" = bf16-channels-last ] && flags=(--channels-last)
  common=(--device "$DEVICE" --precision "$prec" "${flags[@]}" --batch-size "$BATCH" --input-size "$SIZE"
    --steps "$STEPS" --warmup "$WARMUP")

  name=train-fertorch-$setting
  start_sampler "$WORK/$name.util.csv"
  run_step "$name" 150 env LD_LIBRARY_PATH="$LDPATH" "$FER" benchmark "${common[@]}" --json "$WORK/$name.json" || true
  stop_sampler

  name=train-pytorch-$setting
  if [ -z "$PY" ]; then
    fail_check "$name" "no Python with PyTorch"
    continue
  fi
  start_sampler "$WORK/$name.util.csv"
  run_step "$name" 150 "$PY" "$ROOT/bench/gpu/pytorch_train_bench.py" "${common[@]}" --json "$WORK/$name.json" || true
  stop_sampler
done

# ---- distributed training with world size 1 (NCCL on a GPU, Gloo on the CPU) --
run_step dist-train-world-size-1 150 env LD_LIBRARY_PATH="$LDPATH" \
  "$ROOT/scripts/lib/gpu-dist-check.sh" "$FER" "$DEVICE" "$WORK/dist" || true

# ---- summary -----------------------------------------------------------------
for f in "$WORK"/*.util.csv; do
  [ -f "$f" ] && { echo "----- samples $(basename "$f") (timestamp, utilization.gpu %, memory.used MiB)"; cat "$f"; } >>"$LOG"
done
write_summary
if grep -q '"ok": true' "$SUMMARY" 2>/dev/null; then
  exit 0
fi
exit 1
