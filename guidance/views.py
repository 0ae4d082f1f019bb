"""Rendering helpers guidance needs: views with shifted samples (to see whether depth is stable), and
per-sample compositing weights (to measure floaters against true depth).

Both use the render package's own functions; nothing is re-derived.
"""

from __future__ import annotations

import torch

from render.cameras import Cameras, Rays, image_rays
from render.render import DEFAULT_CHUNK_RAYS, Image, Renderable, march, rays_to_scene, render_camera
from render.representation import SceneRepresentation
from render.volume import accumulate, render_weights

RenderedView = Image
"""A rendered view: rgb [H, W, 3], depth [H, W] (world units along the ray), opacity [H, W]."""


def render_view(scene: SceneRepresentation, cameras: Cameras, index: int, jitter: float | None = None,
                chunk_rays: int = DEFAULT_CHUNK_RAYS) -> RenderedView:
    """`render_camera`, with every ray's samples shifted by `jitter` in [0, 1) of a step (None: 0.5)."""
    return render_camera(scene, cameras, index, chunk_rays, jitter=jitter)


@torch.no_grad()
def weight_in_front(renderable: Renderable, cameras: Cameras, index: int, limit_depth: torch.Tensor,
                    chunk_rays: int = DEFAULT_CHUNK_RAYS) -> torch.Tensor:
    """Compositing weight [H, W] of samples nearer than `limit_depth` [H, W] (world units along the ray)."""
    rays = image_rays(cameras, index)
    rays = rays_to_scene(rays, renderable.scene_from_world.to(rays.origins.dtype))
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
