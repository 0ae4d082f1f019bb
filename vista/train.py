"""`vista train`, `vista eval`, `vista info`: thin wrappers over scenes.train / scenes.evaluate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from scenes.config import PRESETS

    train = subparsers.add_parser("train", help="train a scene from posed images",
                                  description="Train a hash-grid radiance field from a posed dataset "
                                              "(Blender transforms_*.json or nerfstudio transforms.json).")
    train.add_argument("data", type=Path, help="dataset folder")
    train.add_argument("--out", type=Path, required=True, help="scene folder to write")
    train.add_argument("--preset", default="preview", choices=sorted(PRESETS),
                       help="test: seconds; preview: minutes; quality: 10+ minutes on a CPU (default: preview)")
    train.add_argument("--steps", type=int, help="optimisation steps (default: the preset's)")
    train.add_argument("--minutes", type=float, help="wall-clock budget; stops earlier if reached")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0): same seed, same scene")
    train.add_argument("--backend", default="auto", choices=["auto", "torch", "tcnn"],
                       help="field backend: tcnn needs CUDA + tinycudann (default: auto)")
    train.add_argument("--pixel-jitter", action="store_true", default=None,
                       help="cast training rays through random points of their pixels, not the centres: for few, "
                            "aliased photos (blurs a dense, sharp capture; see the README)")
    train.add_argument("--resume", action="store_true", help="continue from the folder's last checkpoint")
    train.add_argument("--overwrite", action="store_true", help="discard what the folder holds and start again")
    train.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation at the end")
    train.set_defaults(handler=run_train)

    evaluate = subparsers.add_parser("eval", help="PSNR/SSIM of a scene on its held-out views")
    evaluate.add_argument("scene", type=Path, help="scene folder")
    evaluate.add_argument("--data", type=Path, help="dataset folder (default: the one it was trained on)")
    evaluate.add_argument("--out", type=Path, help="folder for side-by-side images (default: SCENE/eval)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.set_defaults(handler=run_eval)

    info = subparsers.add_parser("info", help="what a scene folder holds")
    info.add_argument("scene", type=Path)
    info.set_defaults(handler=run_info)


def run_train(args: argparse.Namespace) -> int:
    from scenes.config import preset_config
    from scenes.data import load_posed_images
    from scenes.evaluate import evaluate_scene
    from scenes.train import train_scene

    config = preset_config(args.preset, steps=args.steps, seed=args.seed, backend=args.backend,
                           pixel_jitter=args.pixel_jitter)
    data = load_posed_images(args.data)
    print(f"{len(data.train_indices)} training / {len(data.heldout_indices)} held-out views, "
          f"{data.cameras.width}x{data.cameras.height}, {data.kind} scene")
    scene = train_scene(data, args.out, config, minutes=args.minutes, resume=args.resume, overwrite=args.overwrite)
    m = scene.metrics
    print(f"trained {scene.step} steps in {m.get('train_seconds', 0):.0f} s: {m.get('rays_per_s', 0):,.0f} rays/s, "
          f"{m.get('samples_per_s', 0):,.0f} samples/s, {m.get('samples_per_ray', 0):.1f} samples/ray")
    if not args.no_eval and data.heldout_indices:
        metrics = evaluate_scene(scene, data)
        print(f"held-out: PSNR {metrics.mean_psnr:.2f} dB, SSIM {metrics.mean_ssim:.4f} "
              f"over {len(metrics.views)} views")
    print(f"scene written to {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from scenes.data import load_posed_images
    from scenes.evaluate import evaluate_scene
    from scenes.scene import load_scene

    scene = load_scene(args.scene)
    data = load_posed_images(args.data or Path(scene.data_source))
    out = args.out or args.scene / "eval"
    metrics = evaluate_scene(scene, data, out, show_progress=True)
    if args.json:
        print(json.dumps({"mean_psnr": metrics.mean_psnr, "mean_ssim": metrics.mean_ssim,
                          "views": [v.__dict__ for v in metrics.views]}, indent=2))
    else:
        print(metrics.table())
        print(f"side-by-side images (render | ground truth | error) in {out}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from scenes.scene import load_scene

    scene = load_scene(args.scene)
    print(json.dumps({"step": scene.step, "backend": scene.backend, "kind": scene.kind, "preset": scene.config.preset,
                      "data": scene.data_source, "capture_views": len(scene.capture), "metrics": scene.metrics},
                     indent=2))
    return 0
