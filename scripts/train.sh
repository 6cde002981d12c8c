#!/usr/bin/env bash
# train.sh: the real run, for a CUDA box: fetch the facial_expressions
# dataset and torchvision's ImageNet VGG16 weights, prepare a by-subject
# train/valid/test split, fine-tune VGG16 with the seed tutorial's settings
# (configs/seed.yaml), and evaluate the best checkpoint on the test split.
#
# Settings come from the environment:
#   DEVICE=auto|cuda|cuda:N|cpu   (default auto)
#   PRECISION=fp32|bf16|fp16      (default fp32; bf16 on A100/H100-class GPUs)
#   SPLIT=by-subject|stratified|seed   (default by-subject)
#   WORK=work  RUN=runs/vgg16  WEIGHTS=weights
#   TRAIN_FLAGS="..."             extra flags for fer train (e.g. --channels-last --epochs 20)
#
# Run it again after an interruption and it continues the run in $RUN
# (fer train --resume) instead of starting over.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,15p' "$0"; exit 0 ;; esac
FER=build/fer
WORK=${WORK:-work}
RUN=${RUN:-runs/vgg16}
WEIGHTS=${WEIGHTS:-weights}
DEVICE=${DEVICE:-auto}
PRECISION=${PRECISION:-fp32}
SPLIT=${SPLIT:-by-subject}
[ -x "$FER" ] || { echo "train.sh: $FER not found: run make build first" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

step "dataset"
scripts/fetch-data.sh "$WORK/facial_expressions"
step "pretrained weights"
scripts/fetch-weights.sh --dir "$WEIGHTS"
step "prepare ($SPLIT split)"
"$FER" prepare --source "$WORK/facial_expressions" --out "$WORK/data" --split "$SPLIT"
if [ -f "$RUN/last.safetensors" ]; then
  # Run again after an interruption (a lost spot VM, Ctrl-C): continue.
  step "train: continuing the run in $RUN (set RUN=another/folder for a new one)"
  "$FER" train --resume "$RUN"
else
  step "train"
  # shellcheck disable=SC2086 # TRAIN_FLAGS is a list of flags
  "$FER" train --config configs/seed.yaml --data "$WORK/data" --weights "$WEIGHTS/vgg16-397923af.pth" \
    --device "$DEVICE" --precision "$PRECISION" --output "$RUN" ${TRAIN_FLAGS:-}
fi
step "evaluate on the test split"
"$FER" eval --checkpoint "$RUN/best.safetensors" --data "$WORK/data/test" --out "$RUN/eval" --device "$DEVICE"
