"""The "proposal" sampler for unbounded scenes (render/proposal.py, scenes/proposal_field.py): a fixed number of
NeRF samples per ray, the interlevel loss training the proposal fields only, save/load, and deterministic,
resumable training."""

from __future__ import annotations

import dataclasses
from unittest.mock import patch

import pytest
import torch

from render import proposal
from render.cameras import Rays
from render.render import render_rays
from scenes.config import preset_config
from scenes.scene import load_scene, new_scene, save_scene
from scenes.train import train_scene


def proposal_config(steps: int = 4, **overrides):
    config = preset_config("test", steps=steps, seed=0, checkpoint_every=10**6)
    sampling = dataclasses.replace(config.sampling, unbounded_sampler="proposal", proposal_samples=(32, 16),
                                   nerf_samples=12)
    return dataclasses.replace(config, sampling=sampling, rays_per_step=64, **overrides)


def unbounded_scene():
    from render.cameras import Cameras

    capture = Cameras.from_fov(torch.eye(4)[:3][None], 50.0, 16, 12)
    return new_scene(proposal_config(), "torch", "unbounded", torch.eye(4), (0.0, 0.0, 0.0), capture, ["a"], "test")


def random_rays(n: int, seed: int = 0) -> Rays:
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(n, 3, generator=g)
    return Rays(torch.rand(n, 3, generator=g) - 0.5, directions / directions.norm(dim=-1, keepdim=True))


def test_every_ray_takes_exactly_the_configured_samples():
    scene = unbounded_scene()
    assert scene.proposals is not None and len(scene.proposals.fields) == 2
    with torch.no_grad():
        out = render_rays(scene.renderable(), random_rays(50))
    assert out.n_samples == 50 * 12 and out.regularizer is None
    assert out.rgb.shape == (50, 3) and bool(((out.rgb >= 0) & (out.rgb <= 1)).all())
    assert bool(((out.opacity >= 0) & (out.opacity <= 1 + 1e-5)).all())


def test_the_interlevel_loss_trains_the_proposals_and_not_the_nerf():
    scene = unbounded_scene()
    scene.proposals.far_penalty = 0.0  # the far-weight prior, which does train the NeRF, is tested on its own
    out = render_rays(scene.renderable(), random_rays(64), jitter=torch.rand(64, generator=torch.Generator()))
    assert out.regularizer is not None and out.regularizer.ndim == 0 and float(out.regularizer.detach()) >= 0
    out.regularizer.backward()
    proposal_grads = [p.grad for p in scene.proposals.parameters()]
    assert any(g is not None and float(g.abs().sum()) > 0 for g in proposal_grads)
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in scene.field.parameters())


def test_a_saved_scene_renders_the_same_after_loading(tmp_path):
    scene = unbounded_scene()
    with torch.no_grad():
        for p in scene.proposals.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    save_scene(scene, tmp_path / "s")
    loaded = load_scene(tmp_path / "s")
    assert loaded.proposals is not None
    rays = random_rays(40, seed=1)
    with torch.no_grad():
        a, b = render_rays(scene.renderable(), rays), render_rays(loaded.renderable(), rays)
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth)


def test_rendering_colours_only_visible_samples_changes_pixels_by_less_than_the_threshold():
    scene = unbounded_scene()
    with torch.no_grad():  # a field with real density, so many samples fall under the threshold and some do not
        for p in scene.field.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(5)))
    rays = random_rays(64, seed=2)
    with torch.no_grad():
        fast = render_rays(scene.renderable(), rays)
        with patch.object(proposal, "VISIBLE_WEIGHT", 0.0):
            full = render_rays(scene.renderable(), rays)
    assert not torch.equal(fast.rgb, full.rgb)  # the skip happened
    assert float((fast.rgb - full.rgb).abs().max()) <= proposal.VISIBLE_WEIGHT * 24  # at most every sample's share
    assert torch.equal(fast.depth, full.depth) and torch.equal(fast.opacity, full.opacity)


@pytest.mark.slow
def test_training_is_deterministic_resumable_and_learns(tmp_path):
    """The procedural outdoor scene (tests/support/procedural.py); 60 steps reach well above a grey guess."""
    from scenes.evaluate import evaluate_scene
    from tests.support.procedural import synthetic_capture

    torch.set_num_threads(1)
    capture = synthetic_capture(n_train=12, width=48, height=36, n_path=8)
    config = proposal_config(steps=60, checkpoint_every=30)
    config = dataclasses.replace(config, rays_per_step=512)
    straight = train_scene(capture.data, tmp_path / "a", config, show_progress=False)
    train_scene(capture.data, tmp_path / "b", config, show_progress=False, stop_after_step=30)
    resumed = train_scene(capture.data, tmp_path / "b", config, show_progress=False, resume=True)
    for name, tensor in straight.renderable().state().items():
        assert torch.equal(tensor, resumed.renderable().state()[name]), f"{name} differs after resume"
    assert straight.metrics["samples_per_ray"] == 12
    assert evaluate_scene(straight, capture.data).mean_psnr > 17.0


def test_proposal_weight_annealing_follows_nerfacto_and_renders_never_anneal():
    from render.proposal import anneal_exponent

    assert anneal_exponent(0, 0) == 1.0 and anneal_exponent(50, 0) == 1.0  # off
    assert anneal_exponent(0, 1000) == 0.0 and anneal_exponent(1000, 1000) == 1.0 and anneal_exponent(5000, 1000) == 1.0
    assert anneal_exponent(100, 1000) == pytest.approx(10 * 0.1 / (9 * 0.1 + 1))  # nerfacto's bias(0.1, 10)
    scene = unbounded_scene()
    representation = scene.renderable()
    annealed = dataclasses.replace(representation, sampling=dataclasses.replace(representation.sampling,
                                                                                proposal_anneal_steps=100))
    annealed.refresh(0, torch.Generator().manual_seed(0))
    assert scene.proposals.anneal == 0.0
    rays = random_rays(32)
    jitter = torch.rand(32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        flat = render_rays(annealed, rays, jitter=jitter)
        render = render_rays(annealed, rays)
        scene.proposals.anneal = 1.0
        sharp = render_rays(annealed, rays, jitter=jitter)
        assert torch.equal(render_rays(annealed, rays).rgb, render.rgb)  # a render ignores the training exponent
    assert not torch.equal(flat.rgb, sharp.rgb)  # training resamples from the annealed weights


def test_the_nerf_samples_carry_pixel_footprints_when_anti_aliasing_is_on():
    """--anti-alias with the proposal sampler: the final samples reach the field with their footprints (the same
    render as without them when the switch is off or the rays carry no pixel radii)."""
    from render.cameras import Cameras, image_rays
    from scenes.config import with_footprint_weighting

    cameras = Cameras.from_fov(torch.tensor([[[1.0, 0, 0, 0.1], [0, 1, 0, -0.2], [0, 0, 1, 0.3]]]), 50.0, 12, 10)
    with_radii = image_rays(cameras, 0)
    without = Rays(with_radii.origins, with_radii.directions)

    def render(on: bool, rays: Rays) -> torch.Tensor:
        torch.manual_seed(0)
        config = with_footprint_weighting(proposal_config(), on)
        scene = new_scene(config, "torch", "unbounded", torch.eye(4), (0.0, 0.0, 0.0), cameras, ["a"], "test")
        with torch.no_grad():  # a table far from its 1e-4 start, so the fine levels matter in the output
            scene.field.encoding.table.uniform_(-1.0, 1.0, generator=torch.Generator().manual_seed(1))
            out = render_rays(scene.renderable(), rays)
        return torch.cat([out.rgb, out.depth[:, None]], dim=-1)

    today = render(False, with_radii)
    assert torch.equal(render(True, without), today)
    assert not torch.equal(render(True, with_radii), today)


def test_the_far_weight_counts_only_samples_beyond_the_unit_cube():
    positions = torch.tensor([[[0.0, 0.0, 0.5], [0.0, 0.0, 1.5], [0.0, 3.0, 0.0]],
                              [[0.2, 0.2, 0.2], [0.9, -0.9, 0.99], [-1.2, 0.0, 0.0]]])
    weights = torch.tensor([[0.5, 0.25, 0.125], [0.5, 0.3, 0.1]])[..., None]
    # ray 0: 0.25 + 0.125 beyond the cube; ray 1: 0.1
    assert float(proposal.far_weight(positions.reshape(-1, 3), weights)) == pytest.approx((0.375 + 0.1) / 2)


def test_the_far_weight_penalty_adds_its_term_and_trains_the_nerf_density():
    from render.config import ConfigValueError

    with pytest.raises(ConfigValueError, match="far_weight_penalty"):
        dataclasses.replace(proposal_config().sampling, far_weight_penalty=-1.0)
    scene = unbounded_scene()
    rays, jitter = random_rays(64), torch.rand(64, generator=torch.Generator().manual_seed(1))
    scene.proposals.far_penalty = 0.0
    plain = render_rays(scene.renderable(), rays, jitter=jitter).regularizer
    scene.proposals.far_penalty = 0.5
    seen = []
    original = proposal.far_weight
    with patch.object(proposal, "far_weight", side_effect=lambda *a: seen.append(original(*a)) or seen[-1]):
        penalised = render_rays(scene.renderable(), rays, jitter=jitter).regularizer
    assert len(seen) == 1 and float(seen[0]) > 0  # random rays from inside the cube leave it
    # the same samples (the seed comes from the jitter), plus exactly the weighted term
    assert float(penalised.detach()) == pytest.approx(float(plain.detach()) + 0.5 * float(seen[0].detach()), rel=1e-5)
    (penalised - plain).backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in scene.field.parameters())
    with torch.no_grad():  # renders carry no training terms
        assert render_rays(scene.renderable(), rays).regularizer is None


def test_proposal_training_keeps_its_full_batch_under_the_samples_cap(tmp_path, monkeypatch):
    """The samples-per-step cap shrinks a step's batch while an occupancy grid still makes rays take many samples;
    proposal rays take `nerf_samples` from the first step, so their batch stays `rays_per_step`."""
    import scenes.train as train_module
    from tests.support.procedural import synthetic_capture

    capture = synthetic_capture(n_train=4, width=16, height=12, n_path=8)
    counts, real = [], train_module.photo_loss

    def counting(representation, pixels, n_rays, *args, **kwargs):
        counts.append(n_rays)
        return real(representation, pixels, n_rays, *args, **kwargs)

    monkeypatch.setattr(train_module, "photo_loss", counting)
    config = dataclasses.replace(proposal_config(steps=3), rays_per_step=1024, samples_per_step=1024 * 4)
    train_scene(capture.data, tmp_path / "scene", config, show_progress=False)
    assert counts == [1024] * 3  # 12 samples per ray: the cap would have allowed 341


def test_the_grid_of_a_proposal_scene_is_left_to_the_saves_and_settled_repeatably(tmp_path, monkeypatch):
    """Proposal sampling never reads the occupancy grid, so training steps do not update it (`Renderable.refresh`);
    each save (a checkpoint, the end) rebuilds it from the field (`settle`), the same way for the same step."""
    from render.occupancy import OccupancyGrid
    from tests.support.procedural import synthetic_capture

    capture = synthetic_capture(n_train=4, width=16, height=12, n_path=8)
    updates, real = [], OccupancyGrid.update

    def counting(grid, *args, **kwargs):
        updates.append((kwargs["all_cells"], kwargs.get("decay")))
        return real(grid, *args, **kwargs)

    monkeypatch.setattr(OccupancyGrid, "update", counting)
    scene = train_scene(capture.data, tmp_path / "scene", proposal_config(steps=40, checkpoint_every=20),
                        show_progress=False)
    assert updates == [(True, 0.0), (True, 1.0), (True, 1.0), (True, 1.0)] * 2  # steps 20 and 40, 4 points a cell
    settled = scene.grid.density.clone()
    assert 0.0 < scene.metrics["occupied_fraction"] < 1.0
    scene.renderable().settle(scene.step)
    assert torch.equal(scene.grid.density, settled)
    assert torch.equal(load_scene(tmp_path / "scene").grid.density, settled)


def test_proposal_updates_follow_nerfactos_schedule_as_a_function_of_the_step():
    from render.proposal import updates_proposals

    assert all(updates_proposals(step, 1, 0) for step in range(200))
    assert all(updates_proposals(step, 3, 0) for step in range(10))  # nerfstudio's sampler: the first 10 always
    assert [updates_proposals(step, 3, 0) for step in range(10, 16)] == [False, False, True, False, False, True]
    assert updates_proposals(24, 5, 100)  # warm-up: the interval is still 1
    assert [updates_proposals(step, 5, 100) for step in range(50, 54)] == [False, True, False, False]  # 3
    assert [updates_proposals(step, 5, 100) for step in range(200, 206)] == [True, False, False, False, False, True]


def test_a_step_that_skips_the_proposal_update_trains_only_the_nerf():
    """Off the update schedule the proposal fields run without gradients (their backward pass is what is spared);
    the NeRF still gets its gradients, and an update step gives both theirs."""
    scene = unbounded_scene()
    representation = scene.renderable()
    every_other = dataclasses.replace(representation, sampling=dataclasses.replace(representation.sampling,
                                                                                   proposal_update_every=2))
    rays, jitter = random_rays(64), torch.rand(64, generator=torch.Generator().manual_seed(1))
    for step, updates in ((11, False), (12, True)):
        every_other.refresh(step, torch.Generator().manual_seed(0))
        out = render_rays(every_other, rays, jitter=jitter)
        (out.rgb.sum() + out.regularizer).backward()
        proposal_grads = [p.grad for p in scene.proposals.parameters()]
        if updates:
            assert all(g is not None for g in proposal_grads) and any(float(g.abs().sum()) > 0 for g in proposal_grads)
        else:
            assert all(g is None for g in proposal_grads)
        assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in scene.field.parameters())
        for p in [*scene.proposals.parameters(), *scene.field.parameters()]:
            p.grad = None


def test_a_ray_share_limits_the_proposal_gradients_to_the_first_rays():
    """`proposal_ray_share` 0.25 on 64 rays: each pass evaluates the first 16 rays' samples with gradients and the
    other 48's without; a render evaluates all of them without."""
    scene = unbounded_scene()
    representation = scene.renderable()
    shared = dataclasses.replace(representation, sampling=dataclasses.replace(representation.sampling,
                                                                              proposal_ray_share=0.25))
    calls = []
    for field in scene.proposals.fields:
        real = field.density

        def recording(u, real=real):
            calls.append((len(u), torch.is_grad_enabled()))
            return real(u)

        field.density = recording
    shared.refresh(12, torch.Generator().manual_seed(0))
    render_rays(shared, random_rays(64), jitter=torch.rand(64, generator=torch.Generator().manual_seed(1)))
    assert calls == [(16 * 32, True), (48 * 32, False), (16 * 16, True), (48 * 16, False)]
    calls.clear()
    scene.proposals.bake_for_render = False  # the fields themselves, not their bakes
    with torch.no_grad():
        render_rays(shared, random_rays(64))
    assert calls == [(64 * 32, False), (64 * 16, False)]
