"""Motion blur: a frame is the average of sub-frame renders along the path while the shutter is open.

`VideoConfig.motion_blur` is the shutter as a fraction of the frame interval (0.5: a 180-degree shutter, the film
look; 1: the shutter never closes) and `motion_blur_samples` N the sub-frames. Sub-frame k of frame f sits at frame
time f + ((k + 0.5) / N - 0.5) * shutter: N evenly spaced instants centred on the frame's time (midpoints of
equal slices of the open shutter, so no instant is counted twice between frames). Their cameras come from the
frames' cameras (render.camera_motion: through every frame, smooth between), so a recipe's cameras determine
the blur exactly; before the first frame and after the last the camera holds still.

The average is taken in linear light: a sensor integrates light, and Vista's colours are sRGB-encoded (as the
photos were), so each sub-frame is decoded with the sRGB transfer curve (IEC 61966-2-1), averaged in float, and
encoded again before the frame is quantised to 8 bits. Opacity is averaged; depth is averaged weighted by
opacity (as supersampling does: an empty ray's depth means nothing). Deterministic: no random times.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from render.bands import render_frame
from render.camera_motion import interpolate_cameras
from render.cameras import Cameras
from render.config import VideoConfig
from render.representation import Image, SceneRepresentation


def subframe_offsets(shutter: float, samples: int) -> np.ndarray:
    """Sub-frame times [N] relative to the frame, in frames (centred on 0, spanning `shutter`)."""
    return ((np.arange(samples) + 0.5) / samples - 0.5) * shutter


def subframe_cameras(cameras: Cameras, index: int, shutter: float, samples: int) -> Cameras:
    """The N cameras whose renders make blurred frame `index` of `cameras` (one camera per frame)."""
    return interpolate_cameras(cameras, index + subframe_offsets(shutter, samples))


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp(min=0) ** (1 / 2.4) - 0.055)


def average_images(images: Iterable[Image]) -> Image:
    """The shutter's average of sub-frame renders: colour in linear light, opacity, opacity-weighted depth. Summed
    one render at a time, so memory stays at two frames whatever the number of sub-frames."""
    count, rgb, opacity, weighted, depth = 0, 0.0, 0.0, 0.0, 0.0
    for image in images:
        count += 1
        rgb = rgb + srgb_to_linear(image.rgb)
        opacity = opacity + image.opacity
        weighted = weighted + image.depth * image.opacity
        depth = depth + image.depth
    opacity = opacity / count
    blended = (weighted / count) / opacity.clamp(min=1e-6)
    return Image(linear_to_srgb(rgb / count), torch.where(opacity > 1e-6, blended, depth / count), opacity)


def render_video_frame(renderable: SceneRepresentation, cameras: Cameras, index: int, config: VideoConfig) -> Image:
    """Frame `index` as the video shows it: one render (render.bands), or with `config.motion_blur` the average of
    `config.motion_blur_samples` sub-frame renders, each rendered as a frame is (bands, supersampling)."""
    if config.motion_blur <= 0:
        return render_frame(renderable, cameras, index, config.band_pixels, config.chunk_rays, config.supersample)
    subframes = subframe_cameras(cameras, index, config.motion_blur, config.motion_blur_samples)
    return average_images(render_frame(renderable, subframes, k, config.band_pixels, config.chunk_rays,
                                       config.supersample) for k in range(len(subframes)))
