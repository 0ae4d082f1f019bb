"""The unbounded scenes' sampler (render/unbounded.py): its steps, their length in contracted space, the occupancy
threshold's real step, and what it buys on the procedural outdoor scene (held-out PSNR, samples per ray)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from render import unbounded
from render.cameras import Rays
from render.config import ConfigValueError, SamplingConfig
from render.nerfstudio_parts import contract


def _rays(n: int, seed: int, spread: float = 0.9) -> Rays:
    g = torch.Generator().manual_seed(seed)
    origins = (torch.rand(n, 3, generator=g) * 2 - 1) * spread
    directions = torch.randn(n, 3, generator=g)
    return Rays(origins, directions / directions.norm(dim=-1, keepdim=True))


def _firsts_and_lasts(ray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = ray[1:] == ray[:-1]
    first = torch.ones_like(ray, dtype=torch.bool)
    first[1:] = ~same
    last = torch.ones_like(ray, dtype=torch.bool)
    last[:-1] = ~same
    return first, last


def test_the_steps_tile_each_ray_from_near_to_far_without_gaps_or_overlaps():
    rays = _rays(500, seed=0)
    shift = torch.rand(500, generator=torch.Generator().manual_seed(1))
    ray, starts, ends = unbounded.contracted_schedule(rays, shift, 1 / 64)
    assert torch.equal(ray, torch.sort(ray).values) and torch.equal(torch.unique(ray), torch.arange(500))
    assert bool((ends > starts).all())
    first, last = _firsts_and_lasts(ray)
    same = ~first[1:]
    assert torch.equal(starts[1:][same], ends[:-1][same])  # shared boundaries: no gap, no overlap
    assert torch.allclose(starts[first], torch.full((500,), unbounded.NEAR))
    assert torch.allclose(ends[last], torch.full((500,), unbounded.FAR), rtol=1e-4)
    # far fewer candidates than the former schedule's 384 at the same step inside the cube
    counts = torch.bincount(ray)
    assert int(counts.max()) <= math.ceil(2 * math.sqrt(3) * 64) + 64 + 2
    assert float(counts.float().mean()) < 160


def test_steps_have_one_length_in_contracted_space():
    """Inside the unit cube and, for most steps, beyond it: the point of the schedule (mip-NeRF 360's disparity
    spacing beyond the cube, matched to the step inside)."""
    rays = _rays(400, seed=2)
    ray, starts, ends = unbounded.contracted_schedule(rays, torch.full((400,), 0.5), 1 / 64)
    o, d = rays.origins[ray], rays.directions[ray]
    length = (contract(o + d * ends[:, None]) - contract(o + d * starts[:, None])).norm(dim=-1)
    middle = length[(starts > 0.1) & (ends < 900)]
    assert float(middle.median()) == pytest.approx(1 / 64, rel=0.05)
    assert float(torch.quantile(middle, 0.9)) < 3 / 64
    old_ray, old_starts, old_ends = unbounded.disparity_schedule(rays, torch.full((400,), 0.5), 384)
    o, d = rays.origins[old_ray], rays.directions[old_ray]
    old = (contract(o + d * old_ends[:, None]) - contract(o + d * old_starts[:, None])).norm(dim=-1)
    far = old_starts > 3.0
    assert float(old[far].median()) < 0.25 / 64  # the former schedule: 4-9x finer steps beyond 3 units


def test_jitter_moves_the_boundaries_and_bad_rays_get_no_steps():
    rays = _rays(3, seed=3)
    origins = rays.origins.clone()
    origins[1, 0] = math.nan
    rays = Rays(origins, rays.directions)
    a = unbounded.contracted_schedule(rays, torch.tensor([0.5, 0.5, 0.5]), 1 / 32)
    b = unbounded.contracted_schedule(rays, torch.tensor([0.1, 0.5, math.inf]), 1 / 32)
    assert set(a[0].tolist()) == {0, 2} and set(b[0].tolist()) == {0}
    assert not torch.equal(a[1][a[0] == 0][1:4], b[1][b[0] == 0][1:4])


def test_rays_from_outside_the_cube_still_reach_the_far_plane():
    rays = Rays(torch.tensor([[3.0, 0.0, 0.0], [3.0, 0.0, 0.0]]), torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    ray, starts, ends = unbounded.contracted_schedule(rays, torch.full((2,), 0.5), 1 / 32)
    for r in (0, 1):
        assert float(ends[ray == r].max()) == pytest.approx(unbounded.FAR, rel=1e-4)
    # the first crosses the cube (t 2 to 4): linear steps to its exit, at most the diagonal's; the second only
    # the steps beyond
    assert int((ray == 0).sum()) <= math.ceil(2 * math.sqrt(3) * 32) + 32 + 2
    assert float((ends - starts)[(ray == 0) & (starts > 2) & (ends < 4)].max()) <= 1.2 / 32  # capped: a bit longer
    assert int((ray == 1).sum()) <= 34


def test_the_step_grows_to_respect_max_samples_per_ray():
    assert unbounded.effective_step(1 / 64, 384) == 1 / 64
    step = unbounded.effective_step(1 / 64, 64)
    rays = _rays(300, seed=4, spread=1.0)
    ray, _, _ = unbounded.contracted_schedule(rays, torch.rand(300, generator=torch.Generator().manual_seed(5)), step)
    assert int(torch.bincount(ray).max()) <= 64


def test_the_world_step_undoes_the_contraction():
    """A contracted step `s` beyond the cube is s * r^2 long along a radial ray (d contract / dr = 1 / r^2)."""
    step = 1 / 64
    r = torch.tensor([0.5, 1.5, 4.0, 20.0])
    points = torch.stack([r, torch.zeros(4), torch.zeros(4)], dim=-1)
    u = (contract(points) + 2.0) * 0.25
    expected = torch.where(r <= 1, torch.full_like(r, step), step * r * r)
    assert torch.allclose(unbounded.world_step_at(u, step), expected, rtol=1e-3)
    # to first order, the contraction moves a point by the contracted step: a small step's finite difference agrees
    small = unbounded.world_step_at(u, 1e-3)
    moved = contract(points + torch.stack([small, torch.zeros(4), torch.zeros(4)], dim=-1))
    assert torch.allclose((moved - contract(points))[:, 0], torch.full((4,), 1e-3), rtol=0.05)


def test_the_sampling_config_checks_the_new_fields():
    with pytest.raises(ConfigValueError, match="unbounded_schedule"):
        SamplingConfig(unbounded_schedule="cone")  # type: ignore[arg-type]
    with pytest.raises(ConfigValueError, match="unbounded_step"):
        SamplingConfig(unbounded_step=0.0)
    assert dataclasses.replace(SamplingConfig(), unbounded_schedule="disparity").unbounded_step == 1 / 64


@pytest.mark.slow
def test_the_procedural_outdoor_scene_trains_well_with_few_samples_per_ray(tmp_path):
    """Tuned on fox-small (bench/sampler_ab.py), checked here on another scene: the procedural ground, boxes and
    sky (tests/support/procedural.py), 200 steps of the test preset. Measured 23.99 dB on the held-out in-between
    views and 109 samples per ray over the run (the C marcher; its twin keeps the same samples)."""
    from scenes.config import preset_config
    from scenes.evaluate import evaluate_scene
    from scenes.train import train_scene
    from tests.support.procedural import synthetic_capture

    torch.set_num_threads(1)
    capture = synthetic_capture(n_train=12, width=48, height=36, n_path=8)
    config = dataclasses.replace(preset_config("test", steps=200, seed=0), rays_per_step=1024, checkpoint_every=10**6)
    assert config.sampling.unbounded_schedule == "contracted"
    scene = train_scene(capture.data, tmp_path / "scene", config, show_progress=False)
    metrics = evaluate_scene(scene, capture.data)
    assert metrics.mean_psnr > 22.5
    assert scene.metrics["samples_per_ray"] < 130


def test_scenes_saved_before_the_contracted_schedule_load_with_the_former_one():
    """Their occupancy grids were thresholded for the former schedule's steps (scenes/scene.py)."""
    from render.configio import config_from_dict, config_to_dict
    from scenes.config import TrainConfig, preset_config
    from scenes.scene import _without_retired_keys

    current = config_to_dict(preset_config("preview"))
    assert config_from_dict(TrainConfig, _without_retired_keys(current)).sampling.unbounded_schedule == "contracted"
    del current["sampling"]["unbounded_schedule"]
    assert config_from_dict(TrainConfig, _without_retired_keys(current)).sampling.unbounded_schedule == "disparity"


def test_the_contraction_is_nerfstudios_bit_for_bit():
    from render.nerfstudio_parts import contract_nerfstudio

    g = torch.Generator().manual_seed(7)
    points = torch.cat([torch.randn(5000, 3, generator=g) * 0.4, torch.randn(5000, 3, generator=g) * 50,
                        torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.5], [1e6, 2.0, -3.0]])])
    assert torch.equal(contract(points), contract_nerfstudio(points))


def test_scenes_saved_before_the_proposal_sampler_load_with_the_occupancy_grid():
    from render.configio import config_from_dict, config_to_dict
    from scenes.config import TrainConfig, preset_config
    from scenes.scene import _without_retired_keys

    current = config_to_dict(preset_config("preview"))
    del current["sampling"]["unbounded_sampler"]
    assert config_from_dict(TrainConfig, _without_retired_keys(current)).sampling.unbounded_sampler == "occupancy"


def test_places_train_with_the_proposal_sampler_and_older_scenes_keep_their_prior():
    from render.configio import config_from_dict, config_to_dict
    from scenes.config import TrainConfig, preset_config
    from scenes.scene import _without_retired_keys

    for preset in ("preview", "quality"):
        sampling = preset_config(preset).sampling
        assert sampling.unbounded_sampler == "proposal" and sampling.far_weight_penalty == 0.006
    assert preset_config("test").sampling.unbounded_sampler == "occupancy"
    current = config_to_dict(preset_config("preview"))
    assert config_from_dict(TrainConfig, _without_retired_keys(current)).sampling.far_weight_penalty == 0.006
    del current["sampling"]["far_weight_penalty"]
    assert config_from_dict(TrainConfig, _without_retired_keys(current)).sampling.far_weight_penalty == 0.0
