"""`vista refine`: diffusion guidance along a camera path, written to a new scene folder (flags -> vista_api.refine)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from vista_api.refine import TIERS, RefineRequest

    defaults = RefineRequest.__dataclass_fields__  # one source of defaults for the CLI, the studio and bench/

    refine = subparsers.add_parser(
        "refine", help="clean up novel views along a camera path with diffusion guidance (new scene folder)",
        description="Render views stepping from the capture toward the path, let a fixer (inpainting, or a diffusion "
                    "model) repaint only the pixels the scene is unsure about (Tier 1: holes), and train on those "
                    "fixes (Difix3D+-style), with Nerfbusters' visibility loss; the default CPU tier, "
                    "geometric, trains with depth smoothness along the path and the colour the photos saw from the "
                    "nearest directions. The original scene is never modified.")
    refine.add_argument("scene", type=Path, help="trained scene folder (made by `vista train`)")
    refine.add_argument("--out", type=Path, required=True, help="NEW folder for the refined scene")
    refine.add_argument("--path", type=Path, help="camera path JSON (default: the views between the capture photos)")
    refine.add_argument("--data", type=Path, help="dataset folder (default: the one the scene was trained on)")
    refine.add_argument("--tier", default="auto", choices=TIERS,
                        help="geometric: depth smoothness and seen-direction colour along the path, no fixer (CPU); "
                             "inpaint: OpenCV "
                             "inpainting of the holes as pseudo views, with the visibility loss (CPU, no model); "
                             "prior: plus one denoising step of a small diffusion model trained on your photos (CPU, "
                             "~1 min more); "
                             "pipeline: a diffusers img2img pipeline from --model-dir (CUDA); auto: pipeline if "
                             "--model-dir is given and CUDA is present, else geometric (default; the best measured "
                             "on real photos, see the README)")
    refine.add_argument("--model-dir", type=Path, help="local diffusers pipeline folder for --tier pipeline")
    steps, prior_steps = defaults["steps"].default, defaults["prior_steps"].default
    refine.add_argument("--steps", type=int, default=steps, help=f"training steps added to the scene (default {steps})")
    refine.add_argument("--prior-steps", type=int, default=prior_steps,
                        help=f"training steps of the patch prior (default {prior_steps}, ~50 s per 300 on 2 CPU "
                             "cores)")
    refine.add_argument("--strength", type=float, default=0.3,
                        help="img2img strength for --tier pipeline (default 0.3)")
    refine.add_argument("--score-weight", type=float, default=defaults["score_weight"].default,
                        help="weight of the patch prior's score regulariser (default %(default)s: off)")
    refine.add_argument("--smoothness-weight", type=float, default=None,
                        help="weight of the depth-smoothness prior on patches of the path (default: 0.0015 for "
                             "the geometric tier, 0.003 for the fixer tiers; 0: off)")
    refine.add_argument("--seen-direction-weight", type=float, default=None,
                        help="weight of the seen-direction prior: along the path a surface shows the colour it "
                             "shows toward the photos nearest in direction (default: 0.1 for the geometric tier, "
                             "0 for the fixer tiers; 0: off)")
    refine.add_argument("--rounds", type=int, default=defaults["rounds"].default,
                        help="progressive rounds from the capture to the path (default %(default)s)")
    refine.add_argument("--keyframes", type=int, default=defaults["keyframes"].default,
                        help="path cameras fixed per round (default %(default)s)")
    refine.add_argument("--no-check", action="store_true",
                        help="skip the before/after check along the path (coverage and floaters; seconds)")
    refine.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    refine.set_defaults(handler=run_refine)


def run_refine(args: argparse.Namespace) -> int:
    from vista.progress import TerminalProgress
    from vista_api.refine import RefineRequest, refine

    request = RefineRequest(args.scene, args.out, args.path, data_dir=args.data, tier=args.tier,
                            model_dir=args.model_dir, steps=args.steps, prior_steps=args.prior_steps,
                            strength=args.strength, rounds=args.rounds, keyframes=args.keyframes,
                            score_weight=args.score_weight, smoothness_weight=args.smoothness_weight,
                            seen_direction_weight=args.seen_direction_weight, seed=args.seed,
                            check=not args.no_check)
    with TerminalProgress() as progress:
        result = refine(request, progress)
    for line in result.round_lines():
        print(line)
    check = result.check_line()
    if check is not None:
        print(check)
    print(f"refined scene ({result.scene.step} steps, {result.report.total_seconds:.0f} s) written to {args.out}; "
          f"{args.scene} is unchanged")
    return 0
