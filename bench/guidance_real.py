"""Does guidance keep a path that leaves the capture clean, on real photos? (issue 24; prints a table, not a test)

The protocol, for any posed dataset (a `transforms.json` or Blender folder):

1. **Split by where the cameras are.** The photos are ordered along the capture (`--order azimuth`: by angle around
   the point the cameras look at, about their mean up direction, starting after the widest empty sector;
   `--order capture`: by file name, i.e. capture order for numbered frames) and one contiguous block of
   `--holdout` of them (default 30%, `--block end|start|middle` of that order) is held out as the "path" views.
   The rest are the training photos.
2. **A base scene** is trained on the training photos (`vista train`'s default preset and steps unless told), once
   per seed, cached under bench/out/guidance-real/ by dataset hash + settings + seed.
3. **A reference scene** is trained once on *all* photos (seed 0, cached the same way). Its depth on the held-out
   views is where the surface is: the floater measure is the compositing weight of a scene more than 5% in front
   of that depth, mean over the pixels where the reference shows a surface. No true depth is needed.
4. **The path** given to refine passes through the held-out cameras' poses (never their pixels), in order, with
   `--inbetweens` interpolated poses between neighbours (position linear, rotation slerp), at the capture size.
5. **Variants**, each continuing from the same base scene for the same number of steps (`vista refine`'s defaults:
   the settings come from `vista_api.refine.RefineRequest`, the object the CLI reads its defaults from):
     none       plain training continued (no guidance terms, no fixer)
     smoothness the geometric tier without its seen-direction prior: depth smoothness alone (the tier 12-07 05:00-22:00)
     geometric  `--tier geometric` (the CPU default): depth smoothness and the seen-direction prior, no fixer
     inpaint    the fixer loop, OpenCV inpainting of the holes only (`--tier inpaint`; the default 12-06 to 12-07)
     fixer      inpainting + the patch prior's one-step denoise (`--tier prior`; the default until issue 24)
     score      fixer + the patch prior's score regulariser (weight 0.02)
     pipeline   the GPU img2img tier; needs CUDA and --model-dir, else skipped and said so
6. **Metrics** at 1/`--eval-downscale` resolution: on the held-out path views PSNR, SSIM, the floater measure and
   the product's own floater check (`guidance.check.floater_share`, no reference); flicker along the dense path
   (`render.flicker`, depth-warped frame-to-frame change); PSNR on up to 8 training views (must not drop); refine
   time (plus the patch prior's training) next to the base scene's training time.

Gate (issue 24): mean over 3 seeds, the default against `none` (printed for every variant): path PSNR >= +0.5 dB,
floaters >= 25% lower, training-view PSNR >= -0.1 dB, flicker not higher; and `fixer` beats `inpaint` on path PSNR
or floaters by more than the seed-to-seed spread (it did not: the default became `inpaint`, then `geometric`: README).

Commands: the README's guidance section (`--smoke` checks the wiring at toy settings; skull-66 is posed once by
`vista poses`). Writes bench/results/guidance-real-<dataset>.json (commit, command, machine, load average, settings,
split, every row and the means; `--smoke` writes under bench/out/): rename it before the next run overwrites it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.guidance_real_report import fmt, provenance, summarise  # noqa: E402
from guidance.check import floater_share  # noqa: E402
from guidance.config import RefineConfig  # noqa: E402
from guidance.fixers import build_fixer  # noqa: E402
from guidance.patch_prior import load_patch_prior, save_patch_prior  # noqa: E402
from guidance.paths import interpolate_poses  # noqa: E402
from guidance.refine import refine_scene  # noqa: E402
from guidance.views import weight_in_front  # noqa: E402
from render.cameras import Cameras  # noqa: E402
from render.flicker import measure_flicker  # noqa: E402
from render.render import render_camera  # noqa: E402
from scenes.config import TrainConfig, preset_config  # noqa: E402
from scenes.data import LoadOptions, PosedImages, focus_point, load_posed_images  # noqa: E402
from scenes.evaluate import psnr, ssim  # noqa: E402
from scenes.scene import SCENE_FILE, Scene, load_scene  # noqa: E402
from scenes.train import train_scene  # noqa: E402
from vista_api.refine import RefineRequest, fixer_request  # noqa: E402
from vista_api.train import TrainRequest  # noqa: E402

OUT = REPO / "bench" / "out" / "guidance-real"
RESULTS = REPO / "bench" / "results"
VARIANTS = ("none", "smoothness", "geometric", "inpaint", "fixer", "score", "pipeline")
SCORE_WEIGHT = 0.02  # the score variant's regulariser weight (as in bench/guidance.py)
FLOATER_MARGIN = 0.05  # weight more than this fraction in front of the reference depth floats (as bench/guidance.py)
TRAIN_VIEWS = 8  # training views scored for the PSNR-drop check


# ---------------------------------------------------------------- 1. the split, by where the cameras are

@dataclass(frozen=True)
class Split:
    train: list[int]
    path: list[int]
    """Held-out views in their order along the capture."""
    order: str


def trajectory_order(data: PosedImages, how: str) -> list[int]:
    """All photo indices in capture order: by name ("capture") or by angle around the subject ("azimuth")."""
    n = len(data.names)
    if how == "capture":
        return sorted(range(n), key=lambda i: data.names[i])
    cameras = data.cameras
    centre = focus_point(cameras)
    up = cameras.world_from_camera[:, :3, 1].mean(0)  # OpenGL: +y is the camera's up
    up = up / up.norm()
    helper = torch.tensor([1.0, 0.0, 0.0]) if abs(float(up[0])) < 0.9 else torch.tensor([0.0, 1.0, 0.0])
    e1 = torch.linalg.cross(up, helper)
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(up, e1)
    offsets = cameras.positions - centre
    angle = torch.atan2(offsets @ e2, offsets @ e1).numpy()
    order = np.argsort(angle)
    # start after the widest empty sector, so that an arc's two ends are the order's two ends
    sorted_angle = angle[order]
    gaps = np.diff(np.concatenate([sorted_angle, sorted_angle[:1] + 2 * math.pi]))
    start = (int(np.argmax(gaps)) + 1) % n
    return [int(i) for i in np.roll(order, -start)]


def split_by_position(data: PosedImages, fraction: float, how: str, block: str) -> Split:
    order = trajectory_order(data, how)
    n = len(order)
    count = max(2, round(fraction * n))
    if count > n - 4:
        raise SystemExit(f"holding out {count} of {n} photos leaves too few to train on")
    start = {"end": n - count, "start": 0, "middle": (n - count) // 2}[block]
    path = order[start:start + count]
    train = sorted(i for i in order if i not in set(path))
    return Split(train, path, how)


# ---------------------------------------------------------------- 2-3. scenes, cached by dataset hash + settings + seed

def digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def train_config(preset: str, steps: int | None, seed: int, smoke: bool, sampler: str | None = None) -> TrainConfig:
    """The preset as `vista train [--sampler]` runs it (no checkpoints kept); --smoke: a few rays per step."""
    config = dataclasses.replace(preset_config(preset, steps=steps, seed=seed), checkpoint_every=10**6)
    sampling = config.sampling if sampler is None else dataclasses.replace(config.sampling, unbounded_sampler=sampler)
    config = dataclasses.replace(config, sampling=sampling)
    if smoke:
        config = dataclasses.replace(config, rays_per_step=256, sampling=dataclasses.replace(
            config.sampling, max_samples_per_ray=48, grid_resolution=32, warmup_steps=4))
    return config


def cached_or_trained(folder: Path, data: PosedImages, config: TrainConfig) -> tuple[Scene, float]:
    """(scene, training seconds): a scene an earlier run trained with the same config on the same photos, or a new one."""
    if (folder / SCENE_FILE).is_file():
        scene = load_scene(folder)
        same = (scene.step == config.steps and scene.config == config and scene.data_hash == (data.content_hash or None)
                and torch.equal(scene.capture.world_from_camera, data.cameras.world_from_camera[data.train_indices]))
        if same:
            return scene, float(scene.metrics.get("train_seconds", float("nan")))
    scene = train_scene(data, folder, config, overwrite=True, show_progress=False)
    # the training loop's own clock, the same number a cached scene reports (no loading or first-call set-up)
    return scene, float(scene.metrics["train_seconds"])


# ---------------------------------------------------------------- 4. the path through the held-out poses

def path_through(cameras: Cameras, inbetweens: int) -> Cameras:
    """A pinhole camera path through `cameras` in order, `inbetweens` interpolated poses between neighbours."""
    poses = [cameras.world_from_camera[:1]]
    for k in range(len(cameras) - 1):
        a, b = cameras.world_from_camera[k:k + 1], cameras.world_from_camera[k + 1:k + 2]
        for j in range(1, inbetweens + 2):
            poses.append(interpolate_poses(a, b, j / (inbetweens + 1)))
    poses = torch.cat(poses)
    n = len(poses)
    return Cameras(poses, cameras.fx[:1].expand(n).clone(), cameras.fy[:1].expand(n).clone(),
                   cameras.cx[:1].expand(n).clone(), cameras.cy[:1].expand(n).clone(), cameras.width, cameras.height)


# ---------------------------------------------------------------- 6. metrics

def reduced(data: PosedImages, i: int, factor: int) -> tuple[Cameras, torch.Tensor]:
    """Camera i and its photo at 1/factor resolution (block average, as `--downscale` loads), RGB in [0, 1]."""
    camera = data.cameras[i]
    w, h = camera.width // factor, camera.height // factor
    small = Cameras(camera.world_from_camera, camera.fx / factor, camera.fy / factor, camera.cx / factor,
                    camera.cy / factor, w, h, camera.distortion)
    photo = data.composited(i)[:h * factor, :w * factor].permute(2, 0, 1)[None]
    return small, torch.nn.functional.avg_pool2d(photo, factor)[0].permute(1, 2, 0)


@dataclass
class EvalViews:
    """Everything the metrics compare against, computed once per run."""

    path: list[tuple[Cameras, torch.Tensor]]
    train: list[tuple[Cameras, torch.Tensor]]
    reference_depth: list[torch.Tensor]
    """The reference scene's depth on each path view, 0 where it shows no surface."""
    reference_surface: list[torch.Tensor]
    dense: Cameras
    """The dense path at evaluation size, for flicker."""


def eval_views(data: PosedImages, split: Split, reference: Scene, targets: Cameras, factor: int) -> EvalViews:
    path = [reduced(data, i, factor) for i in split.path]
    step = max(1, len(split.train) // TRAIN_VIEWS)
    train = [reduced(data, i, factor) for i in split.train[::step][:TRAIN_VIEWS]]
    renderable = reference.renderable()
    renderable.train(False)
    depths, surfaces = [], []
    for camera, _ in path:
        view = render_camera(renderable, camera, 0)
        surface = view.opacity >= 0.5
        depths.append(torch.where(surface, view.depth * (1 - FLOATER_MARGIN), torch.zeros_like(view.depth)))
        surfaces.append(surface)
    return EvalViews(path, train, depths, surfaces, targets.scaled(1 / factor))


def measure(scene: Scene, views: EvalViews) -> dict:
    renderable = scene.renderable()
    renderable.train(False)
    psnrs, ssims, floaters, own = [], [], [], []
    for (camera, photo), limit, surface in zip(views.path, views.reference_depth, views.reference_surface):
        rgb = render_camera(renderable, camera, 0).rgb.clamp(0, 1)
        psnrs.append(psnr(rgb, photo))
        ssims.append(ssim(rgb, photo))
        if surface.any():
            floaters.append(float(weight_in_front(renderable, camera, 0, limit)[surface].mean()))
        share = floater_share(renderable, camera, 0)
        if share is not None:
            own.append(share)
    train = [psnr(render_camera(renderable, camera, 0).rgb.clamp(0, 1), photo) for camera, photo in views.train]

    def frame(i: int):
        view = render_camera(renderable, views.dense, i)
        return ((view.rgb.clamp(0, 1) * 255).numpy(), view.depth.numpy(), view.opacity.numpy())

    flicker = measure_flicker(views.dense, list(range(len(views.dense))), frame)
    return {"path_psnr": float(np.mean(psnrs)), "path_ssim": float(np.mean(ssims)),
            "floaters": float(np.mean(floaters)) if floaters else float("nan"),
            "floaters_own": float(np.mean(own)) if own else float("nan"),
            "flicker": flicker.mean, "flicker_compared": float(np.mean(flicker.valid_fraction or [0.0])),
            "train_psnr": float(np.mean(train))}


# ---------------------------------------------------------------- 5. the variants, from the CLI's defaults

def variant_config(name: str, request: RefineRequest) -> RefineConfig | None:
    """The RefineConfig of variant `name`, built as `vista refine` builds its own (None: not on this machine)."""
    if name == "none":
        return dataclasses.replace(request.config("prior"), geometric=False, fixer="none")
    if name == "smoothness":  # the geometric tier without its seen-direction prior (the tier until 2026-12-07 22:00)
        return dataclasses.replace(request.config("geometric"), seen_direction_weight=0.0)
    if name == "geometric":
        return request.config("geometric")
    if name == "inpaint":
        return request.config("inpaint")
    if name == "fixer":
        return request.config("prior")
    if name == "score":
        return dataclasses.replace(request.config("prior"), score_weight=SCORE_WEIGHT)
    if name == "pipeline":
        return request.config("pipeline") if torch.cuda.is_available() and request.model_dir else None
    raise ValueError(name)


def prior_for(folder: Path, request: RefineRequest, config: RefineConfig, data: PosedImages):
    """The patch prior `vista refine` would train for this seed, cached in `folder`; (prior, seconds to train)."""
    if (folder / "prior.json").is_file():
        prior = load_patch_prior(folder)
        if prior.config.steps == request.prior_steps and prior.config.seed == request.seed:
            return prior, float(prior.info.get("seconds", float("nan")))
    t0 = time.perf_counter()
    built = build_fixer("prior", fixer_request(request, config, data.images[data.train_indices], data.background,
                                               str(data.source)))
    seconds = time.perf_counter() - t0
    built.prior.info["seconds"] = seconds
    save_patch_prior(built.prior, folder)
    return built.prior, seconds


# ---------------------------------------------------------------- the run

def run(args) -> dict:
    data_dir = Path(args.data)
    full = load_posed_images(data_dir, options=LoadOptions(downscale=args.downscale))
    everything = list(range(len(full.names)))
    split = split_by_position(full, args.holdout, args.order, args.block)
    data = dataclasses.replace(full, train_indices=split.train, heldout_indices=split.path)
    all_photos = dataclasses.replace(full, train_indices=everything, heldout_indices=[])
    name = data_dir.resolve().name
    preset = args.preset
    width, height = data.cameras.width, data.cameras.height
    print(f"{name}: {len(everything)} photos at {width}x{height}; {len(split.train)} train, {len(split.path)} held "
          f"out along the capture ({args.order} order, block at the {args.block}): "
          f"{', '.join(data.names[i] for i in split.path)}", flush=True)
    settings = {"downscale": args.downscale, "holdout": args.holdout, "order": args.order, "block": args.block,
                "preset": preset, "base_steps": args.base_steps, "reference_steps": args.reference_steps}
    cache = OUT / f"{name}-{(full.content_hash or 'nohash')[:12]}"
    reference_config = train_config(preset, args.reference_steps, 0, args.smoke, args.sampler)
    t0 = time.perf_counter()
    reference, reference_s = cached_or_trained(cache / f"reference-{digest(settings, reference_config)}",
                                               all_photos, reference_config)
    print(f"reference scene on all photos: {reference.step} steps ({reference_s:.0f} s to train; "
          f"{time.perf_counter() - t0:.0f} s here)", flush=True)
    targets = path_through(data.cameras[split.path].pinhole(), args.inbetweens)
    views = eval_views(full, split, reference, targets, args.eval_downscale)
    print(f"path: {len(targets)} cameras through the {len(split.path)} held-out poses; metrics at 1/"
          f"{args.eval_downscale} resolution", flush=True)
    rows, skipped = [], {}
    for seed in args.seeds:
        request = RefineRequest(Path("base"), Path("refined"), seed=seed, model_dir=args.model_dir,
                                **({"steps": args.refine_steps} if args.refine_steps else {}),
                                **({"prior_steps": args.prior_steps} if args.prior_steps else {}),
                                **({"keyframes": args.keyframes} if args.keyframes else {}))
        base_config = train_config(preset, args.base_steps, seed, args.smoke, args.sampler)
        folder = cache / f"base-{digest(settings, base_config, split.path)}-seed{seed}"
        base, base_s = cached_or_trained(folder, data, base_config)
        rows.append({"seed": seed, "variant": "base", "seconds": base_s, "steps": base.step, **measure(base, views)})
        print(f"seed {seed} {'base':>9}: {fmt(rows[-1])}", flush=True)
        prior, prior_s = None, 0.0
        for variant in args.variants:
            config = variant_config(variant, request)
            if config is None:
                skipped[variant] = ("no CUDA GPU on this machine" if not torch.cuda.is_available()
                                    else "no --model-dir (a local diffusers img2img pipeline) given")
                continue
            fix, extra_s = None, 0.0
            if config.fixer == "prior":
                if prior is None:
                    prior, prior_s = prior_for(folder / f"prior-{request.prior_steps}", request, config, data)
                reuse = dataclasses.replace(fixer_request(request, config, None, data.background, str(data.source)),
                                            prior=prior)
                fix, extra_s = build_fixer("prior", reuse).fix, prior_s
            elif config.fixer != "none":
                fix = build_fixer(config.fixer, fixer_request(request, config, data.images[data.train_indices],
                                                              data.background, str(data.source))).fix
            t0 = time.perf_counter()
            scene, report = refine_scene(base, data, targets, config, None, fixer=fix,
                                         prior=prior if config.score_weight > 0 else None, show_progress=False)
            refine_s = time.perf_counter() - t0
            rows.append({"seed": seed, "variant": variant, "seconds": refine_s, "prior_seconds": extra_s,
                         "steps": config.steps, "masked": [round(r.mask_fraction, 4) for r in report.rounds],
                         **measure(scene, views)})
            print(f"seed {seed} {variant:>9}: {fmt(rows[-1])}  (refine {refine_s:.0f} s + prior {extra_s:.0f} s; "
                  f"base training {base_s:.0f} s)", flush=True)
    defaults = RefineRequest(Path("base"), Path("refined"))
    ran = {"steps": args.refine_steps or defaults.steps, "prior_steps": args.prior_steps or defaults.prior_steps,
           "keyframes": args.keyframes or defaults.keyframes}
    return {"dataset": name, "data": str(data_dir), "content_hash": full.content_hash, "settings": settings,
            "refine": {**ran, "rounds": defaults.rounds, "are_cli_defaults": ran == {k: getattr(defaults, k) for k in ran}},
            "split": {"train": [data.names[i] for i in split.train], "path": [data.names[i] for i in split.path]},
            "path_cameras": len(targets), "eval_downscale": args.eval_downscale,
            "reference": {"steps": reference.step, "seconds": reference_s}, "rows": rows, "skipped": skipped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="posed dataset folder (transforms.json or Blender format)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--holdout", type=float, default=0.3, help="fraction of the photos held out (default 0.3)")
    parser.add_argument("--order", choices=("azimuth", "capture"), default="azimuth")
    parser.add_argument("--block", choices=("end", "start", "middle"), default="end")
    parser.add_argument("--downscale", type=int, default=1, help="load the photos at 1/N size (as vista train)")
    parser.add_argument("--preset", default=TrainRequest.__dataclass_fields__["preset"].default,
                        help="training preset of the base and reference scenes (default: vista train's, %(default)s)")
    parser.add_argument("--base-steps", type=int, default=None, help="base scene steps (default: the preset's)")
    parser.add_argument("--sampler", choices=("occupancy", "proposal"), help="the scenes' (default: the preset's)")
    parser.add_argument("--reference-steps", type=int, help="reference scene steps (default: the preset's)")
    parser.add_argument("--refine-steps", type=int, default=None, help="(default: vista refine's)")
    parser.add_argument("--prior-steps", type=int, default=None, help="(default: vista refine's)")
    parser.add_argument("--keyframes", type=int, default=None, help="(default: vista refine's)")
    parser.add_argument("--inbetweens", type=int, default=1, help="interpolated path cameras between held-out poses")
    parser.add_argument("--eval-downscale", type=int, default=4, help="metrics at 1/N of the training resolution")
    parser.add_argument("--model-dir", type=Path, help="local diffusers img2img pipeline, for the pipeline variant")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--smoke", action="store_true",
                        help="toy settings to check the wiring (about 2 min on an idle 2-core CPU); results go to bench/out, not bench/results")
    args = parser.parse_args()
    if args.smoke:
        args.preset, args.base_steps, args.reference_steps = "test", 6, 6
        args.refine_steps, args.prior_steps, args.keyframes, args.inbetweens = 3, 2, 1, 0
        args.seeds, args.downscale, args.eval_downscale = args.seeds[:1], max(args.downscale, 4), 4
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    load_before = os.getloadavg()
    result = {**provenance(), "load_average_start": load_before, **run(args)}
    result["load_average_end"] = os.getloadavg()
    result["minutes"] = (time.perf_counter() - started) / 60
    _, lines = summarise(result)
    print("\n" + "\n".join(lines) + f"\n\ntotal {result['minutes']:.1f} min")
    target = (OUT / f"smoke-{result['dataset']}.json") if args.smoke else RESULTS / f"guidance-real-{result['dataset']}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"written to {target.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
