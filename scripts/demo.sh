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

step "serve: the web page answering the same three images (screenshot)"
if [ -x build/pageshot ] && { command -v chromium >/dev/null || command -v google-chrome >/dev/null; }; then
  "$FER" serve --checkpoint "$OUT/run/best.safetensors" --addr 127.0.0.1:0 >"$OUT/run/serve.out" 2>"$OUT/run/serve.log" &
  server=$!
  addr=""
  for _ in $(seq 300); do
    addr=$(sed -n 's|.* at http://\([^/]*\)/.*|\1|p' "$OUT/run/serve.out")
    [ -n "$addr" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$OUT/run/serve.log" >&2; exit 1; }
    sleep 0.2
  done
  [ -n "$addr" ] || { echo "demo.sh: fer serve did not start" >&2; kill "$server"; exit 1; }
  status=0
  build/pageshot -url "http://$addr/" -out "$OUT/run/serve.png" "${samples[@]}" || status=$?
  kill -TERM "$server"
  wait "$server" || true
  [ "$status" = 0 ] || exit "$status"
else
  echo "no Chromium (apt-get install chromium) or build/pageshot: no screenshot of the page"
fi

step "done"
echo "run folder: $OUT/run (curves.png, history.csv, best.safetensors, eval/confusion.png, eval/results.csv, serve.png)"
