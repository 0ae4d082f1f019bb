"""`vista poses` on the real captures (issue #22): registration, accuracy against given poses, checks, time.

    nice -n 10 .venv/bin/python bench/sfm_real.py [--datasets fox-small skull-66 fox-mixed] [--old-code DIR]

fox-small has reference poses (its transforms.json, from COLMAP at full resolution): the recovered poses
are aligned to them (similarity on the camera centres) and the median rotation / position errors printed
(targets: >= 90% registered, <= 2 deg, <= 2% of the extent). skull-66 has none: registration and the
per-photo report only. fox-mixed is fox-small with every third photo turned landscape and every third
centre-cropped (one camera per shape). `--old-code DIR` runs another checkout's CLI first (e.g. a
`git archive` of the commit before #22), for the time and registration "before" next to "after".
Seconds are wall-clock on a shared 2-core machine: compare rows of one run, not across runs.
Writes bench/results/sfm-real.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scenes.sfm_accuracy import compare_poses  # noqa: E402
from vista_core.files import read_json  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def mixed_fox(folder: Path) -> Path:
    """fox-small with photos 1, 4, 7, ... turned landscape and 2, 5, 8, ... centre-cropped to 240x400."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(sorted((DATA / "fox-small" / "images").iterdir())):
        with Image.open(path) as image:
            if i % 3 == 1:
                image = image.transpose(Image.Transpose.ROTATE_90)
            elif i % 3 == 2:
                image = image.crop((15, 40, 255, 440))
            image.save(folder / path.name, quality=95)
    return folder


def run(code: Path, photos: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vista", "poses", str(photos), "--out", str(out)], cwd=code,
                   env={**os.environ, "PYTHONPATH": str(code)}, check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def score(out: Path, reference: Path | None) -> dict:
    if not (out / "sfm_report.json").is_file():
        return {"registered": 0}
    report = read_json(out / "sfm_report.json")
    row = {"photos": len(report["photos"]), "registered": report["registered"],
           "suspicious": report.get("suspicious"), "matcher": report["matcher"], "mapper": report.get("mapper"),
           "cameras": report.get("cameras"), "reprojection_px": round(report["mean_reprojection_error_px"], 3),
           "phases_s": {k: round(v, 1) for k, v in report["seconds"].items()}}
    if reference is not None and (out / "transforms.json").is_file():
        errors = compare_poses(read_json(out / "transforms.json"), read_json(reference))
        row.update(median_rotation_deg=round(errors.median_rotation_deg, 3),
                   median_position_fraction=round(errors.median_position_fraction, 4))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["fox-small", "skull-66", "fox-mixed"])
    parser.add_argument("--old-code", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "sfm_real")
    args = parser.parse_args()
    rows = []
    for name in args.datasets:
        photos = mixed_fox(args.out / "fox-mixed-photos") if name == "fox-mixed" else DATA / name / "images"
        reference = DATA / "fox-small" / "transforms.json" if name == "fox-small" else None
        codes = ([("before", args.old_code.resolve())] if args.old_code else []) + [("after", REPO)]
        for label, code in codes:
            out = args.out / f"{name}-{label}"
            seconds = run(code, photos, out)
            rows.append({"dataset": name, "code": label, "seconds": round(seconds, 1), **score(out, reference)})
            print(rows[-1], flush=True)
    print("\n| dataset | code | registered | suspicious | median rot (deg) | median pos | s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['code']} | {r.get('registered')}/{r.get('photos')} | {r.get('suspicious')} | "
              f"{r.get('median_rotation_deg', '-')} | {r.get('median_position_fraction', '-')} | {r['seconds']} |")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    result = {"what": "vista poses on real captures (issue #22)", "commit": commit.strip(),
              "command": " ".join(sys.argv), "machine": f"{platform.machine()}, 2 cores shared with other jobs "
                                                        "(seconds are contended; before/after ran back to back)",
              "rows": rows}
    target = REPO / "bench" / "results" / "sfm-real.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
