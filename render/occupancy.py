"""Occupancy grid for empty-space skipping (Instant-NGP; update rule and schedule as nerfacc's OccGridEstimator).

The grid covers the field's unit cube u in [0, 1]^3 (see `render.render.field_coords`), so the same
grid serves bounded object scenes and contracted unbounded ones. nerfacc's estimator is CUDA-only
on our CPUs, hence this torch version. Random draws come from a CPU generator and move to the grid's
device, so a seed gives the same cells on any device.

Cells no training photo sees (`seen`, as nerfacc's `mark_invisible_cells`) are never occupied and never
re-evaluated: no photo constrains their density, so whatever the initial field holds there would stay as
floaters in new views. On fox-small 58% of a 96^3 contracted grid is outside every training camera's frustum,
on skull-66 44% (measured), so warm-up updates also evaluate half the cells.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from render.config import SamplingConfig

OpacityFn = Callable[[torch.Tensor], torch.Tensor]
"""Field coordinates u [P, 3] -> opacity over one marching step (sigma * step) [P]."""


@dataclass(frozen=True)
class UpdateSchedule:
    """When the grid re-evaluates its cells: the arguments of nerfacc's `OccGridEstimator.update_every_n_steps`."""

    update_every: int = 16
    """Training steps between updates."""
    warmup_steps: int = 256
    """Steps during which an update re-evaluates every cell, not a sample of them."""
    threshold: float = 0.01
    """A cell is occupied if its opacity over one step exceeds this (or the grid's mean, if lower)."""

    @staticmethod
    def from_sampling(sampling: SamplingConfig) -> UpdateSchedule:
        return UpdateSchedule(sampling.update_every, sampling.warmup_steps, sampling.occupancy_threshold)


class OccupancyGrid:
    def __init__(self, resolution: int, density: torch.Tensor | None = None,
                 schedule: UpdateSchedule = UpdateSchedule(), device: torch.device | str | None = None):
        self.resolution = resolution
        self.schedule = schedule
        n = resolution**3
        # Until the first update every cell counts as occupied (nerfacc starts the same way).
        self.density = (torch.zeros(n, device=device) if density is None
                        else density.float().reshape(n).clone().to(device))
        self.occupied = torch.ones(n, dtype=torch.bool, device=self.density.device)
        self.seen: torch.Tensor | None = None
        """[n] bool: cells a training photo sees (None: all of them)."""
        self.threshold: float | None = None
        self._coarse: tuple | None = None

    def restrict_to(self, seen: torch.Tensor) -> None:
        """Only cells where `seen` [n] is true can ever be occupied (`cells_seen_by`)."""
        if seen.numel() != self.resolution**3:
            raise ValueError(f"a mask of {seen.numel()} cells for a grid of {self.resolution}^3")
        self.seen = seen.reshape(-1).to(device=self.device, dtype=torch.bool)
        self.occupied = self.occupied & self.seen

    @property
    def device(self) -> torch.device:
        return self.density.device

    def restore(self, density: torch.Tensor, threshold: float) -> None:
        if density.numel() != self.resolution**3:
            raise ValueError(f"occupancy grid of {density.numel()} cells restored into a grid of {self.resolution}^3")
        self.density = density.float().reshape(-1).clone().to(self.device)
        self.threshold = threshold
        self._binarize(threshold)

    def seen_state(self) -> dict[str, torch.Tensor]:
        """The mask as a weights-file entry (none if every cell can be occupied)."""
        return {} if self.seen is None else {"occupancy.seen": self.seen.to(torch.uint8).contiguous()}

    def _cells(self, u: torch.Tensor) -> torch.Tensor:
        """Integer cells [..., 3] of u, clamped to the grid. Clamped as floats before truncating (the same cells as
        truncating, then clamping), so NaN (cell 0) and infinity never reach the float-to-int cast; as
        `march_fused.c`'s clamp_cell."""
        return torch.nan_to_num(u * self.resolution, nan=0.0).clamp_(0, self.resolution - 1).long()

    def cell_index(self, u: torch.Tensor) -> torch.Tensor:
        cell = self._cells(u)
        return (cell[..., 0] * self.resolution + cell[..., 1]) * self.resolution + cell[..., 2]

    def query(self, u: torch.Tensor) -> torch.Tensor:
        """Occupied? for points u [..., 3] in the unit cube."""
        return self.occupied[self.cell_index(u)]

    def query_coarse(self, u: torch.Tensor, factor: int) -> torch.Tensor:
        """Is anything occupied near u, on a grid `factor` times coarser, dilated by one coarse cell?

        Conservative for segments up to one coarse cell long, so the coarse pass never hides a surface."""
        occupied = self._blocks(factor, dilate=True)
        rc = round(occupied.numel() ** (1 / 3))
        cell = self._cells(u) // factor
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

    def maybe_update(self, step: int, opacity_fn: OpacityFn, generator: torch.Generator, *,
                     warm_up: bool = True) -> bool:
        """Update if `step` is on the schedule (nerfacc's `update_every_n_steps`); True if it did.

        `warm_up=False` treats every step as past the warm-up (refinement starts from a trained grid)."""
        if step % self.schedule.update_every != 0:
            return False
        all_cells = warm_up and step < self.schedule.warmup_steps
        self.update(opacity_fn, self.schedule.threshold, all_cells=all_cells, generator=generator)
        return True

    @torch.no_grad()
    def update(self, opacity_fn: OpacityFn, threshold: float, all_cells: bool, generator: torch.Generator,
               chunk: int = 1 << 18, decay: float = 0.95) -> None:
        """Re-evaluate cells: `opacity_fn(u)` gives sigma * step (opacity over one marching step).

        During warm-up every cell is evaluated; later a quarter of all cells at random plus a quarter of the
        occupied ones, as nerfacc does, to keep updates cheap."""
        cells = self._cells_to_update(all_cells, generator)
        jitter = torch.rand(cells.shape[0], 3, generator=generator).to(self.device)
        values = torch.empty(cells.shape[0], device=self.device)
        for start in range(0, cells.shape[0], chunk):
            u = self.cell_centers(cells[start:start + chunk], jitter[start:start + chunk])
            values[start:start + chunk] = opacity_fn(u)
        self.density *= decay
        self.density.scatter_reduce_(0, cells, values, reduce="amax")
        self.threshold = threshold
        self._binarize(threshold)

    def rebuild(self, opacity_fn: OpacityFn, generator: torch.Generator, points_per_cell: int = 4) -> None:
        """Every cell from `opacity_fn` now, forgetting the past: the most of `points_per_cell` jittered points in
        it (conservative, as the maximum over a training's updates is; ~0.15 s a point per cell on fox-small)."""
        for i in range(points_per_cell):
            self.update(opacity_fn, self.schedule.threshold, all_cells=True, generator=generator,
                        decay=0.0 if i == 0 else 1.0)

    def _cells_to_update(self, all_cells: bool, generator: torch.Generator) -> torch.Tensor:
        n = self.density.numel()
        if self.seen is not None:
            seen = torch.nonzero(self.seen).squeeze(1)
            if all_cells:
                return seen
            pick = torch.randint(0, seen.numel(), (seen.numel() // 4,), generator=generator).to(self.device)
            uniform = seen[pick]
        elif all_cells:
            return torch.arange(n, device=self.device)
        else:
            uniform = torch.randint(0, n, (n // 4,), generator=generator).to(self.device)
        occupied = torch.nonzero(self.occupied).squeeze(1)
        if occupied.numel() == 0:
            return uniform
        pick = torch.randint(0, occupied.numel(), (min(n // 4, occupied.numel()),), generator=generator)
        return torch.cat([uniform, occupied[pick.to(self.device)]])

    def _binarize(self, threshold: float) -> None:
        if self.seen is None:
            self.occupied = self.density > torch.clamp(self.density.mean(), max=threshold)
            return
        # nerfacc's threshold: the mean over the cells that can be occupied
        mean = self.density[self.seen].mean() if bool(self.seen.any()) else self.density.new_zeros(())
        self.occupied = (self.density > torch.clamp(mean, max=threshold)) & self.seen

    @property
    def occupied_fraction(self) -> float:
        return float(self.occupied.float().mean())


def cell_centers_scene(resolution: int, kind: str) -> torch.Tensor:
    """[resolution^3, 3] scene coordinates of every cell's centre, in the grid's cell order: the object box
    [-1, 1]^3 maps to the grid directly; an unbounded grid holds the contracted scene [-2, 2]^3, so centres beyond
    the unit cube are uncontracted (L-inf contraction undone: s -> s / |s| / (2 - |s|))."""
    ijk = torch.stack(torch.meshgrid(*[torch.arange(resolution)] * 3, indexing="ij"), dim=-1).reshape(-1, 3)
    u = (ijk.float() + 0.5) / resolution
    if kind == "object":
        return u * 2.0 - 1.0
    s = u * 4.0 - 2.0
    norm = s.abs().amax(dim=-1, keepdim=True).clamp(min=1e-9)
    return torch.where(norm > 1.0, s / norm / (2.0 - norm), s)


def cells_seen_by(cameras, scene_from_world: torch.Tensor, resolution: int, kind: str) -> torch.Tensor:
    """[resolution^3] bool: cells whose centre is in front of and inside the image of at least one of `cameras`
    (world coordinates), dilated by one cell so that rays grazing a frustum's edge keep their samples."""
    centers = cell_centers_scene(resolution, kind).to(scene_from_world.device)
    linear, shift = scene_from_world[:3, :3], scene_from_world[:3, 3]
    world = (centers - shift) @ torch.linalg.inv(linear).T
    widths, heights = cameras.image_sizes()
    seen = torch.zeros(world.shape[0], dtype=torch.bool, device=world.device)
    for i in range(len(cameras)):
        p = cameras.project(world, i)
        x, y = p.pixels[:, 0], p.pixels[:, 1]
        seen |= p.in_front & (x >= 0) & (x < float(widths[i])) & (y >= 0) & (y < float(heights[i]))
    grid = seen.reshape(1, 1, resolution, resolution, resolution).float()
    return (torch.nn.functional.max_pool3d(grid, kernel_size=3, stride=1, padding=1) > 0).reshape(-1)


def occupied_cell_points(scene, max_points: int, seed: int,
                          view_direction_scene: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Occupied cell centres of a `render.render.Renderable`'s grid (unbounded scenes: only the uncontracted inner
    region, the capture's focus) and the field's colour there, seen along `view_direction_scene`."""
    grid = scene.grid
    cells = torch.nonzero(grid.occupied).reshape(-1)
    if len(cells) == 0:
        return torch.zeros((0, 3)), torch.zeros((0, 3))
    u = grid.cell_centers(cells, torch.full((len(cells), 3), 0.5, device=cells.device))
    if scene.kind == "object":
        points = u * 2 - 1
    else:
        points = u * 4 - 2
        inner = (points.abs() <= 1).all(dim=-1)
        points, u = points[inner], u[inner]
    if len(u) > max_points:
        pick = torch.randperm(len(u), generator=torch.Generator().manual_seed(seed))[:max_points].to(u.device)
        points, u = points[pick], u[pick]
    with torch.no_grad():
        _, features = scene.field.density_and_features(u)
        colours = scene.field.color(features, view_direction_scene.expand(len(u), 3)).clamp(0, 1)
    return points, colours
