"""Does guidance keep the establishing shot clean? The issue-6 benchmark (prints a table; not a test).

A procedural scene with exact depth (`tests.support.procedural`) is captured along a short hand-held arc;
the in-between views are held out (interpolation), and an establishing shot that pulls back 1.5x
and rises 20 degrees (`guidance.paths.establishing_path`) is the target path. Each seed is its own scene
(`procedural_world(seed)`: shapes, placements, colours and textures; seed 0 is the fixed scene of earlier
runs), with its own patch prior and base scene, then continued for the same number of steps several ways:

  none        plain continued training (the spine's photo loss)
  geometric   + Nerfbusters visibility loss, depth smoothness on path patches (RegNeRF, planes exempt)
              (and mip-NeRF 360's distortion loss if --distortion-weight > 0)
  inpaint     + the fixer loop with OpenCV inpainting of the holes only (no diffusion step)
  fixer       + Tier-1 fixer loop (inpainting, then the patch prior's one-step fix of the holes)
  no-polish   fixer without the final photo-only polish
  score       + the patch prior's score regulariser on rendered patches
  none@time   plain training for as long (wall clock) as `score` took

The refine settings (steps, keyframes, rounds, prior steps) are `vista refine`'s defaults, read from
`vista_api.refine.RefineRequest`, unless a flag overrides them. Real photos: bench/guidance_real.py.

Metrics on path views: PSNR, SSIM, floater mass (compositing weight more than 5% in front of the true
surface, mean over surface pixels), coverage (opacity > 0.95) and flicker (mean |frame difference of
the render - frame difference of the truth|); on interpolation views: PSNR, SSIM.

Gate (issue 6): path PSNR >= +0.5 dB and floater mass >= 30% lower than `none`, interpolation
PSNR no worse than -0.1 dB, flicker not higher.

    nice -n 10 .venv/bin/python bench/guidance.py            # procedural scene, seeds 0-2
    nice -n 10 .venv/bin/python bench/guidance.py --lego     # also lego-200 with the back unseen
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from guidance.fixers.inpaint import inpaint_fixer  # noqa: E402
from guidance.fixers.patch_prior import fix_masked  # noqa: E402
from guidance.patch_prior import PriorConfig, train_patch_prior  # noqa: E402
from guidance.refine import RefineConfig, refine_scene  # noqa: E402
from guidance.views import render_view, weight_in_front  # noqa: E402
from render.bands import render_frame  # noqa: E402
from scenes.config import preset_config  # noqa: E402
from scenes.evaluate import psnr, ssim  # noqa: E402
from scenes.train import train_scene  # noqa: E402
from tests.support.procedural import synthetic_capture  # noqa: E402
from vista_api.refine import RefineRequest  # noqa: E402

CLI = RefineRequest(Path("scene"), Path("refined"))
"""`vista refine`'s defaults."""

OUT = REPO / "bench" / "out" / "guidance"


def bench_train_config(steps: int, seed: int):
    """The `test` preset, lighter on samples: the benchmark runs on a shared 2-core CPU."""
    base = preset_config("test", steps=steps, seed=seed)
    sampling = dataclasses.replace(base.sampling, max_samples_per_ray=96, grid_resolution=48, warmup_steps=48)
    return dataclasses.replace(base, sampling=sampling, rays_per_step=768, checkpoint_every=10**6)


def flicker(renders: list[torch.Tensor], truths: list[torch.Tensor]) -> float:
    diffs = [float(((r1 - r0) - (t1 - t0)).abs().mean())
             for r0, r1, t0, t1 in zip(renders[:-1], renders[1:], truths[:-1], truths[1:])]
    return float(np.mean(diffs))


def measure_procedural(scene, capture) -> dict:
    renderable = scene.renderable()
    path_rgb, path_truth, psnrs, ssims, floaters, coverage = [], [], [], [], [], []
    for i, truth in enumerate(capture.path_truth):
        view = render_view(renderable, capture.path, i)
        path_rgb.append(view.rgb)
        path_truth.append(truth.rgb)
        psnrs.append(psnr(view.rgb, truth.rgb))
        ssims.append(ssim(view.rgb, truth.rgb))
        surface = torch.isfinite(truth.depth)
        limit = torch.where(surface, truth.depth * 0.95, torch.zeros_like(truth.depth))
        front = weight_in_front(renderable, capture.path, i, limit)
        floaters.append(float(front[surface].mean()))
        coverage.append(float((view.opacity > 0.95).float().mean()))
    # the same path as `vista render --supersample 2` renders it (2x2 rays per pixel, as the truth is rendered)
    path_ss2 = [render_frame(renderable, capture.path, i, supersample=2).rgb.clamp(0, 1)
                for i in range(len(capture.path))]
    data = capture.data
    interp = [render_view(renderable, data.cameras, i).rgb for i in data.heldout_indices]
    interp_truth = [data.composited(i) for i in data.heldout_indices]
    return {
        "path_psnr": float(np.mean(psnrs)), "path_ssim": float(np.mean(ssims)),
        "floater_mass": float(np.mean(floaters)), "coverage": float(np.mean(coverage)),
        "flicker": flicker(path_rgb, path_truth), "flicker_ss2": flicker(path_ss2, path_truth),
        "interp_psnr": float(np.mean([psnr(a, b) for a, b in zip(interp, interp_truth)])),
        "interp_ssim": float(np.mean([ssim(a, b) for a, b in zip(interp, interp_truth)])),
    }


def variants(refine_steps: int, seed: int, distortion_weight: float | None = None,
             keyframes: int = CLI.keyframes) -> dict[str, RefineConfig]:
    base = dataclasses.replace(CLI, steps=refine_steps, keyframes=keyframes, seed=seed).config("prior")
    if distortion_weight is not None:
        base = dataclasses.replace(base, distortion_weight=distortion_weight)
    return {
        "none": dataclasses.replace(base, geometric=False, fixer="none"),
        "geometric": dataclasses.replace(base, geometric=True, fixer="none"),
        "inpaint": dataclasses.replace(base, geometric=True, fixer="inpaint"),
        "fixer": dataclasses.replace(base, geometric=True, fixer="prior"),
        "no-polish": dataclasses.replace(base, geometric=True, fixer="prior", polish_fraction=0.0),
        "score": dataclasses.replace(base, geometric=True, fixer="prior", score_weight=0.02),
    }


def run_procedural(args) -> list[dict]:
    rows = []
    for seed in args.seeds:
        # each seed its own scene (tests.support.procedural.procedural_world), photos and patch prior
        capture = synthetic_capture(width=args.width, height=args.height, n_path=args.path_frames, seed=seed)
        data = capture.data
        print(f"seed {seed}: procedural scene {seed}, {len(data.train_indices)} arc views, "
              f"{len(data.heldout_indices)} in-between views, {len(capture.path)} path views, "
              f"{args.width}x{args.height}", flush=True)
        t0 = time.perf_counter()
        prior = train_patch_prior(data.images[data.train_indices],
                                  PriorConfig(steps=args.prior_steps, batch_size=16, seed=seed),
                                  source=f"procedural arc {seed}")
        prior_s = time.perf_counter() - t0
        print(f"seed {seed}: patch prior {prior.info['parameters']:,} parameters, {args.prior_steps} steps in "
              f"{prior_s:.0f} s, final loss {prior.info['final_loss']:.3f}", flush=True)
        fixers = {"prior": lambda rgb, mask, s, prior=prior: fix_masked(prior, rgb, mask, timestep=args.fix_timestep,
                                                                         seed=s),
                  "inpaint": inpaint_fixer()}
        t0 = time.perf_counter()
        config = bench_train_config(args.base_steps, seed)
        folder = OUT / f"base-{args.width}x{args.height}-scene{seed}-{seed}"
        base = _cached_base(folder, config, data) if args.reuse_bases else None
        if base is None:
            base = train_scene(data, folder, config, overwrite=True, show_progress=False)
        print(f"seed {seed}: base scene {args.base_steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
        row_base = measure_procedural(base, capture)
        rows.append({"seed": seed, "variant": "base", "seconds": 0.0, **row_base})
        times = {}
        for name, config in variants(args.refine_steps, seed, args.distortion_weight, args.keyframes).items():
            if args.variants and name not in args.variants:
                continue
            t0 = time.perf_counter()
            scene, report = refine_scene(base, data, capture.path, config, None, fixer=fixers.get(config.fixer),
                                         prior=prior, show_progress=False)
            times[name] = time.perf_counter() - t0
            metrics = measure_procedural(scene, capture)
            masks = [round(r.mask_fraction, 3) for r in report.rounds]
            rows.append({"seed": seed, "variant": name, "seconds": times[name], "masked": masks, **metrics})
            print(f"seed {seed} {name:>9}: {fmt(rows[-1])}  ({times[name]:.0f} s, masked {masks})", flush=True)
        if args.equal_time:
            steps = max(1, round(args.refine_steps * times["score"] / times["none"]))
            config = dataclasses.replace(variants(steps, seed, keyframes=args.keyframes)["none"], steps=steps)
            t0 = time.perf_counter()
            scene, _ = refine_scene(base, data, capture.path, config, None, show_progress=False)
            rows.append({"seed": seed, "variant": "none@time", "seconds": time.perf_counter() - t0, "steps": steps,
                         **measure_procedural(scene, capture)})
            print(f"seed {seed} none@time ({steps} steps): {fmt(rows[-1])}", flush=True)
    return rows


def _cached_base(folder: Path, config, data):
    """The base scene an earlier run of this benchmark trained with the same config on the same capture
    (--reuse-bases), else None."""
    from scenes.scene import SCENE_FILE, load_scene

    if not (folder / SCENE_FILE).is_file():
        return None
    scene = load_scene(folder)
    same = (scene.step == config.steps and scene.config == config and scene.data_source == data.source
            and torch.equal(scene.capture.world_from_camera, data.cameras.world_from_camera[data.train_indices]))
    return scene if same else None


def fmt(row: dict) -> str:
    return (f"path {row['path_psnr']:.2f} dB / {row['path_ssim']:.3f}, floaters {row['floater_mass']:.4f}, "
            f"coverage {row['coverage']:.3f}, flicker {row['flicker']:.4f} (2x2 {row.get('flicker_ss2', float('nan')):.4f}), "
            f"interp {row['interp_psnr']:.2f} dB")


def table(rows: list[dict], title: str) -> str:
    names = []
    for row in rows:
        if row["variant"] not in names:
            names.append(row["variant"])
    keys = ["path_psnr", "path_ssim", "floater_mass", "coverage", "flicker", "flicker_ss2", "interp_psnr", "interp_ssim",
            "seconds"]
    lines = [f"### {title} (mean over seeds {sorted({r['seed'] for r in rows})})", "",
             "| variant | path PSNR | path SSIM | floater mass | coverage | flicker | flicker 2x2 | interp PSNR | "
             "interp SSIM | s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    means = {}
    for name in names:
        group = [r for r in rows if r["variant"] == name]
        means[name] = {k: float(np.mean([r[k] for r in group])) for k in keys if k in group[0]}
        m = means[name]
        lines.append(f"| {name} | {m['path_psnr']:.2f} | {m['path_ssim']:.3f} | {m['floater_mass']:.4f} | "
                     f"{m['coverage']:.3f} | {m['flicker']:.4f} | {m.get('flicker_ss2', float('nan')):.4f} | "
                     f"{m['interp_psnr']:.2f} | {m['interp_ssim']:.3f} | "
                     f"{m.get('seconds', 0):.0f} |")
    if "none" in means:
        lines.append("")
        ref = means["none"]
        for name in [n for n in names if n not in ("none", "base")]:
            m = means[name]
            d_psnr = m["path_psnr"] - ref["path_psnr"]
            floater_drop = 1 - m["floater_mass"] / max(ref["floater_mass"], 1e-12)
            d_interp = m["interp_psnr"] - ref["interp_psnr"]
            d_flicker = m["flicker"] - ref["flicker"]
            gate = d_psnr >= 0.5 and floater_drop >= 0.3 and d_interp >= -0.1 and d_flicker <= 0
            ss2 = m.get("flicker_ss2", float("nan")) - ref.get("flicker_ss2", float("nan"))
            lines.append(f"- {name} vs none: path {d_psnr:+.2f} dB, floater mass {-floater_drop * 100:+.0f}%, "
                         f"interp {d_interp:+.2f} dB, flicker {d_flicker:+.4f} -> gate {'PASSED' if gate else 'not reached'}"
                         f" (flicker at 2x2 rays per pixel {ss2:+.4f})")
    return "\n".join(lines)


# ---------------------------------------------------------------- lego-200, back unseen

def run_lego(args) -> list[dict]:
    from guidance.views import render_view
    from scenes.data import load_posed_images

    data = load_posed_images(REPO.parent / "shared" / "data" / "lego-200")
    positions = data.cameras.positions
    # leave the back unseen: train only on cameras with y < 0 (the front half); hold out both halves
    front = [i for i in data.train_indices if positions[i, 1] < 0]
    back_test = [i for i in data.heldout_indices if positions[i, 1] >= 0.3 * positions[i].norm()]
    front_test = [i for i in data.heldout_indices if positions[i, 1] < 0]
    subset = dataclasses.replace(data, train_indices=front, heldout_indices=front_test)
    print(f"lego-200: {len(front)} front training views; {len(back_test)} back views (the target path), "
          f"{len(front_test)} front held-out views", flush=True)
    prior = train_patch_prior(subset.images[front], PriorConfig(steps=args.prior_steps, batch_size=16),
                              source="lego-200 front")
    fixers = {"prior": lambda rgb, mask, seed: fix_masked(prior, rgb, mask, timestep=args.fix_timestep, seed=seed),
              "inpaint": inpaint_fixer()}
    eval_cameras = data.cameras.scaled(0.5)  # 100x100 renders: the CPU is shared

    def truth(i):
        image = data.composited(i).permute(2, 0, 1)[None]
        alpha = data.images[i, ..., 3].float()[None, None] / 255
        pool = torch.nn.functional.avg_pool2d
        return pool(image, 2)[0].permute(1, 2, 0), pool(alpha, 2)[0, 0]

    def measure(scene) -> dict:
        renderable = scene.renderable()
        out = {}
        for label, indices in (("path", back_test), ("interp", front_test)):
            ps, ss, fl, cov = [], [], [], []
            for i in indices:
                view = render_view(renderable, eval_cameras, i)
                rgb, alpha = truth(i)
                ps.append(psnr(view.rgb, rgb))
                ss.append(ssim(view.rgb, rgb))
                empty = alpha < 0.05
                fl.append(float(view.opacity[empty].mean()) if empty.any() else 0.0)  # opacity where there is nothing
                cov.append(float((view.opacity[~empty] > 0.95).float().mean()))
            out[f"{label}_psnr"], out[f"{label}_ssim"] = float(np.mean(ps)), float(np.mean(ss))
            if label == "path":
                out["floater_mass"], out["coverage"] = float(np.mean(fl)), float(np.mean(cov))
        out["flicker"] = float("nan")
        return out

    rows = []
    back_cameras = data.cameras[back_test]
    for seed in args.lego_seeds:
        folder = OUT / f"lego-base-{seed}"
        config = dataclasses.replace(preset_config("test", steps=args.lego_base_steps, seed=seed), checkpoint_every=10**6)
        base = _cached_base(folder, config, subset) if args.reuse_bases else None
        if base is None:
            base = train_scene(subset, folder, config, overwrite=True, show_progress=False)
        rows.append({"seed": seed, "variant": "base", "seconds": 0.0, **measure(base)})
        for name, config in variants(args.refine_steps, seed, args.distortion_weight, args.keyframes).items():
            if args.variants and name not in args.variants:
                continue
            t0 = time.perf_counter()
            scene, _ = refine_scene(base, subset, back_cameras, config, None, fixer=fixers.get(config.fixer),
                                    prior=prior, show_progress=False)
            rows.append({"seed": seed, "variant": name, "seconds": time.perf_counter() - t0, **measure(scene)})
            print(f"lego seed {seed} {name:>9}: path {rows[-1]['path_psnr']:.2f} dB, floaters "
                  f"{rows[-1]['floater_mass']:.4f}, interp {rows[-1]['interp_psnr']:.2f} dB", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--height", type=int, default=72)
    parser.add_argument("--path-frames", type=int, default=8)
    parser.add_argument("--base-steps", type=int, default=1500)
    parser.add_argument("--refine-steps", type=int, default=CLI.steps, help="(default: vista refine's, %(default)s)")
    parser.add_argument("--prior-steps", type=int, default=CLI.prior_steps,
                        help="(default: vista refine's, %(default)s; runs before issue 24 used 300)")
    parser.add_argument("--keyframes", type=int, default=CLI.keyframes,
                        help="(default: vista refine's, %(default)s; runs before issue 24 used 5)")
    parser.add_argument("--fix-timestep", type=int, default=RefineConfig.fix_timestep)
    parser.add_argument("--distortion-weight", type=float, default=None,
                        help="mip-NeRF 360 distortion weight of the guided variants (default: RefineConfig's)")
    parser.add_argument("--reuse-bases", action="store_true",
                        help="reuse base scenes an earlier run trained with the same settings")
    parser.add_argument("--equal-time", action="store_true", help="also run `none` for as long as `score` took")
    parser.add_argument("--variants", nargs="+", choices=["none", "geometric", "inpaint", "fixer", "no-polish", "score"],
                        help="run only these (default: all; --equal-time needs none and score)")
    parser.add_argument("--lego", action="store_true", help="also run lego-200 with the back unseen")
    parser.add_argument("--lego-only", action="store_true")
    parser.add_argument("--lego-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--lego-base-steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a loaded CPU)")
    args = parser.parse_args()
    if args.equal_time and args.variants and not {"none", "score"} <= set(args.variants):
        parser.error("--equal-time compares with `none` and `score`: include both in --variants")
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = []
    if not args.lego_only:
        rows = run_procedural(args)
        report.append(table(rows, "procedural scene, establishing shot (pull back 1.5x, rise 20 deg)"))
        (OUT / "procedural.json").write_text(json.dumps(rows, indent=1))
    if args.lego or args.lego_only:
        rows = run_lego(args)
        report.append(table(rows, "lego-200, back unseen (path = back views, interp = front held-out views)"))
        (OUT / "lego.json").write_text(json.dumps(rows, indent=1))
    print()
    print("\n\n".join(report))
    print(f"\ntotal {(time.perf_counter() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
