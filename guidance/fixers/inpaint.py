"""Classical hole filling (OpenCV's Telea fast marching): the starting colours of the patch prior's fix, and on
its own the "inpaint" fixer, which repaints holes without any diffusion step.

The "inpaint" method exists so that what the patch prior's denoising step adds over plain inpainting can be
measured (bench/guidance_real.py runs both from the same base scene); it needs no model and no training.
"""

from __future__ import annotations

import numpy as np
import torch

from guidance.fixers.base import BuiltFixer, Fixer, FixerMethod, FixerRequest
from guidance.masks import MaskConfig


def inpaint_holes(rgb: torch.Tensor, mask: torch.Tensor, radius_px: int = 3) -> torch.Tensor:
    """Fill the masked pixels of rgb [H, W, 3] in [0, 1] from their surroundings; others are returned unchanged."""
    import cv2

    if not mask.any():
        return rgb.clone()
    image = (rgb.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    filled = cv2.inpaint(image, mask.numpy().astype(np.uint8), radius_px, cv2.INPAINT_TELEA)
    out = torch.from_numpy(filled).float() / 255.0
    return torch.where(mask[..., None], out, rgb)


def inpaint_fixer() -> Fixer:
    """A fixer that fills the masked pixels by Telea inpainting alone (deterministic: the seed is unused)."""

    def fix(rgb: torch.Tensor, mask: torch.Tensor, seed: int) -> torch.Tensor:
        return inpaint_holes(rgb, mask)

    return fix


def _build(request: FixerRequest) -> BuiltFixer:
    return BuiltFixer(inpaint_fixer())


METHOD = FixerMethod("inpaint", MaskConfig(cues=("holes",)), _build)
"""Holes only, the same mask as the patch prior's fixer ("prior"), so the two differ only by the diffusion step."""
