"""What the occupancy grid's upkeep cost a proposal scene's training (render.render.Renderable.refresh / settle).

    PYTHONPATH=. .venv/bin/python bench/grid_upkeep.py [DATA ...] [--steps 96] [--rounds 2]

Per capture (preset `preview`, its default sampler): the seconds of one grid update as training ran it every 16
steps (a quarter of the cells, plus a quarter of the occupied ones; all cells in the 256-step warm-up), of one
`settle` (what each save now does instead), and training steps timed in one process, alternating between the
steps as they are (no grid update) and the same steps plus the former 16-step updates. Not a test: run it alone
(frame and step times on these VMs vary by ~15% between runs). Writes bench/results/grid-upkeep.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from bench.record import write_record
from bench.step_ab import seconds_per_step
from scenes.train import _new_scene_for
from vista_api.train import TrainRequest, load_dataset
from vista_core.memory import keep_freed_memory

REPO = Path(__file__).resolve().parents[1]


def seconds(fn, repeats: int = 3) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def timed_steps(data, config, with_updates: bool, start: int, steps: int) -> float:
    """Seconds per step from `start` on a fresh scene (8 untimed steps first); `with_updates` adds the former
    16-step grid updates to every step on their schedule."""
    def grid_update(representation, i: int, generator: torch.Generator) -> None:
        representation.grid.maybe_update(i, representation.opacity_over_step, generator)

    return seconds_per_step(data, config, start, steps, untimed=8, before_step=grid_update if with_updates else None)


def measure(data_dir: Path, steps: int, rounds: int) -> dict:
    request = TrainRequest(data_dir, Path("/tmp/unused"), "preview")
    data, config = load_dataset(request), request.config()
    representation = _new_scene_for(data, config).renderable()
    grid, generator = representation.grid, torch.Generator().manual_seed(0)
    row = {"capture": data_dir.name,
           "update_all_cells_s": seconds(lambda: grid.update(representation.opacity_over_step, 0.01, True, generator)),
           "update_after_warmup_s": seconds(lambda: grid.update(representation.opacity_over_step, 0.01, False,
                                                                generator)),
           "settle_s": seconds(lambda: representation.settle(0), repeats=1)}
    step_s: dict[str, list[float]] = {"without updates (now)": [], "with 16-step updates (before)": []}
    for _ in range(rounds):
        for name in step_s:
            step_s[name].append(timed_steps(data, config, name.startswith("with "), 300, steps))
    row["step_s"] = step_s
    row["best_ratio"] = min(step_s["with 16-step updates (before)"]) / min(step_s["without updates (now)"])
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="*", type=Path, default=[REPO.parent / "shared" / "data" / "fox-small"])
    parser.add_argument("--steps", type=int, default=96, help="timed steps per arm and round (6 grid updates)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rows = [measure(d, args.steps, args.rounds) for d in args.data]
    print("| capture | grid update (warm-up / after) | settle | ms per step now / before (best) | ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        now, before = min(r["step_s"]["without updates (now)"]), min(r["step_s"]["with 16-step updates (before)"])
        print(f"| {r['capture']} | {r['update_all_cells_s'] * 1e3:.0f} / {r['update_after_warmup_s'] * 1e3:.0f} ms "
              f"| {r['settle_s']:.2f} s | {now * 1e3:.0f} / {before * 1e3:.0f} | {r['best_ratio']:.3f} |")
    write_record("bench/grid_upkeep.py", "grid-upkeep.json", {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
