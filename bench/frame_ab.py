"""A render frame with a revision's hash-grid kernel and per-sample direction encoding against the working tree's
(not a test; run it alone).

    PYTHONPATH=. .venv/bin/python bench/frame_ab.py SCENE_DIR --base REV [--size 1280x720] [--rounds 3] \
        [--results NAME.json]

Renders one frame from capture pose 0 (after a warm-up frame that fills the proposal bakes) in four variants, in
turns in one process (whole runs on these VMs move more than such a change): `before` (REV's
`scenes/hashgrid_fused.c`, colours encoding each sample's direction), `tiles` (the working tree's kernel), `per-ray`
(each ray's direction encoded once, `render.ray_colours`) and `both`. All four must give the same pixels. Prints
the best and all times; writes bench/results/NAME.json (default frame-ab.json).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from bench.proposal_bake import camera_at, timed_frame
from bench.record import write_record
from render import proposal
from render.native import build_library
from scenes import hashgrid_fused
from scenes.scene import load_scene
from vista_core.memory import keep_freed_memory

REPO = Path(__file__).resolve().parents[1]


def per_sample_colours(field, features: torch.Tensor, ray_directions: torch.Tensor,
                       ray_indices: torch.Tensor) -> torch.Tensor:
    """The colour stage before `render.ray_colours`: every sample's direction encoded."""
    return field.color(features, ray_directions[ray_indices])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scene", type=Path)
    parser.add_argument("--base", required=True, help="git revision whose grid kernel is the baseline")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", default="frame-ab.json")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "hashgrid_base.c"
        source.write_text(subprocess.run(["git", "show", f"{args.base}:scenes/hashgrid_fused.c"], cwd=REPO,
                                         check=True, capture_output=True, text=True).stdout)
        base_kernel = build_library(source)
    hashgrid_fused._declare(base_kernel)
    kernels = {"base": base_kernel, "now": hashgrid_fused._load()}
    colours = {"per sample": per_sample_colours, "per ray": proposal.ray_colours}
    variants = {"before": ("base", "per sample"), "tiles": ("now", "per sample"), "per-ray": ("base", "per ray"),
                "both": ("now", "per ray")}
    scene = load_scene(args.scene)
    representation = scene.renderable()
    representation.train(False)
    camera = camera_at(scene, args.size)
    timed_frame(representation, camera)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    images: dict[str, torch.Tensor] = {}
    try:
        for _ in range(args.rounds):
            for name, (kernel, colour) in variants.items():
                hashgrid_fused._KERNEL._library = kernels[kernel]
                proposal.ray_colours = colours[colour]
                images[name], elapsed = timed_frame(representation, camera)
                seconds[name].append(elapsed)
                print(f"{name}: {elapsed:.2f} s", flush=True)
    finally:
        hashgrid_fused._KERNEL._library, proposal.ray_colours = kernels["now"], colours["per ray"]
    same = {name: bool(torch.equal(images["before"], image)) for name, image in images.items()}
    print(f"| variant ({args.scene.name}, {args.size}) | best s | all s | same pixels |\n|---|---|---|---|")
    for name, times in seconds.items():
        print(f"| {name} | {min(times):.2f} ({min(seconds['before']) / min(times):.2f}x) | "
              f"{' / '.join(f'{t:.2f}' for t in times)} | {same[name]} |")
    write_record("bench/frame_ab.py", args.results, {"scene": str(args.scene), "size": args.size, "base": args.base,
                                                    "rounds": args.rounds, "seconds": seconds, "same_pixels": same})
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
