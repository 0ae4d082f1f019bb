#!/usr/bin/env bash
# Same behaviour before and after a change: a fixed-step pipeline run with each of two checkouts, side by side.
#
#   bash bench/same_behaviour.sh OLD_CHECKOUT NEW_CHECKOUT [OUT_DIR]
#
# Each checkout trains lego-100 (preset preview, 300 steps, seed 0), evaluates the held-out views, fits an orbit
# (2 s at 12 fps) and renders it at 320x240, all through its own `vista` CLI and this venv. Prints the held-out PSNR
# and the sha256 of the weights, the camera path and the MP4, and whether the recipes' per-frame hashes agree.
set -euo pipefail
OLD=$(realpath "$1"); NEW=$(realpath "$2"); OUT=${3:-bench/out/same-behaviour}
PY=$(pwd)/.venv/bin/python  # not realpath: that would resolve the venv link to the bare interpreter
DATA=$(realpath "$(dirname "$0")/../../shared/data/lego-100")
mkdir -p "$OUT"; OUT=$(realpath "$OUT")
run() {  # checkout, out, vista args...
  local repo=$1 out=$2; shift 2
  (cd "$repo" && PYTHONPATH="$repo" "$PY" -c "import sys; from vista import main; sys.exit(main(sys.argv[1:]))" "$@")
}
for side in old new; do
  repo=$OLD; [ "$side" = new ] && repo=$NEW
  out=$OUT/$side; rm -rf "$out"; mkdir -p "$out"
  run "$repo" "$out" train "$DATA" --out "$out/scene" --preset preview --steps 300 --seed 0 2>/dev/null | grep "held-out" || true
  run "$repo" "$out" path "$out/scene" --preset orbit --seconds 2 --fps 12 --out "$out/path.json" >/dev/null 2>&1
  run "$repo" "$out" render "$out/scene" --path "$out/path.json" --out "$out/shot.mp4" --width 320 --height 240 \
    >/dev/null 2>&1
  echo "$side ($(git -C "$repo" rev-parse --short HEAD)):"
  sha256sum "$out/scene/field.safetensors" "$out/path.json" "$out/shot.mp4" | sed "s|$OUT/||"
done
"$PY" - "$OUT" <<'PY'
import json, sys
old, new = (json.load(open(f"{sys.argv[1]}/{s}/shot.recipe.json"))["result"]["frame_sha256"] for s in ("old", "new"))
print(f"frames: {len(old)} and {len(new)}; per-frame SHA-256 identical: {old == new}")
PY
