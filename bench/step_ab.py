"""Training steps of a preset under sampling variants, timed in one process, alternating (not a test).

    PYTHONPATH=. .venv/bin/python bench/step_ab.py [DATA] --variants "proposal_ray_share=1.0" "" \
        [--steps 60] [--rounds 2] [--downscale N] [--results NAME.json]

Whole training runs' rays/s move ~10% between runs on these VMs, more than many changes to a step; timing the
variants in turns within one process (a fresh scene each, `--start` steps in, 6 untimed steps first) compares them
under the same conditions. Each variant is `SamplingConfig` field=value pairs joined by "+" ("" for the preset as
it is; `bench/sampling_overrides.py` parses the values). Prints a table; writes bench/results/NAME.json (default
step-ab.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench.record import write_record
from bench.sampling_overrides import with_sampling
from scenes.step import TrainingPixels, make_optimizer
from scenes.train import _new_scene_for, _train_step
from vista_api.train import TrainRequest, load_dataset
from vista_core.memory import keep_freed_memory

REPO = Path(__file__).resolve().parents[1]


def seconds_per_step(data, config, start: int, steps: int, untimed: int = 6,
                     before_step: Callable | None = None) -> float:
    """Seconds per training step of a fresh scene from step `start` (`untimed` steps first), each step as training
    runs it; `before_step(representation, step, generator)`, if given, runs (and is timed) before each one."""
    scene = _new_scene_for(data, config)
    representation = scene.renderable()
    optimizer = make_optimizer(representation, config, scene.corrections)
    pixels = TrainingPixels(data)
    scene.corrections.bind(data.train_indices, len(data.names))
    representation.train()
    generator = torch.Generator().manual_seed(0)

    def step(i: int) -> None:
        if before_step is not None:
            before_step(representation, i, generator)
        representation.refresh(i, generator)
        _train_step(representation, pixels, optimizer, generator, config, i, i / config.steps, None,
                    scene.corrections)

    for i in range(start, start + untimed):
        step(i)
    began = time.perf_counter()
    for i in range(start + untimed, start + untimed + steps):
        step(i)
    return (time.perf_counter() - began) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=REPO.parent / "shared" / "data" / "fox-small")
    parser.add_argument("--variants", nargs="+", required=True)
    parser.add_argument("--preset", default="preview")
    parser.add_argument("--downscale", type=int, default=1)
    parser.add_argument("--start", type=int, default=300)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--results", default="step-ab.json")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    request = TrainRequest(args.data, Path("/tmp/unused"), args.preset, downscale=args.downscale)
    data, config = load_dataset(request), request.config()
    configs = {v: with_sampling(config, list(filter(None, v.split("+")))) for v in args.variants}
    times: dict[str, list[float]] = {v: [] for v in args.variants}
    for _ in range(args.rounds):
        for variant, varied in configs.items():
            times[variant].append(seconds_per_step(data, varied, args.start, args.steps))
    first = min(times[args.variants[0]])
    print(f"| variant ({args.data.name}, {args.preset}) | ms per step, each round | best | rays/s (best) | "
          f"speed vs first |")
    print("|---|---|---|---|---|")
    for variant, seconds in times.items():
        rays = config.rays_per_step / min(seconds)
        print(f"| {variant or '(preset)'} | {' / '.join(f'{s * 1e3:.0f}' for s in seconds)} | "
              f"{min(seconds) * 1e3:.0f} | {rays:,.0f} | {first / min(seconds):.2f}x |")
    write_record("bench/step_ab.py", args.results,
                 {"capture": args.data.name, "preset": args.preset, "downscale": args.downscale,
                  "start": args.start, "steps": args.steps, "rays_per_step": config.rays_per_step,
                  "seconds_per_step": times})
    return 0


if __name__ == "__main__":
    sys.exit(main())
