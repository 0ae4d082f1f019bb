"""Structure from motion on fox-small: registered fraction and pose accuracy against its COLMAP poses, and time.

    nice -n 10 .venv/bin/python bench/sfm_fox.py [--photos ../shared/data/fox-small/images] [--matcher auto]

Runs `vista poses` (scenes.sfm.estimate_poses) on the 50 photos as if they were unposed, aligns the
recovered camera centres to the ones in fox-small's transforms.json with a similarity transform
(Umeyama) and prints a markdown table against the acceptance targets: >= 90% registered, median
rotation error <= 2 deg, median position error <= 2% of the extent (the diagonal of the reference
camera centres' bounding box).

With --train-minutes M it then trains the same preset for the same budget on the recovered poses and
on the given ones (`scenes.train.train_scene`, as `vista train --minutes M` does) and reports each
scene's held-out PSNR; --eval-scale renders the held-out views at a fraction of their size (the photos
box-downsampled to match) when full-resolution evaluation is too slow for the machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from scenes.sfm import compare_poses, estimate_poses  # noqa: E402
from vista_core.files import read_json  # noqa: E402

FOX = REPO.parent / "shared" / "data" / "fox-small"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=FOX / "images")
    parser.add_argument("--reference", type=Path, default=FOX / "transforms.json")
    parser.add_argument("--matcher", default="auto", choices=["auto", "sequential", "exhaustive"])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "sfm_fox")
    parser.add_argument("--skip-sfm", action="store_true", help="reuse the poses already in --out")
    parser.add_argument("--train-minutes", type=float, default=0.0, help="then train on both pose sets (0: no)")
    parser.add_argument("--train-steps", type=int, default=None,
                        help="step count instead of the preset's (with --train-minutes as a cap)")
    parser.add_argument("--only-recovered", action="store_true", help="train on the recovered poses only")
    parser.add_argument("--preset", default="preview")
    parser.add_argument("--eval-scale", type=float, default=1.0, help="held-out render scale (default 1)")
    args = parser.parse_args()

    start = time.perf_counter()
    if args.skip_sfm:
        from scenes.sfm import PhotoResult, SfmReport

        saved = read_json(args.out / "sfm_report.json")
        report = SfmReport([PhotoResult(**p) for p in saved.pop("photos")],
                           **{k: v for k, v in saved.items() if k != "working_size"})
    else:
        report = estimate_poses(args.photos, args.out, matcher=args.matcher, progress=lambda event: None)
    seconds = sum(report.seconds.values()) if args.skip_sfm else time.perf_counter() - start
    print(report.table())
    errors = compare_poses(read_json(args.out / "transforms.json"), read_json(args.reference))
    rows = [
        ("registered fraction", f"{report.registered_fraction:.0%} ({report.registered}/{len(report.photos)})",
         ">= 90%", report.registered_fraction >= 0.9),
        ("median rotation error", f"{errors.median_rotation_deg:.2f} deg (max {errors.rotation_deg.max():.2f})",
         "<= 2 deg", errors.median_rotation_deg <= 2.0),
        ("median position error", f"{errors.median_position_fraction:.2%} of extent "
         f"(max {errors.position.max() / errors.extent:.2%})", "<= 2%", errors.median_position_fraction <= 0.02),
        ("mean reprojection error", f"{report.mean_reprojection_error_px:.2f} px", "", True),
        ("sparse points", f"{report.points:,}", "", True),
        ("time", f"{seconds:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items()) + ")",
         "", True),
    ]
    print()
    print("| measure | value | target | met |")
    print("|---|---|---|---|")
    for name, value, target, met in rows:
        print(f"| {name} | {value} | {target} | {'yes' if met else 'NO'} |")
    print(f"\nphotos compared: {len(errors.names)}; alignment scale {errors.scale:.3f}; "
          f"90th-percentile rotation error {np.percentile(errors.rotation_deg, 90):.2f} deg")
    if args.train_minutes > 0 or args.train_steps:
        train_both(args)


def _downscaled(data, scale: float):
    """The same posed images at `scale` of their size (area-averaged photos, scaled intrinsics)."""
    import dataclasses

    if scale == 1.0:
        return data
    cameras = data.cameras.scaled(scale)
    images = data.images[list(range(len(data.names)))].permute(0, 3, 1, 2).float()  # one size: fox-small
    images = torch.nn.functional.interpolate(images, size=(cameras.height, cameras.width), mode="area")
    images = images.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return dataclasses.replace(data, cameras=cameras, images=images)


def train_both(args) -> None:
    from scenes.config import preset_config
    from scenes.data import load_posed_images
    from scenes.evaluate import evaluate_scene
    from scenes.train import train_scene

    print(f"\n| poses | steps ({args.preset}) | train time | held-out PSNR (scale {args.eval_scale:g}) | views |")
    print("|---|---|---|---|---|")
    runs = [("recovered (vista poses)", args.out), ("given (fox-small transforms.json)", args.reference.parent)]
    for label, data_dir in runs[:1] if args.only_recovered else runs:
        data = load_posed_images(data_dir)
        scene = train_scene(data, args.out.parent / f"sfm_fox_train_{'given' if 'given' in label else 'ours'}",
                            preset_config(args.preset, steps=args.train_steps), minutes=args.train_minutes or None,
                            overwrite=True, show_progress=False)
        metrics = evaluate_scene(scene, _downscaled(data, args.eval_scale))
        print(f"| {label} | {scene.step} | {scene.metrics.get('train_seconds', 0):.0f} s | {metrics.mean_psnr:.2f} dB "
              f"| {len(metrics.views)} |", flush=True)


if __name__ == "__main__":
    main()
