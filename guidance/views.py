"""Rendering helpers guidance needs beyond `render.render.render_camera`: jittered renders (to see
whether depth is stable) and per-sample compositing weights (to measure floaters against true depth).

Both use the render package's own marcher and volume-rendering functions; nothing is re-derived.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from render.cameras import Cameras, Rays, image_rays
from render.render import DEFAULT_CHUNK_RAYS, Renderable, march, render_rays, rays_to_scene
from render.volume import accumulate, render_weights


@dataclass
class RenderedView:
    rgb: torch.Tensor  # [H, W, 3]
    depth: torch.Tensor  # [H, W] world units along the ray
    opacity: torch.Tensor  # [H, W]


def _scene_rays(renderable: Renderable, cameras: Cameras, index: int) -> Rays:
    rays = image_rays(cameras, index)
    return rays_to_scene(rays, renderable.scene_from_world.to(rays.origins.dtype))


@torch.no_grad()
def render_view(renderable: Renderable, cameras: Cameras, index: int, jitter: float | None = None,
                chunk_rays: int = DEFAULT_CHUNK_RAYS) -> RenderedView:
    """Like `render_camera`, with every ray's samples shifted by `jitter` in [0, 1) of a step (None: 0.5)."""
    rays = _scene_rays(renderable, cameras, index)
    rgb, depth, opacity = [], [], []
    for start in range(0, len(rays), chunk_rays):
        chunk = Rays(rays.origins[start:start + chunk_rays], rays.directions[start:start + chunk_rays])
        shift = None if jitter is None else torch.full((len(chunk),), float(jitter))
        out = render_rays(renderable, chunk, jitter=shift)
        rgb.append(out.rgb)
        depth.append(out.depth)
        opacity.append(out.opacity)
    h, w = cameras.height, cameras.width
    return RenderedView(torch.cat(rgb).clamp(0, 1).reshape(h, w, 3),
                        (torch.cat(depth) / renderable.scale).reshape(h, w), torch.cat(opacity).reshape(h, w))


@torch.no_grad()
def weight_in_front(renderable: Renderable, cameras: Cameras, index: int, limit_depth: torch.Tensor,
                    chunk_rays: int = DEFAULT_CHUNK_RAYS) -> torch.Tensor:
    """Compositing weight [H, W] of samples nearer than `limit_depth` [H, W] (world units along the ray)."""
    rays = _scene_rays(renderable, cameras, index)
    limit = limit_depth.reshape(-1) * renderable.scale  # world -> scene units
    out = []
    for start in range(0, len(rays), chunk_rays):
        chunk = Rays(rays.origins[start:start + chunk_rays], rays.directions[start:start + chunk_rays])
        samples = march(renderable, chunk, None)
        sigma, _ = renderable.field.density_and_features(samples.u)
        weights, _, _ = render_weights(sigma, samples.t_ends - samples.t_starts, samples.ray_indices, len(chunk))
        t_mid = (samples.t_starts + samples.t_ends) * 0.5
        front = (t_mid < limit[start:start + chunk_rays][samples.ray_indices]).float()
        out.append(accumulate(weights * front, None, samples.ray_indices, len(chunk)))
    return torch.cat(out).reshape(cameras.height, cameras.width)
