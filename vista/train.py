"""`vista train`, `vista eval`, `vista info`: flags -> vista_api.train / vista_api.evaluate -> printed lines."""

from __future__ import annotations

import argparse
import json
import sys
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
    train.add_argument("--anti-alias", action="store_true",
                       help="weigh the hash grid's fine levels down where a pixel's footprint is wider than their "
                            "cells (Zip-NeRF), trained the same way: less shimmer when the camera pulls back, "
                            "at little cost (see the README)")
    train.add_argument("--resume", action="store_true", help="continue from the folder's last checkpoint")
    train.add_argument("--overwrite", action="store_true", help="discard what the folder holds and start again")
    train.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation at the end")
    train.add_argument("--downscale", type=int, default=1, metavar="N",
                       help="train on the photos with width and height divided by the whole number N (each N x N "
                            "block averaged; default 1)")
    train.add_argument("--max-long-side", type=int, default=None, metavar="PX",
                       help="downscale by more, if needed, so no photo's long side exceeds PX pixels (default 1600; "
                            "0: no cap)")
    train.add_argument("--skip-missing", action="store_true",
                       help="train on the frames whose images exist when some listed in transforms are missing")
    train.add_argument("--sampler", choices=["occupancy", "proposal"], default=None,
                       help="unbounded captures: march the occupancy grid, or a fixed number of samples per ray "
                            "placed by small proposal fields (mip-NeRF 360 / nerfacto) (default: the preset's)")
    train.add_argument("--distortion", type=float, default=None, metavar="WEIGHT",
                       help="mip-NeRF 360's distortion loss weight: pulls each ray's density together, against "
                            "floaters (0: off; default: the preset's, see the README)")
    train.set_defaults(handler=run_train)

    evaluate = subparsers.add_parser("eval", help="PSNR/SSIM of a scene on its held-out views")
    evaluate.add_argument("scene", type=Path, help="scene folder")
    evaluate.add_argument("--data", type=Path, help="dataset folder (default: the one it was trained on)")
    evaluate.add_argument("--out", type=Path, help="folder for side-by-side images (default: SCENE/eval)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--downscale", type=int, metavar="N",
                          help="compare at the photos' size divided by N (default: the resolution it was trained at)")
    evaluate.add_argument("--skip-missing", action="store_true",
                          help="evaluate on the views whose images exist when some are missing")
    evaluate.set_defaults(handler=run_eval)

    info = subparsers.add_parser("info", help="what a scene folder holds")
    info.add_argument("scene", type=Path)
    info.set_defaults(handler=run_info)


def run_train(args: argparse.Namespace) -> int:
    from vista.progress import TerminalProgress
    from vista_api.train import TrainRequest, train

    request = TrainRequest(args.data, args.out, args.preset, minutes=args.minutes, steps=args.steps, seed=args.seed,
                           backend=args.backend, pixel_jitter=args.pixel_jitter, resume=args.resume,
                           overwrite=args.overwrite, evaluate=not args.no_eval, downscale=args.downscale,
                           max_long_side=args.max_long_side, skip_missing=args.skip_missing, sampler=args.sampler,
                           anti_alias=args.anti_alias, distortion=args.distortion)
    with TerminalProgress() as progress:
        result = train(request, progress)
    print(result.speed_line())
    if result.heldout is not None:
        print(f"held-out: PSNR {result.heldout.psnr_db:.2f} dB, SSIM {result.heldout.ssim:.4f} "
              f"over {result.heldout.views} views")
    print(f"scene written to {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from vista.progress import TerminalProgress
    from vista_api.evaluate import EvalRequest, evaluate

    with TerminalProgress() as progress:
        result = evaluate(EvalRequest(args.scene, args.data, args.out, args.downscale, args.skip_missing), progress)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.metrics.table())
        print(f"side-by-side images (render | ground truth | error) in {result.images_dir}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from scenes.confidence import confidence_summary
    from vista_api.evaluate import describe_scene

    info = describe_scene(args.scene).to_dict()
    print(json.dumps(info, indent=2))
    # the JSON stays machine-readable on stdout; the per-photo confidence (issue #22) in one line for people
    summary = confidence_summary(info.get("metrics", {}).get("photos"))
    if summary:
        print(summary, file=sys.stderr)
    return 0
