"""Structure from motion on fox-small: registered fraction and pose accuracy against its COLMAP poses, and time.

    nice -n 10 .venv/bin/python bench/sfm_fox.py [--photos ../shared/data/fox-small/images] [--matcher auto]

Runs `vista poses` (scenes.sfm.estimate_poses) on the 50 photos as if they were unposed, aligns the
recovered camera centres to the ones in fox-small's transforms.json with a similarity transform
(Umeyama) and prints a markdown table against the acceptance targets: >= 90% registered, median
rotation error <= 2 deg, median position error <= 2% of the extent (the diagonal of the reference
camera centres' bounding box).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from render.errors import read_json  # noqa: E402
from scenes.sfm import compare_poses, estimate_poses  # noqa: E402

FOX = REPO.parent / "shared" / "data" / "fox-small"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=FOX / "images")
    parser.add_argument("--reference", type=Path, default=FOX / "transforms.json")
    parser.add_argument("--matcher", default="auto", choices=["auto", "sequential", "exhaustive"])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "sfm_fox")
    args = parser.parse_args()

    start = time.perf_counter()
    report = estimate_poses(args.photos, args.out, matcher=args.matcher, progress=lambda line: None)
    seconds = time.perf_counter() - start
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


if __name__ == "__main__":
    main()
