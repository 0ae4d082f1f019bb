"""`vista demo`: the README's first command — the bundled sample scene from posed images to an MP4.

It runs the same functions as `vista train`, `vista path --preset orbit` and `vista render`, in order,
and reuses a trained scene it finds in the output folder, so running it twice only renders again.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lego-100"


def register(subparsers: argparse._SubParsersAction) -> None:
    from scenes.config import PRESETS

    demo = subparsers.add_parser(
        "demo", help="train the sample scene and render an orbit fly-through to MP4",
        description="Train the bundled sample scene (the NeRF-synthetic lego at 100x100, ../shared/data/lego-100), "
                    "fit an orbit path to it and render OUT/shot.mp4 with its recipe. A scene already in OUT/scene "
                    "is reused.")
    demo.add_argument("--data", type=Path, default=SAMPLE, help=f"posed dataset (default: {SAMPLE})")
    demo.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder (default outputs/demo)")
    demo.add_argument("--preset", default="preview", choices=sorted(PRESETS), help="training preset (default preview)")
    demo.add_argument("--minutes", type=float, default=3.0, help="training budget in minutes (default 3)")
    demo.add_argument("--seconds", type=float, default=4.0, help="length of the shot (default 4)")
    demo.add_argument("--fps", type=float, default=24.0, help="frames per second (default 24)")
    demo.add_argument("--width", type=int, default=320, help="frame width (default 320)")
    demo.add_argument("--height", type=int, default=240, help="frame height (default 240)")
    demo.add_argument("--retrain", action="store_true", help="train again even if OUT/scene exists")
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from vista_core.errors import VistaError
    from render.path_io import write_camera_path
    from render.path_presets import fit_scene_frame, occupancy_query, preset_path
    from render.video import VideoConfig
    from scenes.config import preset_config
    from scenes.data import load_posed_images
    from scenes.evaluate import evaluate_scene
    from scenes.recipe import render_shot
    from scenes.scene import SCENE_FILE, load_scene
    from scenes.train import train_scene

    if not args.data.exists():
        raise VistaError(f"{args.data}: sample scene not found; pass --data with a posed dataset folder")
    scene_dir = args.out / "scene"
    start = time.perf_counter()

    # 1. posed images -> trained scene (reused when present)
    data = load_posed_images(args.data)
    if (scene_dir / SCENE_FILE).is_file() and not args.retrain:
        scene = load_scene(scene_dir)
        print(f"1/3 reusing the trained scene in {scene_dir} (step {scene.step}; --retrain to train again)")
    else:
        print(f"1/3 training {args.data.name} ({len(data.train_indices)} views) for up to {args.minutes:g} min, "
              f"preset {args.preset}")
        scene = train_scene(data, scene_dir, preset_config(args.preset), minutes=args.minutes,
                            overwrite=args.retrain)
        metrics = evaluate_scene(scene, data)
        print(f"    held-out PSNR {metrics.mean_psnr:.2f} dB, SSIM {metrics.mean_ssim:.3f} "
              f"({len(metrics.views)} views) after {scene.step} steps")

    # 2. an orbit fitted to the scene's occupancy and capture cameras
    renderable = scene.renderable()
    occupied = occupancy_query(renderable)
    frame = fit_scene_frame(scene.capture, scene.scene_from_world, occupied)
    path = preset_path("orbit", frame, capture=scene.capture, seconds=args.seconds, fps=args.fps, occupied=occupied)
    path_file = args.out / "camera_path.json"
    write_camera_path(path_file, path, args.width, args.height)
    cameras = path.sample(args.width, args.height)
    print(f"2/3 orbit path: {len(cameras)} frames at {args.width}x{args.height}, {args.fps:g} fps -> {path_file}")

    # 3. render, encode, label
    video = args.out / "shot.mp4"
    result, recipe = render_shot(scene, cameras, video, VideoConfig(fps=args.fps), path_source=str(path_file))
    print(f"3/3 wrote {video} ({len(result.frames)} frames, {result.frames_per_s:.1f} frames/s rendering), "
          f"recipe {recipe}")
    print(f"done in {time.perf_counter() - start:.0f} s. Check its labels: vista verify {video}")
    return 0
