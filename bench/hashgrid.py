"""Hash grid forward+backward on the CPU: Vista's fused kernel vs its plain-PyTorch twin vs nerfstudio's
HashEncoding (torch implementation), same points, same run. Prints a table of ms and ratios.

    .venv/bin/python bench/hashgrid.py [--points 65536] [--repeats 5] [--against-source OLD.c] [--grid NAME]

`--against-source` also builds another version of `scenes/hashgrid_fused.c` (e.g. `git show HEAD~1:scenes/
hashgrid_fused.c > /tmp/old.c`) and times it beside the current one, forward alone (rendering) and forward+backward
(training), in the same run. `--grid` picks the grid: the `quality` preset's NeRF grid (default), the `preview` preset's, or
the first `proposal` field's (5 levels).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from unittest.mock import patch

import torch

from scenes import hashgrid_fused
from scenes.config import HashGridConfig
from scenes.hashgrid import grid_layout, hash_encode_reference, init_table
from scenes.hashgrid_fused import LayoutArrays, fused_available, hash_encode

GRIDS = {"quality": HashGridConfig.spanning(1024, n_levels=16, log2_hashmap_size=19),
         "preview": HashGridConfig.spanning(512, n_levels=16, log2_hashmap_size=17),
         "proposal": HashGridConfig.spanning(128, n_levels=5, log2_hashmap_size=17)}


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (and the one-time kernel build)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=65536)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--against-source", type=Path, help="another hashgrid_fused.c to time beside this one")
    parser.add_argument("--results", type=Path, help="with --against-source: write the timings here (JSON)")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="quality")
    args = parser.parse_args()
    config = GRIDS[args.grid]
    layout = grid_layout(config)
    g = torch.Generator().manual_seed(0)
    table = init_table(layout, 2, g).requires_grad_()
    x = torch.rand(args.points, 3, generator=g)
    arrays = LayoutArrays(layout)

    def step(encode):
        def run():
            out = encode()
            out.square().sum().backward()
            table.grad = None
        return run

    if args.against_source is not None:
        results = compare_sources(args.against_source, x, table, layout, arrays, args.repeats)
        if args.results is not None:
            write_results(args, results)
        return
    rows = [("vista reference (plain torch)", timed(step(lambda: hash_encode_reference(x, table, layout)), args.repeats))]
    if fused_available():
        rows.append(("vista fused CPU kernel", timed(step(lambda: hash_encode(x, table, layout, arrays)), args.repeats)))
    try:
        from nerfstudio.field_components.encodings import HashEncoding

        ns = HashEncoding(num_levels=16, min_res=16, max_res=1024, log2_hashmap_size=19, features_per_level=2,
                          implementation="torch")

        def ns_run():
            out = ns(x)
            out.square().sum().backward()
            ns.zero_grad()
        rows.append(("nerfstudio HashEncoding (torch)", timed(ns_run, max(1, args.repeats // 2))))
    except ImportError:
        pass
    fastest = min(ms for _, ms in rows)
    print(f"hash grid forward+backward, {args.points} points, {args.grid} grid ({config.n_levels} levels x 2 "
          f"features, table 2^{config.log2_hashmap_size}), "
          f"{torch.get_num_threads()} threads")
    print("| implementation | ms | x slower than fastest |\n|---|---:|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} | {ms / fastest:.1f} |")


def write_results(args, results: dict) -> None:
    import json
    import os
    import subprocess
    import sys

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    args.results.write_text(json.dumps({
        "benchmark": "bench/hashgrid.py", "commit": commit,
        "command": " ".join([".venv/bin/python", "bench/hashgrid.py", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "threads": torch.get_num_threads()}, "load_average": os.getloadavg(),
        "grid": args.grid, "points": args.points, "repeats": args.repeats, "against_source": str(args.against_source),
        "best_ms": {f"{name} / {which}": ms for (name, which), ms in results.items()}}, indent=1) + "\n")
    print(f"written: {args.results}")


def compare_sources(other: Path, x, table, layout, arrays, repeats: int) -> dict:
    """The current kernel against the one built from `other`, forward and forward+backward, interleaved."""
    from render.native import Kernel

    other_kernel = Kernel(other.resolve(), "VISTA_HASHGRID", f"hash grid from {other}", hashgrid_fused._declare)
    if other_kernel.load() is None or not fused_available():
        raise SystemExit("both kernels must build")

    def forward():
        with torch.no_grad():
            hash_encode(x, table, layout, arrays)

    def both():
        hash_encode(x, table, layout, arrays).square().sum().backward()
        table.grad = None

    results = {}
    for name, run in (("forward", forward), ("forward+backward", both)):
        for which, load in (("current", hashgrid_fused._load), (str(other), other_kernel.load)):
            with patch.object(hashgrid_fused, "_load", load):
                results[(name, which)] = timed(run, repeats)
    print(f"{len(x)} points, {torch.get_num_threads()} threads; best of {repeats}")
    print(f"| pass | current ms | {other} ms | ratio |\n|---|---:|---:|---:|")
    for name in ("forward", "forward+backward"):
        now, then = results[(name, "current")], results[(name, str(other))]
        print(f"| {name} | {now:.1f} | {then:.1f} | {then / now:.2f}x |")
    return results


if __name__ == "__main__":
    main()
