"""Runs inside the nerfstudio venv: renders the test views of saved nerfacto checkpoints, and times frames.

    ns-venv/bin/python bench/compare/ns_render.py --config .../config.yml --steps 12,30 --out DIR \
        [--fps-size 320x180 --fps-frames 3]

Loads the pipeline with nerfstudio's `eval_setup` (test split: `transforms_test.json` for Blender data),
then for each checkpoint step loads the weights with `eval_load_checkpoint` and renders every test camera
with `model.get_outputs_for_camera`. Writes `DIR/step-N.npy` (float32 [N, H, W, 3], unquantised so the
PSNR is nerfacto's, not an 8-bit PNG's) and `DIR/views.json` (the image paths in that order); a step whose
file exists is skipped, so an interrupted run resumes. Scoring happens in Vista's environment with Vista's
PSNR/SSIM. The frame rate (`DIR/render.json`) is measured once, on the first step listed, right after its
first test view has warmed the model up, with the first test camera at `--fps-size` (same vertical field
of view).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ns_offline import patch_nerfstudio_for_offline_cpu  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--steps", required=True, help="checkpoint steps to render, comma-separated")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fps-size", default="320x180")
    parser.add_argument("--fps-frames", type=int, default=3, help="frames to time (fewer if they take over a minute)")
    parser.add_argument("--max-views", type=int, default=None, help="render only the first N test views (debugging)")
    parser.add_argument("--chunk-rays", type=int, default=8192,
                        help="rays per forward pass (nerfacto's default 32768 takes ~8 GB on a CPU; Vista renders "
                             "in chunks of 8192); changes memory, not the image")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]

    patch_nerfstudio_for_offline_cpu()
    import numpy as np
    from nerfstudio.cameras.cameras import Cameras
    from nerfstudio.utils.eval_utils import eval_load_checkpoint, eval_setup

    def first_step(config):
        config.load_step = steps[0]
        return config

    config, pipeline, _, _ = eval_setup(args.config, eval_num_rays_per_chunk=args.chunk_rays, test_mode="test",
                                        update_config_callback=first_step)
    dataset = pipeline.datamanager.eval_dataset
    cameras = dataset.cameras.to(pipeline.device)
    names = [str(p) for p in dataset.image_filenames]
    if args.max_views is not None:
        cameras, names = cameras[:args.max_views], names[:args.max_views]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "views.json").write_text(json.dumps(names, indent=2))

    def measure_fps() -> dict:
        """Frames/s at --fps-size from the first test camera, keeping its vertical field of view."""
        width, height = (int(v) for v in args.fps_size.lower().split("x"))
        fov_y = 2 * math.atan(0.5 * float(cameras.height[0]) / float(cameras.fy[0]))
        focal = 0.5 * height / math.tan(0.5 * fov_y)
        frame_camera = Cameras(camera_to_worlds=cameras.camera_to_worlds[0:1], fx=focal, fy=focal, cx=width / 2,
                               cy=height / 2, width=width, height=height).to(pipeline.device)
        start, frames = time.perf_counter(), 0
        while frames < args.fps_frames and (frames == 0 or time.perf_counter() - start < 60):
            pipeline.model.get_outputs_for_camera(frame_camera)
            frames += 1
        fps = frames / (time.perf_counter() - start)
        print(f"[render] {width}x{height}: {fps:.4f} frames/s", flush=True)
        return {"fps": fps, "fps_frames": frames, "fps_size": [width, height], "checkpoint_step": config.load_step}

    fps_path = args.out / "render.json"
    for step in steps:
        done = args.out / f"step-{step}.npy"
        if done.is_file():
            print(f"[render] step {step}: already rendered ({done})", flush=True)
            continue
        if config.load_step != step:
            config.load_step = step
            eval_load_checkpoint(config, pipeline)
        start = time.perf_counter()
        images = []
        for i in range(len(cameras)):
            outputs = pipeline.model.get_outputs_for_camera(cameras[i:i + 1])
            images.append(outputs["rgb"].clamp(0, 1).float().cpu().numpy())
            print(f"[render] step {step}: view {i + 1}/{len(cameras)} at {time.perf_counter() - start:.0f} s",
                  flush=True)
            if not fps_path.is_file():
                # Timed on the first checkpoint asked for, once the first view has warmed the model up.
                fps_path.write_text(json.dumps(measure_fps(), indent=2))
        np.save(done, np.stack(images).astype(np.float32))
        print(f"[render] step {step}: {len(images)} views in {time.perf_counter() - start:.1f} s", flush=True)
    if not fps_path.is_file():
        fps_path.write_text(json.dumps(measure_fps(), indent=2))


if __name__ == "__main__":
    main()
