"""Guidance's fixers: the Tier-1 patch prior (trained on the photos; one-step fix on holes; score) and the Tier-2
img2img pipeline from a local folder (a tiny random-weight one here), chosen by name from the registry."""

from __future__ import annotations

import json

import pytest
import torch

from guidance.fixers import FIXERS, FixerRequest, build_fixer, fixer_method
from guidance.fixers.patch_prior import fix_masked
from guidance.patch_prior import PriorConfig, load_patch_prior, save_patch_prior, score_gradient, train_patch_prior
from tests.support.guidance import TINY_PRIOR, build_tiny_pipeline, smooth_photos
from vista_core.errors import VistaError
from vista_core.progress import Cancelled, ProgressEvent

# ---------------------------------------------------------------- Tier 1: the patch prior

@pytest.fixture(scope="module")
def photos():
    return smooth_photos()


@pytest.fixture(scope="module")
def tiny_prior(photos):
    torch.set_num_threads(1)
    return train_patch_prior(photos, TINY_PRIOR)


def test_patch_prior_trains_and_refuses_too_few_photos(photos, tiny_prior):
    assert tiny_prior.info["photos"] == 5 and tiny_prior.info["final_loss"] < 2.0
    with pytest.raises(VistaError, match="at least 4 photos"):
        train_patch_prior(photos[:2], TINY_PRIOR, source="two.png")
    with pytest.raises(VistaError, match="32x32"):
        train_patch_prior(photos[:, :16, :16], TINY_PRIOR)


def test_a_default_patch_prior_has_about_a_million_parameters():
    from guidance.patch_prior import _make_unet

    n = sum(p.numel() for p in _make_unet(PriorConfig()).parameters())
    assert 0.8e6 < n < 1.3e6


def test_fixer_changes_only_masked_pixels_and_is_deterministic(tiny_prior, tmp_path):
    generator = torch.Generator().manual_seed(1)
    rgb = torch.rand(36, 48, 3, generator=generator)
    mask = torch.zeros(36, 48, dtype=torch.bool)
    mask[5:15, 20:40] = True
    fixed = fix_masked(tiny_prior, rgb, mask, timestep=200, seed=3)
    assert torch.equal(fixed[~mask], rgb[~mask])
    assert (fixed[mask] - rgb[mask]).abs().mean() > 1e-3
    assert torch.equal(fixed, fix_masked(tiny_prior, rgb, mask, timestep=200, seed=3))
    assert torch.equal(fix_masked(tiny_prior, rgb, torch.zeros_like(mask)), rgb)
    save_patch_prior(tiny_prior, tmp_path / "prior")
    loaded = load_patch_prior(tmp_path / "prior")
    assert torch.equal(fix_masked(loaded, rgb, mask, timestep=200, seed=3), fixed)
    (tmp_path / "prior" / "unet.safetensors").write_bytes(b"junk")
    with pytest.raises(VistaError, match="unet.safetensors"):
        load_patch_prior(tmp_path / "prior")


def test_score_gradient_reaches_rendered_pixels(tiny_prior):
    patch = torch.rand(2, 3, 32, 32, requires_grad=True)
    gradient = score_gradient(tiny_prior, patch, torch.Generator().manual_seed(0))
    assert gradient.shape == patch.shape and torch.isfinite(gradient).all()
    (gradient * patch).sum().backward()
    assert torch.allclose(patch.grad, gradient)


# ---------------------------------------------------------------- Tier 2: a tiny random img2img pipeline

@pytest.fixture(scope="module")
def tiny_pipeline_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return build_tiny_pipeline(tmp_path_factory.mktemp("pipe"))


def test_tier2_loads_a_local_pipeline_and_fixes_only_masked_pixels(tiny_pipeline_dir):
    from guidance.fixers.pipeline import pipeline_fixer
    from guidance.pipeline import load_img2img_pipeline

    pipe = load_img2img_pipeline(tiny_pipeline_dir, device="cpu")  # text-to-image folder, img2img pipeline
    assert type(pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    fix = pipeline_fixer(pipe, strength=0.5, num_inference_steps=4)
    rgb = torch.rand(36, 48, 3, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(36, 48, dtype=torch.bool)
    mask[10:20, 10:30] = True
    fixed = fix(rgb, mask, 7)
    assert torch.equal(fixed[~mask], rgb[~mask])
    assert (fixed[mask] - rgb[mask]).abs().mean() > 1e-3
    assert torch.equal(fix(rgb, mask, 7), fixed)  # fixed seed per keyframe


def test_tier2_bad_model_folders_are_clear_errors(tiny_pipeline_dir, tmp_path):
    import shutil

    from guidance.pipeline import check_model_folder, load_img2img_pipeline, require_cuda

    with pytest.raises(VistaError, match="model folder not found"):
        check_model_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VistaError, match="no model_index.json"):
        check_model_folder(tmp_path / "empty")
    incomplete = tmp_path / "incomplete"
    shutil.copytree(tiny_pipeline_dir, incomplete)
    shutil.rmtree(incomplete / "unet")
    with pytest.raises(VistaError, match="missing component folder.*unet"):
        load_img2img_pipeline(incomplete, device="cpu")
    wrong = tmp_path / "wrong"
    shutil.copytree(tiny_pipeline_dir, wrong)
    index = json.loads((wrong / "model_index.json").read_text())
    index["_class_name"] = "DDPMPipeline"  # an unconditional pipeline: no image-to-image variant
    (wrong / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(VistaError, match="no image-to-image variant"):
        load_img2img_pipeline(wrong, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(VistaError, match="needs a CUDA GPU"):
            require_cuda()


# ---------------------------------------------------------------- the registry

def test_fixers_are_chosen_by_name_with_their_default_masks(photos, tiny_prior):
    assert list(FIXERS) == ["none", "inpaint", "prior", "pipeline"]
    assert fixer_method("prior").default_mask.cues == ("holes",)  # Tier 1 repaints holes only
    assert fixer_method("pipeline").default_mask.cues == ("holes", "uncovered", "unstable")
    assert not fixer_method("none").repaints and build_fixer("none", FixerRequest()).fix is None
    with pytest.raises(VistaError, match="unknown fixer 'difix'"):
        fixer_method("difix")
    # a given prior is used as it is; the built fixer is the one-step fix at the requested noise level
    built = build_fixer("prior", FixerRequest(prior=tiny_prior, timestep=200))
    rgb = torch.rand(36, 48, 3, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(36, 48, dtype=torch.bool)
    mask[4:12, 8:20] = True
    assert built.prior is tiny_prior
    assert torch.equal(built.fix(rgb, mask, 5), fix_masked(tiny_prior, rgb, mask, timestep=200, seed=5))
    with pytest.raises(VistaError, match="model folder"):
        build_fixer("pipeline", FixerRequest())


def test_prior_training_reports_progress_and_stops_when_cancelled(photos):
    events: list[ProgressEvent] = []

    def cancel_at_two(event: ProgressEvent) -> None:
        events.append(event)
        if event.done == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        build_fixer("prior", FixerRequest(photos=photos, prior_config=PriorConfig(steps=4, batch_size=2,
                                                                                  block_out_channels=(16, 32)),
                                          progress=cancel_at_two))
    assert [(e.stage, e.done, e.total) for e in events] == [("patch prior", 1, 4), ("patch prior", 2, 4)]
    assert all(e.metrics["loss"] > 0 for e in events)
