"""Temporal consistency of a rendered path: how much each frame changes from the one before, once camera
motion is undone.

Each foreground pixel of frame b is lifted to 3D with b's rendered depth, projected into frame a and compared
with a's colour there: the warping error of Lai et al. 2018 (Learning Blind Video Temporal Consistency), which
warps by optical flow, with the rendered depth giving the exact warp instead. A static scene rendered
consistently scores near 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from render.cameras import Cameras, image_rays

FrameLoader = Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]]  # index -> (rgb, depth, opacity)


@dataclass
class FlickerReport:
    """Temporal consistency of a rendered path (values in [0, 1] colour units, x255 for 8-bit levels)."""

    per_pair: list[float]
    """Mean |frame[k+1] - warp(frame[k])| over pixels seen in both frames, for each consecutive pair."""
    unwarped_per_pair: list[float]
    """The same without warping (how much the picture moves), for scale."""
    valid_fraction: list[float]
    """Share of each frame's pixels compared (foreground, visible in both, not occluded)."""

    @property
    def mean(self) -> float:
        return float(np.mean(self.per_pair)) if self.per_pair else 0.0

    @property
    def max(self) -> float:
        return float(np.max(self.per_pair)) if self.per_pair else 0.0

    @property
    def unwarped_mean(self) -> float:
        return float(np.mean(self.unwarped_per_pair)) if self.unwarped_per_pair else 0.0

    def summary(self) -> str:
        if not self.per_pair:
            return "flicker: needs at least two frames"
        return (f"flicker (depth-warped mean abs change between consecutive frames): mean {self.mean * 255:.2f}, "
                f"max {self.max * 255:.2f} 8-bit levels (unwarped {self.unwarped_mean * 255:.2f}; "
                f"{np.mean(self.valid_fraction) * 100:.0f}% of pixels compared)")

    def to_dict(self) -> dict:
        return {"mean": self.mean, "max": self.max, "unwarped_mean": self.unwarped_mean,
                "per_pair": self.per_pair, "unwarped_per_pair": self.unwarped_per_pair,
                "valid_fraction": self.valid_fraction}


def _sample(image: torch.Tensor, pixels: torch.Tensor, width: int, height: int, mode: str) -> torch.Tensor:
    """Sample image [H, W, C] at continuous pixel positions [P, 2] (grid_sample, align_corners=False)."""
    grid = torch.stack([pixels[:, 0] / width * 2 - 1, pixels[:, 1] / height * 2 - 1], dim=-1)
    out = torch.nn.functional.grid_sample(image.permute(2, 0, 1)[None], grid[None, None], mode=mode,
                                          padding_mode="border", align_corners=False)
    return out[0, :, 0].T


def warp_error(cameras: Cameras, a: int, b: int, rgb_a: np.ndarray, rgb_b: np.ndarray, depth_a: np.ndarray,
               depth_b: np.ndarray, opacity_a: np.ndarray, opacity_b: np.ndarray,
               depth_tolerance: float = 0.03) -> tuple[float, float, float]:
    """Mean |rgb_b - rgb_a warped onto b| over b's foreground pixels also visible in a.

    Each foreground pixel of b is lifted to 3D with b's rendered depth (distance along the ray), projected into
    camera a, and compared with a's colour there; pixels out of a's view or hidden in a (a's depth there is
    shorter by more than `depth_tolerance` relative) are skipped. Returns (warped error, unwarped error,
    fraction of pixels compared)."""
    h, w, device = cameras.height, cameras.width, cameras.device
    col_a = torch.tensor(rgb_a, device=device).float() / 255
    col_b = torch.tensor(rgb_b, device=device).float().reshape(-1, 3) / 255
    rays = image_rays(cameras, b)
    dist_b = torch.tensor(depth_b, device=device).reshape(-1)
    fg = torch.tensor(opacity_b, device=device).reshape(-1) > 0.5
    points = rays.origins + rays.directions * dist_b[:, None]
    seen = cameras.project(points, a)
    pixels = seen.pixels
    inside = seen.in_front & (pixels[:, 0] >= 0) & (pixels[:, 0] <= w) & (pixels[:, 1] >= 0) & (pixels[:, 1] <= h)
    aux_a = torch.stack([torch.tensor(depth_a, device=device), torch.tensor(opacity_a, device=device)], dim=-1)
    sampled_aux = _sample(aux_a, pixels, w, h, "nearest")
    dist_in_a = (points - cameras.world_from_camera[a, :, 3]).norm(dim=-1)
    visible = (sampled_aux[:, 1] > 0.5) & ((sampled_aux[:, 0] - dist_in_a).abs() <= depth_tolerance * dist_in_a)
    valid = fg & inside & visible
    unwarped = float((col_a.reshape(-1, 3) - col_b).abs().mean())
    if not bool(valid.any()):
        return 0.0, unwarped, 0.0
    warped = _sample(col_a, pixels[valid], w, h, "bilinear")
    error = float((warped - col_b[valid]).abs().mean())
    return error, unwarped, float(valid.float().mean())


def measure_flicker(cameras: Cameras, indices: list[int], load: FrameLoader) -> FlickerReport:
    """Depth-warped frame-to-frame change along a rendered path (`load(i)` gives rgb, depth, opacity)."""
    report = FlickerReport([], [], [])
    previous = load(indices[0]) if indices else None
    for a, b in zip(indices, indices[1:]):
        current = load(b)
        error, unwarped, fraction = warp_error(cameras, a, b, previous[0], current[0], previous[1], current[1],
                                               previous[2], current[2])
        report.per_pair.append(error)
        report.unwarped_per_pair.append(unwarped)
        report.valid_fraction.append(fraction)
        previous = current
    return report

