"""The terms refinement adds to the photo loss: pseudo views, visibility, depth smoothness, the patch score.

Each term is a function (RefineConfig, RefineStep) -> its weighted loss, or None when it does not apply
this step. `REFINE_TERMS` fixes their order: they all draw from the run's one generator, so the order
is part of the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from guidance.config import RefineConfig
from guidance.patch_prior import PATCH, PatchPrior, score_gradient
from guidance.priors import SupervisedRays, inverse_depth_roughness, inverse_z_depth, visibility_loss
from guidance.pseudo import PseudoViews
from render.cameras import Cameras, Rays, camera_rays
from render.render import Renderable, rays_to_scene, render_rays
from render.representation import SceneRepresentation


@dataclass
class RefineStep:
    """What the terms of one refinement step may use."""

    representation: Renderable
    capture: Cameras
    keyframes: Cameras
    round_cameras: Cameras
    pseudo: PseudoViews
    also_seen: SupervisedRays | None
    prior: PatchPrior | None
    generator: torch.Generator
    done: int = 0
    """Refinement steps finished before this one."""
    polishing: bool = False
    """In the final polish: photos and the visibility loss only."""


def _random_patch(scene: SceneRepresentation, cameras: Cameras, size: int,
                  generator: torch.Generator) -> tuple[Rays, int] | None:
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


def score_patch_loss(scene: SceneRepresentation, cameras: Cameras, prior: PatchPrior,
                     generator: torch.Generator) -> torch.Tensor:
    """Render a random 32x32 patch of a random camera with gradients; score-distillation loss from the prior."""
    patch_rays = _random_patch(scene, cameras, PATCH, generator)
    if patch_rays is None:
        return torch.zeros(())
    rays, _ = patch_rays
    out = render_rays(scene, rays, jitter=torch.rand(len(rays), generator=generator))
    patch = out.rgb.reshape(1, PATCH, PATCH, 3).permute(0, 3, 1, 2)
    gradient = score_gradient(prior, patch, generator)
    # score distillation (DiffusioNeRF, DreamFusion): d loss / d patch = gradient / numel
    return (gradient * patch).sum() / patch.numel()


def smoothness_patch_loss(scene: SceneRepresentation, cameras: Cameras, size: int,
                          generator: torch.Generator) -> torch.Tensor:
    """Render a random size x size patch of a random camera with gradients; `inverse_depth_roughness` of it."""
    patch_rays = _random_patch(scene, cameras, size, generator)
    if patch_rays is None:
        return torch.zeros(())
    rays, i = patch_rays
    out = render_rays(scene, rays, jitter=torch.rand(len(rays), generator=generator))
    # OpenGL cameras look down -z; the scene frame only rotates and scales uniformly, so depth x cosine is the
    # z-depth up to one factor for the whole patch, which the roughness's normalisation cancels
    forward = -cameras.world_from_camera[i, :3, 2].to(rays.directions.dtype)
    return inverse_depth_roughness(inverse_z_depth(out.depth, rays.directions, forward).reshape(size, size),
                                   out.opacity.reshape(size, size))


def pseudo_view_term(config: RefineConfig, step: RefineStep) -> torch.Tensor | None:
    """MSE on pixels of the fixed views (Difix3D+'s pseudo-ground-truth), down-weighted."""
    if not len(step.pseudo) or step.polishing:
        return None
    batch = step.pseudo.sample(config.pseudo_rays, step.generator, config.pseudo_masked_only)
    if batch is None:
        return None
    image, xy, target = batch
    rays = rays_to_scene(camera_rays(step.pseudo.cameras, image, xy), step.representation.scene_from_world)
    out = render_rays(step.representation, rays, jitter=torch.rand(len(image), generator=step.generator))
    return config.pseudo_weight * torch.mean((out.rgb - target) ** 2)


def visibility_term(config: RefineConfig, step: RefineStep) -> torch.Tensor | None:
    """Nerfbusters' visibility loss: no density where neither a photo nor a fixed pixel looked."""
    if not (config.geometric and config.visibility_weight > 0):
        return None
    term = visibility_loss(step.representation, step.capture, config.visibility_points, step.generator,
                           also_seen=step.also_seen)
    return config.visibility_weight * term.loss


def smoothness_term(config: RefineConfig, step: RefineStep) -> torch.Tensor | None:
    if not (config.geometric and config.smoothness_weight > 0) or step.polishing:
        return None
    return config.smoothness_weight * smoothness_patch_loss(step.representation, step.keyframes,
                                                            config.smoothness_patch, step.generator)


def score_term(config: RefineConfig, step: RefineStep) -> torch.Tensor | None:
    if config.score_weight <= 0 or step.done % config.score_every != 0 or step.polishing:
        return None
    return config.score_weight * score_patch_loss(step.representation, step.round_cameras, step.prior, step.generator)


RefineTerm = Callable[[RefineConfig, RefineStep], "torch.Tensor | None"]

REFINE_TERMS: tuple[RefineTerm, ...] = (pseudo_view_term, visibility_term, smoothness_term, score_term)
