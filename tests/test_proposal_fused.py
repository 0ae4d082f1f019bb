"""The proposal sampler's render path in C (render/proposal_fused.py) against nerfstudio's sampler on the same
bakes (whose Python lookups are torch's grid_sample)."""

from __future__ import annotations

import pytest
import torch

from render import proposal_fused, unbounded
from tests.test_proposal_bake import perturbed
from tests.test_proposal_sampler import random_rays, unbounded_scene

needs_kernel = pytest.mark.skipif(proposal_fused._KERNEL.load() is None, reason="no C compiler: kernel not built")


@needs_kernel
def test_the_fused_render_samples_are_nerfstudios_on_the_same_bakes():
    proposals = perturbed(unbounded_scene()).proposals
    rays = random_rays(300, seed=4)
    rays.origins[:40] *= 6.0  # some rays start far outside the unit cube, in the contracted background
    with torch.no_grad():
        fused = proposal_fused.render_samples(proposals, rays)
        fns = proposals.density_fns(render=True)
        twin, _, _ = proposals.sampler.sample(rays.origins, rays.directions, unbounded.NEAR, unbounded.FAR, fns,
                                              stratified=False)
    assert fused.frustums.starts.shape == twin.frustums.starts.shape == (300, 12, 1)
    torch.testing.assert_close(fused.spacing_starts, twin.spacing_starts, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused.frustums.ends, twin.frustums.ends, rtol=1e-4, atol=1e-5)
    assert bool((fused.spacing_starts[:, 1:] > fused.spacing_starts[:, :-1]).all())  # increasing along each ray


@needs_kernel
def test_the_fused_sampler_fills_the_blocks_each_pass_needs_and_gives_the_same_samples_either_way():
    proposals = perturbed(unbounded_scene()).proposals
    rays = random_rays(64, seed=6)
    with torch.no_grad():
        first = proposal_fused.render_samples(proposals, rays)
        bakes = list(proposals.bakes.values())
        assert len(bakes) == 2 and all(0 < int(b.filled.sum()) < b.filled.numel() for b in bakes)
        for bake in bakes:  # complete bakes take the path without block checks
            bake.fill_blocks(torch.nonzero(~bake.filled).squeeze(1))
        assert all(b.complete for b in bakes)
        again = proposal_fused.render_samples(proposals, rays)
    assert torch.equal(first.spacing_starts, again.spacing_starts)


def test_without_the_kernel_rendering_uses_nerfstudios_sampler(monkeypatch):
    monkeypatch.setattr(proposal_fused._KERNEL, "load", lambda: None)
    proposals = unbounded_scene().proposals
    assert proposal_fused.render_samples(proposals, random_rays(4)) is None


def test_sample_counts_beyond_the_kernels_stack_fall_back_to_nerfstudio():
    proposals = unbounded_scene().proposals
    proposals.sampler.sampler.num_proposal_samples_per_ray = (proposal_fused.MAX_PASS_SAMPLES + 1, 16)
    assert proposal_fused.render_samples(proposals, random_rays(4)) is None
