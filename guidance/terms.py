"""The terms refinement adds to the photo loss: pseudo views, visibility, depth smoothness, seen directions, the patch
score.

Each term is a function (RefineConfig, RefineStep) -> its weighted loss, or None when it does not apply
this step. `REFINE_TERMS` fixes their order: they all draw from the run's one generator, so the order
is part of the result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
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
    path: Cameras | None = None
    """Every camera of the target path (the keyframes are a few of them)."""


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


def nearest_seen_directions(points: torch.Tensor, view_directions: torch.Tensor, centres: torch.Tensor,
                            count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit directions [R, count, 3] from the `count` photo centres [C, 3] that look at each point [R, 3] from the
    directions nearest in angle to the ray's own [R, 3], nearest first, and their weights [R, count] (sum 1): each
    photo's cosine minus that of the next photo not taken, so a photo entering or leaving the set does so at weight
    0 and the mean changes continuously along a path (with equal weights it jumps where the set changes). Occlusion
    is not checked: the colour asked for is the field's, emitted toward that photo."""
    toward = points[:, None, :] - centres[None]
    toward = toward / toward.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    taken = min(count, len(centres))
    cosines, nearest = (toward * view_directions[:, None, :]).sum(-1).topk(min(count + 1, len(centres)), dim=1)
    directions = torch.gather(toward, 1, nearest[:, :taken, None].expand(-1, -1, 3))
    if cosines.shape[1] == taken:  # no photo left out: equal weights
        return directions, torch.full_like(cosines, 1.0 / taken)
    margins = cosines[:, :taken] - cosines[:, taken:]
    total = margins.sum(dim=1, keepdim=True)
    weights = torch.where(total > 1e-12, margins / total.clamp(min=1e-12), torch.full_like(margins, 1.0 / taken))
    return directions, weights


@contextlib.contextmanager
def colour_gradients_only(scene: SceneRepresentation) -> Iterator[None]:
    """Within: only the colour MLP's parameters take gradients (the geometry is held as it is)."""
    colour_mlp = getattr(getattr(scene, "field", None), "color_mlp", None)
    colour = set() if colour_mlp is None else {id(p) for p in colour_mlp.parameters()}
    frozen = [p for group in scene.parameter_groups().values() for p in group
              if id(p) not in colour and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def seen_direction_loss(scene: SceneRepresentation, capture: Cameras, cameras: Cameras, n_rays: int, count: int,
                        generator: torch.Generator, min_angle_deg: float = 0.0) -> torch.Tensor:
    """Colour of random pixels of `cameras` against the weighted mean colour the same samples show toward the `count`
    photos that saw their surface (the ray's depth) from the nearest directions (`nearest_seen_directions`), weighted
    by opacity.

    Why: the colour MLP's direction input is only constrained where photos looked from; off the capture its
    spherical harmonics extrapolate, and on skull-66's held-out side (flash photos) that alone cost the base scene
    ~0.6 dB (a render with these directions instead of the path's). Within the capture the target is the ray's own
    colour give or take the photos' spacing, so the term only pulls where the path looks from new directions. Only
    the colour MLP learns from it: with the geometry free as well, the term grew floaters whose colour matched
    (skull-66 seed 0: path 20.6 -> 16.1 dB)."""
    i = torch.randint(0, len(cameras), (n_rays,), generator=generator)
    size = torch.tensor([cameras.width, cameras.height], dtype=torch.float32)
    xy = torch.rand(n_rays, 2, generator=generator) * size
    rays = rays_to_scene(camera_rays(cameras, i, xy), scene.scene_from_world)
    jitter = torch.rand(n_rays, generator=generator)
    with colour_gradients_only(scene):  # the colour may change, not the geometry: it made floaters that matched it
        out = render_rays(scene, rays, jitter=jitter)
    with torch.no_grad():
        linear = scene.scene_from_world[:3, :3]
        centres = capture.world_from_camera[:, :3, 3].to(linear) @ linear.T + scene.scene_from_world[:3, 3]
        points = rays.origins + out.depth[:, None] * rays.directions
        seen, shares = nearest_seen_directions(points, rays.directions, centres, count)
        toward = [Rays(rays.origins, rays.directions, rays.radii, seen[:, j]) for j in range(seen.shape[1])]
        target = sum(shares[:, j, None] * render_rays(scene, r, jitter=jitter).rgb for j, r in enumerate(toward))
        weight = out.opacity.detach()
        if min_angle_deg > 0:
            angle = torch.rad2deg(torch.acos((seen[:, 0] * rays.directions).sum(-1).clamp(-1.0, 1.0)))
            weight = weight * ((angle - min_angle_deg) / min_angle_deg).clamp(0.0, 1.0)
    return torch.mean(weight[:, None] * (out.rgb - target) ** 2)


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


def seen_direction_term(config: RefineConfig, step: RefineStep) -> torch.Tensor | None:
    if not (config.geometric and config.seen_direction_weight > 0) or step.polishing:
        return None
    cameras = step.keyframes if step.path is None else step.path
    return config.seen_direction_weight * seen_direction_loss(step.representation, step.capture, cameras,
                                                              config.seen_direction_rays, config.seen_directions,
                                                              step.generator, config.seen_direction_angle)


def score_term(config: RefineConfig, step: RefineStep) -> torch.Tensor | None:
    if config.score_weight <= 0 or step.done % config.score_every != 0 or step.polishing:
        return None
    return config.score_weight * score_patch_loss(step.representation, step.round_cameras, step.prior, step.generator)


RefineTerm = Callable[[RefineConfig, RefineStep], "torch.Tensor | None"]

REFINE_TERMS: tuple[RefineTerm, ...] = (pseudo_view_term, visibility_term, smoothness_term, seen_direction_term,
                                        score_term)
