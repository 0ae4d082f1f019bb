"""The hash-grid kernel of a git revision against the working tree's, on a real training step's points (not a test).

    PYTHONPATH=. .venv/bin/python bench/hashgrid_ab.py [DATA] --base REV [--steps-before 250] [--repeats 15] \
        [--downscale N] [--results NAME.json]

Trains a fresh `preview` scene of DATA for `--steps-before` steps (so the proposal sampler has found the surfaces),
records the points of every hash-grid call of the next step (the NeRF grid and the proposal grids), then times
`scenes/hashgrid_fused.c` as of REV and as it is now on those points, forward and backward, in turns in one process
(whole runs on these VMs move more than a kernel change). Both libraries must give the same bits. Prints a table;
writes bench/results/NAME.json (default hashgrid-ab.json).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.record import write_record
from bench.step_ab import seconds_per_step
from render.native import FLAGS, ptr
from scenes import backends
from scenes.hashgrid_fused import LayoutArrays
from vista_api.train import TrainRequest, load_dataset
from vista_core.memory import keep_freed_memory

REPO = Path(__file__).resolve().parents[1]
SOURCE = "scenes/hashgrid_fused.c"


def compiled(source_text: str, folder: Path, name: str) -> ctypes.CDLL:
    source, library = folder / f"{name}.c", folder / f"{name}.so"
    source.write_text(source_text)
    subprocess.run(["cc", *FLAGS, str(source), "-o", str(library), "-lm"], check=True)
    return ctypes.CDLL(str(library))


def step_points(data, config, steps_before: int) -> list[tuple[torch.Tensor, torch.Size, object]]:
    """(points, table shape, layout) of each hash-grid call in training step `steps_before`."""
    calls, real = [], backends.hash_encode
    recording = {"on": False}

    def spy(x, table, layout, arrays=None):
        if recording["on"]:
            calls.append((x.detach().clone(), table.shape, layout))
        return real(x, table, layout, arrays)

    def record_last(representation, step, generator) -> None:
        recording["on"] = step == steps_before

    backends.hash_encode = spy
    try:
        seconds_per_step(data, config, 0, 1, untimed=steps_before, before_step=record_last)
    finally:
        backends.hash_encode = real
    return calls


def run(library: ctypes.CDLL, direction: str, x: torch.Tensor, table: torch.Tensor, arrays: LayoutArrays,
        out: torch.Tensor, grad_table: torch.Tensor) -> float:
    f32, i64 = ctypes.c_float, ctypes.c_int64
    layout_args = (arrays.n_levels, ptr(arrays.scales, f32), ptr(arrays.resolutions, i64), ptr(arrays.offsets, i64))
    began = time.perf_counter()
    if direction == "forward":
        library.hashgrid_forward(ptr(x, f32), i64(len(x)), ptr(table, f32), table.shape[1], *layout_args,
                                 ptr(out, f32), torch.get_num_threads())
    else:
        grad_table.zero_()
        library.hashgrid_backward(ptr(x, f32), i64(len(x)), ptr(out, f32), table.shape[1], *layout_args,
                                  ptr(grad_table, f32), torch.get_num_threads())
    return time.perf_counter() - began


def compare(libraries: dict[str, ctypes.CDLL], call, repeats: int, generator: torch.Generator) -> dict:
    x, shape, layout = call
    arrays = LayoutArrays(layout)
    table = (torch.rand(shape, generator=generator) - 0.5) * 1e-2
    out, grad_table = torch.empty(len(x), arrays.n_levels * shape[1]), torch.zeros(shape)
    results = []
    for library in libraries.values():
        run(library, "forward", x, table, arrays, out, grad_table)
        run(library, "backward", x, table, arrays, out, grad_table)
        results.append((out.clone(), grad_table.clone()))
    same = all(torch.equal(a, b) for a, b in zip(results[0], results[1]))
    seconds: dict[str, dict[str, list[float]]] = {name: {"forward": [], "backward": []} for name in libraries}
    for _ in range(repeats):
        for name, library in libraries.items():
            for direction in ("forward", "backward"):
                seconds[name][direction].append(run(library, direction, x, table, arrays, out, grad_table))
    return {"points": len(x), "table_rows": shape[0], "levels": arrays.n_levels, "same_bits": same,
            "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=REPO.parent / "shared" / "data" / "fox-small")
    parser.add_argument("--base", required=True, help="git revision whose kernel is the baseline")
    parser.add_argument("--downscale", type=int, default=1)
    parser.add_argument("--steps-before", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--results", default="hashgrid-ab.json")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    base_text = subprocess.run(["git", "show", f"{args.base}:{SOURCE}"], cwd=REPO, check=True, capture_output=True,
                               text=True).stdout
    request = TrainRequest(args.data, Path("/tmp/unused"), "preview", downscale=args.downscale)
    data, config = load_dataset(request), request.config()
    calls = step_points(data, config, args.steps_before)
    with tempfile.TemporaryDirectory() as folder:
        libraries = {args.base: compiled(base_text, Path(folder), "base"),
                     "working tree": compiled((REPO / SOURCE).read_text(), Path(folder), "new")}
        rows = [compare(libraries, call, args.repeats, torch.Generator().manual_seed(0)) for call in calls]
    print(f"| grid call ({args.data.name}, step {args.steps_before}) | same bits | forward ms: {args.base} -> now | "
          f"backward ms: {args.base} -> now |")
    print("|---|---|---|---|")
    for row in rows:
        cells = []
        for direction in ("forward", "backward"):
            base, new = (statistics.median(row["seconds"][name][direction]) for name in libraries)
            cells.append(f"{base * 1e3:.1f} -> {new * 1e3:.1f} ({base / new:.2f}x)")
        print(f"| {row['points']:,} points, {row['levels']} levels, {row['table_rows']:,} rows | {row['same_bits']} | "
              f"{cells[0]} | {cells[1]} |")
    write_record("bench/hashgrid_ab.py", args.results,
                 {"capture": args.data.name, "downscale": args.downscale, "base": args.base,
                  "steps_before": args.steps_before, "repeats": args.repeats, "statistic": "median", "calls": rows})
    return 0 if all(row["same_bits"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
