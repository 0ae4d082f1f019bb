"""Peak memory of `vista train` with many large photos (issue 21: <= 4 GB for 150 photos at 1600 px on the long side).

No capture of 150 photos at 1600 px ships with Vista, so one is made from a real one: fox-small's 50 photos
(480 x 270, portrait) are upscaled (Pillow, Lanczos) so their long side is `--long-side` px, and each photo is listed
`--copies` times with its own pose in transforms.json (the same image file behind the copies would let a loader
share it, so every copy gets its own JPEG file: nothing is shared that a real capture would not share). Memory does
not depend on what the pixels show; held-out quality here means nothing and is not reported.

Per sampler, `vista train` runs in its own process for `--steps` steps (evaluation off) with its peak memory
polled as PSS of the process tree (`bench/compare/measure.py`); the photos' own share (uint8 RGBA) is printed
beside it.

    PYTHONPATH=. .venv/bin/python bench/memory_many_photos.py [--copies 3] [--long-side 1600] [--steps 30]

Writes bench/results/memory-many-photos.json (commit, command, machine, load, numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench" / "compare"))
from measure import run_measured  # noqa: E402  (bench/compare/measure.py)

SOURCE = REPO.parent / "shared" / "data" / "fox-small"
OUT = REPO / "bench" / "out" / "memory-many-photos"
RESULTS = REPO / "bench" / "results" / "memory-many-photos.json"
TARGET_GB = 4.0


def make_capture(source: Path, out: Path, copies: int, long_side: int) -> tuple[int, int, int]:
    """`copies` x the source's frames, upscaled to `long_side`, as a nerfstudio transforms.json folder in `out`.
    Returns (photos, width, height)."""
    meta = json.loads((source / "transforms.json").read_text())
    (out / "images").mkdir(parents=True, exist_ok=True)
    scale = long_side / max(float(meta["w"]), float(meta["h"]))
    width, height = round(float(meta["w"]) * scale), round(float(meta["h"]) * scale)
    frames = []
    for i, frame in enumerate(meta["frames"]):
        image = Image.open(source / frame["file_path"]).convert("RGB").resize((width, height), Image.LANCZOS)
        for copy in range(copies):
            name = f"images/{i:03d}_{copy}.jpg"
            if not (out / name).exists():
                image.save(out / name, quality=92)
            frames.append({**frame, "file_path": name})
    scaled = {key: float(meta[key]) * scale for key in ("fl_x", "fl_y", "cx", "cy") if key in meta}
    (out / "transforms.json").write_text(json.dumps({**meta, **scaled, "w": width, "h": height, "frames": frames}))
    return len(frames), width, height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=3, help="listings of each fox-small photo (default 3: 150)")
    parser.add_argument("--long-side", type=int, default=1600)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--samplers", default="occupancy,proposal")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    data = OUT / f"fox-x{args.copies}-{args.long_side}px"
    photos, width, height = make_capture(SOURCE, data, args.copies, args.long_side)
    photo_gb = photos * width * height * 4 / 1024**3
    print(f"{photos} photos at {width} x {height}: {photo_gb:.2f} GB as uint8 RGBA", flush=True)
    rows = []
    for sampler in args.samplers.split(","):
        cmd = [str(REPO / ".venv" / "bin" / "vista"), "train", str(data), "--out", str(OUT / f"scene-{sampler}"),
               "--overwrite", "--no-eval", "--steps", str(args.steps), "--sampler", sampler,
               "--max-long-side", str(args.long_side)]
        measured = run_measured(cmd, OUT / "logs" / f"{sampler}.log")
        rows.append({"sampler": sampler, "peak_gb": measured.peak_gb, "wall_s": measured.wall_s,
                     "load_avg": measured.load_avg, "command": shlex.join(cmd)})
    print(f"\n| sampler | photos | size | photos' pixels (GB) | peak PSS (GB) | within {TARGET_GB:g} GB |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['sampler']} | {photos} | {width} x {height} | {photo_gb:.2f} | {row['peak_gb']:.2f} | "
              f"{'yes' if row['peak_gb'] <= TARGET_GB else 'no'} |")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    record = {"what": "peak memory of vista train, 150 photos at 1600 px long side (fox-small upscaled, 3 copies)",
              "commit": commit, "command": "PYTHONPATH=. .venv/bin/python " + shlex.join(sys.argv),
              "machine": platform.platform(), "cpus": os.cpu_count(), "photos": photos, "width": width,
              "height": height, "photo_pixels_gb": photo_gb, "target_gb": TARGET_GB, "results": rows}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=1) + "\n")
    print(f"written {args.results}")


if __name__ == "__main__":
    main()
