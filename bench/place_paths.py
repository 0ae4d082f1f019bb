"""Camera path presets on trained real places (issue #21; prints a table and writes JSON; not a test).

For each scene folder: every preset fitted the old way (the occupancy grid finds the subject and clears the
cameras) and the new way (vista_api.paths.open_path_scene: an unbounded scene uses render.path_geometry, the
surfaces its photos saw). For each path: does it build, the fraction of frames whose view holds the subject
centre, and the closest any frame comes to a surface the photos saw (in subject radii).

    nice -n 10 .venv/bin/python bench/place_paths.py /tmp/fox-scene [more scenes] \
        --json bench/results/place-paths.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from render.path_presets import PRESETS, fit_scene_frame, occupancy_query, preset_path  # noqa: E402
from vista_api.paths import PathRequest, make_path, open_path_scene  # noqa: E402
from vista_core.errors import VistaError  # noqa: E402


def in_frame_fraction(path, centre: np.ndarray) -> float:
    cameras = path.sample(96, 54)
    seen = cameras.project(torch.as_tensor(np.asarray(centre)[None], dtype=torch.float32))
    u, v = seen.pixels[:, 0, 0], seen.pixels[:, 0, 1]
    inside = seen.in_front[:, 0] & (u >= 0) & (u < cameras.width) & (v >= 0) & (v < cameras.height)
    return float(inside.float().mean())


def old_way(opened, name: str) -> str:
    """The occupancy grid's fit and clearance, as every scene had before issue #21."""
    scene = opened.scene
    occupied = occupancy_query(opened.renderable)
    frame = fit_scene_frame(scene.capture, scene.scene_from_world, occupied)
    try:
        preset_path(name, frame, capture=scene.capture, seconds=4.0, fps=15, occupied=occupied)
        return "ok"
    except VistaError as error:
        return f"error: {str(error)[:70]}"


def bench_scene(folder: Path) -> dict:
    from scipy.spatial import cKDTree

    t0 = time.perf_counter()
    opened = open_path_scene(folder)
    seconds_open = time.perf_counter() - t0
    frame, geometry = opened.frame, opened.geometry
    rows = []
    for name in PRESETS:
        row = {"preset": name, "old": old_way(opened, name)}
        try:
            path = make_path(PathRequest(preset=name, seconds=4.0, fps=15), opened)
        except VistaError as error:
            row.update(new=f"error: {error}")
            rows.append(row)
            continue
        row.update(new="ok", keyframes=len(path.keyframes), subject_in_frame=round(in_frame_fraction(path, frame.centre), 3))
        if geometry is not None and len(geometry.points):
            positions = path.positions_at(path.frame_times())
            clearance = cKDTree(geometry.points).query(positions)[0].min() / frame.radius
            row["min_clearance_radii"] = round(float(clearance), 3)
        rows.append(row)
    return {"scene": str(folder), "kind": opened.scene.kind, "step": opened.scene.step,
            "open_seconds": round(seconds_open, 1), "centre": [round(float(v), 4) for v in frame.centre],
            "radius": round(frame.radius, 4), "photo_distance": round(frame.distance, 4),
            "map_points": int(len(opened.map_points()[0])), "presets": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenes", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    results = [bench_scene(folder) for folder in args.scenes]
    for result in results:
        print(f"\n{result['scene']} ({result['kind']}, step {result['step']}): subject radius {result['radius']}, "
              f"photos {result['photo_distance']} away, {result['map_points']} map points, "
              f"opened in {result['open_seconds']} s")
        print(f"{'preset':16} {'old (occupancy grid)':40} {'new':6} {'keys':>4} {'in frame':>8} {'clearance':>9}")
        for row in result["presets"]:
            print(f"{row['preset']:16} {row['old'][:40]:40} {row['new'][:6]:6} {row.get('keyframes', '-'):>4} "
                  f"{row.get('subject_in_frame', '-'):>8} {row.get('min_clearance_radii', '-'):>9}")
    if args.json is not None:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        record = {"benchmark": "place-paths", "commit": commit,
                  "command": "python bench/place_paths.py " + " ".join(sys.argv[1:] if argv is None else argv),
                  "machine": {"platform": platform.platform(), "cpus": __import__("os").cpu_count(),
                              "torch_threads": torch.get_num_threads()},
                  "results": results}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
