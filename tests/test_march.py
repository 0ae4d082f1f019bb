"""The C ray marcher and the front-to-back density rounds give exactly what their plain forms give."""

from __future__ import annotations

import math

import pytest
import torch

from render import march_native
from render.cameras import Rays
from render.config import SamplingConfig
from render.occupancy import OccupancyGrid
from render.render import Renderable, _box_interval, _front_to_back, _march_object_torch, _march_unbounded_torch, march
from render.volume import render_weights

needs_kernel = pytest.mark.skipif(march_native.load() is None, reason="the C marcher could not be built here")


class BlobField:
    """Dense blobs at a few centres: surfaces to stop at, empty space between."""

    def __init__(self, generator: torch.Generator):
        self.centres = torch.rand(5, 3, generator=generator) * 0.6 + 0.2
        self.mix = torch.randn(4, 6, generator=generator)

    def density_and_features(self, u):
        d2 = ((u[:, None, :] - self.centres[None]) ** 2).sum(-1)
        sigma = 400.0 * torch.exp(-d2 / 0.004).sum(-1)
        return sigma, torch.cat([u, sigma[:, None]], -1) @ self.mix

    def color(self, features, directions):
        return torch.sigmoid(features[:, :3])


def scene_with(grid: OccupancyGrid, generator: torch.Generator, max_samples: int = 384) -> Renderable:
    return Renderable(BlobField(generator), grid, "object", torch.eye(4), torch.ones(3),
                      SamplingConfig(grid_resolution=grid.resolution, max_samples_per_ray=max_samples))


def random_rays(n: int, generator: torch.Generator) -> Rays:
    """Rays from outside and inside the box, some axis-aligned (zero direction components), some missing it."""
    origins = (torch.rand(n, 3, generator=generator) - 0.5) * 6.0
    origins[: n // 4] *= 0.25  # starting inside the box
    targets = (torch.rand(n, 3, generator=generator) - 0.5) * 1.6
    directions = targets - origins
    directions[n // 4: n // 4 + 20, 1:] = 0.0  # along x
    directions[n // 4 + 20: n // 4 + 40, 0] = 0.0  # in the y-z plane
    directions[-30:] = -directions[-30:]  # pointing away: most miss the box
    return Rays(origins, directions / directions.norm(dim=-1, keepdim=True))


def sparse_grid(resolution: int, fraction: float, generator: torch.Generator) -> OccupancyGrid:
    grid = OccupancyGrid(resolution)
    grid.occupied = torch.rand(resolution**3, generator=generator) < fraction
    return grid


def structured_grid(resolution: int, generator: torch.Generator) -> OccupancyGrid:
    """Balls, and one-cell walls on the faces of the marcher's 8-cell skipping blocks, in empty space: the
    marcher must jump across empty blocks and still land on the first step inside a wall."""
    ijk = torch.stack(torch.meshgrid(*[torch.arange(resolution)] * 3, indexing="ij"), -1).reshape(-1, 3)
    centres = (ijk.float() + 0.5) / resolution
    balls = torch.rand(4, 3, generator=generator) * 0.6 + 0.2
    occupied = (torch.cdist(centres, balls) < 0.08).any(-1)
    occupied |= ijk[:, 0] == 16  # first cell of a block, seen from -x
    occupied |= ijk[:, 1] == 39  # last cell of a block, seen from +y
    occupied |= (ijk[:, 2] == 24) & (ijk[:, 0] < 40)
    grid = OccupancyGrid(resolution)
    grid.occupied = occupied
    return grid


@needs_kernel
@pytest.mark.parametrize("resolution,fraction", [(96, None), (64, None), (96, 0.03), (20, 0.1), (128, 0.0)])
def test_c_marcher_keeps_exactly_the_samples_of_the_torch_marcher(resolution, fraction):
    g = torch.Generator().manual_seed(resolution)
    grid = structured_grid(resolution, g) if fraction is None else sparse_grid(resolution, fraction, g)
    scene = scene_with(grid, g)
    rays = random_rays(3000, g)
    shift = torch.rand(len(rays), generator=g)
    native = march(scene, rays, shift)
    step = scene.step_size()
    t_near, t_far = _box_interval(rays)
    n_fine = torch.ceil((t_far - t_near).clamp(min=0.0) / step).long().clamp(max=scene.sampling.max_samples_per_ray)
    plain = _march_object_torch(scene, rays, shift, step, t_near, t_far, n_fine)
    assert native.u.shape[0] == plain.u.shape[0]
    if fraction != 0:
        assert native.u.shape[0] > 1000  # the comparison is not vacuous
    for a, b in [(native.ray_indices, plain.ray_indices), (native.t_starts, plain.t_starts),
                 (native.t_ends, plain.t_ends), (native.u, plain.u)]:
        assert torch.equal(a, b)


@needs_kernel
def test_c_marcher_skips_empty_blocks_but_not_a_lone_occupied_cell():
    """One occupied cell in an empty grid: every ray through it keeps exactly the steps inside it."""
    g = torch.Generator().manual_seed(3)
    grid = OccupancyGrid(32)
    grid.occupied = torch.zeros(32**3, dtype=torch.bool)
    cell = (17, 9, 22)
    grid.occupied[(cell[0] * 32 + cell[1]) * 32 + cell[2]] = True
    scene = scene_with(grid, g)
    centre = (torch.tensor(cell, dtype=torch.float32) + 0.5) / 32 * 2 - 1
    origins = torch.randn(500, 3, generator=g) * 3
    directions = centre - origins
    rays = Rays(origins, directions / directions.norm(dim=-1, keepdim=True))
    samples = march(scene, rays, torch.full((500,), 0.5))
    hit = torch.bincount(samples.ray_indices, minlength=500)
    assert (hit > 0).all()  # every ray aimed at the cell's centre finds it
    inside = ((samples.u * 32).long() == torch.tensor(cell)).all(-1)
    assert inside.all()
    cell_steps = (2 / 32) / scene.step_size()
    assert hit.max() <= math.ceil(cell_steps * math.sqrt(3)) + 1


@needs_kernel
@pytest.mark.parametrize("resolution,fraction,step", [(96, None, 1 / 64), (64, 0.2, 1 / 32), (48, 1.0, 0.05),
                                                      (32, 0.0, 1 / 64)])
def test_c_unbounded_marcher_keeps_exactly_the_samples_of_the_torch_marcher(resolution, fraction, step):
    """The "contracted" schedule (render/unbounded.py): rays from inside the unit cube (the cameras of a capture)
    and from far outside it (a path that leaves it), axis-aligned ones, jitter, a NaN ray."""
    g = torch.Generator().manual_seed(resolution)
    grid = structured_grid(resolution, g) if fraction is None else sparse_grid(resolution, fraction, g)
    scene = Renderable(BlobField(g), grid, "unbounded", torch.eye(4), torch.ones(3),
                       SamplingConfig(grid_resolution=resolution, unbounded_step=step))
    rays = random_rays(2000, g)
    origins = rays.origins.clone()
    origins[7, 1] = math.nan
    rays = Rays(origins, rays.directions)
    shift = torch.rand(len(rays), generator=g)
    native = march(scene, rays, shift)
    plain = _march_unbounded_torch(scene, rays, shift)
    assert native.u.shape[0] == plain.u.shape[0]
    if fraction != 0:
        assert native.u.shape[0] > 20000  # the comparison is not vacuous
    for a, b in [(native.ray_indices, plain.ray_indices), (native.t_starts, plain.t_starts),
                 (native.t_ends, plain.t_ends), (native.u, plain.u)]:
        assert torch.equal(a, b)


def test_front_to_back_rounds_keep_the_same_samples_as_one_pass():
    g = torch.Generator().manual_seed(7)
    scene = scene_with(sparse_grid(48, 1.0, g), g)
    rays = random_rays(2000, g)
    with torch.no_grad():
        samples = march(scene, rays, torch.rand(len(rays), generator=g))
        deltas = samples.t_ends - samples.t_starts
        sigma, features = scene.field.density_and_features(samples.u)
        _, transmittance, alphas = render_weights(sigma, deltas, samples.ray_indices, len(rays))
        expected = (transmittance > scene.sampling.early_stop_transmittance) & (alphas > scene.sampling.min_alpha)
        keep, kept_sigma, kept_features = _front_to_back(scene, samples, deltas, len(rays), with_values=True)
        keep_only, _, _ = _front_to_back(scene, samples, deltas, len(rays), with_values=False)
    assert 0 < int(expected.sum()) < samples.u.shape[0] // 2  # rays do stop at the blobs
    assert torch.equal(keep, expected)
    assert torch.equal(keep_only, expected)
    torch.testing.assert_close(kept_sigma, sigma[keep])
    torch.testing.assert_close(kept_features, features[keep])
