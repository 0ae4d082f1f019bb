"""Diffusion guidance along a camera path into a new scene folder (`vista refine`, the studio's step 4).

Every check of a refine run lives here, once: the numbers in `RefineRequest.__post_init__`, the files and the
tier/model-folder rules in `RefineRequest.check_inputs` (cheap; run before any long work).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from guidance.fixers import FIXERS
from vista_api.checks import is_finite_number
from vista_core.errors import VistaError
from vista_core.progress import ProgressCallback, report

if TYPE_CHECKING:
    from guidance.refine import RefineConfig, RefineReport
    from render.cameras import Cameras
    from render.paths import CameraPath
    from scenes.scene import Scene

FIXERS_OFFERED = tuple(name for name in FIXERS if name != "none")
"""The guidance tiers a user picks: the fixer registry's methods (guidance.fixers), so a new fixer file is offered
by the CLI and the studio without editing either."""
TIERS = ("auto", *FIXERS_OFFERED)
CUE_NAMES = {"holes": "holes", "uncovered": "unseen", "unstable": "unstable depth"}
STAGE_PRIOR = "patch prior"
STAGE_GUIDED = "guided training"


@dataclass(frozen=True)
class RefineRequest:
    scene_dir: Path
    """Trained scene folder; never modified."""
    out_dir: Path
    """NEW folder for the refined scene."""
    path: CameraPath | Path | None = None
    """The camera path to aim at: a CameraPath, or a path file (any format render.path_io reads). None: the
    views between the capture photos."""
    data_dir: Path | None = None
    """Dataset folder (None: the one the scene was trained on)."""
    tier: str = "auto"
    """prior: a small diffusion model trained on the photos (CPU); pipeline: a diffusers img2img pipeline from
    `model_dir` (CUDA); auto: pipeline if `model_dir` is given and CUDA is present, else prior."""
    model_dir: Path | None = None
    steps: int = 600
    """Training steps added to the scene."""
    prior_steps: int = 1500
    """Training steps of the patch prior."""
    strength: float = 0.3
    """img2img strength of the pipeline tier."""
    rounds: int = 3
    """Progressive rounds from the capture to the path."""
    keyframes: int = 6
    """Path cameras fixed per round."""
    score_weight: float = 0.0
    smoothness_weight: float | None = None
    """None: RefineConfig's default."""
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scene_dir", Path(self.scene_dir))
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.tier not in TIERS:
            raise VistaError(f"unknown guidance tier {self.tier!r}; choose {', '.join(TIERS[:-1])} or {TIERS[-1]}")
        if self.steps < self.rounds or self.rounds < 1 or self.keyframes < 1:
            raise VistaError(f"need --steps >= --rounds >= 1 and --keyframes >= 1, got steps {self.steps}, "
                             f"rounds {self.rounds}, keyframes {self.keyframes}")
        if self.prior_steps < 1:
            raise VistaError(f"need --prior-steps >= 1, got {self.prior_steps}")
        for name in ("strength", "score_weight", "smoothness_weight"):
            value = getattr(self, name)
            if value is not None and not (is_finite_number(value) and value >= 0):
                raise VistaError(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
        if self.tier == "pipeline" and self.model_dir is None:
            raise VistaError("--tier pipeline needs --model-dir (a local diffusers pipeline folder)")

    def resolved_tier(self) -> str:
        """auto -> pipeline when a model folder is given and CUDA is present, else prior."""
        import torch

        if self.tier != "auto":
            return self.tier
        return "pipeline" if self.model_dir is not None and torch.cuda.is_available() else "prior"

    def check_inputs(self) -> Scene:
        """The checks that read files, cheapest first: the output folder, the scene, the path, the model folder
        and CUDA. Returns the loaded scene."""
        from guidance.refine import prepare_refine_output
        from scenes.scene import load_scene

        prepare_refine_output(self.out_dir, self.scene_dir)
        scene = load_scene(self.scene_dir)
        if isinstance(self.path, (str, Path)):
            target_cameras(self.path, scene)
        if self.resolved_tier() == "pipeline":
            from guidance.pipeline import check_model_folder, require_cuda

            check_model_folder(self.model_dir)
            require_cuda()
        return scene

    def config(self, tier: str) -> RefineConfig:
        import dataclasses

        from guidance.refine import RefineConfig

        config = RefineConfig(steps=self.steps, rounds=self.rounds, keyframes=self.keyframes,
                              fixer=tier, score_weight=self.score_weight,
                              seed=self.seed)
        if self.smoothness_weight is not None:
            config = dataclasses.replace(config, smoothness_weight=self.smoothness_weight)
        return config


def target_cameras(path: CameraPath | Path | None, scene: Scene) -> Cameras:
    """The cameras guidance aims at, at the capture's image size."""
    from guidance.paths import capture_inbetweens, load_target_cameras

    capture = scene.capture
    if path is None:
        return capture_inbetweens(capture)
    if isinstance(path, (str, Path)):
        return load_target_cameras(Path(path), capture.width, capture.height)
    return path.sample(capture.width, capture.height)


@dataclass(frozen=True)
class RefineResult:
    scene_dir: Path
    """The new scene folder."""
    scene: Scene
    report: RefineReport
    tier: str
    cues: tuple[str, ...]
    """Which uncertainty cues chose the pixels to fix (keys of CUE_NAMES)."""

    def round_lines(self) -> list[str]:
        """One line per round: how far toward the path and which pixels were fixed."""
        lines = []
        for i, r in enumerate(self.report.rounds):
            found = {"holes": r.low_opacity, "uncovered": r.uncovered, "unstable": r.unstable}
            lines.append(f"round {i + 1}: {r.fraction:.0%} of the way to the path, {r.mask_fraction:.1%} of pixels "
                         "fixed (" + ", ".join(f"{CUE_NAMES[c]} {found[c]:.1%}" for c in self.cues) + ")")
        return lines


def refine(request: RefineRequest, progress: ProgressCallback | None = None) -> RefineResult:
    """Guide the scene toward the path with a diffusion fixer and write the refined copy to `out_dir`.

    Events: notes (total 0) on the tier and the targets, then "patch prior" and "guided training" steps. If
    `progress` raises Cancelled, nothing is written to `out_dir` and Cancelled propagates."""
    from guidance.refine import default_mask, refine_scene
    from scenes.data import load_posed_images
    from vista_api.evaluate import dataset_of, training_load_options

    # 1. check everything cheap before any long work
    scene = request.check_inputs()
    tier = request.resolved_tier()
    if request.tier == "auto" and request.model_dir is not None and tier == "prior":
        report(progress, "--model-dir given but no CUDA GPU here: using the CPU tier (patch prior) instead")
    targets = target_cameras(request.path, scene)
    data = load_posed_images(request.data_dir or dataset_of(scene), options=training_load_options(request.scene_dir))
    report(progress, _targets_note(request.path, len(targets)))
    # 2. the fixer
    config = request.config(tier)
    fixer, prior = _make_fixer(request, tier, scene, data, config, progress)
    # 3. the loop
    refined, refine_report = refine_scene(scene, data, targets, config, request.out_dir, fixer=fixer, prior=prior,
                                          source_dir=request.scene_dir, show_progress=False, progress=progress)
    if prior is not None:
        from guidance.patch_prior import save_patch_prior

        save_patch_prior(prior, request.out_dir / "patch-prior")
    cues = tuple((config.mask or default_mask(config.fixer)).cues)
    return RefineResult(request.out_dir, refined, refine_report, tier, cues)


def _targets_note(path: CameraPath | Path | None, count: int) -> str:
    if path is None:
        return ("no --path given: guiding along the capture trajectory (the views between your photos); "
                "pass --path to aim at your camera path")
    where = path if isinstance(path, (str, Path)) else "your camera path"
    return f"guiding toward {count} path cameras from {where}"


def _make_fixer(request: RefineRequest, tier: str, scene: Scene, data, config: RefineConfig,
                progress: ProgressCallback | None):
    """(fixer, patch prior or None) from the registry (guidance.fixers): the img2img pipeline, or a patch prior
    trained on the photos (its "patch prior" events go to `progress`)."""
    from guidance.fixers import FixerRequest, build_fixer
    from guidance.patch_prior import PriorConfig

    images = data.images[data.train_indices]
    if tier != "pipeline":
        report(progress, f"training the patch prior on {len(images)} photos ({request.prior_steps} steps)")
    built = build_fixer(config.fixer, FixerRequest(
        photos=images, background=scene.background, source=str(data.source), timestep=config.fix_timestep,
        prior_config=PriorConfig(steps=request.prior_steps, seed=request.seed), model_dir=request.model_dir,
        strength=request.strength, progress=progress))
    return built.fix, built.prior
