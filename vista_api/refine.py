"""Diffusion guidance along a camera path into a new scene folder (`vista refine`, the studio's step 4).

Every check of a refine run lives here, once: the numbers in `RefineRequest.__post_init__`, the files and the
tier/model-folder rules in `RefineRequest.check_inputs` (cheap; run before any long work).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from guidance.config import RefineConfig
from guidance.fixers import FIXERS
from guidance.patch_prior import PriorConfig
from vista_api.checks import is_finite_number
from vista_core.errors import VistaError
from vista_core.progress import ProgressCallback, report

if TYPE_CHECKING:
    from guidance.check import PathCheck
    from guidance.refine import RefineReport
    from render.cameras import Cameras
    from render.paths import CameraPath
    from scenes.scene import Scene

GEOMETRIC = "geometric"
"""The tier without a fixer: depth smoothness on the path's keyframes alone (the registry's "none" fixer)."""
GEOMETRIC_WEIGHTS = {"visibility_weight": 0.0, "smoothness_weight": 0.0015, "seen_direction_weight": 0.1,
                     "seen_direction_angle": 10.0}
"""The geometric tier's priors. Without a fixer, every setting with the visibility loss (weight 0.0125 to 0.05) cost
fox-small's training views 0.12-0.24 dB, while the smoothness prior alone at half its weight cost 0.02 dB and kept most
of the path gain (+1.38 dB, -32% floaters; chosen on fox-small seed 0 only:
bench/results/guidance-weights-fox-small.json). The seen-direction prior (colour toward the nearest photos'
directions, `guidance.terms.seen_direction_loss`) was chosen on skull-66 seed 0 only (path 21.12-21.27 dB at weights
0.05-4 against 20.55 without; bench/results/guidance-seen-direction-weights.json, equal photo weights then). As
committed, over seeds 0-2 and against the smoothness alone: skull-66 path +0.45 dB, training views -0.02 dB; fox-small
(not tuned on) +0.10 / -0.08 dB (bench/results/guidance-real-*-seen-direction.json)."""
TIERS_OFFERED = (GEOMETRIC, *(name for name in FIXERS if name != "none"))
"""The guidance tiers a user picks: the priors alone, then the fixer registry's methods (guidance.fixers), so a new
fixer file is offered by the CLI and the studio without editing either."""
TIERS = ("auto", *TIERS_OFFERED)
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
    """geometric: depth smoothness and seen-direction colour along the path, no fixer (CPU); inpaint: OpenCV
    inpainting of the holes as pseudo views, with the visibility loss and smoothness (CPU, no model); prior: plus a
    small diffusion model trained on the photos (CPU); pipeline: a diffusers img2img pipeline from `model_dir`
    (CUDA); auto: pipeline if `model_dir` is given and CUDA is present, else geometric."""
    model_dir: Path | None = None
    # The numeric defaults are RefineConfig's and PriorConfig's, read here once: the CLI's flags and the
    # benchmarks (bench/guidance_real.py) take theirs from these fields, so benchmarked settings = CLI defaults.
    steps: int = RefineConfig.steps
    """Training steps added to the scene."""
    prior_steps: int = PriorConfig.steps
    """Training steps of the patch prior."""
    strength: float = 0.3
    """img2img strength of the pipeline tier."""
    rounds: int = RefineConfig.rounds
    """Progressive rounds from the capture to the path."""
    keyframes: int = RefineConfig.keyframes
    """Path cameras fixed per round."""
    score_weight: float = RefineConfig.score_weight
    smoothness_weight: float | None = None
    """None: the tier's default."""
    seen_direction_weight: float | None = None
    """None: the tier's default (the geometric tier's 0.1; the fixer tiers run without it)."""
    seed: int = 0
    check: bool = True
    """Check the scene along the path before and after (coverage and floaters, `guidance.check`; seconds)."""

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
        for name in ("strength", "score_weight", "smoothness_weight", "seen_direction_weight"):
            value = getattr(self, name)
            if value is not None and not (is_finite_number(value) and value >= 0):
                raise VistaError(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
        if self.tier == "pipeline" and self.model_dir is None:
            raise VistaError("--tier pipeline needs --model-dir (a local diffusers pipeline folder)")

    def resolved_tier(self) -> str:
        """auto -> pipeline when a model folder is given and CUDA is present, else geometric: on real photos the
        patch prior's diffusion step did not beat inpainting alone by more than the seed-to-seed spread, and
        inpainting's pseudo views cost skull-66's held-out path 0.88 dB (up to 1.64 in a seed) where the priors
        alone cost 0.11 dB (issue 24, bench/results/guidance-real-*-far-prior.json); with its present priors the
        geometric tier gives the held-out path of fox-small +0.83 dB and of skull-66 +0.41 dB over plain training
        (guidance-real-*-seen-direction.json)."""
        import torch

        if self.tier != "auto":
            return self.tier
        return "pipeline" if self.model_dir is not None and torch.cuda.is_available() else GEOMETRIC

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

        config = RefineConfig(steps=self.steps, rounds=self.rounds, keyframes=self.keyframes,
                              fixer="none" if tier == GEOMETRIC else tier, score_weight=self.score_weight,
                              seed=self.seed)
        if tier == GEOMETRIC:
            config = dataclasses.replace(config, **GEOMETRIC_WEIGHTS)
        for name in ("smoothness_weight", "seen_direction_weight"):
            if getattr(self, name) is not None:
                config = dataclasses.replace(config, **{name: getattr(self, name)})
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
    before: PathCheck | None = None
    """The cheap check along the path of the scene refinement started from (None: not checked)."""
    after: PathCheck | None = None
    """The same check of the refined scene."""

    def check_line(self) -> str | None:
        """Before -> after of the path check, in one line (None when it was not run)."""
        if self.before is None or self.after is None:
            return None
        b, a = self.before, self.after
        return (f"along the path ({a.frames} frames at {a.width_px} px): coverage {b.coverage:.2f} -> "
                f"{a.coverage:.2f} (share of what the frames show that photos saw), floaters {b.floaters:.3f} -> "
                f"{a.floaters:.3f} (share of weight in front of the surface; lower is cleaner)")

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
    if request.tier == "auto" and request.model_dir is not None and tier != "pipeline":
        report(progress, f"--model-dir given but no CUDA GPU here: using the CPU tier ({tier}) instead")
    targets = target_cameras(request.path, scene)
    data = load_posed_images(request.data_dir or dataset_of(scene), options=training_load_options(request.scene_dir))
    report(progress, _targets_note(request.path, len(targets)))
    # 2. the fixer
    config = request.config(tier)
    fixer, prior = _make_fixer(request, tier, scene, data, config, progress)
    # 3. the loop, with the cheap path check before and after
    before = _checked(request, scene, targets, progress, "before")
    refined, refine_report = refine_scene(scene, data, targets, config, request.out_dir, fixer=fixer, prior=prior,
                                          source_dir=request.scene_dir, show_progress=False, progress=progress)
    if prior is not None:
        from guidance.patch_prior import save_patch_prior

        save_patch_prior(prior, request.out_dir / "patch-prior")
    after = _checked(request, refined, targets, progress, "after")
    if before is not None and after is not None:
        from vista_core.files import atomic_write_json

        atomic_write_json(request.out_dir / CHECK_FILE, {"before": before.to_dict(), "after": after.to_dict()})
    cues = tuple((config.mask or default_mask(config.fixer)).cues)
    return RefineResult(request.out_dir, refined, refine_report, tier, cues, before, after)


CHECK_FILE = "path_check.json"
"""In the refined scene folder: the path check before and after (`RefineResult.before`, `.after`)."""


def _checked(request: RefineRequest, scene: Scene, targets: Cameras, progress: ProgressCallback | None,
             which: str) -> PathCheck | None:
    if not request.check:
        return None
    from guidance.check import check_path

    report(progress, f"checking the path {which} refining (coverage and floaters)")
    return check_path(scene, targets, progress=progress)


def _targets_note(path: CameraPath | Path | None, count: int) -> str:
    if path is None:
        return ("no --path given: guiding along the capture trajectory (the views between your photos); "
                "pass --path to aim at your camera path")
    where = path if isinstance(path, (str, Path)) else "your camera path"
    return f"guiding toward {count} path cameras from {where}"


def fixer_request(request: RefineRequest, config: RefineConfig, photos, background: tuple[float, float, float],
                  source: str, progress: ProgressCallback | None = None):
    """What the fixer of `config.fixer` is built from (`guidance.fixers.FixerRequest`), as `vista refine` builds it;
    bench/guidance_real.py uses it too, so the benchmark's fixers are the CLI's."""
    from guidance.fixers import FixerRequest

    return FixerRequest(photos=photos, background=background, source=source, timestep=config.fix_timestep,
                        prior_config=PriorConfig(steps=request.prior_steps, seed=request.seed),
                        model_dir=request.model_dir, strength=request.strength, progress=progress)


def _make_fixer(request: RefineRequest, tier: str, scene: Scene, data, config: RefineConfig,
                progress: ProgressCallback | None):
    """(fixer, patch prior or None) from the registry (guidance.fixers): the img2img pipeline, inpainting, or a
    patch prior trained on the photos (its "patch prior" events go to `progress`)."""
    from guidance.fixers import build_fixer

    images = data.images[data.train_indices]
    if tier == "prior":
        report(progress, f"training the patch prior on {len(images)} photos ({request.prior_steps} steps)")
    built = build_fixer(config.fixer, fixer_request(request, config, images, scene.background, str(data.source),
                                                    progress))
    return built.fix, built.prior
