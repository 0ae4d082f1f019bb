"""Cells no training photo sees are never occupied (render.occupancy.cells_seen_by, nerfacc's
mark_invisible_cells): hand-placed cameras, the mask through updates, and a saved scene keeping it."""

from __future__ import annotations

import math

import torch

from render.cameras import Cameras
from render.occupancy import OccupancyGrid, UpdateSchedule, cell_centers_scene, cells_seen_by

IDENTITY = torch.eye(4)


def camera_looking_down_minus_z(position: tuple[float, float, float], fov_deg: float = 60.0) -> Cameras:
    pose = torch.eye(4)[:3].clone()
    pose[:, 3] = torch.tensor(position)
    return Cameras.from_fov(pose[None], fov_deg, 32, 32)


def test_cell_centres_undo_the_contraction():
    centres = cell_centers_scene(4, "unbounded")
    # the 4^3 grid over [-2, 2]^3: inner cells centred at +-0.5, outer ones at contracted 1.5 -> 1 / (2 - 1.5) = 2
    assert torch.allclose(centres[0], torch.tensor([-2.0, -2.0, -2.0]))
    assert torch.allclose(centres[(1 * 4 + 2) * 4 + 1], torch.tensor([-0.5, 0.5, -0.5]))
    assert torch.allclose(cell_centers_scene(2, "object")[-1], torch.tensor([0.5, 0.5, 0.5]))


def test_only_cells_in_front_of_the_camera_are_seen():
    camera = camera_looking_down_minus_z((0.0, 0.0, 0.0), fov_deg=60.0)
    resolution = 16
    seen = cells_seen_by(camera, IDENTITY, resolution, "object")
    centres = cell_centers_scene(resolution, "object")
    half = math.tan(math.radians(30.0))
    depth = -centres[:, 2]
    inside = (depth > 0) & (centres[:, 0].abs() < half * depth) & (centres[:, 1].abs() < half * depth)
    assert bool(seen[inside].all())  # every cell whose centre the camera sees
    # behind the camera (z > 0), beyond the one-cell dilation, nothing is seen
    cell = 2.0 / resolution
    assert not bool(seen[centres[:, 2] > 1.5 * cell].any())
    assert 0.05 < seen.float().mean().item() < 0.5


def test_a_scene_transform_moves_what_is_seen():
    camera = camera_looking_down_minus_z((0.0, 0.0, 10.0))  # world: 10 units back, looking at the origin
    scene_from_world = torch.eye(4)
    scene_from_world[:3, :3] *= 0.1
    scene_from_world[2, 3] = -1.0  # world (0, 0, 10) -> scene (0, 0, 0)
    seen = cells_seen_by(camera, scene_from_world, 8, "object")
    centres = cell_centers_scene(8, "object")
    assert not bool(seen[centres[:, 2] > 0.5].any())
    assert bool(seen[(centres[:, :2].abs() < 0.2).all(dim=-1) & (centres[:, 2] < -0.5)].all())


def test_unseen_cells_stay_empty_through_updates():
    grid = OccupancyGrid(8, schedule=UpdateSchedule(update_every=1, warmup_steps=4, threshold=0.01))
    seen = torch.zeros(8**3, dtype=torch.bool)
    seen[: 8**3 // 2] = True
    grid.restrict_to(seen)
    assert not bool(grid.occupied[~seen].any())
    evaluated = []

    def dense_everywhere(u: torch.Tensor) -> torch.Tensor:
        evaluated.append(u.shape[0])
        return torch.ones(u.shape[0])

    generator = torch.Generator().manual_seed(0)
    grid.maybe_update(0, dense_everywhere, generator)  # warm-up: every seen cell, and only those
    assert evaluated == [8**3 // 2]
    grid.maybe_update(5, dense_everywhere, generator)  # later: a sample of seen cells
    assert bool(grid.occupied[seen].any()) and not bool(grid.occupied[~seen].any())
    assert grid.occupied_fraction <= 0.5


def test_a_trained_scene_keeps_its_mask_when_saved_and_loaded(tmp_path):
    import dataclasses

    from scenes.config import preset_config
    from scenes.scene import load_scene
    from scenes.train import train_scene
    from tests.support.procedural import synthetic_capture

    capture = synthetic_capture(n_train=6, width=24, height=18, n_path=8)
    config = dataclasses.replace(preset_config("test", steps=2, seed=0), rays_per_step=64, checkpoint_every=10**6)
    scene = train_scene(capture.data, tmp_path / "scene", config, show_progress=False)
    assert scene.grid.seen is not None and 0.05 < scene.grid.seen.float().mean().item() < 0.95
    assert not bool(scene.grid.occupied[~scene.grid.seen].any())
    loaded = load_scene(tmp_path / "scene")
    assert torch.equal(loaded.grid.seen, scene.grid.seen)
    assert torch.equal(loaded.grid.occupied, scene.grid.occupied)
    off = dataclasses.replace(config, sampling=dataclasses.replace(config.sampling, mask_unseen=False))
    assert train_scene(capture.data, tmp_path / "off", off, show_progress=False).grid.seen is None
