"""The proposal sampler's render path in C: `proposal_render_bins` in `proposal_render.c` walks each ray
through every proposal pass (lin-disp bins, baked densities, compositing weights, inverse-CDF resampling) in one
go, where nerfstudio's `ProposalNetworkSampler` makes some eighty passes over [rays x samples] tensors per chunk.
1280x720 frames took 0.78-0.86x and 1920x1080 frames 0.76-0.79x the time of nerfstudio's
sampler with torch's grid_sample (fox-small, skull-66; bench/results/bake-lookup.json).

Rendering only (no gradients, no jitter, no annealing): training keeps nerfstudio's sampler, whose samples these
match within 1e-4 (tests/test_proposal_fused.py). VISTA_BAKE=reference forces nerfstudio's sampler (and torch's
grid_sample for the bake lookups).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from render import proposal_bake, unbounded
from render.cameras import Rays
from render.native import Kernel, ptr

MAX_PASS_SAMPLES = 1024
"""proposal_render.c keeps a ray's bins on the stack: passes with more samples use nerfstudio's sampler."""


def _declare(library: ctypes.CDLL) -> None:
    i32, i64, f32p, vpp = ctypes.c_int, ctypes.c_int64, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_void_p)
    library.proposal_render_bins.argtypes = [f32p, f32p, i64, ctypes.c_float, ctypes.c_float, i32,
                                             ctypes.POINTER(ctypes.c_int), i32, vpp, ctypes.POINTER(ctypes.c_int64),
                                             vpp, vpp, i64, f32p, i32]
    library.proposal_render_bins.restype = i32


_KERNEL = Kernel(Path(__file__).with_name("proposal_render.c"), "VISTA_BAKE", "fused proposal render sampler",
                 _declare)


def _pointers(tensors: list) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*[None if t is None else t.data_ptr() for t in tensors])


def render_samples(proposals, rays: Rays):
    """nerfstudio `RaySamples` [R, nerf_samples] for rendering `rays` (scene space) through `proposals`' bakes, or
    None where the kernel does not apply (no C compiler, a GPU, VISTA_BAKE=reference)."""
    library = _KERNEL.load()
    if library is None or rays.origins.device.type != "cpu":
        return None
    sampler = proposals.sampler.sampler  # nerfstudio's ProposalNetworkSampler
    passes = list(sampler.num_proposal_samples_per_ray[:len(proposals.fields)])
    nerf_samples = int(sampler.num_nerf_samples_per_ray)
    if max(*passes, nerf_samples) > MAX_PASS_SAMPLES:
        return None
    bakes = [proposal_bake.baked(field, proposals.bakes) for field in proposals.fields]
    origins = rays.origins.float().contiguous()
    directions = rays.directions.float().contiguous()
    n_rays = len(origins)
    bins = torch.empty(n_rays, nerf_samples + 1)
    counts = (ctypes.c_int * len(passes))(*passes)
    resolutions = torch.tensor([bake.resolution for bake in bakes], dtype=torch.int64)
    for _ in range(len(bakes) + 1):  # each call fills what it found missing; the last finds nothing
        needed = [None if bake.complete else torch.zeros(bake.n_blocks ** 3, dtype=torch.uint8) for bake in bakes]
        filled = [None if bake.complete else bake.filled.view(torch.uint8) for bake in bakes]
        missing = library.proposal_render_bins(
            ptr(origins, ctypes.c_float), ptr(directions, ctypes.c_float), n_rays, unbounded.NEAR, unbounded.FAR,
            len(passes), counts, nerf_samples, _pointers([bake.log_density for bake in bakes]),
            ptr(resolutions, ctypes.c_int64), _pointers(filled), _pointers(needed), proposal_bake.BLOCK,
            ptr(bins, ctypes.c_float), torch.get_num_threads())
        if missing < 0:
            raise ValueError(f"proposal_render_bins refused sample counts {passes} + {nerf_samples}")
        if not missing:
            return _ray_samples(sampler, origins, directions, bins)
        for bake, blocks in zip(bakes, needed):
            if blocks is not None and bool(blocks.any()):
                bake.fill_blocks(torch.nonzero(blocks).squeeze(1))
    raise AssertionError("the proposal bakes still miss blocks after filling every pass")


def _ray_samples(sampler, origins: torch.Tensor, directions: torch.Tensor, bins: torch.Tensor):
    """The samples between spacing `bins` [R, S + 1], as nerfstudio's samplers build them (`get_ray_samples`)."""
    from nerfstudio.cameras.rays import RayBundle

    n = len(origins)
    bundle = RayBundle(origins=origins, directions=directions, pixel_area=origins.new_ones(n, 1),
                       nears=origins.new_full((n, 1), unbounded.NEAR), fars=origins.new_full((n, 1), unbounded.FAR))
    initial = sampler.initial_sampler  # UniformLinDispPiecewiseSampler: its spacing function and inverse
    s_near, s_far = initial.spacing_fn(bundle.nears), initial.spacing_fn(bundle.fars)

    def spacing_to_euclidean(x: torch.Tensor) -> torch.Tensor:
        return initial.spacing_fn_inv(x * s_far + (1 - x) * s_near)

    euclidean = spacing_to_euclidean(bins)
    return bundle.get_ray_samples(bin_starts=euclidean[..., :-1, None], bin_ends=euclidean[..., 1:, None],
                                  spacing_starts=bins[..., :-1, None], spacing_ends=bins[..., 1:, None],
                                  spacing_to_euclidean_fn=spacing_to_euclidean)
