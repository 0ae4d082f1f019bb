"""A 1280x720 frame with the colour MLP in fp32 and in bfloat16 (render.proposal.colour_precision), alternating.

    PYTHONPATH=. .venv/bin/python bench/render_colour.py SCENE_DIR [...] [--size 1280x720] [--repeats 2]

Per scene: seconds per frame from capture pose 0 each way (after one warm-up frame, the bakes filled), the seconds of
the colour stage in it (`render.proposal._colors`, timed: frame times on these VMs vary by 15% run to run, the stage's
by less), and the PSNR of the bf16 frame against the fp32 one. Not a test: run it alone. Writes bench/results/render-colour-bf16.json.
It sets VISTA_MLP=reference: a colour MLP on the fused kernel (scenes/mlp_fused.py) stays fp32 whatever the switch, so
torch's layers are the path whose precision this compares.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from bench.proposal_bake import camera_at, timed_frame
from bench.record import write_record
from render import proposal
from scenes.evaluate import psnr
from scenes.scene import load_scene

REPO = Path(__file__).resolve().parents[1]
STAGE = {"seconds": 0.0}


def timed_colours(colours):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return colours(*args, **kwargs)
        finally:
            STAGE["seconds"] += time.perf_counter() - start

    return wrapper


def set_precision(mode: str) -> None:
    os.environ["VISTA_COLOUR"] = mode
    proposal._bf16_colours.cache_clear()


def measure(scene_dir: str, size: str, repeats: int) -> dict:
    scene = load_scene(scene_dir)
    representation = scene.renderable()
    representation.train(False)
    cameras = camera_at(scene, size)
    timed_frame(representation, cameras)
    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    stage: dict[str, list[float]] = {"fp32": [], "bf16": []}
    frames = {}
    for _ in range(repeats):
        for mode in seconds:
            set_precision(mode)
            STAGE["seconds"] = 0.0
            frames[mode], elapsed = timed_frame(representation, cameras)
            seconds[mode].append(elapsed)
            stage[mode].append(STAGE["seconds"])
    return {"scene": scene_dir, "size": size, "seconds": seconds, "colour_stage_seconds": stage,
            "ratio": min(seconds["bf16"]) / min(seconds["fp32"]),
            "stage_ratio": min(stage["bf16"]) / min(stage["fp32"]), "psnr_bf16_vs_fp32": psnr(frames["bf16"], frames["fp32"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenes", nargs="+")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    os.environ["VISTA_MLP"] = "reference"  # before any scene loads: the kernel's switch is read once
    set_precision("bf16")
    if not proposal._bf16_colours():
        raise SystemExit("this CPU has no native bf16: renders use fp32 here, nothing to compare")
    proposal._colors = timed_colours(proposal._colors)
    load_before = os.getloadavg()
    rows = [measure(s, args.size, args.repeats) for s in args.scenes]
    print("| scene | frame fp32 s | frame bf16 s | frame ratio (best) | colour stage fp32 / bf16 s (best) | bf16 vs fp32 dB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {Path(r['scene']).name} | {' / '.join(f'{s:.2f}' for s in r['seconds']['fp32'])} | "
              f"{' / '.join(f'{s:.2f}' for s in r['seconds']['bf16'])} | {r['ratio']:.2f} | "
              f"{min(r['colour_stage_seconds']['fp32']):.2f} / {min(r['colour_stage_seconds']['bf16']):.2f} "
              f"({r['stage_ratio']:.2f}) | {r['psnr_bf16_vs_fp32']:.1f} |")
    write_record("bench/render_colour.py", "render-colour-bf16.json",
                 {"load_average_before": load_before, "load_average_after": os.getloadavg(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
