#!/usr/bin/env bash
# demo.sh: the whole fertorch flow on an embedded, generated dataset, on the
# CPU, in a few minutes: synthesize faces, prepare the splits, train, evaluate
# on the test split, predict a few images. Everything goes under work/demo.
#
#   scripts/demo.sh [--keep]     (--keep reuses a dataset generated earlier)
set -euo pipefail
cd "$(dirname "$0")/.."
FER=build/fer
OUT=work/demo
keep=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done
[ -x "$FER" ] || { echo "demo.sh: $FER not found: run make build first" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

if [ "$keep" = 0 ] || [ ! -f "$OUT/synth/data/legend.csv" ]; then
  step "generating synthetic faces (8 emotions x 200, with the real dataset's kinds of mess)"
  rm -rf "$OUT"
  "$FER" synth --out "$OUT/synth" --per-class 200 --variation 0.2 --seed 1
fi

step "prepare: legend -> by-subject train/valid/test split -> $OUT/data"
"$FER" prepare --source "$OUT/synth" --out "$OUT/data" --split by-subject --valid 0.2 --test 0.1 --seed 1

step "train (configs/demo.yaml: vgg16_bn from scratch at 32x32, CPU)"
"$FER" train --config configs/demo.yaml --overwrite

step "eval on the test split"
"$FER" eval --checkpoint "$OUT/run/best.safetensors" --data "$OUT/data/test" --out "$OUT/run/eval"

step "predict three test images"
mapfile -t samples < <(find "$OUT/data/test" -type f -name '*.jpg' | sort | head -3)
"$FER" predict --checkpoint "$OUT/run/best.safetensors" -k 2 "${samples[@]}"

step "done"
echo "run folder: $OUT/run (curves.png, history.csv, best.safetensors, eval/confusion.png, eval/results.csv)"
