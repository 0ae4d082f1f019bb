"""Structure from motion on a rotationally symmetric can (issue #22): exhaustive matching vs the default.

    nice -n 10 .venv/bin/python bench/sfm_symmetric.py [--frames 96] [--folds 2 3] [--old-code DIR]

Renders `tests.support.symmetric`'s can (label repeated `folds` times around it) along one orbit with
known poses, runs `vista poses` on the frames with `--matcher exhaustive` and with the default (numbered
frames: neighbours + loop-closure pairs checked against a neighbours-only model), and counts per run the
frames placed within 2 deg and 2% of the extent (robust alignment: `compare_poses(robust=True)`), the
frames placed wrongly and kept, and the frames reported suspicious. `--old-code DIR` also runs the CLI of
another checkout (e.g. `git archive` of the commit before #22) as "before". Prints a markdown table and
writes bench/results/sfm-symmetric.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scenes.sfm_accuracy import compare_poses  # noqa: E402
from tests.support.symmetric import symmetric_orbit  # noqa: E402
from vista_core.files import read_json  # noqa: E402


def run_poses(photos: Path, out: Path, matcher: str, code: Path) -> float:
    """`vista poses` of the checkout at `code` in a subprocess; returns wall-clock seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vista", "poses", str(photos), "--out", str(out), "--matcher", matcher],
                   cwd=code, env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"}, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def score(out: Path, truth: Path, n_frames: int) -> dict:
    if not (out / "transforms.json").is_file():
        return {"placed": 0, "accurate": 0, "misplaced_kept": 0, "suspicious": None}
    report = read_json(out / "sfm_report.json")
    errors = compare_poses(read_json(out / "transforms.json"), read_json(truth), robust=True)
    accurate = errors.accurate()
    return {"frames": n_frames, "placed": len(errors.names), "accurate": len(accurate),
            "misplaced_kept": len(errors.names) - len(accurate),
            "suspicious": report.get("suspicious"), "loop_pairs_rejected": report.get("loop_pairs_rejected"),
            "mapper": report.get("mapper"), "reprojection_px": round(report["mean_reprojection_error_px"], 3),
            "median_rotation_deg": round(errors.median_rotation_deg, 3),
            "median_position_fraction": round(errors.median_position_fraction, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--size", type=int, nargs=2, default=(320, 240))
    parser.add_argument("--folds", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--old-code", type=Path, help="another checkout whose `vista poses` runs as 'before'")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "sfm_symmetric")
    args = parser.parse_args()
    runs = [("exhaustive (this commit)", "exhaustive", REPO), ("default (this commit)", "auto", REPO)]
    if args.old_code:
        runs.insert(0, ("exhaustive (before)", "exhaustive", args.old_code.resolve()))
    rows = []
    for folds in args.folds:
        scene = args.out / f"can-{folds}fold-{args.frames}"
        photos = symmetric_orbit(scene, n_views=args.frames, width=args.size[0], height=args.size[1], folds=folds)
        for label, matcher, code in runs:
            out = scene / label.split(" ")[0] / ("before" if "before" in label else "after")
            seconds = run_poses(photos, out, matcher, code)
            rows.append({"folds": folds, "run": label, "seconds": round(seconds, 1),
                         **score(out, scene / "truth.json", args.frames)})
            print(rows[-1], flush=True)
    print("\n| folds | run | placed | within 2 deg / 2% | misplaced and kept | suspicious (left out) | s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['folds']} | {r['run']} | {r['placed']}/{args.frames} | {r['accurate']} | {r['misplaced_kept']} | "
              f"{r['suspicious']} | {r['seconds']} |")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    result = {"what": "vista poses on a rotationally symmetric can (issue #22)", "commit": commit.strip(),
              "command": " ".join(sys.argv), "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                                                        "2 cores shared with other jobs (seconds are contended)",
              "frames": args.frames, "size": list(args.size), "rows": rows}
    target = REPO / "bench" / "results" / "sfm-symmetric.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
