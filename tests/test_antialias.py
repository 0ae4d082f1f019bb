"""Footprint-weighted hash-grid levels (Zip-NeRF's anti-aliasing): the weights, the pixel cones, the switch."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from render.cameras import Cameras, Rays, camera_rays, image_rays
from render.config import SamplingConfig
from render.configio import config_from_dict, config_to_dict
from render.footprint import contraction_scale, sample_footprints
from render.nerfstudio_parts import contract
from render.occupancy import OccupancyGrid
from render.render import Renderable, render_rays
from scenes import backends
from scenes.config import FieldConfig, HashGridConfig, TrainConfig, preset_config
from scenes.field import NerfField
from scenes.hashgrid import footprint_level_weights, grid_layout, hash_encode_reference
from scenes.hashgrid_fused import fused_available

GRID = HashGridConfig(n_levels=4, n_features_per_level=2, log2_hashmap_size=10, base_resolution=4,
                      per_level_scale=2.0)  # scales 3, 7, 15, 31 cells per unit; levels 2-3 hashed


def _field(weighting: bool, seed: int = 0) -> NerfField:
    torch.manual_seed(seed)
    config = FieldConfig(grid=dataclasses.replace(GRID, footprint_weighting=weighting), hidden_dim=16,
                         color_hidden_dim=16)
    field = NerfField(config, "torch", torch.Generator().manual_seed(seed))
    with torch.no_grad():  # a table far from its 1e-4 start, so every level matters in the output
        field.encoding.table.uniform_(-1.0, 1.0, generator=torch.Generator().manual_seed(seed + 1))
    return field


def test_level_weights_equal_the_closed_form_for_hand_worked_values():
    scales = torch.tensor([1.0, 2.0, 4.0])
    # sigma * n = x; erf(1 / sqrt(8 x^2)): x = 0 -> 1, x = 1/4 -> erf(sqrt 2), 1/sqrt(8) -> erf(1), 1/2 -> erf(1/sqrt 2)
    weights = footprint_level_weights(torch.tensor([0.0, 0.25, 8**-0.5 / 2]), scales)
    expected = torch.tensor([[1.0, 1.0, 1.0],
                             [0.9544997361, 0.6826894921, 0.3829249225],  # x = 0.25, 0.5, 1
                             [0.9953222650, 0.8427007929, 0.5204998778]])  # x = 1/sqrt(32), 1/sqrt(8), 1/sqrt(2)
    torch.testing.assert_close(weights, expected, rtol=1e-6, atol=1e-7)


def test_pixel_radius_is_mip_nerfs_at_the_centre_and_the_solid_angle_off_axis():
    cameras = Cameras.from_fov(torch.eye(4)[None, :3], 60.0, 64, 48)
    f = float(cameras.fy[0])
    centre = camera_rays(cameras, torch.zeros(1, dtype=torch.long), torch.tensor([[32.0, 24.0]]))
    torch.testing.assert_close(centre.radii, torch.tensor([2 / 12**0.5 / f]))
    # off axis: sqrt of the solid angle between neighbouring unit directions (finite differences), x 2/sqrt(12)
    # (the pixel centred on (4, 5) near a corner; central differences over +-h pixel)
    h = 0.05
    corner = torch.tensor([[4.0 - h, 5.0], [4.0 + h, 5.0], [4.0, 5.0 - h], [4.0, 5.0 + h], [4.0, 5.0]])
    rays = camera_rays(cameras, torch.zeros(5, dtype=torch.long), corner)
    d = rays.directions.double()
    solid_angle = torch.linalg.cross(d[1] - d[0], d[3] - d[2]).norm() / (2 * h) ** 2
    assert float(rays.radii[4]) == pytest.approx(float(2 / 12**0.5 * solid_angle.sqrt()), rel=1e-3)
    assert float(rays.radii[4]) < float(centre.radii[0]) * 0.8  # the corner pixel sees a smaller angle
    # a supersampled render's sub-rays (the camera at twice the resolution) have half the radius
    fine = image_rays(cameras.scaled(2), 0)
    torch.testing.assert_close(fine.radii.max(), image_rays(cameras, 0).radii.max() / 2, rtol=1e-2, atol=0.0)


def test_contraction_scale_is_the_cube_root_of_the_jacobian_determinant():
    points = torch.tensor([[0.3, -0.5, 0.9], [2.0, 0.5, -1.0], [-0.7, 5.0, 3.0], [10.0, -10.0, 2.0]],
                          dtype=torch.float64)
    for point, scale in zip(points, contraction_scale(points)):
        jacobian = torch.autograd.functional.jacobian(lambda p: contract(p[None])[0], point)
        assert float(scale) == pytest.approx(float(torch.linalg.det(jacobian).abs() ** (1 / 3)), rel=1e-9)


def test_field_footprints_map_the_pixels_gaussian_into_the_unit_cube():
    rays = Rays(torch.zeros(2, 3), torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), torch.tensor([0.01, 0.02]))
    ray, t0, t1 = torch.tensor([0, 1]), torch.tensor([0.4, 3.9]), torch.tensor([0.6, 4.1])
    # the std of a pixel's box is half mip-NeRF's radius (1/sqrt(12) against 2/sqrt(12) px)
    std = 0.5
    torch.testing.assert_close(sample_footprints("object", rays, ray, t0, t1),
                               torch.tensor([0.01 * 0.5 * std * 0.5, 0.02 * 4.0 * std * 0.5]))
    # unbounded: x = 4 -> |det J|^(1/3) = ((2 - 1/4)^2 / 4^4)^(1/3); the cube of side 4 -> 1/4
    expected_far = 0.02 * 4.0 * std * ((1.75**2) / 256) ** (1 / 3) * 0.25
    torch.testing.assert_close(sample_footprints("unbounded", rays, ray, t0, t1),
                               torch.tensor([0.01 * 0.5 * std * 0.25, expected_far]))


def test_switched_off_or_without_footprint_the_field_is_bit_identical():
    u = torch.rand(500, 3, generator=torch.Generator().manual_seed(3))
    footprint = torch.full((500,), 0.05)
    off, on = _field(False), _field(True)
    sigma, features = off.density_and_features(u)
    for other in (off.density_and_features(u, footprint), on.density_and_features(u),
                  on.density_and_features(u, None)):
        assert torch.equal(other[0], sigma) and torch.equal(other[1], features)
    # switched on with a footprint, the fine levels fade and the output changes
    assert not torch.equal(on.density_and_features(u, footprint)[1], features)
    # a chunk of rays that hits nothing (empty space) evaluates no samples
    assert on.density_and_features(u[:0], footprint[:0])[1].shape == (0, features.shape[1])
    # a zero footprint weighs every level by exactly 1
    zero = on.density_and_features(u, torch.zeros(500))
    assert torch.equal(zero[0], sigma) and torch.equal(zero[1], features)


@pytest.mark.parametrize("kind", ["object", "unbounded"])
def test_rendered_rays_are_bit_identical_unless_switched_on_with_radii(kind):
    cameras = Cameras.from_fov(torch.tensor([[[1.0, 0, 0, 0.1], [0, 1, 0, -0.2], [0, 0, 1, 2.5]]]), 50.0, 12, 10)
    with_radii = image_rays(cameras, 0)
    without = Rays(with_radii.origins, with_radii.directions)

    def render(field: NerfField, rays: Rays, grad: bool) -> torch.Tensor:
        scene = Renderable(field, OccupancyGrid(16), kind, torch.eye(4), torch.ones(3),
                           SamplingConfig(max_samples_per_ray=64))
        jitter = torch.rand(len(rays), generator=torch.Generator().manual_seed(7)) if grad else None
        with torch.set_grad_enabled(grad):
            out = render_rays(scene, rays, jitter=jitter)
        return torch.cat([out.rgb, out.depth[:, None], out.opacity[:, None]], dim=-1).detach()

    off, on = _field(False), _field(True)
    for grad in (False, True):  # rendering, and the training path that evaluates the kept samples again
        today = render(off, without, grad)
        assert torch.equal(render(off, with_radii, grad), today)
        assert torch.equal(render(on, without, grad), today)
        assert not torch.equal(render(on, with_radii, grad), today)


@pytest.mark.skipif(not fused_available(), reason="no C compiler: fused CPU hash grid not built")
def test_fused_grid_and_torch_twin_give_the_same_weighted_values_and_gradients(monkeypatch):
    u = torch.rand(400, 3, generator=torch.Generator().manual_seed(4))
    footprint = torch.rand(400, generator=torch.Generator().manual_seed(5)) * 0.2
    upstream = torch.randn(400, 16, generator=torch.Generator().manual_seed(6))

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        field = _field(True)
        sigma, features = field.density_and_features(u, footprint)
        out = torch.cat([sigma[:, None], features], dim=-1)
        params = list(field.encoding.parameters()) + list(field.density_mlp.parameters())
        grads = torch.autograd.grad((out * upstream).sum(), params)
        return out, list(grads)

    fused_out, fused_grads = run()
    monkeypatch.setattr(backends, "hash_encode", lambda x, table, layout, arrays: hash_encode_reference(x, table,
                                                                                                         layout))
    twin_out, twin_grads = run()
    torch.testing.assert_close(fused_out, twin_out, rtol=1e-5, atol=1e-6)
    for fused, twin in zip(fused_grads, twin_grads):
        torch.testing.assert_close(fused, twin, rtol=1e-4, atol=1e-6)
    # the gradient still reaches the finest, most down-weighted level's rows through the weights
    table_grad = fused_grads[0]
    offsets = grid_layout(GRID).offsets
    assert table_grad[offsets[3]:].abs().sum() > 0


def test_the_switch_is_saved_and_old_configs_load_with_it_off():
    config = preset_config("test")
    on = dataclasses.replace(config, field=dataclasses.replace(
        config.field, grid=dataclasses.replace(config.field.grid, footprint_weighting=True)))
    assert config_from_dict(TrainConfig, config_to_dict(on)).field.grid.footprint_weighting is True
    old = config_to_dict(config)
    del old["field"]["grid"]["footprint_weighting"]  # a scene file from before the switch existed
    assert config_from_dict(TrainConfig, old) == config
    assert "footprint_weighting" not in on.field.grid.to_tcnn()  # tiny-cuda-nn would ignore it silently


def test_a_scene_saved_switched_on_loads_switched_on(tmp_path):
    from scenes.config import with_footprint_weighting
    from scenes.scene import load_scene, new_scene, save_scene

    cameras = Cameras.from_fov(torch.tensor([[[1.0, 0, 0, 0.1], [0, 1, 0, -0.2], [0, 0, 1, 2.5]]]), 50.0, 12, 10)
    config = with_footprint_weighting(preset_config("test"))
    scene = new_scene(config, "torch", "object", torch.eye(4), (1.0, 1.0, 1.0), cameras, ["a.png"], "here")
    with torch.no_grad():
        scene.field.encoding.table.uniform_(-1.0, 1.0, generator=torch.Generator().manual_seed(1))
    save_scene(scene, tmp_path)
    loaded = load_scene(tmp_path)
    assert loaded.field.uses_footprint
    u = torch.rand(300, 3, generator=torch.Generator().manual_seed(2))
    footprint = torch.full((300,), 0.02)
    with torch.no_grad():
        before, after = scene.field.density_and_features(u, footprint), loaded.field.density_and_features(u, footprint)
        plain = loaded.field.density_and_features(u)
    assert torch.equal(before[1], after[1]) and not torch.equal(after[1], plain[1])


@pytest.mark.slow  # 300 steps on lego-100: ~1-2 min on a quiet 2-core CPU (617 s at load 13)
def test_a_footprint_weighted_field_still_learns(tmp_path):
    from scenes.config import with_footprint_weighting
    from scenes.data import load_posed_images
    from scenes.evaluate import evaluate_scene
    from scenes.train import train_scene
    from tests.conftest import shared_dataset

    lego = load_posed_images(shared_dataset("lego-100"))
    scene = train_scene(lego, tmp_path, with_footprint_weighting(preset_config("test", steps=300)),
                        show_progress=False)
    # measured 23.6 dB (the same run switched off: see the report); test_train's floor for the plain field is 18
    assert evaluate_scene(scene, lego).mean_psnr > 20.0


def test_vista_train_anti_alias_switches_it_on(tmp_path):
    from vista_api.train import TrainRequest

    assert TrainRequest(tmp_path, tmp_path / "out", "test", anti_alias=True).config().field.grid.footprint_weighting
    assert not TrainRequest(tmp_path, tmp_path / "out", "test").config().field.grid.footprint_weighting
