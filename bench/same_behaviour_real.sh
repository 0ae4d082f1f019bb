#!/usr/bin/env bash
# Same behaviour on a real, unbounded capture: fox-small trained for 120 fixed steps (preset test, seed 0) by each
# of two checkouts, then 2 capture views rendered at 1/4 size; prints the sha256 of the weights and of the renders.
#
#   bash bench/same_behaviour_real.sh OLD_CHECKOUT NEW_CHECKOUT
set -euo pipefail
OLD=$(realpath "$1"); NEW=$(realpath "$2")
PY=$(pwd)/.venv/bin/python  # run from the checkout whose venv to use
DATA=$(realpath "$(dirname "$0")/../../shared/data/fox-small")
for side in old new; do
  repo=$OLD; [ $side = new ] && repo=$NEW
  out=$(pwd)/bench/out/same-behaviour-real/$side; rm -rf "$out"; mkdir -p "$(dirname "$out")"
  (cd $repo && PYTHONPATH=$repo $PY -c "import sys; from vista import main; sys.exit(main(sys.argv[1:]))" train "$DATA" --out "$out" --preset test --steps 120 --seed 0 --no-eval >/dev/null 2>&1)
  echo "$side: $(sha256sum $out/field.safetensors | cut -c1-64) weights"
  (cd $repo && PYTHONPATH=$repo $PY - $out <<'PY'
import hashlib, sys, torch
from scenes.scene import load_scene
from render.render import render_camera
scene = load_scene(sys.argv[1]); cams = scene.capture.scaled(0.25)
h = hashlib.sha256()
for i in (0, len(cams) // 2):
    image = render_camera(scene.renderable(), cams, i)
    for t in (image.rgb, image.depth, image.opacity):
        h.update(t.contiguous().numpy().tobytes())
print(f"{h.hexdigest()} renders of 2 capture views at {cams.width}x{cams.height} (rgb, depth, opacity)")
PY
  )
done
