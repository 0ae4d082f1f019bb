"""One Vista run for `bench/real_captures.py`, in its own process (so its peak memory is its own): train for a
wall-clock budget, score the held-out views, time frames, write one JSON record.

    python bench/compare/vista_budget_train.py DATA --out DIR --preset preview --minutes 3 --record R.json \
        [--appearance] [--camera-refinement] [--photo-loss mse] [--frame-size 1280x720]

Held-out views are scored as nerfstudio scores its test views: the scene optimises nothing for them, so they
render with the neutral appearance and their dataset pose.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def seconds_per_frame(scene, cameras, index: int, size: str, frames: int = 2) -> float:
    """Seconds per frame at `size` from camera `index`, same vertical field of view (after one warm-up frame)."""
    from render.cameras import Cameras
    from render.render import render_camera

    width, height = (int(v) for v in size.lower().split("x"))
    camera = Cameras.from_fov(cameras.world_from_camera[index:index + 1], float(cameras.fov_y_deg[index]), width,
                              height)
    renderable = scene.renderable()
    render_camera(renderable, camera, 0)
    start = time.perf_counter()
    for _ in range(frames):
        render_camera(renderable, camera, 0)
    return (time.perf_counter() - start) / frames


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--preset", default="preview")
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--steps", type=int, default=1_000_000, help="step cap (the time budget normally ends first)")
    parser.add_argument("--appearance", action="store_true")
    parser.add_argument("--camera-refinement", action="store_true")
    parser.add_argument("--photo-loss", default="mse")
    parser.add_argument("--sampler", default=None, choices=["occupancy", "proposal"],
                        help="unbounded scenes' sampler (default: the preset's)")
    parser.add_argument("--frame-size", action="append", default=[], help="WxH to time (repeatable)")
    parser.add_argument("--downscale", type=int, default=1, help="train and evaluate at 1/N of the photos' size")
    parser.add_argument("--sampling", action="append", default=[], metavar="KEY=VALUE",
                        help="a SamplingConfig field of the proposal tuning (repeatable), e.g. far_weight_penalty=0.006")
    parser.add_argument("--samples-per-step", type=int, default=None,
                        help="cap on samples per step (default: the preset's; 0: none)")
    parser.add_argument("--distortion", type=float, default=None, help="distortion loss weight (default: preset's)")
    args = parser.parse_args()

    from bench.sampling_overrides import with_sampling
    from scenes.config import preset_config
    from scenes.data import LoadOptions, load_posed_images
    from scenes.evaluate import evaluate_scene
    from scenes.train import train_scene

    data = load_posed_images(args.data, options=LoadOptions(downscale=args.downscale))
    config = preset_config(args.preset, steps=args.steps, appearance=args.appearance,
                           camera_refinement=args.camera_refinement, photo_loss=args.photo_loss)
    if args.sampler is not None:
        config = dataclasses.replace(config, sampling=dataclasses.replace(config.sampling,
                                                                          unbounded_sampler=args.sampler))
    config = with_sampling(config, args.sampling)
    if args.distortion is not None:
        config = dataclasses.replace(config, distortion_loss_weight=args.distortion)
    if args.samples_per_step is not None:
        config = dataclasses.replace(config, samples_per_step=args.samples_per_step)
    scene = train_scene(data, args.out, config, minutes=args.minutes, overwrite=True, show_progress=False)
    metrics = evaluate_scene(scene, data)
    camera_index = data.heldout_indices[0]
    record = {
        "minutes": args.minutes, "steps": scene.step, "train_seconds": scene.metrics["train_seconds"],
        "heldout_psnr": metrics.mean_psnr, "heldout_ssim": metrics.mean_ssim, "heldout_views": len(metrics.views),
        "rays_per_s": scene.metrics["rays_per_s"], "samples_per_ray": scene.metrics["samples_per_ray"],
        "seconds_per_frame": {size: seconds_per_frame(scene, data.cameras, camera_index, size)
                              for size in args.frame_size},
        "flagged_photos": scene.metrics.get("photos", {}).get("flagged"),
        "config": {"preset": args.preset, "appearance": args.appearance, "camera_refinement": args.camera_refinement,
                   "photo_loss": args.photo_loss, "unbounded_sampler": config.sampling.unbounded_sampler,
                   "downscale": args.downscale, "sampling_overrides": args.sampling,
                   "distortion_loss_weight": config.distortion_loss_weight},
    }
    args.record.parent.mkdir(parents=True, exist_ok=True)
    args.record.write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
