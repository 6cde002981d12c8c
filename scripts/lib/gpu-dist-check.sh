#!/usr/bin/env bash
# gpu-dist-check.sh FER DEVICE DIR: fer train as a one-rank distributed job
# (torchrun's environment variables) on a tiny synthetic layout made in DIR,
# so that c10d's process group (NCCL on a CUDA device, Gloo on the CPU), the
# broadcast of rank 0's weights and the gradient reducer run on DEVICE. Used
# by scripts/gpu-check.sh; exits non-zero with fer's error when a step fails.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 FER DEVICE DIR" >&2; exit 2; }
FER=$1 DEVICE=$2 DIR=$3
rm -rf "$DIR"
"$FER" synth --out "$DIR/synth" --per-class 6 --classes anger,happiness,neutral,surprise --max-size 64 --seed 1 >/dev/null
"$FER" prepare --source "$DIR/synth" --out "$DIR/data" --split stratified --valid 0.25 --test 0.1 --seed 1 >/dev/null
env WORLD_SIZE=1 RANK=0 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$((29500 + RANDOM % 2000)) \
  "$FER" train --data "$DIR/data" --output "$DIR/run" --device "$DEVICE" --arch resnet18 --weights "" \
  --trainable-base-layers all --input-size 64 --batch-size 8 --epochs 1 --progress off --dist-timeout 2m
