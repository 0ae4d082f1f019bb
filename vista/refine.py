"""`vista refine`: diffusion guidance along a camera path, written to a new scene folder."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Callable


CUE_NAMES = {"holes": "holes", "uncovered": "unseen", "unstable": "unstable depth"}


def register(subparsers: argparse._SubParsersAction) -> None:
    refine = subparsers.add_parser(
        "refine", help="clean up novel views along a camera path with diffusion guidance (new scene folder)",
        description="Render views stepping from the capture toward the path, let a diffusion fixer repaint only the "
                    "pixels the scene is unsure about (Tier 1: holes), and train on those fixes (Difix3D+-style), with "
                    "Nerfbusters' visibility loss. The original scene is never modified.")
    refine.add_argument("scene", type=Path, help="trained scene folder (made by `vista train`)")
    refine.add_argument("--out", type=Path, required=True, help="NEW folder for the refined scene")
    refine.add_argument("--path", type=Path, help="camera path JSON (default: the views between the capture photos)")
    refine.add_argument("--data", type=Path, help="dataset folder (default: the one the scene was trained on)")
    refine.add_argument("--tier", default="auto", choices=["auto", "prior", "pipeline"],
                        help="prior: a small diffusion model trained on your photos (CPU); pipeline: a diffusers "
                             "img2img pipeline from --model-dir (CUDA); auto: pipeline if --model-dir is given and "
                             "CUDA is present, else prior (default)")
    refine.add_argument("--model-dir", type=Path, help="local diffusers pipeline folder for --tier pipeline")
    refine.add_argument("--steps", type=int, default=600, help="training steps added to the scene (default 600)")
    refine.add_argument("--prior-steps", type=int, default=1500,
                        help="training steps of the patch prior (default 1500, ~15 min on 2 CPU cores)")
    refine.add_argument("--strength", type=float, default=0.3, help="img2img strength for --tier pipeline (default 0.3)")
    refine.add_argument("--score-weight", type=float, default=0.0,
                        help="weight of the patch prior's score regulariser (default 0: off)")
    refine.add_argument("--smoothness-weight", type=float, default=None,
                        help="weight of the depth-smoothness prior on patches of the path (default: "
                             "RefineConfig's, 0.003; 0: off)")
    refine.add_argument("--rounds", type=int, default=3,
                        help="progressive rounds from the capture to the path (default 3)")
    refine.add_argument("--keyframes", type=int, default=6, help="path cameras fixed per round (default 6)")
    refine.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    refine.set_defaults(handler=run_refine)


def _choose_tier(args: argparse.Namespace) -> str:
    import torch

    if args.tier == "auto":
        if args.model_dir is not None and torch.cuda.is_available():
            return "pipeline"
        if args.model_dir is not None:
            print("--model-dir given but no CUDA GPU here: using the CPU tier (patch prior) instead")
        return "prior"
    if args.tier == "pipeline" and args.model_dir is None:
        from vista_core.errors import VistaError

        raise VistaError("--tier pipeline needs --model-dir (a local diffusers pipeline folder)")
    return args.tier


def run_refine(args: argparse.Namespace, progress: Callable[[str, int, int], None] | None = None) -> int:
    """`vista refine`. `progress(stage, done, total)` (stage "patch prior" or "guided training") is called after
    every step and may raise to stop; nothing is written to --out then."""
    from guidance.paths import capture_inbetweens, load_target_cameras
    from guidance.refine import RefineConfig, default_mask, prepare_refine_output, refine_scene
    from vista_core.errors import VistaError
    from scenes.data import load_posed_images
    from scenes.scene import load_scene

    if args.steps < args.rounds or args.rounds < 1 or args.keyframes < 1:
        raise VistaError(f"need --steps >= --rounds >= 1 and --keyframes >= 1, got steps {args.steps}, "
                         f"rounds {args.rounds}, keyframes {args.keyframes}")
    # 1. check everything cheap before any long work
    prepare_refine_output(args.out, args.scene)
    scene = load_scene(args.scene)
    capture = scene.capture
    if args.path is not None:
        targets = load_target_cameras(args.path, capture.width, capture.height)
    tier = _choose_tier(args)
    if tier == "pipeline":
        from guidance.pipeline import check_model_folder, require_cuda

        check_model_folder(args.model_dir)
        require_cuda()
    data = load_posed_images(args.data or Path(scene.data_source))
    if args.path is not None:
        print(f"guiding toward {len(targets)} path cameras from {args.path}")
    else:
        targets = capture_inbetweens(capture)
        print("no --path given: guiding along the capture trajectory (the views between your photos); "
              "pass --path to aim at your camera path")
    # 2. the fixer
    prior = None
    if tier == "pipeline":
        from guidance.pipeline import load_img2img_pipeline, pipeline_fixer

        fixer = pipeline_fixer(load_img2img_pipeline(args.model_dir), strength=args.strength)
    else:
        from guidance.patch_prior import PriorConfig, fix_masked, train_patch_prior

        images = data.images[data.train_indices]
        print(f"training the patch prior on {len(images)} photos ({args.prior_steps} steps)")
        prior = train_patch_prior(images, PriorConfig(steps=args.prior_steps, seed=args.seed), source=str(data.source),
                                  show_progress=True, background=scene.background,
                                  on_step=None if progress is None else lambda d, t: progress("patch prior", d, t))

        def fixer(rgb, mask, seed):
            return fix_masked(prior, rgb, mask, timestep=config.fix_timestep, seed=seed)

    # 3. the loop
    config = RefineConfig(steps=args.steps, rounds=args.rounds, keyframes=args.keyframes,
                          fixer="pipeline" if tier == "pipeline" else "prior", score_weight=args.score_weight,
                          seed=args.seed)
    if args.smoothness_weight is not None:
        config = dataclasses.replace(config, smoothness_weight=args.smoothness_weight)
    refined, report = refine_scene(scene, data, targets, config, args.out, fixer=fixer, prior=prior,
                                   source_dir=args.scene,
                                   on_step=None if progress is None else lambda d, t: progress("guided training", d, t))
    if prior is not None:
        from guidance.patch_prior import save_patch_prior

        save_patch_prior(prior, args.out / "patch-prior")
    cues = (config.mask or default_mask(config.fixer)).cues
    for i, r in enumerate(report.rounds):
        found = {"holes": r.low_opacity, "uncovered": r.uncovered, "unstable": r.unstable}
        print(f"round {i + 1}: {r.fraction:.0%} of the way to the path, {r.mask_fraction:.1%} of pixels fixed ("
              + ", ".join(f"{CUE_NAMES[c]} {found[c]:.1%}" for c in cues) + ")")
    print(f"refined scene ({refined.step} steps, {report.total_seconds:.0f} s) written to {args.out}; "
          f"{args.scene} is unchanged")
    return 0
