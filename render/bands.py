"""One frame of any size in bounded memory: `render_camera` a band of rows at a time, optionally supersampled."""

from __future__ import annotations

import numpy as np
import torch

from render.cameras import Cameras
from render.config import DEFAULT_CHUNK_RAYS
from render.render import Image, render_camera
from render.representation import SceneRepresentation


def _band_camera(cameras: Cameras, index: int, row0: int, rows: int) -> Cameras:
    """Camera `index` cropped to rows [row0, row0 + rows): same rays, fewer of them."""
    one = cameras[index]
    return Cameras(one.world_from_camera, one.fx, one.fy, one.cx, one.cy - row0, cameras.width, rows,
                   one.distortion)


def render_frame(renderable: SceneRepresentation, cameras: Cameras, index: int, band_pixels: int = 1 << 16,
                 chunk_rays: int = DEFAULT_CHUNK_RAYS, supersample: int = 1) -> Image:
    """`render_camera` a band of rows at a time, so a frame of any size needs bounded memory; with
    `supersample` s > 1, s x s rays per pixel, box-filtered band by band (colour and opacity are averaged,
    depth is averaged weighted by opacity)."""
    s = supersample
    fine = cameras[index].scaled(s) if s > 1 else cameras[index]
    rows = max(s, band_pixels // fine.width // s * s)  # whole output rows per band
    parts = [_box_filter(render_camera(renderable, _band_camera(fine, 0, row0, min(rows, fine.height - row0)), 0,
                                       chunk_rays), s)
             for row0 in range(0, fine.height, rows)]
    return Image(torch.cat([p.rgb for p in parts]), torch.cat([p.depth for p in parts]),
                 torch.cat([p.opacity for p in parts]))


def _box_filter(image: Image, s: int) -> Image:
    """Average s x s blocks of a render [s*h, s*w]; depth weighted by opacity (an empty ray's depth means nothing)."""
    if s == 1:
        return image

    def box(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[0] // s, x.shape[1] // s
        return x.reshape(h, s, w, s, *x.shape[2:]).mean(dim=(1, 3))

    opacity = box(image.opacity)
    depth = box(image.depth * image.opacity) / opacity.clamp(min=1e-6)
    return Image(box(image.rgb), torch.where(opacity > 1e-6, depth, box(image.depth)), opacity)


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()

