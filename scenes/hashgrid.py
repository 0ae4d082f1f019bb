"""Multiresolution hash encoding (Instant-NGP) in plain PyTorch.

The level layout, hash and interpolation follow tiny-cuda-nn's `HashGrid` exactly
(`encodings/grid.h`: scale = base * 2^(l*log2(per_level_scale)) - 1, resolution = ceil(scale)+1,
pos = x*scale + 0.5, dense indexing while the level fits, else the coherent prime hash), so a
table trained by one backend is valid for the other.

Why not nerfstudio's `HashEncoding`: its torch path took ~4 s for one forward+backward over 65k
points on this 2-core CPU (measured, see README), and it does not match tcnn's layout. This file is
the plain twin; `hashgrid_fused.py` is the fast CPU kernel with the same values and gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from scenes.config import HashGridConfig

_PRIMES = (1, 2654435761, 805459861)
_U32 = 0xFFFFFFFF
MAX_POS = 2.0**62
"""A point whose grid position (x * scale + 0.5) is NaN, infinite or not below this in magnitude at a level adds
nothing there (weights 0): its cell index would not fit an int64 (undefined behaviour in C). `hashgrid_fused.c`
does the same."""


@dataclass(frozen=True)
class GridLayout:
    """Per-level constants of a hash grid: float scales, integer resolutions, table offsets."""

    scales: tuple[float, ...]
    resolutions: tuple[int, ...]
    offsets: tuple[int, ...]  # L+1 entries; level l owns rows offsets[l]:offsets[l+1]
    hashmap_size: int

    @property
    def n_params(self) -> int:
        return self.offsets[-1]


def grid_layout(config: HashGridConfig) -> GridLayout:
    log2_scale = math.log2(config.per_level_scale)
    hashmap_size = 1 << config.log2_hashmap_size
    scales, resolutions, offsets = [], [], [0]
    for level in range(config.n_levels):
        # float32 arithmetic as in tcnn, so both backends pick the same resolutions
        scale = float(torch.tensor(2.0) ** torch.tensor(level * log2_scale, dtype=torch.float32)
                      * config.base_resolution - 1.0)
        resolution = int(math.ceil(scale)) + 1
        dense = resolution**3
        params = min(((dense + 7) // 8) * 8, hashmap_size)
        scales.append(scale)
        resolutions.append(resolution)
        offsets.append(offsets[-1] + params)
    return GridLayout(tuple(scales), tuple(resolutions), tuple(offsets), hashmap_size)


_CORNERS = torch.tensor([[(c >> 0) & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)], dtype=torch.int64)


def level_indices_and_weights(x: torch.Tensor, layout: GridLayout, level: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Table rows [P, 8] and trilinear weights [P, 8] of the 8 cell corners around each point (weights 0, and
    the rows of cell 0, for a point outside MAX_POS)."""
    scale = layout.scales[level]
    resolution = layout.resolutions[level]
    size = layout.offsets[level + 1] - layout.offsets[level]
    pos = x * scale + 0.5
    inside = (pos.abs() < MAX_POS).all(dim=-1)  # False for NaN and infinity too
    all_inside = bool(inside.all())
    if not all_inside:
        pos = torch.where(inside[:, None], pos, 0.0)
    cell = torch.floor(pos)
    frac = pos - cell
    corner = cell.to(torch.int64)[:, None, :] + _CORNERS.to(x.device)[None]  # [P, 8, 3]
    if resolution**3 <= size:
        index = corner[..., 0] + corner[..., 1] * resolution + corner[..., 2] * (resolution * resolution)
    else:
        index = (corner[..., 0] * _PRIMES[0]) & _U32
        index = index ^ ((corner[..., 1] * _PRIMES[1]) & _U32)
        index = index ^ ((corner[..., 2] * _PRIMES[2]) & _U32)
    index = index % size + layout.offsets[level]
    corners_f = _CORNERS.to(x.device, x.dtype)[None]  # [1, 8, 3]
    w = torch.where(corners_f > 0, frac[:, None, :], 1.0 - frac[:, None, :]).prod(dim=-1)
    if not all_inside:
        w = torch.where(inside[:, None], w, 0.0)
    return index, w


def hash_encode_reference(x: torch.Tensor, table: torch.Tensor, layout: GridLayout) -> torch.Tensor:
    """Encode points x [P, 3] in [0, 1]^3 with table [n_params, F] -> features [P, L*F].

    Level-major output (level 0's F features first), as tiny-cuda-nn returns them.
    """
    features = []
    for level in range(len(layout.resolutions)):
        index, w = level_indices_and_weights(x, layout, level)
        # index_select, not table[index]: its backward (index_add) is deterministic on the CPU, while
        # advanced indexing's (index_put_ with accumulate) is not, and runs must be reproducible.
        corner_features = table.index_select(0, index.reshape(-1)).reshape(*index.shape, table.shape[1])  # [P, 8, F]
        features.append((corner_features * w[..., None]).sum(dim=1))
    return torch.cat(features, dim=-1)


def footprint_level_weights(footprint: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Zip-NeRF's per-level feature weights (Barron et al. 2023, sec. 3), [S, L]: erf(1 / sqrt(8 sigma^2 n_l^2)) for
    footprint radii sigma [S] in the grid's unit-cube coordinates and the levels' cells per unit n_l = `scales` [L]
    (the grid spacing is 1/scale: tiny-cuda-nn's "resolution" counts vertices, one more). A level whose cells are
    smaller than the footprint contributes little (its features would alias there); sigma = 0 gives 1 on every
    level. Zip-NeRF derives the erf from blurring a level's features with the footprint's Gaussian."""
    x = footprint[:, None] * scales[None, :]  # footprint in cells of each level
    # 1/sqrt(8 x^2) written as rsqrt so x = 0 gives inf, and erf(inf) = 1 exactly
    return torch.erf(torch.rsqrt(8.0 * x * x))


def init_table(layout: GridLayout, n_features: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform(-1e-4, 1e-4) as tiny-cuda-nn initialises its grids."""
    return (torch.rand(layout.n_params, n_features, generator=generator) * 2 - 1) * 1e-4
