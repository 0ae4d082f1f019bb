"""The refine loop on the procedural scene: masks, fixes, the original kept, cancelling, the polish, the CLI."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from guidance.fixers.patch_prior import fix_masked
from guidance.masks import MaskConfig
from guidance.patch_prior import train_patch_prior
from tests.support.guidance import TINY_PRIOR, digest, smooth_photos
from vista_core.errors import VistaError
from vista_core.progress import Cancelled, ProgressEvent


@pytest.fixture(scope="module")
def tiny_prior():
    torch.set_num_threads(1)
    return train_patch_prior(smooth_photos(), TINY_PRIOR)


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """A base scene trained briefly on the procedural arc (shared by the loop and CLI tests)."""
    from scenes.config import preset_config
    from scenes.train import train_scene
    from tests.support.procedural import synthetic_capture

    torch.set_num_threads(1)
    capture = synthetic_capture(n_train=8, width=40, height=32, n_path=4)
    base = preset_config("test", steps=120, seed=0)
    config = dataclasses.replace(base, rays_per_step=512, checkpoint_every=10**6,
                                 sampling=dataclasses.replace(base.sampling, max_samples_per_ray=64,
                                                              grid_resolution=32, warmup_steps=32))
    folder = tmp_path_factory.mktemp("guidance") / "base"
    scene = train_scene(capture.data, folder, config, show_progress=False)
    return capture, scene, folder


def test_refine_loop_smoke_masks_fixes_and_never_touches_the_original(small_world, tiny_prior, tmp_path):
    from guidance.refine import RefineConfig, refine_scene
    from guidance.views import render_view
    from scenes.evaluate import psnr
    from scenes.scene import load_scene

    capture, scene, folder = small_world
    before = digest(folder)
    weights_before = {k: v.clone() for k, v in scene.field.state_dict().items()}
    # all three cues, so that the fixer has pixels to fix after only 12 steps (the Tier-1 default fixes holes)
    config = RefineConfig(steps=12, rounds=2, keyframes=2, score_weight=0.02, score_every=6, pseudo_rays=256,
                          visibility_points=1024, mask=MaskConfig())
    fixer_calls = []

    def fixer(rgb, mask, seed):
        fixer_calls.append(float(mask.float().mean()))
        return fix_masked(tiny_prior, rgb, mask, seed=seed)

    refined, report = refine_scene(scene, capture.data, capture.path, config, tmp_path / "refined",
                                   fixer=fixer, prior=tiny_prior, source_dir=folder, show_progress=False)
    assert digest(folder) == before
    assert all(torch.equal(v, weights_before[k]) for k, v in scene.field.state_dict().items())
    assert len(fixer_calls) == 4 and len(report.rounds) == 2
    # the pulled-back views show ground no arc photo saw: the mask must find it
    assert max(fixer_calls) > 0.01
    assert refined.step == scene.step + 12
    reloaded = load_scene(tmp_path / "refined")
    assert json.loads((tmp_path / "refined" / "refine.json").read_text())["config"]["steps"] == 12
    last = len(capture.path) - 1
    image = render_view(reloaded.renderable(), capture.path, last).rgb
    assert torch.isfinite(image).all()
    # 12 steps cannot make it much better, but they must not wreck it
    base_psnr = psnr(render_view(scene.renderable(), capture.path, last).rgb, capture.path_truth[last].rgb)
    assert psnr(image, capture.path_truth[last].rgb) > base_psnr - 1.0
    with pytest.raises(VistaError, match="already holds a scene"):
        refine_scene(scene, capture.data, capture.path, config, tmp_path / "refined", fixer=fixer, prior=tiny_prior)


def test_a_cancelled_refine_writes_nothing(small_world, tmp_path):
    """The app's Cancel raises `Cancelled` from the progress callback: the new folder is never written, the original
    is kept."""
    from guidance.refine import RefineConfig, refine_scene

    capture, scene, folder = small_world
    before = digest(folder)
    events: list[ProgressEvent] = []

    def progress(event: ProgressEvent) -> None:
        events.append(event)
        if event.done == 3:
            raise Cancelled

    config = RefineConfig(steps=6, rounds=2, keyframes=1, fixer="none", visibility_points=256)
    with pytest.raises(Cancelled):
        refine_scene(scene, capture.data, capture.path, config, tmp_path / "refined", source_dir=folder,
                     show_progress=False, progress=progress)
    assert [(e.stage, e.done, e.total) for e in events] == [("guided training", i, 6) for i in (1, 2, 3)]
    assert all(e.metrics["loss"] > 0 for e in events)
    assert not (tmp_path / "refined").exists()
    assert digest(folder) == before


def test_vista_refine_cli_and_its_bad_input(small_world, tmp_path, capsys):
    import vista

    capture, scene, folder = small_world
    before = digest(folder)
    # the refined scene may not replace the original
    assert vista.main(["refine", str(folder), "--out", str(folder), "--steps", "3"]) == 2
    assert "new folder" in capsys.readouterr().err
    # GPU tier without a model folder / without CUDA
    assert vista.main(["refine", str(folder), "--out", str(tmp_path / "a"), "--tier", "pipeline"]) == 2
    assert "--model-dir" in capsys.readouterr().err
    assert vista.main(["refine", str(folder), "--out", str(tmp_path / "b"), "--tier", "pipeline",
                       "--model-dir", str(tmp_path / "missing")]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # a path file that is not there
    assert vista.main(["refine", str(folder), "--out", str(tmp_path / "c"), "--path", str(tmp_path / "p.json")]) == 2
    assert "path file not found" in capsys.readouterr().err
    assert digest(folder) == before


@pytest.mark.slow
def test_vista_refine_runs_end_to_end_on_a_dataset(tmp_path, capsys):
    """lego-100, a scene trained for a few steps, the patch-prior tier with a few prior steps: a new scene folder."""
    import vista
    from tests.conftest import shared_dataset

    data = shared_dataset("lego-100")
    scene_dir = tmp_path / "scene"
    assert vista.main(["train", str(data), "--out", str(scene_dir), "--preset", "test", "--steps", "20",
                       "--no-eval"]) == 0
    before = digest(scene_dir)
    out = tmp_path / "refined"
    code = vista.main(["refine", str(scene_dir), "--out", str(out), "--tier", "prior", "--steps", "4",
                       "--prior-steps", "2", "--rounds", "2", "--keyframes", "1"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "no --path given: guiding along the capture trajectory" in text
    assert (out / "scene.json").is_file() and (out / "patch-prior" / "prior.json").is_file()
    assert digest(scene_dir) == before


def test_the_polish_steps_train_on_the_photos_and_the_visibility_loss_alone(small_world, monkeypatch):
    import guidance.terms as terms
    from guidance.refine import RefineConfig, refine_scene

    capture, scene, _ = small_world
    calls = {"smoothness": 0, "visibility": 0}
    smoothness, visibility = terms.smoothness_patch_loss, terms.visibility_loss

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(terms, "smoothness_patch_loss", counted("smoothness", smoothness))
    monkeypatch.setattr(terms, "visibility_loss", counted("visibility", visibility))
    config = RefineConfig(steps=8, rounds=2, keyframes=1, fixer="none", visibility_points=256, polish_fraction=0.25)
    refine_scene(scene, capture.data, capture.path, config, None, show_progress=False)
    assert calls == {"smoothness": 6, "visibility": 8}
    with pytest.raises(ValueError, match="polish_fraction"):
        RefineConfig(polish_fraction=1.0)
