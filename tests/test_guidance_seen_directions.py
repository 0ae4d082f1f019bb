"""The seen-direction prior of guidance: colour asked from the photos' directions, and the term that trains the path's
colour toward it (issue 24)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from guidance.config import RefineConfig
from guidance.terms import RefineStep, nearest_seen_directions, seen_direction_loss, seen_direction_term
from render.cameras import Cameras, Rays
from render.render import render_rays
from tests.support.procedural import look_at

TARGET = torch.zeros(3)


def ring(azimuths_deg: list[float], radius: float = 2.5) -> Cameras:
    """Cameras on a horizontal circle around the origin, looking at it (16 x 12 pixels)."""
    az = torch.deg2rad(torch.tensor(azimuths_deg))
    positions = torch.stack([radius * torch.cos(az), radius * torch.sin(az), torch.full_like(az, 0.3)], -1)
    return Cameras.from_fov(look_at(positions, TARGET, torch.tensor([0.0, 0.0, 1.0])), 40.0, 16, 12)


def scene_with_photos_on_one_side(sh_degree: int = 4, kind: str = "object"):
    from scenes.config import preset_config
    from scenes.scene import new_scene

    config = preset_config("test", seed=0)
    config = dataclasses.replace(config, field=dataclasses.replace(config.field, sh_degree=sh_degree))
    capture = ring([-40.0, -20.0, 0.0, 20.0, 40.0])
    return new_scene(config, "torch", kind, torch.eye(4) * torch.tensor([0.4, 0.4, 0.4, 1.0]), (0.0, 0.0, 0.0),
                     capture, [f"p{i}" for i in range(5)], "test")


def test_nearest_seen_directions_are_the_photos_closest_in_angle_and_point_at_the_surface():
    centres = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [-2.0, 0.0, 0.0], [0.0, -2.0, 0.0]])
    point = torch.tensor([[0.0, 0.0, 0.0]])
    # a ray travelling along -x, i.e. from a camera on the +x side just above the photo at (2, 0, 0), then (0, 2, 0)
    view = torch.tensor([[-1.0, -0.2, 0.0]]) / math.hypot(1.0, 0.2)
    seen, weights = nearest_seen_directions(point, view, centres, 2)
    assert seen.shape == (1, 2, 3)
    assert torch.allclose(seen[0, 0], torch.tensor([-1.0, 0.0, 0.0]))
    assert torch.allclose(seen[0, 1], torch.tensor([0.0, -1.0, 0.0]))
    assert torch.allclose(seen.norm(dim=-1), torch.ones(1, 2))
    # weights: each cosine (0.981, 0.196) minus the third photo's (-0.196), normalised
    assert torch.allclose(weights, torch.tensor([[0.75, 0.25]]), atol=1e-3)
    # more photos asked for than there are: all of them, nearest first, equal weights
    seen, weights = nearest_seen_directions(point, view, centres, 9)
    assert seen.shape == (1, 4, 3) and torch.allclose(weights, torch.full((1, 4), 0.25))


def test_the_seen_directions_weights_change_continuously_as_the_view_turns():
    """A photo enters the nearest set at weight 0, so the target colour has no jump along a path."""
    angles = torch.deg2rad(torch.arange(0.0, 360.0, 30.0))
    centres = 2.0 * torch.stack([torch.cos(angles), torch.sin(angles), torch.zeros_like(angles)], -1)
    turns = torch.deg2rad(torch.linspace(0.0, 90.0, 721))
    views = -torch.stack([torch.cos(turns), torch.sin(turns), torch.zeros_like(turns)], -1)
    seen, weights = nearest_seen_directions(torch.zeros(len(turns), 3), views, centres, 3)
    per_photo = torch.zeros(len(turns), len(centres))
    owner = (seen @ (-centres / 2.0).T).argmax(-1)  # which photo each direction came from
    per_photo.scatter_add_(1, owner, weights)
    assert (per_photo[1:] - per_photo[:-1]).abs().max() < 0.02  # 0.125 degree steps: no jumps


@pytest.mark.parametrize("kind", ["object", "unbounded"])
def test_colour_directions_change_the_colour_only(kind):
    scene = scene_with_photos_on_one_side(kind=kind)
    renderable = scene.renderable()
    renderable.train(False)
    generator = torch.Generator().manual_seed(1)
    directions = torch.nn.functional.normalize(torch.randn(64, 3, generator=generator) * 0.1
                                               + torch.tensor([-1.0, 0.0, 0.0]), dim=-1)
    origins = torch.tensor([0.9, 0.0, 0.0]).expand(64, 3)
    other = torch.nn.functional.normalize(torch.randn(64, 3, generator=generator), dim=-1)
    with torch.no_grad():
        plain = render_rays(renderable, Rays(origins, directions))
        same = render_rays(renderable, Rays(origins, directions, None, directions.clone()))
        turned = render_rays(renderable, Rays(origins, directions, None, other))
    assert torch.equal(plain.rgb, same.rgb)
    assert torch.equal(plain.depth, turned.depth) and torch.equal(plain.opacity, turned.opacity)
    assert plain.opacity.max() > 0.05  # the random field holds something to colour
    assert (plain.rgb - turned.rgb).abs().max() > 1e-3


def test_the_seen_direction_loss_vanishes_without_view_dependence_and_trains_the_path_colour_toward_the_photos():
    path = ring([150.0, 180.0, 210.0])  # the side no photo saw
    flat = scene_with_photos_on_one_side(sh_degree=1)  # one SH band: colour cannot depend on direction
    loss = seen_direction_loss(flat.renderable(), flat.capture, path, 256, 3, torch.Generator().manual_seed(0))
    assert loss.item() < 1e-12

    scene = scene_with_photos_on_one_side(sh_degree=4)
    renderable = scene.renderable()
    first = seen_direction_loss(renderable, scene.capture, path, 256, 3, torch.Generator().manual_seed(0))
    assert first.item() > 1e-6
    first.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in scene.field.color_mlp.parameters())
    geometry = [*scene.field.encoding.parameters(), *scene.field.density_mlp.parameters()]
    assert all(p.grad is None for p in geometry) and all(p.requires_grad for p in geometry)
    optimizer = torch.optim.Adam(scene.field.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(2)
    for _ in range(30):
        optimizer.zero_grad()
        seen_direction_loss(renderable, scene.capture, path, 256, 3, generator).backward()
        optimizer.step()
    after = seen_direction_loss(renderable, scene.capture, path, 256, 3, torch.Generator().manual_seed(0))
    assert after.item() < 0.5 * first.item()


def test_the_seen_direction_term_is_off_by_default_and_in_the_polish():
    scene = scene_with_photos_on_one_side()
    path = ring([170.0, 190.0])
    step = RefineStep(scene.renderable(), scene.capture, path, path, None, None, None,
                      torch.Generator().manual_seed(0), path=path)
    assert seen_direction_term(RefineConfig(), step) is None
    weighted = RefineConfig(seen_direction_weight=0.5)
    assert seen_direction_term(weighted, step) is not None
    assert seen_direction_term(dataclasses.replace(weighted, geometric=False), step) is None
    step.polishing = True
    assert seen_direction_term(weighted, step) is None


def test_with_an_angle_the_loss_leaves_rays_near_a_photos_direction_to_the_photos():
    scene = scene_with_photos_on_one_side()
    renderable = scene.renderable()
    on_the_photos = scene.capture[torch.tensor([1, 3])]  # path cameras where two photos were taken

    def loss(angle: float) -> float:
        return seen_direction_loss(renderable, scene.capture, on_the_photos, 256, 3,
                                   torch.Generator().manual_seed(0), angle).item()

    assert loss(0.0) > 1e-9  # the mean over three photos' directions differs from the ray's own colour
    assert loss(5.0) == 0.0  # each ray's nearest photo direction is its own
