"""Guidance: `refine_scene(Scene, PosedImages, target cameras, RefineConfig, out_dir) -> Scene`.

The Difix3D+ loop (Wu et al. 2025), aimed at the user's own camera path, plus the geometric
priors of Nerfbusters and mip-NeRF 360:

1. pick keyframes along the target path and pair each with its nearest capture camera;
2. for each round r = 1..R, move the keyframes a fraction r/R of the way from the capture to the
   path, render them, and mark the pixels the field is unsure about (`guidance.masks`);
3. let the fixer (Tier 1: the patch prior's one-step denoiser; Tier 2: an img2img pipeline)
   replace only the masked pixels, and keep the result as pseudo-ground-truth;
4. train (the spine's loss on the photos, unchanged) plus the down-weighted pseudo-ground-truth,
   the visibility loss on space that neither a photo nor a fixed pixel sees, optionally the distortion
   loss and the patch prior's score on rendered patches;
5. write a NEW scene folder; the scene it started from is never touched.

Everything is deterministic for a given seed.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch

from guidance.masks import MaskConfig, uncertainty_mask
from guidance.patch_prior import Progress
from guidance.paths import stepping_cameras
from guidance.priors import SupervisedRays, inverse_depth_roughness, inverse_z_depth, visibility_loss
from guidance.views import render_view
from render.cameras import Cameras, Rays, camera_rays
from render.configio import config_to_dict
from vista_core.errors import VistaError
from vista_core.files import atomic_write_json
from render.render import render_rays, rays_to_scene
from scenes.data import PosedImages
from scenes.scene import SCENE_FILE, Scene, save_scene
from scenes.train import TrainingPixels, make_optimizer

Fixer = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
"""(rgb [H, W, 3], mask [H, W] bool, seed) -> rgb with only the masked pixels changed."""

REPORT_FILE = "refine.json"


@dataclass(frozen=True)
class RefineConfig:
    """One guidance run. The defaults are the Tier-1 settings the benchmark measures."""

    steps: int = 600
    """Training steps added to the scene (split evenly over the rounds)."""
    rounds: int = 3
    """Progressive rounds: keyframes move 1/R, 2/R, ... of the way from the capture to the path."""
    keyframes: int = 6
    """Target cameras fixed per round."""
    learning_rate: float = 3e-3
    """Adam learning rate at the start; decays to 10% by the end."""
    geometric: bool = True
    """Use the visibility loss and the depth-smoothness prior (and the distortion loss if its weight is above 0)."""
    visibility_weight: float = 0.05
    visibility_points: int = 4096
    distortion_weight: float = 0.0
    """mip-NeRF 360's distortion loss; off by default: on a sparse arc it pulled weight in front of the surface
    (bench/guidance.py: -2.4 dB on the path, +46% floater mass)."""
    fixer: Literal["none", "prior", "pipeline"] = "prior"
    """'none': priors only; 'prior': the patch prior's one-step fixer; 'pipeline': an img2img pipeline."""
    fix_timestep: int = 50
    """Noise level of the one-step fixer (of 1000); measured on holes, 50 beat 100, 200 and 400."""
    pseudo_weight: float = 0.05
    """Weight of the fixed views' loss relative to the photos'. Every pseudo ray lands in a repainted hole, a
    few percent of a view; at 0.5 the holes' colour was fitted in mid-air in front of the photographed surfaces
    (bench/guidance.py, 3 seeds, Tier 1: floater mass -23% against plain training at 0.5, -31% at 0.05 with
    `SupervisedRays`). Not measured for Tier 2, whose masks are larger."""
    pseudo_rays: int = 512
    """Pseudo-ground-truth rays added to each step."""
    pseudo_masked_only: bool = True
    """Supervise only the pixels the fixer changed: elsewhere a pseudo view is the field's own render, and
    training on it locks in its errors."""
    smoothness_weight: float = 0.003
    """Weight of the depth-smoothness prior on a patch of a path keyframe each step (`smoothness_patch_loss`).
    Without it the visibility loss cleared the fog in front of the photographed ground and bared texture the
    base scene had spread through a fuzzy layer: more flicker along the path than plain training (bench/guidance.py,
    3 seeds, with the fixer: +0.0024 without it, +0.0001 with it, and floater mass -31% -> -40%). Chosen on seed 1
    (0.001, 0.002, 0.003, 0.01); seeds 0 and 2 then confirmed it. On held-out seeds 3 and 4: flicker +0.0024 ->
    +0.0005, path +0.17 dB, but interpolation -0.27 dB (plain L1 then; the capped penalty of
    `inverse_depth_roughness` now spares curvature and edges). With pixel-jittered base scenes (3 seeds): interpolation
    -0.19 dB without it, -0.25 dB with plain L1, -0.15 dB with the capped penalty; flicker +0.0021, -0.0014, -0.0010.
    On the rounds' keyframes instead of the path's (cameras still near the photos) it flattened curved surfaces:
    interpolation -0.7 dB at 0.003."""
    smoothness_patch: int = 16
    """Side of the square patch rendered each step for the smoothness prior (256 rays, ~+25% per step)."""
    polish_fraction: float = 0.15
    """Final fraction of the steps trained on the photos and the visibility loss alone (no pseudo views, no
    smoothness, no score). The priors reshape surfaces the photos also see; a short polish lets the photos have the
    last word there, while the visibility loss keeps unseen space empty. bench/guidance.py, seeds 0-2, against plain
    training, without -> with: interpolation +0.02 -> +0.13 dB, floater mass -38% -> -36%, path +0.74 -> +0.76 dB;
    on held-out seeds 3-4 interpolation -0.28 -> +0.18 dB, path +0.33 -> +0.54 dB (bench/GUIDANCE_RESULTS.md)."""
    score_weight: float = 0.0
    """Weight of the patch prior's score on rendered patches (0 disables the regulariser)."""
    score_every: int = 4
    """Steps between score evaluations (each renders one 32x32 patch)."""
    mask: MaskConfig | None = None
    """None: the tier's default (`default_mask`)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < self.rounds or self.rounds < 1:
            raise ValueError(f"need steps >= rounds >= 1, got steps={self.steps}, rounds={self.rounds}")
        if self.keyframes < 1:
            raise ValueError("keyframes must be >= 1")
        if not 0.0 <= self.polish_fraction < 1.0:
            raise ValueError(f"polish_fraction must be in [0, 1), got {self.polish_fraction}")


@dataclass
class PseudoViews:
    """Fixed renders used as down-weighted ground truth: cameras, RGB [K, H, W, 3] and masks [K, H, W]."""

    cameras: Cameras | None = None
    rgb: list[torch.Tensor] = field(default_factory=list)
    masks: list[torch.Tensor] = field(default_factory=list)
    _flat_rgb: torch.Tensor | None = field(default=None, init=False, repr=False)
    _masked: torch.Tensor | None = field(default=None, init=False, repr=False)

    def add(self, cameras: Cameras, rgb: list[torch.Tensor], masks: list[torch.Tensor]) -> None:
        self.cameras = cameras if self.cameras is None else self.cameras.concat(cameras)
        self.rgb += rgb
        self.masks += masks
        # flattened once per round, not on every training step
        self._flat_rgb = torch.stack(self.rgb).reshape(-1, 3)
        self._masked = torch.stack(self.masks).reshape(-1).nonzero()[:, 0]

    def supervised_rays(self, masked_only: bool) -> SupervisedRays:
        """The pixels the pseudo loss trains on, as evidence for the visibility loss."""
        masks = torch.stack(self.masks)
        return SupervisedRays(self.cameras, masks if masked_only else torch.ones_like(masks))

    def __len__(self) -> int:
        return len(self.rgb)

    def sample(self, n: int, generator: torch.Generator, masked_only: bool = False):
        h, w = self.rgb[0].shape[:2]
        if masked_only:
            if len(self._masked) == 0:
                return None
            flat = self._masked[torch.randint(0, len(self._masked), (n,), generator=generator)]
        else:
            flat = torch.randint(0, len(self) * h * w, (n,), generator=generator)
        image = flat // (h * w)
        within = flat % (h * w)
        xy = torch.stack([within % w, within // w], -1).float() + 0.5
        return image, xy, self._flat_rgb[flat]


@dataclass
class RoundReport:
    fraction: float
    mask_fraction: float
    low_opacity: float
    uncovered: float
    unstable: float
    seconds_fixing: float


@dataclass
class RefineReport:
    rounds: list[RoundReport] = field(default_factory=list)
    train_seconds: float = 0.0
    total_seconds: float = 0.0
    note: str = ""


def default_mask(fixer: str) -> MaskConfig:
    """Tier 1 fixes holes only: measured on path views, its one-step denoise of rendered pixels that were
    merely unseen or had unstable depth made them worse at every noise level (bench/guidance.py); a
    pretrained img2img pipeline (Tier 2) gets all three cues, as Difix3D+ does."""
    return MaskConfig(cues=("holes",)) if fixer == "prior" else MaskConfig()


def clone_scene(scene: Scene) -> Scene:
    """An independent copy (refinement never changes the scene it was given)."""
    return copy.deepcopy(scene)


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


def fix_views(scene: Scene, cameras: Cameras, fixer: Fixer | None, mask_config: MaskConfig, seed: int,
              round_index: int) -> tuple[list[torch.Tensor], list[torch.Tensor], RoundReport]:
    """Render each camera, mask its uncertain pixels and let the fixer repaint them."""
    renderable = scene.renderable()
    fixed, masks, parts = [], [], []
    start = time.perf_counter()
    for i in range(len(cameras)):
        view = render_view(renderable, cameras, i)
        shifted = None
        if "unstable" in mask_config.cues:  # half a step nearer than the default 0.5
            shifted = render_view(renderable, cameras, i, jitter=0.0).depth
        mask = uncertainty_mask(view, shifted, cameras, i, scene.capture, mask_config,
                                empty_is_valid=scene.kind == "object")
        rgb = view.rgb if fixer is None else fixer(view.rgb, mask.mask, seed * 1000 + round_index * 100 + i)
        fixed.append(rgb)
        masks.append(mask.mask)
        parts.append(mask)
    n = max(len(parts), 1)
    report = RoundReport(0.0, sum(p.fraction for p in parts) / n,
                         sum(float(p.low_opacity.float().mean()) for p in parts) / n,
                         sum(float(p.uncovered.float().mean()) for p in parts) / n,
                         sum(float(p.unstable.float().mean()) for p in parts) / n, time.perf_counter() - start)
    return fixed, masks, report


def _random_patch(scene: Scene, cameras: Cameras, size: int, generator: torch.Generator) -> tuple[Rays, int] | None:
    """Scene-space rays [size * size] of a random size x size patch of a random camera, with its index."""
    if cameras.width < size or cameras.height < size:
        return None
    i = int(torch.randint(0, len(cameras), (1,), generator=generator))
    x0 = int(torch.randint(0, cameras.width - size + 1, (1,), generator=generator))
    y0 = int(torch.randint(0, cameras.height - size + 1, (1,), generator=generator))
    ys, xs = torch.meshgrid(torch.arange(y0, y0 + size), torch.arange(x0, x0 + size), indexing="ij")
    xy = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).float() + 0.5
    rays = rays_to_scene(camera_rays(cameras, torch.full((size * size,), i, dtype=torch.long), xy),
                         scene.scene_from_world)
    return rays, i


def _score_patch_loss(scene: Scene, cameras: Cameras, prior, generator: torch.Generator) -> torch.Tensor:
    """Render a random 32x32 patch of a random camera with gradients; score-distillation loss from the prior."""
    from guidance.patch_prior import PATCH, score_gradient

    patch_rays = _random_patch(scene, cameras, PATCH, generator)
    if patch_rays is None:
        return torch.zeros(())
    rays, _ = patch_rays
    out = render_rays(scene.renderable(), rays, jitter=torch.rand(len(rays), generator=generator))
    patch = out.rgb.reshape(1, PATCH, PATCH, 3).permute(0, 3, 1, 2)
    gradient = score_gradient(prior, patch, generator)
    # score distillation: d loss / d patch = gradient / numel
    return (gradient * patch).sum() / patch.numel()


def smoothness_patch_loss(scene: Scene, cameras: Cameras, size: int, generator: torch.Generator) -> torch.Tensor:
    """Render a random size x size patch of a random camera with gradients; `inverse_depth_roughness` of it."""
    patch_rays = _random_patch(scene, cameras, size, generator)
    if patch_rays is None:
        return torch.zeros(())
    rays, i = patch_rays
    out = render_rays(scene.renderable(), rays, jitter=torch.rand(len(rays), generator=generator))
    # OpenGL cameras look down -z; the scene frame only rotates and scales uniformly, so depth x cosine is the
    # z-depth up to one factor for the whole patch, which the roughness's normalisation cancels
    forward = -cameras.world_from_camera[i, :3, 2].to(rays.directions.dtype)
    return inverse_depth_roughness(inverse_z_depth(out.depth, rays.directions, forward).reshape(size, size),
                                   out.opacity.reshape(size, size))


def refine_scene(scene: Scene, data: PosedImages, targets: Cameras, config: RefineConfig, out_dir: Path | None,
                 fixer: Fixer | None = None, prior=None, source_dir: Path | None = None,
                 show_progress: bool = True, on_step: Progress | None = None) -> tuple[Scene, RefineReport]:
    """Refine a copy of `scene` toward the `targets` cameras (world coordinates) and save it to `out_dir`.

    `on_step` may raise to stop early: the scene is written only at the end, so a stopped run leaves
    `out_dir` as it was."""
    from tqdm.auto import tqdm

    if config.fixer != "none" and fixer is None:
        raise VistaError(f"guidance tier {config.fixer!r} needs a fixer (the patch prior or a pipeline)")
    if config.score_weight > 0 and prior is None:
        raise VistaError("the score regulariser needs the patch prior")
    if len(data.train_indices) != len(scene.capture):
        raise VistaError(f"{data.source}: has {len(data.train_indices)} training photos but the scene was trained "
                         f"on {len(scene.capture)}; refine with the data the scene was trained on")
    if out_dir is not None:
        prepare_refine_output(out_dir, source_dir)
    started = time.perf_counter()
    scene = clone_scene(scene)
    train_config = scene.config
    sampling = train_config.sampling
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    optimizer = make_optimizer(scene, train_config)
    pixels = TrainingPixels(data)
    renderable = scene.renderable()
    step_size = renderable.step_size()
    keyframes = pick_keyframes(targets, config.keyframes)
    mask_config = config.mask or default_mask(config.fixer)
    pseudo = PseudoViews()
    report = RefineReport()
    steps_per_round = [config.steps // config.rounds + (1 if r < config.steps % config.rounds else 0)
                       for r in range(config.rounds)]
    done = 0
    train_seconds = 0.0
    bar = tqdm(total=config.steps, disable=not show_progress, unit="step", desc="refine", dynamic_ncols=True)
    for round_index, round_steps in enumerate(steps_per_round):
        fraction = (round_index + 1) / config.rounds
        round_cameras = stepping_cameras(scene.capture, keyframes, fraction)
        if config.fixer != "none":
            scene.field.eval()
            fixed, masks, round_report = fix_views(scene, round_cameras, fixer, mask_config, config.seed, round_index)
            round_report.fraction = fraction
            report.rounds.append(round_report)
            pseudo.add(round_cameras, fixed, masks)
        also_seen = pseudo.supervised_rays(config.pseudo_masked_only) if len(pseudo) else None
        scene.field.train()
        round_start = time.perf_counter()
        for _ in range(round_steps):
            if scene.step % sampling.update_every == 0:
                scene.field.eval()
                scene.grid.update(lambda u: scene.field.density(u) * step_size, sampling.occupancy_threshold,
                                  all_cells=False, generator=generator)
                scene.field.train()
            progress = done / config.steps
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * (0.1 ** progress)
            loss = _photo_loss(scene, data, pixels, train_config.rays_per_step, generator, config)
            polishing = done >= config.steps * (1 - config.polish_fraction)
            batch = (pseudo.sample(config.pseudo_rays, generator, config.pseudo_masked_only)
                     if len(pseudo) and not polishing else None)
            if batch is not None:
                image, xy, target = batch
                rays = rays_to_scene(camera_rays(pseudo.cameras, image, xy), scene.scene_from_world)
                out = render_rays(renderable, rays, jitter=torch.rand(len(image), generator=generator))
                loss = loss + config.pseudo_weight * torch.mean((out.rgb - target) ** 2)
            if config.geometric and config.visibility_weight > 0:
                term = visibility_loss(renderable, scene.capture, config.visibility_points, generator,
                                       also_seen=also_seen)
                loss = loss + config.visibility_weight * term.loss
            if config.geometric and config.smoothness_weight > 0 and not polishing:
                loss = loss + config.smoothness_weight * smoothness_patch_loss(scene, keyframes,
                                                                               config.smoothness_patch, generator)
            if config.score_weight > 0 and done % config.score_every == 0 and not polishing:
                loss = loss + config.score_weight * _score_patch_loss(scene, round_cameras, prior, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scene.step += 1
            done += 1
            bar.update(1)
            if on_step is not None:
                on_step(done, config.steps)
        train_seconds += time.perf_counter() - round_start
    bar.close()
    scene.field.eval()
    report.train_seconds = train_seconds
    report.total_seconds = time.perf_counter() - started
    scene.metrics = dict(scene.metrics)
    scene.metrics["guidance"] = {"fixer": config.fixer, "steps": config.steps, "seconds": report.total_seconds}
    if out_dir is not None:
        save_scene(scene, out_dir)
        atomic_write_json(Path(out_dir) / REPORT_FILE, {
            "source_scene": None if source_dir is None else str(source_dir),
            "config": config_to_dict(dataclasses.replace(config, mask=mask_config)),
            "rounds": [r.__dict__ for r in report.rounds],
            "train_seconds": report.train_seconds, "total_seconds": report.total_seconds, "note": report.note,
        })
    return scene, report


def _photo_loss(scene: Scene, data: PosedImages, pixels: TrainingPixels, n_rays: int, generator: torch.Generator,
                config: RefineConfig) -> torch.Tensor:
    """The spine's photo loss (scenes/train.py): random pixels, random backgrounds behind alpha, MSE."""
    image_index, xy, target = pixels.sample(n_rays, generator, scene.config.pixel_jitter)
    jitter = torch.rand(n_rays, generator=generator)
    background = None
    if data.has_alpha:
        background = torch.rand(n_rays, 3, generator=generator)
        alpha = target[:, 3:4]
        target = target[:, :3] * alpha + background * (1 - alpha)
    rays = rays_to_scene(camera_rays(data.cameras, image_index, xy), scene.scene_from_world)
    use_distortion = config.geometric and config.distortion_weight > 0
    out = render_rays(scene.renderable(), rays, jitter=jitter, background=background, with_distortion=use_distortion)
    loss = torch.mean((out.rgb - target) ** 2)
    if out.distortion is not None:
        loss = loss + config.distortion_weight * out.distortion
    return loss
