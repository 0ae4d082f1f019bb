"""Which guidance term costs the training views? The geometric tier's weights varied on cached base scenes (issue 24).

    nice -n 10 .venv/bin/python bench/guidance_weights.py ../shared/data/fox-small --seeds 0 \
        --try 'none:{"geometric": false}' 'geo-novis:{"visibility_weight": 0}' ...

Each `--try LABEL:JSON` is `vista refine --tier geometric`'s RefineConfig with the JSON's fields replaced, run from the
base scene `bench/guidance_real.py` cached for the same settings (its defaults here: 30% held out at the end of the
azimuth order, `preview` with the proposal sampler, 800 base and reference steps; run guidance_real.py first), and
scored by its `measure` (path PSNR/SSIM, floaters, flicker, training views). Not a test: run it alone. Writes
bench/results/guidance-weights-<dataset>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import bench.guidance_real as real  # noqa: E402
from bench.guidance_real_report import provenance  # noqa: E402
from guidance.refine import refine_scene  # noqa: E402
from scenes.data import LoadOptions, load_posed_images  # noqa: E402
from vista_api.refine import GEOMETRIC, RefineRequest  # noqa: E402


def cached(folder: Path):
    if not (folder / real.SCENE_FILE).is_file():
        raise SystemExit(f"{folder}: no cached scene; run bench/guidance_real.py with the same settings first")
    return real.load_scene(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--downscale", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--try", dest="tries", nargs="+", required=True, metavar="LABEL:JSON")
    args = parser.parse_args()
    torch.set_num_threads(2)
    tries = {label: json.loads(fields) for label, fields in (t.split(":", 1) for t in args.tries)}
    full = load_posed_images(Path(args.data), options=LoadOptions(downscale=args.downscale))
    split = real.split_by_position(full, 0.3, "azimuth", "end")
    data = dataclasses.replace(full, train_indices=split.train, heldout_indices=split.path)
    settings = {"downscale": args.downscale, "holdout": 0.3, "order": "azimuth", "block": "end", "preset": "preview",
                "base_steps": 800, "reference_steps": 800}
    name = Path(args.data).resolve().name
    cache = real.OUT / f"{name}-{(full.content_hash or 'nohash')[:12]}"
    reference = cached(cache / f"reference-{real.digest(settings, real.train_config('preview', 800, 0, False, 'proposal'))}")
    targets = real.path_through(data.cameras[split.path].pinhole(), 1)
    views = real.eval_views(full, split, reference, targets, 4)
    result = {**provenance(), "load_average_start": os.getloadavg(), "data": args.data, "settings": settings, "rows": []}
    for seed in args.seeds:
        base_config = real.train_config("preview", 800, seed, False, "proposal")
        base = cached(cache / f"base-{real.digest(settings, base_config, split.path)}-seed{seed}")
        for label, fields in tries.items():
            config = dataclasses.replace(RefineRequest(Path("b"), Path("r"), seed=seed).config(GEOMETRIC), **fields)
            start = time.perf_counter()
            scene, _ = refine_scene(base, data, targets, config, None, show_progress=False)
            row = {"seed": seed, "label": label, "fields": fields, "seconds": time.perf_counter() - start,
                   **real.measure(scene, views)}
            result["rows"].append(row)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    result["load_average_end"] = os.getloadavg()
    target = REPO / "bench" / "results" / f"guidance-weights-{name}.json"
    target.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"written to {target.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
