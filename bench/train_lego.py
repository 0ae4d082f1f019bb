"""Spine targets: lego-200 test PSNR after 3 and 10 minutes of training, throughput, render speed, memory.

    .venv/bin/python bench/train_lego.py [--preset preview] [--minutes 10] [--snapshots 3,10]

Trains once with a wall-clock budget; at each snapshot time the weights are copied (evaluation happens
after training, so it never eats into the budget). A snapshot mid-run has not had its learning rate
decayed, so the early numbers are conservative. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import copy
import resource
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from render.cameras import Cameras  # noqa: E402
from render.render import render_camera  # noqa: E402
from scenes.config import preset_config  # noqa: E402
from scenes.data import load_posed_images  # noqa: E402
from scenes.evaluate import evaluate_scene  # noqa: E402
from scenes.train import train_scene  # noqa: E402
from vista_core.progress import ProgressEvent  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "lego-200")
    parser.add_argument("--preset", default="preview")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--snapshots", default="3,10", help="minutes at which to evaluate, comma-separated")
    parser.add_argument("--steps", type=int, default=100_000, help="step cap (the time budget normally ends first)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "lego200")
    parser.add_argument("--samples-per-step", type=int, default=None,
                        help="override the preset's cap on a step's samples (0: off), for side-by-side runs")
    parser.add_argument("--pixel-jitter", action="store_true",
                        help="train through random points of the pixels (TrainConfig.pixel_jitter), for side-by-side runs")
    args = parser.parse_args()

    data = load_posed_images(args.data)
    config = preset_config(args.preset, steps=args.steps, samples_per_step=args.samples_per_step,
                           pixel_jitter=args.pixel_jitter or None)
    marks = sorted(float(m) for m in args.snapshots.split(","))
    snapshots: list[tuple[float, int, dict, torch.Tensor]] = []

    def on_step(event: ProgressEvent) -> None:
        while marks and event.metrics["elapsed_s"] >= marks[0] * 60:
            scene = event.snapshot
            snapshots.append((marks.pop(0), event.done, copy.deepcopy(scene.field.state_dict()),
                              scene.grid.density.clone()))

    start = time.perf_counter()
    scene = train_scene(data, args.out, config, minutes=args.minutes, overwrite=True, show_progress=True,
                        progress=on_step)
    wall = time.perf_counter() - start
    final_minutes = scene.metrics["train_seconds"] / 60
    rows = []
    for minutes, step, state, density in snapshots:
        if minutes >= args.minutes:
            continue
        snap = copy.copy(scene)
        snap.field = copy.deepcopy(scene.field)
        snap.field.load_state_dict(state)
        snap.grid = copy.deepcopy(scene.grid)
        snap.grid.restore(density, config.sampling.occupancy_threshold)
        m = evaluate_scene(snap, data)
        rows.append((f"{minutes:g} (snapshot)", step, m.mean_psnr, m.mean_ssim))
    m = evaluate_scene(scene, data)
    rows.append((f"{final_minutes:.1f} (end)", scene.step, m.mean_psnr, m.mean_ssim))

    renderable = scene.renderable()
    i = data.heldout_indices[0]
    cams = Cameras.from_fov(data.cameras.world_from_camera[i:i + 1], float(data.cameras.fov_y_deg[i]), 320, 180)
    render_camera(renderable, cams, 0)  # warm-up
    n_frames = 8
    t0 = time.perf_counter()
    for _ in range(n_frames):
        render_camera(renderable, cams, 0)
    fps = n_frames / (time.perf_counter() - t0)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2

    print(f"\nlego-200, preset {args.preset} (samples per step cap {config.samples_per_step or 'off'}), "
          f"{torch.get_num_threads()} threads, wall {wall:.0f} s")
    print("| minutes | steps | test PSNR (dB) | SSIM |")
    print("|---|---|---|---|")
    for minutes, step, p, s in rows:
        print(f"| {minutes} | {step} | {p:.2f} | {s:.4f} |")
    met = scene.metrics
    print(f"\ntraining: {met['rays_per_s']:,.0f} rays/s, {met['samples_per_s']:,.0f} samples/s, "
          f"{met['samples_per_ray']:.1f} samples/ray, occupied {met['occupied_fraction']:.3f}")
    print(f"rendering 320x180: {fps:.2f} frames/s; peak memory (max RSS): {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
