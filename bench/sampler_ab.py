"""The unbounded sampler, side by side (issue #21): train the same capture with each sampling variant for a fixed
number of steps, then compare contention-independent numbers and in-process A/B times.

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/sampler_ab.py [--data ../shared/data/fox-small] [--steps 300]
        [--variants disparity,contracted:0.015625] [--frame-sizes 1280x720]

A variant is `disparity` (the former schedule) or `contracted:STEP` (render/unbounded.py, STEP in contracted
space). Per variant: samples per ray (kept, as training reports them) and density evaluations per ray (what the
front-to-back pass costs) over the last quarter of the steps, occupied fraction, held-out PSNR after the fixed
step count (the first `--eval-views` held-out views). Then, in this one process and alternating between variants (so machine load hits both alike):
seconds per training step of 4096 rays (forward + backward at the trained state), per held-out view, per frame
at each `--frame-sizes`. Prints a table and writes bench/results/sampler-ab.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from render.cameras import Cameras  # noqa: E402
from render.render import Renderable, render_camera  # noqa: E402
from scenes.config import preset_config  # noqa: E402
from scenes.data import LoadOptions, load_posed_images  # noqa: E402
from scenes.evaluate import evaluate_scene  # noqa: E402
from scenes.step import TrainingPixels, photo_loss  # noqa: E402
from scenes.train import train_scene  # noqa: E402
from vista_core.progress import ProgressEvent  # noqa: E402


class CountingField:
    """Wraps a field and counts the points whose density it evaluates (every pass, with or without gradients)."""

    def __init__(self, field):
        self.inner, self.points = field, 0

    def density_and_features(self, u):
        self.points += u.shape[0]
        return self.inner.density_and_features(u)

    def color(self, features, directions):
        return self.inner.color(features, directions)


def variant_config(name: str, preset: str, steps: int):
    """`disparity` or `contracted:STEP`, then optional `+field=value` overrides of the SamplingConfig or the
    TrainConfig (e.g. `contracted:0.015625+min_alpha=0.01+distortion_loss_weight=0.002`)."""
    base = preset_config(preset, steps=steps)
    # the schedules are the occupancy grid's; `+unbounded_sampler=proposal` switches (the presets' default since #21)
    base = dataclasses.replace(base, sampling=dataclasses.replace(base.sampling, unbounded_sampler="occupancy"))
    schedule, *overrides = name.split("+")
    if schedule == "disparity":
        sampling = dataclasses.replace(base.sampling, unbounded_schedule="disparity")
    else:
        step = float(schedule.split(":")[1])
        sampling = dataclasses.replace(base.sampling, unbounded_schedule="contracted", unbounded_step=step)
    train_overrides = {}
    for override in overrides:
        key, value = override.split("=")
        if hasattr(sampling, key):
            kind = type(getattr(sampling, key))
            sampling = dataclasses.replace(sampling, **{key: value == "True" if kind is bool else kind(value)})
        else:  # a TrainConfig field, e.g. distortion_loss_weight
            kind = type(getattr(base, key))
            train_overrides[key] = value == "True" if kind is bool else kind(value)
    return dataclasses.replace(base, sampling=sampling, **train_overrides)


def train_variant(name: str, data, args) -> dict:
    config = variant_config(name, args.preset, args.steps)
    tail_from = args.steps - max(args.steps // 4, 1)
    totals = {}

    def on_step(event: ProgressEvent) -> None:
        m = event.metrics
        rays = m["rays_per_s"] * m["elapsed_s"]
        if event.done == tail_from:
            totals["rays0"], totals["samples0"] = rays, rays * m["samples_per_ray"]
        totals["rays1"], totals["samples1"] = rays, rays * m["samples_per_ray"]

    out = Path(tempfile.mkdtemp(prefix=f"sampler-ab-{name.replace(':', '-').replace('=', '-')}-"))
    start = time.perf_counter()
    scene = train_scene(data, out, config, overwrite=True, show_progress=False, progress=on_step)
    train_s = time.perf_counter() - start
    tail_spr = (totals["samples1"] - totals["samples0"]) / max(totals["rays1"] - totals["rays0"], 1.0)
    counted = counting_renderable(scene)
    pixels = TrainingPixels(data)
    with torch.enable_grad():
        term = photo_loss(counted, pixels, 4096, torch.Generator().manual_seed(1), pixel_jitter=False)
    metrics = evaluate_scene(scene, data, indices=data.heldout_indices[:args.eval_views])
    return {"variant": name, "scene": scene, "config": config, "train_seconds": train_s,
            "samples_per_ray_all": scene.metrics["samples_per_ray"], "samples_per_ray_last_quarter": tail_spr,
            "density_evals_per_ray": counted.field.points / 4096, "kept_per_ray_at_end": term.n_samples / 4096,
            "occupied_fraction": scene.grid.occupied_fraction, "heldout_psnr": metrics.mean_psnr,
            "heldout_ssim": metrics.mean_ssim}


def counting_renderable(scene) -> Renderable:
    r = scene.renderable()
    return Renderable(CountingField(r.field), r.grid, r.kind, r.scene_from_world, r.background, r.sampling, r.proposals)


def time_task(renderable: Renderable, task: str, cameras: Cameras | None, pixels: TrainingPixels | None, data,
              rep: int) -> float:
    """Seconds for one task: a training step's forward and backward, the held-out view, or a frame of `cameras`."""
    start = time.perf_counter()
    if task == "train_step_4096_rays":
        renderable.train(True)
        term = photo_loss(renderable, pixels, 4096, torch.Generator().manual_seed(rep), pixel_jitter=False)
        term.loss.backward()
        renderable.train(False)
    elif cameras is None:
        render_camera(renderable, data.cameras, data.heldout_indices[0])
    else:
        render_camera(renderable, cameras, 0)
    return time.perf_counter() - start


def ab_times(results: list[dict], data, frame_sizes: list[tuple[int, int]], repeats: int) -> dict:
    """Seconds per task for each variant, measured alternately in this process; medians."""
    pixels = TrainingPixels(data)
    view = data.heldout_indices[0]
    pose = data.cameras.world_from_camera[view:view + 1]
    tasks: dict[str, Cameras | None] = {"train_step_4096_rays": None, "heldout_view": None}
    for w, h in frame_sizes:
        tasks[f"frame_{w}x{h}"] = Cameras.from_fov(pose, float(data.cameras.fov_y_deg[view]), w, h)
    times = {r["variant"]: {k: [] for k in tasks} for r in results}
    for rep in range(repeats):
        for r in results:
            renderable = r["scene"].renderable()
            for task, cameras in tasks.items():
                if cameras is not None and rep >= max(1, repeats - 1):  # big frames: one fewer repeat
                    continue
                times[r["variant"]][task].append(time_task(renderable, task, cameras, pixels, data, rep))
    return {v: {k: statistics.median(x) for k, x in t.items() if x} for v, t in times.items()}


def same_scene_render_ab(folder: Path, sizes: list[tuple[int, int]], repeats: int) -> dict:
    """One trained scene rendered with each schedule (same weights and grid), alternating: seconds per frame."""
    from scenes.scene import load_scene

    scene = load_scene(folder)
    base = scene.renderable()
    pose = scene.capture.world_from_camera[:1]
    out: dict[str, dict[str, list[float]]] = {}
    for rep in range(repeats):
        for schedule in ("disparity", "contracted"):
            sampling = dataclasses.replace(base.sampling, unbounded_schedule=schedule)
            renderable = Renderable(base.field, base.grid, base.kind, base.scene_from_world, base.background, sampling)
            for w, h in sizes:
                cameras = Cameras.from_fov(pose, float(scene.capture.fov_y_deg[0]), w, h)
                seconds = time_task(renderable, "frame", cameras, None, None, rep)
                out.setdefault(schedule, {}).setdefault(f"frame_{w}x{h}", []).append(seconds)
    return {k: {t: statistics.median(x) for t, x in v.items()} for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "fox-small")
    parser.add_argument("--preset", default="preview")
    parser.add_argument("--downscale", type=int, default=1, help="train and evaluate at 1/N of the photos' size")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--variants", default="disparity,contracted:0.015625")
    parser.add_argument("--frame-sizes", default="1280x720")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-views", type=int, default=100, help="evaluate on the first N held-out views")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "sampler-ab.json")
    parser.add_argument("--scene", type=Path, default=None,
                        help="instead: render this trained scene with each schedule (same weights), alternating")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.scene is not None:
        sizes = [tuple(int(x) for x in s.split("x")) for s in args.frame_sizes.split(",") if s]
        times = same_scene_render_ab(args.scene, sizes, args.repeats)
        print(json.dumps(times, indent=1))
        record = {"command": " ".join(sys.argv), "scene": str(args.scene), "load_average": os.getloadavg(),
                  "seconds_per_frame_same_scene": times}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        existing = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
        existing["runs"].append(record)
        args.out.write_text(json.dumps(existing, indent=1) + "\n")
        return
    data = load_posed_images(args.data, options=LoadOptions(downscale=args.downscale))
    load_before = os.getloadavg()
    results = [train_variant(v, data, args) for v in args.variants.split(",")]
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.frame_sizes.split(",") if s]
    times = ab_times(results, data, sizes, args.repeats)
    rows = []
    print(f"\n{args.data.name}, preset {args.preset}, {args.steps} steps, {torch.get_num_threads()} threads")
    print("| variant | samples/ray (last 1/4) | density evals/ray | occupied | held-out PSNR | "
          + " | ".join(f"s/{k}" for k in next(iter(times.values()))) + " |")
    for r in results:
        t = times[r["variant"]]
        row = {k: v for k, v in r.items() if k not in ("scene", "config")}
        row["seconds"] = t
        rows.append(row)
        print(f"| {r['variant']} | {r['samples_per_ray_last_quarter']:.1f} | {r['density_evals_per_ray']:.1f} | "
              f"{r['occupied_fraction']:.3f} | {r['heldout_psnr']:.2f} | "
              + " | ".join(f"{x:.2f}" for x in t.values()) + " |")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    record = {"commit": commit, "command": " ".join(sys.argv), "machine": platform.platform(),
              "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "data": str(args.data), "preset": args.preset,
              "steps": args.steps, "downscale": args.downscale, "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    existing["runs"].append(record)
    args.out.write_text(json.dumps(existing, indent=1) + "\n")


if __name__ == "__main__":
    main()
