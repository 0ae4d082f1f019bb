"""`render.ray_colours`: a field's direction encoding is computed once per ray, with the colours unchanged."""

from __future__ import annotations

import torch

from render.ray_colours import SplitColourField, ray_colours
from scenes.config import FieldConfig, HashGridConfig
from scenes.field import NerfField


def small_field() -> NerfField:
    grid = HashGridConfig(n_levels=4, n_features_per_level=2, log2_hashmap_size=10, base_resolution=4,
                          per_level_scale=2.0)
    return NerfField(FieldConfig(grid=grid, hidden_dim=16, color_hidden_dim=16), "torch",
                     torch.Generator().manual_seed(0))


def rays_and_samples(n_rays: int = 50, per_ray: int = 7):
    g = torch.Generator().manual_seed(1)
    directions = torch.nn.functional.normalize(torch.randn(n_rays, 3, generator=g), dim=-1)
    ray_indices = torch.arange(n_rays).repeat_interleave(per_ray)[torch.rand(n_rays * per_ray, generator=g) > 0.3]
    features = torch.randn(len(ray_indices), 15, generator=g)
    return directions, ray_indices, features


def test_per_ray_encoding_gives_the_per_sample_colours_bit_for_bit():
    field = small_field()
    directions, ray_indices, features = rays_and_samples()
    assert isinstance(field, SplitColourField)
    with torch.no_grad():
        assert torch.equal(ray_colours(field, features, directions, ray_indices),
                           field.color(features, directions[ray_indices]))


def test_directions_are_encoded_once_per_ray():
    field = small_field()
    directions, ray_indices, features = rays_and_samples()
    encoded_rows = []
    encode = field.encode_directions
    field.encode_directions = lambda d: encoded_rows.append(len(d)) or encode(d)
    ray_colours(field, features, directions, ray_indices)
    assert encoded_rows == [len(directions)] and len(ray_indices) > 3 * len(directions)


def test_gradients_reach_the_directions_through_the_gather():
    """Camera refinement trains ray directions: the per-ray encoding must pass their gradients on."""
    field = small_field()
    directions, ray_indices, features = rays_and_samples()
    per_ray = directions.clone().requires_grad_()
    per_sample = directions.clone().requires_grad_()
    (grad_ray,) = torch.autograd.grad(ray_colours(field, features, per_ray, ray_indices).sum(), per_ray)
    (grad_sample,) = torch.autograd.grad(field.color(features, per_sample[ray_indices]).sum(), per_sample)
    torch.testing.assert_close(grad_ray, grad_sample)
    assert grad_ray.abs().sum() > 0


class ColourOnlyField:
    """A field implementing only `render.render.RadianceField.color`."""

    def color(self, features: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(features[:, :3] + directions)


def test_a_field_with_only_color_is_asked_per_sample():
    field = ColourOnlyField()
    directions, ray_indices, features = rays_and_samples()
    assert not isinstance(field, SplitColourField)
    assert torch.equal(ray_colours(field, features, directions, ray_indices),
                       field.color(features, directions[ray_indices]))
