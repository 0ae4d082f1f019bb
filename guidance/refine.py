"""Guidance: `refine_scene(Scene, PosedImages, target cameras, RefineConfig, out_dir) -> Scene`.

The Difix3D+ loop (Wu et al. 2025), aimed at the user's own camera path, plus the geometric
priors of Nerfbusters and mip-NeRF 360:

1. pick keyframes along the target path and pair each with its nearest capture camera;
2. for each round r = 1..R, move the keyframes a fraction r/R of the way from the capture to the
   path, render them, and mark the pixels the field is unsure about (`guidance.masks`);
3. let the fixer (`guidance.fixers`: Tier 1, the patch prior's one-step denoiser; Tier 2, an img2img
   pipeline) replace only the masked pixels, and keep the result as pseudo-ground-truth (`guidance.pseudo`);
4. train with the spine's own step (`scenes.step`: the photo loss, unchanged) plus the terms of
   `guidance.terms`: the down-weighted pseudo-ground-truth, the visibility loss on space that neither a
   photo nor a fixed pixel sees, the depth-smoothness prior, the seen-direction prior (the path's colour from
   the photos' nearest directions) and optionally the patch prior's score;
5. write a NEW scene folder; the scene it started from is never touched.

Everything is deterministic for a given seed.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from guidance.config import RefineConfig
from guidance.fixers import Fixer, FixerMethod, fixer_method
from guidance.masks import MaskConfig
from guidance.patch_prior import PatchPrior
from guidance.paths import stepping_cameras
from guidance.pseudo import PseudoViews, RoundReport, fix_views
from guidance.terms import REFINE_TERMS, RefineStep
from render.cameras import Cameras
from render.configio import config_to_dict
from scenes.data import PosedImages
from scenes.scene import SCENE_FILE, Scene, save_scene
from scenes.step import TrainingPixels, apply_gradients, make_optimizer, photo_loss, set_learning_rate
from vista_core.errors import VistaError
from vista_core.files import atomic_write_json
from vista_core.memory import keep_freed_memory
from vista_core.progress import ProgressCallback, report

__all__ = ["REPORT_FILE", "Fixer", "RefineConfig", "RefineReport", "RoundReport", "clone_scene", "default_mask",
           "pick_keyframes", "prepare_refine_output", "refine_scene"]

REPORT_FILE = "refine.json"


@dataclass
class RefineReport:
    rounds: list[RoundReport] = field(default_factory=list)
    train_seconds: float = 0.0
    total_seconds: float = 0.0


def default_mask(fixer: str) -> MaskConfig:
    """The pixels fixer `fixer` repaints unless the config names a mask."""
    return fixer_method(fixer).default_mask


def clone_scene(scene: Scene) -> Scene:
    """An independent copy (refinement never changes the scene it was given); it has no folder until it is saved,
    so a recipe can never name the original's folder for the refined weights."""
    clone = copy.deepcopy(scene)
    clone.folder = None
    return clone


def pick_keyframes(targets: Cameras, count: int) -> Cameras:
    """`count` cameras spread evenly along the target path (all of them if it is shorter)."""
    if len(targets) <= count:
        return targets
    index = torch.linspace(0, len(targets) - 1, count).round().long()
    return targets[index]


def prepare_refine_output(out_dir: Path, source_dir: Path | None) -> None:
    out_dir = Path(out_dir)
    if source_dir is not None and out_dir.resolve() == Path(source_dir).resolve():
        raise VistaError(f"{out_dir}: is the scene being refined; write the refined scene to a new folder "
                         "(the original is kept for before/after comparison)")
    if out_dir.exists() and not out_dir.is_dir():
        raise VistaError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        what = "a scene" if (out_dir / SCENE_FILE).is_file() else "files"
        raise VistaError(f"{out_dir}: already holds {what}; choose a new folder for the refined scene")


def refine_scene(scene: Scene, data: PosedImages, targets: Cameras, config: RefineConfig, out_dir: Path | None,
                 fixer: Fixer | None = None, prior: PatchPrior | None = None, source_dir: Path | None = None,
                 show_progress: bool = True, progress: ProgressCallback | None = None) -> tuple[Scene, RefineReport]:
    """Refine a copy of `scene` toward the `targets` cameras (world coordinates) and save it to `out_dir`.

    `fixer` is the built fixer of `config.fixer` (`guidance.fixers.build_fixer`); `prior` the patch prior, needed by
    the score regulariser. `progress` gets a "guided training" event after every step; raising
    `vista_core.progress.Cancelled` from it stops the run, and as the scene is written only at the end, `out_dir`
    is left as it was."""
    from tqdm.auto import tqdm

    keep_freed_memory()
    # 1. check everything cheap before any work
    method = fixer_method(config.fixer)
    _check_inputs(scene, data, config, method, fixer, prior)
    if out_dir is not None:
        prepare_refine_output(out_dir, source_dir)
    started = time.perf_counter()
    # 2. a copy of the scene, its optimizer, and the round's inputs
    scene = clone_scene(scene)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    representation = scene.renderable()
    optimizer = make_optimizer(representation, scene.config)
    pixels = TrainingPixels(data)
    keyframes = pick_keyframes(targets, config.keyframes)
    mask_config = config.mask or method.default_mask
    pseudo = PseudoViews()
    result = RefineReport()
    bar = tqdm(total=config.steps, disable=not show_progress, unit="step", desc="refine", dynamic_ncols=True)
    done = 0
    for round_index, round_steps in enumerate(_steps_per_round(config)):
        # 3. move the keyframes toward the path; render, mask and fix them
        fraction = (round_index + 1) / config.rounds
        round_cameras = stepping_cameras(scene.capture, keyframes, fraction)
        if method.repaints:
            representation.train(False)
            fixed, masks, round_report = fix_views(scene, round_cameras, fixer, mask_config, config.seed, round_index)
            round_report.fraction = fraction
            result.rounds.append(round_report)
            pseudo.add(round_cameras, fixed, masks)
        # 4. train on the photos plus the guidance terms
        also_seen = pseudo.supervised_rays(config.pseudo_masked_only) if len(pseudo) else None
        step = RefineStep(representation, scene.capture, keyframes, round_cameras, pseudo, also_seen, prior,
                          generator, path=targets)
        representation.train()
        round_start = time.perf_counter()
        for _ in range(round_steps):
            step.done, step.polishing = done, done >= config.steps * (1 - config.polish_fraction)
            loss = _refine_step(scene, step, pixels, optimizer, config)
            done += 1
            bar.update(1)
            report(progress, "guided training", done, config.steps, metrics={"loss": loss})
        result.train_seconds += time.perf_counter() - round_start
    bar.close()
    representation.settle(scene.step)
    representation.train(False)
    # 5. a new scene folder, with what was done
    result.total_seconds = time.perf_counter() - started
    scene.metrics = dict(scene.metrics)
    scene.metrics["guidance"] = {"fixer": config.fixer, "steps": config.steps, "seconds": result.total_seconds}
    if out_dir is not None:
        _write_refined(scene, out_dir, source_dir, dataclasses.replace(config, mask=mask_config), result)
    return scene, result


def _check_inputs(scene: Scene, data: PosedImages, config: RefineConfig, method: FixerMethod, fixer: Fixer | None,
                  prior: PatchPrior | None) -> None:
    if method.repaints and fixer is None:
        raise VistaError(f"guidance tier {config.fixer!r} needs a fixer (the patch prior or a pipeline)")
    if config.score_weight > 0 and prior is None:
        raise VistaError("the score regulariser needs the patch prior")
    if len(data.train_indices) != len(scene.capture):
        raise VistaError(f"{data.source}: has {len(data.train_indices)} training photos but the scene was trained "
                         f"on {len(scene.capture)}; refine with the data the scene was trained on")


def _steps_per_round(config: RefineConfig) -> list[int]:
    return [config.steps // config.rounds + (1 if r < config.steps % config.rounds else 0)
            for r in range(config.rounds)]


def _refine_step(scene: Scene, step: RefineStep, pixels: TrainingPixels, optimizer: torch.optim.Optimizer,
                 config: RefineConfig) -> float:
    """One step of `scenes.step`'s training plus the guidance terms; the loss."""
    step.representation.refresh(scene.step, step.generator, warm_up=False)
    set_learning_rate(optimizer, config.learning_rate * (0.1 ** (step.done / config.steps)))
    loss = photo_loss(step.representation, pixels, scene.config.rays_per_step, step.generator,
                      pixel_jitter=scene.config.pixel_jitter,
                      distortion_weight=config.distortion_weight if config.geometric else 0.0).loss
    for term in REFINE_TERMS:
        extra = term(config, step)
        if extra is not None:
            loss = loss + extra
    apply_gradients(optimizer, loss)
    scene.step += 1
    return loss.item()


def _write_refined(scene: Scene, out_dir: Path, source_dir: Path | None, config: RefineConfig,
                   result: RefineReport) -> None:
    save_scene(scene, out_dir)
    atomic_write_json(Path(out_dir) / REPORT_FILE, {
        "source_scene": None if source_dir is None else str(source_dir),
        "config": config_to_dict(config),
        "rounds": [r.__dict__ for r in result.rounds],
        "train_seconds": result.train_seconds, "total_seconds": result.total_seconds,
    })
