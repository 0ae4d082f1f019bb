"""Proposal densities baked into dense grids for rendering (the proposal sampler's render-time fast path).

A rendered frame spends about a third of its time evaluating the proposal fields (fox-small, 1280x720: 12.2 of
32.6 s, `bench/results/proposal-frame-profile.json`): 96 hash-grid lookups per ray for fields that are only asked
where to put the NeRF's 24 samples. Without gradients the fields are fixed, so each is sampled at the vertices of a
dense grid as fine as its own finest hash-grid level, and a lookup becomes one trilinear interpolation of log
density (torch's `grid_sample`; renders on a CPU do the same lookups in C, inside the whole proposal pass:
`render.proposal_fused`).

The grid is filled lazily, a block of cells at a time, when a lookup first lands in the block: a small render (a
preview, a test) evaluates the few blocks its rays cross, a video evaluates what its frames see, once. A vertex's
value is the field's value there whichever render filled it, so a frame is a function of the weights and the camera,
not of what was rendered before. The bake is keyed by the field's parameter versions: an optimiser step or a loaded
state starts a new one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_RESOLUTION = 256
"""Cells per side for a field that does not say its finest resolution (`finest` attribute)."""
BLOCK = 8
"""Cells per side of a lazily filled block (filled with a one-vertex halo: see `LazyBake._fill`); a power of two (the
C lookup finds a cell's block by shifting)."""
MIN_DENSITY = 1e-20
"""Densities are interpolated as logarithms; a zero density bakes as this (transmittance over a whole unbounded ray
changes by less than 1e-18)."""
BLOCKS_PER_BATCH = 256
"""Blocks evaluated per field call (1331 vertices each): bounds the bake's memory."""


def parameter_versions(module: torch.nn.Module) -> tuple[tuple[int, int], ...]:
    """Changes whenever a parameter or buffer is modified in place (optimiser steps, `load_state_dict`): torch's
    per-tensor version counter, the one autograd uses to detect in-place changes."""
    return tuple((id(t), t._version) for t in [*module.parameters(), *module.buffers()])


class LazyBake:
    """A field's log density at the (R+1)^3 vertices of a grid over its unit cube ([z, y, x]), filled on demand."""

    def __init__(self, field, resolution: int):
        self.field = field
        self.resolution = resolution
        self.key = parameter_versions(field)
        device = next(iter(field.parameters()), torch.empty(0)).device  # CUDA with tiny-cuda-nn
        self.log_density = torch.zeros(1, 1, resolution + 1, resolution + 1, resolution + 1, device=device)
        self.n_blocks = -(-resolution // BLOCK)
        self.filled = torch.zeros(self.n_blocks ** 3, dtype=torch.bool, device=device)
        self.complete = False
        self.evaluated = 0
        """Vertices evaluated so far (halo vertices count each time a block computes them)."""

    def density(self, u: torch.Tensor) -> torch.Tensor:
        """Density [P] at points u [P, 3] of the unit cube (trilinear in log density; outside: the nearest face)."""
        self._fill(u)
        grid = (u * 2.0 - 1.0).reshape(1, 1, 1, -1, 3)
        log_density = F.grid_sample(self.log_density, grid, mode="bilinear", padding_mode="border",
                                    align_corners=True)
        return log_density.reshape(-1).exp()

    def _fill(self, u: torch.Tensor) -> None:
        """Evaluate the blocks the points fall in that are not filled yet. Each block also fills the vertex ring
        around it (a halo of one), so a point whose cell `grid_sample` rounds into the neighbouring block still
        finds all eight of its vertices filled."""
        if self.complete:
            return
        n = self.n_blocks
        # floor(u R / B) is the block of floor(u R) up to rounding at a block's face, which the halo covers; the
        # flat index is exact in float32 (n^3 <= 2^24). Few passes over the points, and no unique() once the blocks
        # are filled: on 2M uniform points the check took 12 ms against 400 ms for the lookup (2026-12-07)
        block_xyz = (u.detach() * (self.resolution / BLOCK)).floor_().clamp_(0, n - 1)
        blocks = (block_xyz @ torch.tensor([1.0, n, n * n], device=u.device)).long()
        filled = self.filled[blocks]
        if bool(filled.all()):  # the common case once a video's first frames have filled what it sees
            return
        self.fill_blocks(torch.unique(blocks[~filled]))

    def fill_blocks(self, missing: torch.Tensor) -> None:
        for start in range(0, len(missing), BLOCKS_PER_BATCH):
            self._evaluate(missing[start:start + BLOCKS_PER_BATCH])
        self.filled[missing] = True
        self.complete = bool(self.filled.all())

    @torch.no_grad()
    def _evaluate(self, blocks: torch.Tensor) -> None:
        n, r = self.n_blocks, self.resolution
        corner = torch.stack([blocks % n, blocks // n % n, blocks // (n * n)], dim=-1) * BLOCK - 1  # [B, 3] xyz
        offsets = torch.arange(BLOCK + 3, device=blocks.device)
        oz, oy, ox = torch.meshgrid(offsets, offsets, offsets, indexing="ij")
        ring = torch.stack([ox.reshape(-1), oy.reshape(-1), oz.reshape(-1)], dim=-1)  # [V, 3] xyz
        vertices = (corner[:, None, :] + ring[None]).reshape(-1, 3).clamp_(0, r)
        values = self.field.density(vertices.float() / r).float().clamp_min(MIN_DENSITY).log()  # tcnn: half
        self.log_density.view(-1)[(vertices[:, 2] * (r + 1) + vertices[:, 1]) * (r + 1) + vertices[:, 0]] = values
        self.evaluated += len(vertices)


def baked(field, cache: dict[int, LazyBake]) -> LazyBake:
    """The field's bake from `cache` (keyed by the field's id); a new one when its weights changed since."""
    entry = cache.get(id(field))
    if entry is None or entry.key != parameter_versions(field):
        entry = cache[id(field)] = LazyBake(field, int(getattr(field, "finest", DEFAULT_RESOLUTION)))
    return entry
