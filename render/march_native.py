"""The ray marchers in C (`march_fused.c`): object scenes, with `render.render._march_object_torch` as the twin;
unbounded scenes' "contracted" schedule, with `render.render._march_unbounded_torch` as the twin.

The PyTorch marcher builds [rays x coarse steps] temporaries and was the largest single cost of a rendered
frame (0.35 s of 0.51 s at 320x180 on the trained lego, measured); the kernel walks each ray once.
VISTA_MARCH=reference forces the twin.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from render.native import Kernel, ptr
from render.occupancy import OccupancyGrid

_SOURCE = Path(__file__).with_name("march_fused.c")
_SKIP_SHIFT = 3
"""Empty stretches are skipped a coarse cell (2^3 occupancy cells per side) at a time."""


def _declare(library: ctypes.CDLL) -> None:
    f32p, i64p, u8p = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_uint8)
    common = [f32p, f32p, f32p, f32p, f32p, i64p, ctypes.c_int64, u8p, ctypes.c_int64, ctypes.c_float, u8p,
              ctypes.c_int]
    library.march_count.argtypes = [*common, i64p, ctypes.c_int]
    library.march_fill.argtypes = [*common, i64p, i64p, f32p, f32p, f32p, ctypes.c_int]
    library.march_count.restype = library.march_fill.restype = None
    unbounded = [f32p, f32p, f32p, ctypes.c_int64, u8p, ctypes.c_int64, ctypes.c_float, ctypes.c_float, ctypes.c_int64,
                 ctypes.c_int64]
    library.march_unbounded_count.argtypes = [*unbounded, i64p, ctypes.c_int]
    library.march_unbounded_fill.argtypes = [*unbounded, i64p, i64p, f32p, f32p, f32p, ctypes.c_int]
    library.march_unbounded_count.restype = library.march_unbounded_fill.restype = None


_KERNEL = Kernel(_SOURCE, "VISTA_MARCH", "fused ray marcher", _declare)
load = _KERNEL.load
"""The kernel library, or None (once warned) where it cannot be built."""


def march_object_native(origins: torch.Tensor, directions: torch.Tensor, t_near: torch.Tensor, t_far: torch.Tensor,
                        shift: torch.Tensor, n_steps: torch.Tensor, grid: OccupancyGrid,
                        step: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ray index [S], t_start [S], t_end [S], field coordinates u [S, 3]) of the kept steps, sorted by ray."""
    library = load()
    args = [origins.float().contiguous(), directions.float().contiguous(), t_near.float().contiguous(),
            t_far.float().contiguous(), shift.float().contiguous(), n_steps.long().contiguous()]
    occ = grid.occupied.contiguous().view(torch.uint8)
    coarse = grid.coarse_occupied(1 << _SKIP_SHIFT).view(torch.uint8)
    n_rays, threads = origins.shape[0], torch.get_num_threads()
    c_args = [ptr(args[0], ctypes.c_float), ptr(args[1], ctypes.c_float), ptr(args[2], ctypes.c_float),
              ptr(args[3], ctypes.c_float), ptr(args[4], ctypes.c_float), ptr(args[5], ctypes.c_int64), n_rays,
              ptr(occ, ctypes.c_uint8), grid.resolution, step, ptr(coarse, ctypes.c_uint8), _SKIP_SHIFT]
    return _count_then_fill(library.march_count, library.march_fill, c_args, n_rays, threads)


def _count_then_fill(count, fill, c_args: list, n_rays: int,
                     threads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The marchers' two passes: `count` each ray's samples, then `fill` the packed outputs at each ray's offset
    (so the outputs are allocated once, at their exact size, and threads write disjoint ranges)."""
    counts = torch.empty(n_rays, dtype=torch.int64)
    count(*c_args, ptr(counts, ctypes.c_int64), threads)
    first = torch.cumsum(counts, 0) - counts
    total = int(counts.sum())
    ray = torch.empty(total, dtype=torch.int64)
    starts, ends, u = torch.empty(total), torch.empty(total), torch.empty(total, 3)
    fill(*c_args, ptr(first, ctypes.c_int64), ptr(ray, ctypes.c_int64), ptr(starts, ctypes.c_float),
         ptr(ends, ctypes.c_float), ptr(u, ctypes.c_float), threads)
    return ray, starts, ends, u


def march_unbounded_native(origins: torch.Tensor, directions: torch.Tensor, shift: torch.Tensor, grid: OccupancyGrid,
                           step: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`render.unbounded.contracted_schedule`'s steps whose midpoint is in an occupied cell: (ray index [S],
    t_start [S], t_end [S], field coordinates u [S, 3]), sorted by ray. The torch twin builds every candidate in
    memory (~125 per ray) and was most of a rendered frame's time (measured: bench/sampler_ab.py)."""
    from render import unbounded

    library = load()
    args = [origins.float().contiguous(), directions.float().contiguous(), shift.float().contiguous()]
    occ = grid.occupied.contiguous().view(torch.uint8)
    n_rays, threads = origins.shape[0], torch.get_num_threads()
    n_outer = unbounded.outer_steps(step)
    c_args = [ptr(args[0], ctypes.c_float), ptr(args[1], ctypes.c_float), ptr(args[2], ctypes.c_float), n_rays,
              ptr(occ, ctypes.c_uint8), grid.resolution, 1.0 / step, 1.0 / n_outer, n_outer,
              unbounded.max_inner_steps(step)]
    return _count_then_fill(library.march_unbounded_count, library.march_unbounded_fill, c_args, n_rays, threads)
