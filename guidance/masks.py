"""Which pixels of a rendered novel view the field is unsure about, and may be replaced by a fixer.

Three cues, any of which flags a pixel (Difix3D+ and Nerfbusters both restrict their fixes this
way; fixing whole frames at high noise measurably hurts):
- low opacity: the ray leaves the field without meeting a surface (a hole);
- few covering cameras: the surface point the pixel shows lies inside fewer than `min_cameras`
  training frustums, so nothing constrained it (Nerfbusters' visibility);
- unstable depth: moving every sample by half a marching step moves the depth by more than
  `max_depth_change` of itself — density is smeared along the ray (floaters, fog).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from render.cameras import Cameras, image_rays


@dataclass(frozen=True)
class MaskConfig:
    """Thresholds of the uncertainty mask."""

    min_opacity: float = 0.9
    """Pixels whose accumulated opacity is below this are holes."""
    min_cameras: int = 2
    """Surface points seen by fewer training cameras than this are unconstrained."""
    max_depth_change: float = 0.08
    """Relative depth change between two sample jitters above which depth is unstable."""
    max_hole_area: float = 0.02
    """Connected low-opacity regions larger than this share of the frame are not holes: they are what no photo
    showed (skull-66's held-out side: one region of 44-71% of each path view), which inpainting can only fill by
    smearing the colours at its border over it (there: held-out path 19.0 -> 14.7 dB, seed 0). fox-small's holes are
    below 1% each. 1: every low-opacity pixel is a hole."""
    dilate_px: int = 1
    """Grow the mask by this many pixels so fixes blend at the seams."""
    cues: tuple[str, ...] = ("holes", "uncovered", "unstable")
    """Which cues flag a pixel for the fixer."""

    def __post_init__(self) -> None:
        if not 0.0 < self.max_hole_area <= 1.0:
            raise ValueError(f"max_hole_area must be in (0, 1], got {self.max_hole_area}")
        unknown = set(self.cues) - {"holes", "uncovered", "unstable"}
        if unknown or not self.cues:
            raise ValueError(f"mask cues must be some of holes, uncovered, unstable; got {self.cues}")


@dataclass
class UncertaintyMask:
    low_opacity: torch.Tensor  # [H, W] bool
    uncovered: torch.Tensor  # [H, W] bool
    unstable: torch.Tensor  # [H, W] bool
    mask: torch.Tensor  # [H, W] bool: the union, dilated

    @property
    def fraction(self) -> float:
        return float(self.mask.float().mean())


def project(points: torch.Tensor, cameras: Cameras) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World points [P, 3] -> pixel x, pixel y and depth in front of each camera, all [N, P] (`Cameras.project`)."""
    seen = cameras.project(points)
    return seen.pixels[..., 0], seen.pixels[..., 1], seen.depth


def covering_cameras(points: torch.Tensor, cameras: Cameras, margin_px: float = 0.0) -> torch.Tensor:
    """How many of `cameras` see each world point [P, 3] (in front of the camera, inside the image) -> [P] int.

    Occlusion is ignored: this is the frustum count Nerfbusters' visibility uses."""
    seen = cameras.project(points)
    u, v = seen.pixels[..., 0], seen.pixels[..., 1]
    inside = (u >= -margin_px) & (u <= cameras.width + margin_px) & (v >= -margin_px) & (v <= cameras.height + margin_px)
    return (seen.in_front & inside).sum(0)


def small_regions(mask: torch.Tensor, max_area: float) -> torch.Tensor:
    """The 8-connected regions of `mask` [H, W] covering at most `max_area` of the frame each (scipy labels them)."""
    if max_area >= 1.0 or not bool(mask.any()):
        return mask
    from scipy import ndimage

    labels, count = ndimage.label(mask.numpy(), structure=np.ones((3, 3), dtype=bool))
    areas = np.bincount(labels.reshape(-1), minlength=count + 1)
    keep = areas <= max_area * mask.numel()
    keep[0] = False
    return torch.from_numpy(keep[labels])


def dilate(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    if pixels <= 0:
        return mask
    k = 2 * pixels + 1
    return torch.nn.functional.max_pool2d(mask[None, None].float(), k, stride=1, padding=pixels)[0, 0] > 0


def uncertainty_mask(rgb_depth_opacity, jittered_depth: torch.Tensor | None, cameras: Cameras, index: int,
                     capture: Cameras, config: MaskConfig = MaskConfig(), empty_is_valid: bool = False) -> UncertaintyMask:
    """The mask of view `index` of `cameras`, from its render (anything with .depth [H, W] and .opacity [H, W]),
    the depth of a second render with shifted samples (None: the unstable cue is not used), and the training
    cameras `capture`.

    `empty_is_valid`: an object capture (photos with alpha) where a ray that meets nothing is right, not a hole;
    low opacity then only excludes a pixel from the other two cues."""
    view = rgb_depth_opacity
    h, w = cameras.height, cameras.width
    low_opacity = view.opacity < config.min_opacity
    rays = image_rays(cameras, index)
    holes = torch.zeros_like(low_opacity) if empty_is_valid else small_regions(low_opacity, config.max_hole_area)
    points = rays.origins + rays.directions * view.depth.reshape(-1, 1)
    uncovered = (covering_cameras(points, capture) < config.min_cameras).reshape(h, w) & ~low_opacity
    if jittered_depth is None:
        if "unstable" in config.cues:
            raise ValueError("the unstable-depth cue needs the depth of a second, shifted render")
        unstable = torch.zeros_like(low_opacity)
    else:
        change = (view.depth - jittered_depth).abs() / torch.maximum(view.depth, jittered_depth).clamp(min=1e-6)
        unstable = (change > config.max_depth_change) & ~low_opacity
    flagged = torch.zeros_like(low_opacity)
    for cue, where in (("holes", holes), ("uncovered", uncovered), ("unstable", unstable)):
        if cue in config.cues:
            flagged = flagged | where
    mask = dilate(flagged, config.dilate_px)
    return UncertaintyMask(holes, uncovered, unstable, mask)
