"""The proposal sampler's render-time fast path: lazily baked proposal densities (render/proposal_bake.py)."""

from __future__ import annotations

import pytest
import torch

from render import proposal_bake
from render.proposal_bake import LazyBake
from render.render import render_rays
from tests.test_proposal_sampler import random_rays, unbounded_scene


def perturbed(scene, seed: int = 3):
    """A scene whose proposal fields hold structure at every level (their tables start near zero)."""
    with torch.no_grad():
        for p in scene.proposals.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
    return scene


def test_the_bake_holds_the_fields_log_density_at_its_vertices_and_interpolates_between():
    field = perturbed(unbounded_scene()).proposals.fields[0]
    bake = LazyBake(field, 64)
    g = torch.Generator().manual_seed(0)
    vertices = torch.randint(0, 65, (40, 3), generator=g).float() / 64
    with torch.no_grad():
        exact = field.density(vertices).clamp_min(proposal_bake.MIN_DENSITY)
        assert torch.allclose(bake.density(vertices).log(), exact.log(), atol=1e-4)
        a, b = torch.tensor([[31 / 64, 5 / 64, 60 / 64]]), torch.tensor([[32 / 64, 5 / 64, 60 / 64]])
        mid = bake.density((a + b) / 2).log()
        expected = (field.density(a).log() + field.density(b).log()) / 2
    assert torch.allclose(mid, expected, atol=1e-4)  # trilinear in log density
    assert 0 < int(bake.filled.sum()) < bake.filled.numel()  # only the blocks the points fell in


def test_a_baked_render_does_not_depend_on_what_was_rendered_before():
    scene = perturbed(unbounded_scene())
    representation = scene.renderable()
    first, second = random_rays(48, seed=1), random_rays(48, seed=2)
    with torch.no_grad():
        alone = render_rays(representation, second)
        scene.proposals.bakes = {}
        render_rays(representation, first)
        after = render_rays(representation, second)
        scene.proposals.bake_for_render = False
        fields = render_rays(representation, second)
    assert torch.equal(alone.rgb, after.rgb) and torch.equal(alone.depth, after.depth)
    assert not torch.equal(alone.rgb, fields.rgb)  # the bake was used
    assert float((alone.rgb - fields.rgb).abs().mean()) < 0.02  # and samples about where the fields do


def test_a_changed_field_is_baked_again_and_training_never_uses_the_bake():
    scene = perturbed(unbounded_scene())
    representation = scene.renderable()
    rays = random_rays(32)
    with torch.no_grad():
        before = render_rays(representation, rays)
        bakes = dict(scene.proposals.bakes)
        for p in scene.proposals.parameters():
            p.mul_(1.5)  # as an optimiser step does: in place
        after = render_rays(representation, rays)
    assert all(scene.proposals.bakes[k] is not bakes[k] for k in bakes)
    assert not torch.equal(before.rgb, after.rgb)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(proposal_bake, "baked", lambda *a: pytest.fail("a training render used the bake"))
        jitter = torch.rand(32, generator=torch.Generator().manual_seed(0))
        render_rays(representation, rays, jitter=jitter).rgb.sum().backward()


def test_going_back_to_training_frees_the_bakes():
    scene = perturbed(unbounded_scene())
    representation = scene.renderable()
    representation.train(False)
    with torch.no_grad():
        render_rays(representation, random_rays(16))
    assert scene.proposals.bakes  # a render (an evaluation during training) baked the fields
    representation.train(True)
    assert not scene.proposals.bakes  # the next optimiser step makes them stale: not kept until the next render

