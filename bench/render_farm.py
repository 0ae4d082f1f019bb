"""Frames/s of a shot rendered locally (2 torch threads) and on 1 and 2 local Ray workers (1 thread each), side by
side in one run; Ray's overhead per frame and per task; and a paper estimate of a 240-frame 1080p shot on 1, 8
and 64 workers from the measured numbers (issue #25).

    .venv/bin/python bench/render_farm.py SCENE [--width 1280 --height 720 --frames 24] [--json bench/out/farm.json]

Not a test: run it alone on the machine. Ray's numbers include starting its worker processes (their first task
imports torch and loads the scene), which a long shot amortises. Only the frames are timed (into each run's own frame cache, as
`vista render` and `vista render --ray` fill it); encoding is the same local step after both and is left out.
The estimate assumes a frame's cost scales with its pixels (rays), workers as fast as this machine's 1-thread
worker, and the driver writing frames into the cache one after another (measured here: it bounds a large farm).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import torch

from render.frame_cache import FrameCache, frame_cache_key, render_to_cache
from render.path_presets import fit_scene_frame, preset_path
from render.video import VideoConfig
from scenes.recipe import scene_content_hash
from scenes.scene import load_scene
from vista_api.farm import RayFarm, chunk_size, render_frames_on_ray


def shot(scene_dir: Path, frames: int, width: int, height: int):
    """An orbit of `frames` frames fitted to the scene, at width x height."""
    scene = load_scene(scene_dir)
    path = preset_path("orbit", fit_scene_frame(scene.capture, scene.scene_from_world), capture=scene.capture,
                       seconds=frames / 24, fps=24)
    cameras = path.sample(width, height)
    return scene, cameras, list(range(min(frames, len(cameras))))


def local_run(scene, cameras, indices, config, out: Path) -> dict:
    from render.bands import render_frame

    torch.set_num_threads(2)
    render_frame(scene.renderable(), cameras, indices[0])  # warm-up (kernel loading), as a Ray worker's first frame
    cache = FrameCache(out / "local.frames", frame_cache_key(scene_content_hash(scene.folder), cameras, config))
    cache.open()
    frames = render_to_cache(scene.renderable(), cameras, indices, cache, config, show_progress=False)
    return {"workers": "local, 2 threads", "frames_per_s": frames.rendered / frames.render_seconds,
            "seconds": frames.render_seconds}


def ray_run(scene_dir: Path, cameras, indices, config, out: Path, slots: int) -> dict:
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=slots, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - start
    try:
        run = render_frames_on_ray(RayFarm("auto", threads=1), scene_dir, scene_content_hash(scene_dir), cameras,
                                   indices, config, out / f"ray{slots}.frames", out / f"ray{slots}.mp4")
    finally:
        ray.shutdown()
    frame_s = run.busy_seconds / run.rendered
    overhead_s = max(0.0, run.seconds * slots - run.busy_seconds)  # slot-seconds not spent rendering
    return {"workers": f"Ray, {slots} x 1 thread", "frames_per_s": run.rendered / run.seconds, "seconds": run.seconds,
            "ray_init_s": init_s, "chunks": run.chunks, "frame_s_1_thread": frame_s,
            "overhead_per_frame_s": overhead_s / run.rendered, "overhead_per_task_s": overhead_s / run.chunks,
            "driver_store_per_frame_s": run.store_seconds / run.rendered}


def estimate(frame_s: float, task_overhead_s: float, store_s: float, workers: int, frames: int = 240) -> float:
    """Wall seconds for `frames` frames on `workers` slots: chunks as vista_api.farm sizes them, run in waves, and
    never less than the driver's serial cache writes."""
    size = chunk_size(frame_s, frames - workers, workers, RayFarm().target_chunk_s)
    tasks = workers + math.ceil(max(frames - workers, 0) / size)
    waves = 1 + math.ceil(max(tasks - workers, 0) / workers)
    wall = frame_s + task_overhead_s + (waves - 1) * (size * frame_s + task_overhead_s)
    return max(wall, frames * store_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scene", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("bench/out/render_farm"))
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    scene, cameras, indices = shot(args.scene, args.frames, args.width, args.height)
    config = VideoConfig(fps=24)
    runs = [local_run(scene, cameras, indices, config, args.out)]
    runs += [ray_run(args.scene, cameras, indices, config, args.out, slots) for slots in (1, 2)]
    print(f"{len(indices)} frames of {args.scene} at {args.width}x{args.height}\n")
    print("| run | frames/s | s | Ray start s | tasks | s/frame (1 thread) | overhead s/frame | overhead s/task |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['workers']} | {r['frames_per_s']:.3f} | {r['seconds']:.1f} | {r.get('ray_init_s', 0):.1f} | "
              f"{r.get('chunks', '-')} | {r.get('frame_s_1_thread', float('nan')):.2f} | "
              f"{r.get('overhead_per_frame_s', float('nan')):.3f} | {r.get('overhead_per_task_s', float('nan')):.3f} |")
    one = runs[1]  # a lone 1-thread worker: what each worker of a farm of separate machines would measure
    scale = (1920 * 1080) / (args.width * args.height)
    frame_1080 = one["frame_s_1_thread"] * scale
    store_1080 = one["driver_store_per_frame_s"] * scale
    walls = {w: estimate(frame_1080, one["overhead_per_task_s"], store_1080, w) for w in (1, 8, 64)}
    print(f"\npaper estimate, 240 frames at 1920x1080 ({frame_1080:.1f} s a frame on one 1-thread worker, "
          f"{one['overhead_per_task_s']:.2f} s overhead a task, {store_1080:.3f} s a frame for the driver to store):")
    for workers, wall in walls.items():
        print(f"  {workers:>2} workers: {wall / 60:,.1f} min")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"scene": str(args.scene), "size": [args.width, args.height],
                                         "frames": len(indices), "runs": runs,
                                         "estimate_240_1080p_wall_s": walls}, indent=2))


if __name__ == "__main__":
    main()
