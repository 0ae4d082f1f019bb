"""Rendering speed of `vista render` for a trained scene: frames/s at 320x180 and 1280x720.

    nice -n 10 .venv/bin/vista train ../shared/data/lego-200 --out outputs/lego-preview-video --preset preview --minutes 3
    nice -n 10 .venv/bin/python bench/render_video.py outputs/lego-preview-video [--frames 3] [--threads 2]

Renders an orbit around the scene's capture (the capture cameras' mean distance and field of view) through
`render.video.render_video` (banded rendering, frame cache, watermark, H.264 encode) and prints one row per
resolution: frames/s of rendering alone, seconds per frame including post-processing and encoding, and the
flicker of the path, and CPU seconds per frame (all threads; meaningful when the machine is shared). Output videos go to bench/out/. Not a test.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from render.cameras import Cameras  # noqa: E402
from render.video import VideoConfig, render_video  # noqa: E402
from scenes.scene import load_scene  # noqa: E402

SIZES = [(320, 180), (1280, 720)]


def orbit_like_capture(capture: Cameras, frames: int, width: int, height: int, arc_deg: float = 30.0) -> Cameras:
    """An arc at the capture's mean height and distance from its centroid's look-at point (the origin for lego)."""
    positions = capture.positions
    radius = float(positions[:, :2].norm(dim=-1).mean())
    z = float(positions[:, 2].mean())
    fov = float(capture.fov_y_deg.mean())
    matrices = []
    for k in range(frames):
        angle = math.radians(arc_deg) * k / max(frames - 1, 1)
        position = torch.tensor([radius * math.cos(angle), radius * math.sin(angle), z])
        back = position / position.norm()
        right = torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0]), back)
        right = right / right.norm()
        up = torch.linalg.cross(back, right)
        matrices.append(torch.stack([right, up, back, position], dim=-1))
    return Cameras.from_fov(torch.stack(matrices), fov, width, height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scene", type=Path)
    parser.add_argument("--frames", type=int, default=3, help="frames per resolution (default 3)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scene = load_scene(args.scene)
    renderable = scene.renderable()
    out_dir = Path(__file__).resolve().parent / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"scene {args.scene} (step {scene.step}, {scene.config.preset} preset, backend {scene.backend}), "
          f"{args.frames} frames per size, {args.threads} torch threads")
    print(f"{'size':>10} | {'render frames/s':>15} | {'s/frame total':>13} | {'flicker (8-bit)':>15} | "
          f"{'watermark':>9} | {'CPU s/frame':>11}")
    print("-" * 90)
    for width, height in SIZES:
        cameras = orbit_like_capture(scene.capture, args.frames, width, height)
        out = out_dir / f"lego-{width}x{height}.mp4"
        start, cpu = time.perf_counter(), time.process_time()
        result = render_video(renderable, cameras, out, VideoConfig(fps=24), cache_key=f"bench-{time.time()}",
                              show_progress=False)
        total = time.perf_counter() - start
        cpu_per_frame = (time.process_time() - cpu) / args.frames  # independent of other load on the machine
        print(f"{width:>4}x{height:<5} | {result.frames_per_s:>15.3f} | {total / args.frames:>13.1f} | "
              f"{result.flicker.mean * 255:>15.2f} | {result.watermark_detected}/{result.watermark_checked:<7} | {cpu_per_frame:>11.1f}")


if __name__ == "__main__":
    main()
