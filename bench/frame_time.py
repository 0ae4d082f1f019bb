"""Seconds per frame of a trained scene at a given size, from its first capture pose (issue #21's render target).

    .venv/bin/python bench/frame_time.py SCENE_DIR [--sizes 1280x720,1920x1080]

Not a test: run it alone on the machine. Early ray termination is on, as in `vista render`.
"""

from __future__ import annotations

import argparse
import time

import torch

from render.cameras import Cameras
from render.render import render_camera
from scenes.scene import load_scene


def frame_seconds(scene_dir: str, width: int, height: int) -> tuple[float, float]:
    """(seconds, mean opacity) of one width x height frame from capture pose 0, the capture's vertical field of view."""
    scene = load_scene(scene_dir)
    representation = scene.renderable()
    representation.train(False)
    capture = scene.capture
    focal_px = float(capture.fy[0]) * height / capture.height
    cameras = Cameras(capture.world_from_camera[:1], torch.tensor([focal_px]), torch.tensor([focal_px]),
                      torch.tensor([width / 2]), torch.tensor([height / 2]), width, height)
    start = time.perf_counter()
    image = render_camera(representation, cameras, 0)
    return time.perf_counter() - start, float(image.opacity.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scene")
    parser.add_argument("--sizes", default="1280x720")
    args = parser.parse_args()
    print("| size | s/frame | mean opacity |\n|---|---|---|")
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        seconds, opacity = frame_seconds(args.scene, width, height)
        print(f"| {width}x{height} | {seconds:.1f} | {opacity:.3f} |")


if __name__ == "__main__":
    main()
