"""Training steps and rendered frames with and without the fused CPU MLP (scenes/mlp_fused.c) and the kept allocator
(vista_core/memory.py), side by side in one run; with `--render-variants`, other kernel switches (e.g. "bake twin": the
proposal passes of renders by nerfstudio's sampler and torch's grid_sample instead of render/proposal_render.c).

    PYTHONPATH=. .venv/bin/python bench/mlp_fused.py --train DATA[:DOWNSCALE] [...] --render SCENE_DIR [...]

Every measurement runs in its own process (the allocator setting is per process), variants alternating, each
`--repeats` times: training builds a fresh `preview` scene, takes `--warmup` steps, then times `--steps` steps
(rays/s); rendering loads the scene, fills the proposal bakes with a 640x360 frame from capture pose 0, then times
one frame at each `--sizes`. Not a test: run it alone. Writes bench/results/mlp-fused.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"before": {"VISTA_MLP": "reference", "VISTA_ALLOCATOR": "default", "VISTA_COLOUR": ""},
            "fused MLP": {"VISTA_MLP": "", "VISTA_ALLOCATOR": "default", "VISTA_COLOUR": ""},
            "kept memory": {"VISTA_MLP": "reference", "VISTA_ALLOCATOR": "", "VISTA_COLOUR": ""},
            "both (default)": {"VISTA_MLP": "", "VISTA_ALLOCATOR": "", "VISTA_COLOUR": ""},
            "bake twin": {"VISTA_BAKE": "reference"}}
TRAIN_VARIANTS = ("before", "fused MLP", "kept memory", "both (default)")
RENDER_VARIANTS = ["before", "both (default)"]
"""(Runs before render.proposal's `fused_colours` also had "both, fp32 colour": since then it is the default path.)"""


def train_worker(spec: str, warmup: int, steps: int) -> dict:
    from scenes.step import TrainingPixels, make_optimizer
    from scenes.train import _new_scene_for, _train_step
    from vista_api.train import TrainRequest, load_dataset
    from vista_core.memory import keep_freed_memory

    data_dir, _, downscale = spec.partition(":")
    request = TrainRequest(data_dir=Path(data_dir), out_dir=Path("/nonexistent"), preset="preview",
                           downscale=int(downscale or 1))
    data, config = load_dataset(request), request.config()
    keep_freed_memory()  # as train_scene does (a no-op with VISTA_ALLOCATOR=default)
    scene = _new_scene_for(data, config)
    optimizer = make_optimizer(scene.renderable(), config, scene.corrections)
    pixels = TrainingPixels(data)
    scene.corrections.bind(data.train_indices, len(data.names))
    representation = scene.renderable()
    representation.train()
    generator = torch.Generator().manual_seed(0)
    rays = samples = 0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        term = _train_step(representation, pixels, optimizer, generator, config, step, step / 1500, None,
                           scene.corrections)
        if step >= warmup:
            rays, samples = rays + term.n_rays, samples + term.n_samples
    elapsed = time.perf_counter() - start
    return {"rays_per_s": rays / elapsed, "samples_per_ray": samples / rays, "ms_per_step": 1000 * elapsed / steps}


def render_worker(scene_dir: str, sizes: list[str]) -> dict:
    from bench.proposal_bake import camera_at, timed_frame
    from scenes.scene import load_scene
    from vista_core.memory import keep_freed_memory

    keep_freed_memory()  # as render_video does
    scene = load_scene(scene_dir)
    representation = scene.renderable()
    representation.train(False)
    timed_frame(representation, camera_at(scene, "640x360"))
    return {size: timed_frame(representation, camera_at(scene, size))[1] for size in sizes}


def run_worker(variant: str, args: list[str]) -> dict:
    env = {**os.environ, **VARIANTS[variant], "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, __file__, "--worker", *args], env=env, capture_output=True, text=True,
                         cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"{variant} {args}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(train_specs: list[str], render_dirs: list[str], sizes: list[str], repeats: int, warmup: int,
            steps: int) -> tuple[list[dict], list[dict]]:
    training, rendering = [], []
    for spec in train_specs:
        runs: dict[str, list[dict]] = {v: [] for v in TRAIN_VARIANTS}
        for _ in range(repeats):
            for v in TRAIN_VARIANTS:
                runs[v].append(run_worker(v, ["train", spec, str(warmup), str(steps)]))
        training.append({"data": spec, "runs": runs})
        print(f"{spec}: " + ", ".join(f"{v} {max(r['rays_per_s'] for r in rs):,.0f}" for v, rs in runs.items()))
    for scene_dir in render_dirs:
        runs = {v: [] for v in RENDER_VARIANTS}
        for _ in range(repeats):
            for v in RENDER_VARIANTS:
                runs[v].append(run_worker(v, ["render", scene_dir, ",".join(sizes)]))
        rendering.append({"scene": scene_dir, "runs": runs})
        print(f"{scene_dir}: " + ", ".join(f"{v} {min(r[sizes[0]] for r in rs):.1f} s" for v, rs in runs.items()))
    return training, rendering


def print_tables(training: list[dict], rendering: list[dict], sizes: list[str]) -> None:
    if training:
        _print_training(training)
    for size in sizes if rendering else []:
        print(f"\n| {size} frame | " + " | ".join(f"{v} s" for v in RENDER_VARIANTS) + " | last / first |")
        print("|---|" + "---|" * (len(RENDER_VARIANTS) + 1))
        for row in rendering:
            best = {v: min(r[size] for r in rs) for v, rs in row["runs"].items()}
            print(f"| {Path(row['scene']).name} | " + " | ".join(f"{best[v]:.2f}" for v in RENDER_VARIANTS)
                  + f" | {best[RENDER_VARIANTS[-1]] / best[RENDER_VARIANTS[0]]:.2f} |")


def _print_training(training: list[dict]) -> None:
    print("\n| training data | " + " | ".join(f"{v} rays/s" for v in TRAIN_VARIANTS) + " | both / before |")
    print("|---|" + "---|" * (len(TRAIN_VARIANTS) + 1))
    for row in training:
        best = {v: max(r["rays_per_s"] for r in rs) for v, rs in row["runs"].items()}
        print(f"| {row['data']} | " + " | ".join(f"{best[v]:,.0f}" for v in TRAIN_VARIANTS)
              + f" | {best['both (default)'] / best['before']:.2f} |")


def main() -> int:
    torch.set_num_threads(2)
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, *rest = sys.argv[2:]
        result = (train_worker(rest[0], int(rest[1]), int(rest[2])) if kind == "train"
                  else render_worker(rest[0], rest[1].split(",")))
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", nargs="*", default=[])
    parser.add_argument("--render", nargs="*", default=[])
    parser.add_argument("--sizes", default="1280x720")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--results", default="bench/results/mlp-fused.json")
    parser.add_argument("--render-variants", default=",".join(RENDER_VARIANTS),
                        help="variants to render, the reference first (e.g. 'bake twin,both (default)')")
    args = parser.parse_args()
    RENDER_VARIANTS[:] = args.render_variants.split(",")
    sizes = args.sizes.split(",")
    load_before = os.getloadavg()
    training, rendering = measure(args.train, args.render, sizes, args.repeats, args.warmup, args.steps)
    print_tables(training, rendering, sizes)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    result = {"benchmark": "bench/mlp_fused.py", "commit": commit, "command": "PYTHONPATH=. " + " ".join(sys.argv),
              "machine": {"cpus": os.cpu_count(), "torch_threads": 2}, "variants": VARIANTS,
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "training": training, "rendering": rendering}
    target = REPO / args.results
    target.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
