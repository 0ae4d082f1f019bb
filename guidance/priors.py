"""Geometric priors that remove floaters without any learned model.

- Visibility / free-space loss (Nerfbusters, Warburg et al. 2023): density at points that no
  supervising camera sees is pushed to zero, because nothing there was ever observed; hash-grid
  collisions otherwise leave semi-transparent junk exactly where a new camera path looks.
- Depth smoothness on patches of unphotographed views (RegNeRF, Niemeyer et al. 2022), in a form that
  leaves planes alone (`inverse_depth_roughness`): texture spread through a fuzzy layer along the
  training rays streaks and flickers once a new camera looks at it from higher up.
- Distortion loss (mip-NeRF 360, Barron et al. 2022): pulls each ray's weights into one compact
  surface; it is `render.volume.distortion_loss`, computed by `render_rays(with_distortion=True)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from guidance.masks import covering_cameras, project
from render.cameras import Cameras
from render.render import Renderable


def uncontract(contracted: torch.Tensor) -> torch.Tensor:
    """Inverse of mip-NeRF 360's L-inf contraction (`render.nerfstudio_parts.contract`) on [..., 3] in (-2, 2)."""
    norm = contracted.abs().amax(-1, keepdim=True).clamp(min=1e-9)
    outside = norm > 1
    radius = 1.0 / (2.0 - norm.clamp(max=2 - 1e-4))
    return torch.where(outside, contracted / norm * radius, contracted)


def scene_from_field(u: torch.Tensor, kind: str) -> torch.Tensor:
    """Inverse of `render.render.field_coords`: the field's unit cube -> scene coordinates."""
    if kind == "object":
        return u * 2.0 - 1.0
    return uncontract(u * 4.0 - 2.0)


def world_from_scene(points: torch.Tensor, scene_from_world: torch.Tensor) -> torch.Tensor:
    linear = scene_from_world[:3, :3]
    return torch.linalg.solve(linear, (points - scene_from_world[:3, 3]).T).T


@dataclass
class SupervisedRays:
    """The pixels of pseudo views that a loss trains on: a point they project into counts as seen.

    Only these, not the pseudo views' whole frustums: elsewhere nothing supervises the space, and counting it
    as seen let floaters stay in front of the photographed surfaces (bench/guidance.py)."""

    cameras: Cameras
    supervised: torch.Tensor  # [K, H, W] bool

    def covers(self, points: torch.Tensor) -> torch.Tensor:
        """[P, 3] world points -> [P] bool."""
        u, v, z = project(points, self.cameras)  # [K, P]
        k, h, w = self.supervised.shape
        inside = (z > 1e-6) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        image = torch.arange(k)[:, None].expand_as(u)
        return (inside & self.supervised[image, v.clamp(0, h - 1).long(), u.clamp(0, w - 1).long()]).any(0)


@dataclass
class VisibilityTerm:
    loss: torch.Tensor  # scalar, differentiable
    unseen_fraction: float  # of the sampled points


def sample_region(renderable: Renderable, n_points: int, generator: torch.Generator,
                  extent_scene: float = 2.0) -> torch.Tensor:
    """Uniform points [P, 3] in field coordinates: the whole box for objects; for unbounded scenes the part of
    the contracted cube within `extent_scene` scene units of the centre (where cameras and floaters are)."""
    u = torch.rand(n_points, 3, generator=generator)
    if renderable.kind == "object":
        return u
    # contracted radius of extent_scene, mapped to the unit cube
    half = (2.0 - 1.0 / extent_scene if extent_scene > 1 else extent_scene) / 4.0
    return 0.5 + (u - 0.5) * 2 * half


def visibility_loss(renderable: Renderable, seen_by: Cameras, n_points: int, generator: torch.Generator,
                    min_cameras: int = 1, also_seen: SupervisedRays | None = None) -> VisibilityTerm:
    """Mean optical thickness (sigma * marching step) of sampled points that fewer than `min_cameras` of
    `seen_by` (world coordinates) see, and that `also_seen` (pseudo views' supervised rays) does not cover;
    averaged over all sampled points, so it shrinks as coverage grows."""
    u = sample_region(renderable, n_points, generator)
    world = world_from_scene(scene_from_field(u, renderable.kind), renderable.scene_from_world)
    unseen = covering_cameras(world, seen_by) < min_cameras
    if also_seen is not None and unseen.any():
        unseen[unseen.clone()] = ~also_seen.covers(world[unseen])
    if not unseen.any():
        return VisibilityTerm(torch.zeros(()), 0.0)
    sigma, _ = renderable.field.density_and_features(u[unseen])
    thickness = sigma * renderable.step_size()
    return VisibilityTerm(thickness.sum() / n_points, float(unseen.float().mean()))


def inverse_z_depth(depth: torch.Tensor, directions: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """1 / z-depth [N] from distances along rays [N] with directions [N, 3] and the camera's viewing axis [3]."""
    cosine = (directions @ forward) / (directions.norm(dim=-1) * forward.norm())
    return 1.0 / (depth * cosine).clamp(min=1e-3)


def inverse_depth_roughness(inverse_z: torch.Tensor, opacity: torch.Tensor | None = None, spare: float = 0.01,
                            cap: float = 0.25) -> torch.Tensor:
    """Roughness of a patch's inverse z-depth [S, S]: the mean penalty of its second differences along x and y,
    each divided by the patch's mean inverse depth (so a weight does not depend on the scene's scale).

    Inverse z-depth is affine in pixel coordinates on any plane, so a plane costs nothing, at any slant;
    RegNeRF's first differences of depth would flatten the ground toward the camera. The penalty is
    sqrt(x^2 + spare^2) - spare, capped at `cap`: L1 on fuzz (a few percent of the depth), nearly nothing on
    the gentle curvature of a real surface (below `spare`), and a constant without gradient across a real
    depth edge (above `cap`), so that neither is flattened. On the guidance benchmark's three seeds the plain
    L1 of the first version cost 0.1 dB more interpolation PSNR (bench/GUIDANCE_RESULTS.md).
    `opacity` [S, S] (no gradient) discounts rays that hit little: their depth means nothing (an object's empty
    background)."""
    w = torch.ones_like(inverse_z) if opacity is None else opacity.detach().clamp(0, 1)
    inverse_z = inverse_z * (w > 0)  # 1 / 0-depth on empty rays must not reach the scale
    second_x = (inverse_z[:, 2:] - 2 * inverse_z[:, 1:-1] + inverse_z[:, :-2]) * (w[:, 2:] * w[:, 1:-1] * w[:, :-2])
    second_y = (inverse_z[2:, :] - 2 * inverse_z[1:-1, :] + inverse_z[:-2, :]) * (w[2:, :] * w[1:-1, :] * w[:-2, :])
    scale = ((inverse_z * w).sum() / w.sum().clamp(min=1e-6)).detach().clamp(min=1e-6)

    def penalty(second: torch.Tensor) -> torch.Tensor:
        relative = second / scale
        return ((relative * relative + spare * spare).sqrt() - spare).clamp(max=cap).mean()

    return penalty(second_x) + penalty(second_y)
