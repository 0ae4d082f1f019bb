"""Frames for compositing: a render's colour, alpha and depth as the alpha formats store them (pure numpy).

A render's colour is composited on the scene's background: C = c + (1 - a) * bg, where c is the premultiplied
colour the rays gathered (NeRF's sum of weights times colour, so 0 <= c <= a) and a the accumulated opacity
(`render.render.Image.opacity`). The alpha formats undo the background exactly: c = C - (1 - a) * bg.

Conventions, one per format, as compositors read them:
- 16-bit PNG and ProRes 4444: straight (unassociated) alpha, display-referred sRGB values: the PNG specification
  defines PNG alpha as straight, and FFmpeg/Apple treat ProRes 4444 alpha the same way. Where a = 0 the colour is
  undefined for a compositor; Vista stores the scene's background there, so the colour channels alone are the
  same picture as the MP4 (and carry the whole-frame watermark).
- OpenEXR: premultiplied (associated) alpha, the OpenEXR convention, in linear light (sRGB primaries, the sRGB
  transfer curve removed: EXR readers such as Nuke and Blender assume scene-linear values).
- Depth (EXR `Z`): planar depth, the distance along the camera's optical axis in world units, as Blender's and
  Nuke's Z passes are; `EMPTY_DEPTH` where nothing was hit (Blender's background value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from render.cameras import Cameras

EMPTY_DEPTH = 1e10
"""Z where a pixel's opacity is below `EMPTY_OPACITY` (Blender writes 1e10 for the background in its Z pass)."""
EMPTY_OPACITY = 1e-6


@dataclass(frozen=True)
class AlphaFrame:
    """One frame for the alpha formats: straight sRGB colour, opacity and planar depth, float32."""

    straight: np.ndarray
    """[H, W, 3] in [0, 1]: colour before alpha, display sRGB; the scene's background where alpha is 0."""
    alpha: np.ndarray
    """[H, W] in [0, 1]: the render's accumulated opacity."""
    depth_z: np.ndarray
    """[H, W]: planar depth in world units; EMPTY_DEPTH where nothing was hit."""


def premultiplied(color: np.ndarray, opacity: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The premultiplied colour c = C - (1 - a) * bg of a render C composited on `background` [3]."""
    alpha = np.clip(opacity, 0.0, 1.0)[..., None]
    return np.clip(color - (1.0 - alpha) * np.asarray(background, dtype=np.float32), 0.0, alpha)


def straight_color(color: np.ndarray, opacity: np.ndarray, background: np.ndarray) -> np.ndarray:
    """c / a where a > 0; the background where a = 0 (undefined for compositors; keeps the picture whole)."""
    alpha = np.clip(opacity, 0.0, 1.0)[..., None]
    straight = premultiplied(color, opacity, background) / np.maximum(alpha, EMPTY_OPACITY)
    background3 = np.broadcast_to(np.asarray(background, dtype=np.float32), straight.shape)
    return np.where(alpha > EMPTY_OPACITY, np.clip(straight, 0.0, 1.0), background3).astype(np.float32)


def planar_depth(depth: np.ndarray, opacity: np.ndarray, cameras: Cameras, index: int) -> np.ndarray:
    """Distance along each ray (what `render_camera` returns, world units) -> distance along the optical axis.

    The ray through pixel (x, y) has direction (u, v, -1) / |(u, v, -1)| in camera axes, u = (x + 0.5 - cx) / fx,
    so its planar depth is the ray distance over that norm."""
    height, width = depth.shape
    fx, fy = float(cameras.fx[index]), float(cameras.fy[index])
    cx, cy = float(cameras.cx[index]), float(cameras.cy[index])
    u = (np.arange(width, dtype=np.float64) + 0.5 - cx) / fx
    v = (np.arange(height, dtype=np.float64) + 0.5 - cy) / fy
    cosine = 1.0 / np.sqrt(1.0 + u[None, :] ** 2 + v[:, None] ** 2)
    z = depth * cosine
    return np.where(opacity >= EMPTY_OPACITY, z, EMPTY_DEPTH).astype(np.float32)


def alpha_frame(color: np.ndarray, depth: np.ndarray, opacity: np.ndarray, background: np.ndarray,
                cameras: Cameras, index: int) -> AlphaFrame:
    """A cached render (float colour on `background`, ray depth, opacity) as the alpha formats see it."""
    return AlphaFrame(straight_color(color, opacity, background), np.clip(opacity, 0, 1).astype(np.float32),
                      planar_depth(depth, opacity, cameras, index))


def with_marks(frame: AlphaFrame, shown8: np.ndarray, marked8: np.ndarray) -> AlphaFrame:
    """Carry what post-processing did to the 8-bit picture (`shown8` -> `marked8`: the invisible watermark, the
    visible label) over to the straight colour at the 8-bit scale, so a 16-bit or 10-bit file holds the same mark
    as the 8-bit MP4 would, without the 8-bit rounding of the picture under it. Where the visible label changed
    pixels, alpha becomes 1 so the label survives compositing."""
    change = marked8.astype(np.float32) - shown8.astype(np.float32)
    straight = np.clip(frame.straight + change / 255.0, 0.0, 1.0)
    alpha = frame.alpha
    labelled = np.abs(change).max(axis=-1) > 8  # the watermark changes a pixel by a few levels; the label by more
    if labelled.any():
        straight = np.where(labelled[..., None], marked8.astype(np.float32) / 255.0, straight)
        alpha = np.where(labelled, 1.0, alpha).astype(np.float32)
    return AlphaFrame(straight.astype(np.float32), alpha, frame.depth_z)


def to_uint16(values: np.ndarray) -> np.ndarray:
    return np.round(np.clip(values, 0.0, 1.0) * 65535.0).astype(np.uint16)


def rgba16(frame: AlphaFrame) -> np.ndarray:
    """Straight RGBA, 16 bits per channel [H, W, 4] (PNG, and ProRes before its 10-bit conversion)."""
    return to_uint16(np.concatenate([frame.straight, frame.alpha[..., None]], axis=-1))


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB decoding (the piecewise curve, not a 2.2 gamma)."""
    values = np.asarray(values, dtype=np.float32)
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    values = np.clip(np.asarray(values, dtype=np.float32), 0.0, None)
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * values ** (1 / 2.4) - 0.055).astype(np.float32)


def linear_premultiplied(frame: AlphaFrame) -> np.ndarray:
    """EXR's RGBA [H, W, 4] float32: linear colour times alpha, and alpha."""
    rgb = srgb_to_linear(frame.straight) * frame.alpha[..., None]
    return np.concatenate([rgb, frame.alpha[..., None]], axis=-1)


def display_from_exr(rgba: np.ndarray) -> np.ndarray:
    """An EXR's premultiplied linear RGBA -> uint8 straight sRGB (black where alpha is 0), as a viewer shows it."""
    alpha = rgba[..., 3:4]
    straight = np.where(alpha > EMPTY_OPACITY, rgba[..., :3] / np.maximum(alpha, EMPTY_OPACITY), 0.0)
    return np.round(np.clip(linear_to_srgb(straight), 0, 1) * 255).astype(np.uint8)
