"""Train a scene from posed images: `train_scene(PosedImages, out_dir, TrainConfig) -> Scene`.

Plain loop, no Trainer hierarchy: each step is `scenes.step`'s (the representation's upkeep, random
photo pixels, render, MSE, Adam), the same step refinement takes. Checkpoints (the scene files plus
optimizer and RNG state, all safetensors/JSON) go to `out_dir/checkpoints/step-N/`; `LATEST` names
the last complete one, the one before it is kept, and the scene files at the top of `out_dir` always
hold the newest complete checkpoint. Given a seed and a step count, a run is deterministic, and a run
resumed from any checkpoint ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from render.occupancy import cells_seen_by
from render.representation import SceneRepresentation
from scenes.backends import resolve_backend
from scenes.confidence import photo_confidence
from scenes.config import TrainConfig
from scenes.corrections import PhotoCorrections
from scenes.data import PosedImages
from scenes.scene import SCENE_FILE, WEIGHTS_FILE, Scene, load_scene, new_scene, save_scene
from scenes.step import PhotoTerm, TrainingPixels, apply_gradients, make_optimizer, photo_loss, set_learning_rate
from vista_core.errors import VistaError
from vista_core.files import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from vista_core.memory import keep_freed_memory
from vista_core.progress import Cancelled, ProgressCallback, report

CHECKPOINTS = "checkpoints"
LATEST = "LATEST"
TRAIN_STATE = "train_state.safetensors"


def psnr_from_mse(mse: float) -> float:
    return -10.0 * math.log10(max(mse, 1e-10))


_LR_HOLD = 0.5
"""Fraction of the run at the full learning rate before the decay starts."""
_LR_FINAL = 0.1
"""Final learning rate as a fraction of the initial one."""
_MIN_RAYS_PER_STEP = 256
"""Fewest rays a step traces when `samples_per_step` caps it."""


def rays_for_step(config: TrainConfig, last_samples_per_ray: float | None) -> int:
    """Rays to trace this step: `rays_per_step`, fewer while the last step's rays took many samples.

    Early steps march through a box the occupancy grid still calls full (~100 samples per ray on lego): capped,
    they are several times cheaper, so more of them (and more grid updates) fit in the first minute."""
    if config.samples_per_step == 0 or not last_samples_per_ray:
        return config.rays_per_step
    wanted = int(config.samples_per_step / last_samples_per_ray)
    return max(min(config.rays_per_step, _MIN_RAYS_PER_STEP), min(config.rays_per_step, wanted))


def learning_rate_at(config: TrainConfig, progress: float) -> float:
    """Hold, then decay exponentially to 10% by the end of the run (steps or time budget, whichever ends first).

    Decaying from the first step starved short runs: on lego-200 a 3-minute run reached 24.4 dB, while the
    3-minute snapshot of a 10-minute run, still near the full rate, had 30.0 dB (measured)."""
    decay = (min(max(progress, 0.0), 1.0) - _LR_HOLD) / (1.0 - _LR_HOLD)
    return config.learning_rate * _LR_FINAL ** max(decay, 0.0)


def _save_checkpoint(scene: Scene, optimizer: torch.optim.Optimizer, generator: torch.Generator,
                     out_dir: Path, last_samples_per_ray: float | None = None) -> None:
    folder = out_dir / CHECKPOINTS / f"step-{scene.step:07d}"
    save_scene(scene, folder)
    state: dict[str, torch.Tensor] = {"generator": generator.get_state()}
    if last_samples_per_ray is not None:  # decides the next step's ray count: a resumed run must see it too
        state["last_samples_per_ray"] = torch.tensor([last_samples_per_ray], dtype=torch.float64)
    for gi, group in enumerate(optimizer.param_groups):
        for pi, param in enumerate(group["params"]):
            for key, value in optimizer.state.get(param, {}).items():
                state[f"optim.{gi}.{pi}.{key}"] = value.detach().reshape(-1).clone() if key == "step" else value
    atomic_write_bytes(folder / TRAIN_STATE, save(state, metadata={"step": str(scene.step)}))
    atomic_write_text(out_dir / CHECKPOINTS / LATEST, folder.name + "\n")
    save_scene(scene, out_dir)
    # keep the newest two complete checkpoints
    complete = sorted(p for p in (out_dir / CHECKPOINTS).glob("step-*") if p.is_dir())
    for old in complete[:-2]:
        if old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)


def _restore_checkpoint(out_dir: Path, backend: str) -> tuple[Scene, dict[str, torch.Tensor]]:
    """The newest checkpoint that loads cleanly; a torn newer one is skipped with a warning."""
    folders = sorted((p for p in (out_dir / CHECKPOINTS).glob("step-*") if p.is_dir()), reverse=True)
    latest_file = out_dir / CHECKPOINTS / LATEST
    if latest_file.is_file():
        named = latest_file.read_text().strip()
        folders.sort(key=lambda p: (p.name != named, -int(p.name.split("-")[1])))
    problems = []
    for folder in folders:
        try:
            scene = load_scene(folder, backend)
            state = load_file(str(folder / TRAIN_STATE))
            return scene, state
        except (VistaError, SafetensorError, OSError, ValueError) as error:
            problems.append(f"{folder.name}: {error}")
    detail = "; ".join(problems) if problems else "no checkpoints"
    raise VistaError(f"{out_dir}: nothing to resume from ({detail})")


def _load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, torch.Tensor]) -> None:
    for gi, group in enumerate(optimizer.param_groups):
        for pi, param in enumerate(group["params"]):
            entry = {}
            for key in ("step", "exp_avg", "exp_avg_sq"):
                name = f"optim.{gi}.{pi}.{key}"
                if name in state:
                    entry[key] = state[name].reshape(()) if key == "step" else state[name].clone()
            if entry:
                optimizer.state[param] = entry


def prepare_output(out_dir: Path, resume: bool, overwrite: bool) -> None:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise VistaError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (resume or overwrite):
        raise VistaError(f"{out_dir}: folder exists and is not empty; pass --resume to continue its training "
                         "or --overwrite to start again")
    if overwrite and not resume and out_dir.is_dir():
        for name in (SCENE_FILE, WEIGHTS_FILE):
            (out_dir / name).unlink(missing_ok=True)
        shutil.rmtree(out_dir / CHECKPOINTS, ignore_errors=True)
    probe = out_dir / ".vista-write-test"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)  # fails when a parent is a file or read-only
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise VistaError(f"{out_dir}: cannot write there ({error.strerror})") from error


def train_scene(data: PosedImages, out_dir: Path, config: TrainConfig, *, minutes: float | None = None,
                resume: bool = False, overwrite: bool = False, show_progress: bool = True,
                progress: ProgressCallback | None = None, stop_after_step: int | None = None) -> Scene:
    """Train (or resume training) a scene into `out_dir` and return it.

    `minutes` is a wall-clock budget (the learning-rate schedule follows whichever of steps and time
    runs out first, so timed runs are not bit-reproducible; step-limited runs are).
    `progress` gets a "training" event after every step (metrics loss, psnr, rays_per_s, samples_per_ray,
    elapsed_s; `snapshot` is the scene, for live previews). If it raises `vista_core.progress.Cancelled`,
    a checkpoint is saved (continue with `resume=True`) and `Cancelled` propagates.
    `stop_after_step` ends early as if interrupted (tests of resume use it)."""
    out_dir = Path(out_dir)
    prepare_output(out_dir, resume, overwrite)
    keep_freed_memory()
    has_checkpoint = (out_dir / CHECKPOINTS).is_dir() and any((out_dir / CHECKPOINTS).glob("step-*"))
    generator = torch.Generator().manual_seed(config.seed)
    if resume and has_checkpoint:
        scene, state = _restore_checkpoint(out_dir, config.backend)
        if (scene.config.field != config.field or scene.config.sampling != config.sampling
                or _corrections_switches(scene.config) != _corrections_switches(config)):
            raise VistaError(f"{out_dir}: was trained with preset {scene.config.preset!r}; resume it with the same "
                             "preset (or use --overwrite to start again)")
        scene.config = config
        generator.set_state(state["generator"])
    else:
        scene, state = _new_scene_for(data, config), {}
    optimizer = make_optimizer(scene.renderable(), config, scene.corrections)
    _load_optimizer_state(optimizer, state)
    _write_run_info(out_dir, data, config)
    last_spr = float(state["last_samples_per_ray"][0]) if "last_samples_per_ray" in state else None
    run = _Run(budget_s=None if minutes is None else minutes * 60.0, start_step=scene.step,
               seconds_before=float(scene.metrics.get("train_seconds", 0.0)), last_samples_per_ray=last_spr)
    return _train_loop(scene, data, out_dir, config, optimizer, generator, run, show_progress, progress,
                       stop_after_step)


def _corrections_switches(config: TrainConfig) -> tuple[bool, bool]:
    """What a resumed run must share with its checkpoint besides the field: which per-photo parameters exist."""
    return config.appearance, config.camera_refinement


def _new_scene_for(data: PosedImages, config: TrainConfig) -> Scene:
    backend = resolve_backend(config.backend)
    capture = data.cameras[data.train_indices]
    scene = new_scene(config, backend, data.kind, data.scene_from_world, data.background, capture,
                      [data.names[i] for i in data.train_indices], data.source)
    if config.sampling.mask_unseen:
        scene.grid.restrict_to(cells_seen_by(capture, data.scene_from_world, scene.grid.resolution, data.kind))
    scene.data_hash = data.content_hash or None  # recorded so that `vista eval` can tell stale photos
    scene.heldout_names = [data.names[i] for i in data.heldout_indices]
    return scene


def _write_run_info(out_dir: Path, data: PosedImages, config: TrainConfig) -> None:
    atomic_write_json(out_dir / "train.json", {"data": data.source, "data_hash": data.content_hash,
                                               "preset": config.preset, "seed": config.seed, "steps": config.steps,
                                               "backend": config.backend, "downscale": data.downscale})


@dataclass
class _Run:
    """A training run's clock and running totals (for the progress bar, the progress events and `scene.metrics`)."""

    budget_s: float | None
    start_step: int
    seconds_before: float
    last_samples_per_ray: float | None = None
    """Decides the next step's ray count (`rays_for_step`): checkpoints carry it so a resumed run sees it too."""
    started: float = field(default_factory=time.perf_counter)
    rays: int = 0
    samples: int = 0
    loss: float = math.nan
    psnr: float = math.nan

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def schedule_progress(self, step: int, steps: int, elapsed_s: float) -> float:
        """How far through the run: steps done, or time used if a budget runs out sooner."""
        progress = step / steps
        return progress if self.budget_s is None else max(progress, elapsed_s / self.budget_s)

    def add(self, term: PhotoTerm) -> None:
        self.rays += term.n_rays
        self.samples += term.n_samples
        self.last_samples_per_ray = term.n_samples / term.n_rays
        self.loss, self.psnr = term.loss.item(), psnr_from_mse(term.mse.item())

    def eta_s(self, step: int, steps: int, elapsed_s: float) -> float:
        remaining = (steps - step) * elapsed_s / max(step - self.start_step, 1)
        return remaining if self.budget_s is None else min(remaining, max(self.budget_s - elapsed_s, 0.0))

    def live_metrics(self, elapsed_s: float) -> dict[str, float]:
        return {"loss": self.loss, "psnr": self.psnr, "rays_per_s": self.rays / max(elapsed_s, 1e-9),
                "samples_per_ray": self.samples / max(self.rays, 1), "elapsed_s": elapsed_s}


def _train_loop(scene: Scene, data: PosedImages, out_dir: Path, config: TrainConfig, optimizer: torch.optim.Optimizer,
                generator: torch.Generator, run: _Run, show_progress: bool, progress: ProgressCallback | None,
                stop_after_step: int | None) -> Scene:
    from tqdm.auto import tqdm

    pixels = TrainingPixels(data)
    scene.corrections.bind(data.train_indices, len(data.names))
    representation = scene.renderable()
    representation.train()
    bar = tqdm(total=config.steps, initial=scene.step, disable=not show_progress, unit="step", dynamic_ncols=True,
               desc="train")
    stopped = False
    run.started = time.perf_counter()
    try:
        while scene.step < config.steps:
            elapsed = run.elapsed_s()
            if run.budget_s is not None and elapsed >= run.budget_s:
                break
            schedule = run.schedule_progress(scene.step, config.steps, elapsed)
            term = _train_step(representation, pixels, optimizer, generator, config, scene.step, schedule,
                               run.last_samples_per_ray, scene.corrections)
            scene.step += 1
            run.add(term)
            _show_step(bar, scene, run, config)
            if progress is not None:
                elapsed = run.elapsed_s()
                report(progress, "training", scene.step, config.steps, eta_s=run.eta_s(scene.step, config.steps,
                       elapsed), metrics=run.live_metrics(elapsed), snapshot=scene)
            if scene.step % config.checkpoint_every == 0 and scene.step < config.steps:
                _record_metrics(scene, run)
                _save_checkpoint(scene, optimizer, generator, out_dir, run.last_samples_per_ray)
            if stop_after_step is not None and scene.step >= stop_after_step:
                stopped = True
                break
    except KeyboardInterrupt:
        stopped = True
        bar.write("interrupted: saving a checkpoint; continue with --resume")
    except Cancelled:
        _finish(scene, optimizer, generator, out_dir, config, run, stopped=True, pixels=pixels)
        raise
    finally:
        bar.close()
    return _finish(scene, optimizer, generator, out_dir, config, run, stopped, pixels)


def _train_step(representation: SceneRepresentation, pixels: TrainingPixels, optimizer: torch.optim.Optimizer,
                generator: torch.Generator, config: TrainConfig, step: int, progress: float,
                last_samples_per_ray: float | None, corrections: PhotoCorrections | None = None) -> PhotoTerm:
    representation.refresh(step, generator)
    set_learning_rate(optimizer, learning_rate_at(config, progress))
    active = corrections if corrections is not None and corrections.active else None
    # proposal sampling: 24 samples per ray from the first step, so the cap (made for marching an occupancy grid that
    # still calls the box full) would only shrink every batch by a third (fox-small, 3 min: 27.73 dB with the cap,
    # 27.74 without at 13% more rays/s; skull-66, whose held-out score falls with every ray seen, 16.59 / 15.79 dB:
    # bench/results/proposal-batch.json, README)
    measured = None if representation.fixed_samples_per_ray else last_samples_per_ray
    term = photo_loss(representation, pixels, rays_for_step(config, measured), generator,
                      pixel_jitter=config.pixel_jitter, distortion_weight=config.distortion_loss_weight,
                      corrections=active, loss_kind=config.photo_loss)
    penalty = None if active is None else active.penalty(config)
    apply_gradients(optimizer, term.loss if penalty is None else term.loss + penalty)
    return term


def _show_step(bar, scene: Scene, run: _Run, config: TrainConfig) -> None:
    bar.update(1)
    if scene.step % 10 == 0 or scene.step == config.steps:
        live = run.live_metrics(run.elapsed_s())
        shown = dict(loss=f"{run.loss:.4f}", psnr=f"{run.psnr:.2f}", rays_s=f"{live['rays_per_s']:,.0f}",
                     spr=f"{live['samples_per_ray']:.1f}")
        if not scene.renderable().fixed_samples_per_ray:  # a proposal scene's grid is settled only at saves
            shown["occ"] = f"{scene.grid.occupied_fraction:.3f}"
        bar.set_postfix(**shown)


def _finish(scene: Scene, optimizer: torch.optim.Optimizer, generator: torch.Generator, out_dir: Path,
            config: TrainConfig, run: _Run, stopped: bool, pixels: TrainingPixels | None = None) -> Scene:
    """The final checkpoint, also of a stopped run (which `resume` continues); a finished run also records each
    training photo's confidence (`scenes.confidence`)."""
    _record_metrics(scene, run)
    scene.metrics["finished"] = scene.step >= config.steps and not stopped
    if not stopped and pixels is not None and config.confidence_rays_per_photo > 0:
        scene.metrics["photos"] = photo_confidence(scene, pixels, config.confidence_rays_per_photo)
    _save_checkpoint(scene, optimizer, generator, out_dir, run.last_samples_per_ray)
    scene.renderable().train(False)
    return scene


def _record_metrics(scene: Scene, run: _Run) -> None:
    """Before every save: also settles the representation (`SceneRepresentation.settle`), inside the run's time."""
    scene.renderable().settle(scene.step)
    elapsed = run.elapsed_s()
    scene.metrics.update({
        "train_loss": run.loss if math.isfinite(run.loss) else None,
        "train_psnr": run.psnr if math.isfinite(run.psnr) else None,
        "rays_per_s": run.rays / max(elapsed, 1e-9),
        "samples_per_s": run.samples / max(elapsed, 1e-9),
        "samples_per_ray": run.samples / max(run.rays, 1),
        "occupied_fraction": scene.grid.occupied_fraction,
        "train_seconds": run.seconds_before + elapsed,
    })


def read_run_info(out_dir: Path) -> dict:
    return read_json(Path(out_dir) / "train.json", "training run file")


