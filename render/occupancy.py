"""Occupancy grid for empty-space skipping (Instant-NGP; update rule as nerfacc's OccGridEstimator).

The grid covers the field's unit cube u in [0, 1]^3 (see `render.render.field_coords`), so the same
grid serves bounded object scenes and contracted unbounded ones. nerfacc's estimator is CUDA-only
on our CPUs, hence this torch version.
"""

from __future__ import annotations

from typing import Callable

import torch


class OccupancyGrid:
    def __init__(self, resolution: int, density: torch.Tensor | None = None):
        self.resolution = resolution
        n = resolution**3
        # Until the first update every cell counts as occupied (nerfacc starts the same way).
        self.density = torch.zeros(n) if density is None else density.float().reshape(n).clone()
        self.occupied = torch.ones(n, dtype=torch.bool)
        self.threshold: float | None = None
        self._coarse: tuple | None = None

    def restore(self, density: torch.Tensor, threshold: float) -> None:
        self.density = density.float().reshape(-1).clone()
        self.threshold = threshold
        self._binarize(threshold)

    def cell_index(self, u: torch.Tensor) -> torch.Tensor:
        cell = (u * self.resolution).long().clamp_(0, self.resolution - 1)
        return (cell[..., 0] * self.resolution + cell[..., 1]) * self.resolution + cell[..., 2]

    def query(self, u: torch.Tensor) -> torch.Tensor:
        """Occupied? for points u [..., 3] in the unit cube."""
        return self.occupied[self.cell_index(u)]

    def query_coarse(self, u: torch.Tensor, factor: int) -> torch.Tensor:
        """Is anything occupied near u, on a grid `factor` times coarser, dilated by one coarse cell?

        Conservative for segments up to one coarse cell long, so the coarse pass never hides a surface."""
        occupied = self._blocks(factor, dilate=True)
        rc = round(occupied.numel() ** (1 / 3))
        cell = (u * self.resolution).long().clamp_(0, self.resolution - 1) // factor
        return occupied[(cell[..., 0] * rc + cell[..., 1]) * rc + cell[..., 2]]

    def coarse_occupied(self, factor: int) -> torch.Tensor:
        """[ceil(res / factor)^3] bool: is any cell occupied in each block of factor^3 cells (not dilated)?"""
        return self._blocks(factor, dilate=False)

    def _blocks(self, factor: int, dilate: bool) -> torch.Tensor:
        """Block occupancy (max-pooled), optionally dilated by one block; cached until `occupied` changes."""
        key = (factor, dilate)
        if self._coarse is None or self._coarse[0] is not self.occupied:
            self._coarse = (self.occupied, {})
        cache = self._coarse[1]
        if key not in cache:
            r = self.resolution
            blocks = torch.nn.functional.max_pool3d(self.occupied.reshape(1, 1, r, r, r).float(), kernel_size=factor,
                                                    stride=factor, ceil_mode=True)
            if dilate:
                blocks = torch.nn.functional.max_pool3d(blocks, kernel_size=3, stride=1, padding=1)
            cache[key] = (blocks.reshape(-1) > 0).contiguous()
        return cache[key]

    def cell_centers(self, cells: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        ijk = torch.stack([cells // (r * r), (cells // r) % r, cells % r], dim=-1).float()
        return (ijk + jitter) / r

    @torch.no_grad()
    def update(self, opacity_fn: Callable[[torch.Tensor], torch.Tensor], threshold: float, all_cells: bool,
               generator: torch.Generator, chunk: int = 1 << 18, decay: float = 0.95) -> None:
        """Re-evaluate cells: `opacity_fn(u)` gives sigma * step (opacity over one marching step).

        During warm-up every cell is evaluated; later a quarter of all cells at random plus a quarter of the
        occupied ones, as nerfacc does, to keep updates cheap."""
        n = self.density.numel()
        if all_cells:
            cells = torch.arange(n)
        else:
            uniform = torch.randint(0, n, (n // 4,), generator=generator)
            occupied = torch.nonzero(self.occupied).squeeze(1)
            if occupied.numel() > 0:
                pick = torch.randint(0, occupied.numel(), (min(n // 4, occupied.numel()),), generator=generator)
                cells = torch.cat([uniform, occupied[pick]])
            else:
                cells = uniform
        jitter = torch.rand(cells.shape[0], 3, generator=generator)
        values = torch.empty(cells.shape[0])
        for start in range(0, cells.shape[0], chunk):
            u = self.cell_centers(cells[start:start + chunk], jitter[start:start + chunk])
            values[start:start + chunk] = opacity_fn(u)
        self.density *= decay
        self.density.scatter_reduce_(0, cells, values, reduce="amax")
        self.threshold = threshold
        self._binarize(threshold)

    def _binarize(self, threshold: float) -> None:
        self.occupied = self.density > torch.clamp(self.density.mean(), max=threshold)

    @property
    def occupied_fraction(self) -> float:
        return float(self.occupied.float().mean())
