"""Classical hole filling (OpenCV's Telea fast marching): the starting colours of the patch prior's fix."""

from __future__ import annotations

import numpy as np
import torch


def inpaint_holes(rgb: torch.Tensor, mask: torch.Tensor, radius_px: int = 3) -> torch.Tensor:
    """Fill the masked pixels of rgb [H, W, 3] in [0, 1] from their surroundings; others are returned unchanged."""
    import cv2

    if not mask.any():
        return rgb.clone()
    image = (rgb.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    filled = cv2.inpaint(image, mask.numpy().astype(np.uint8), radius_px, cv2.INPAINT_TELEA)
    out = torch.from_numpy(filled).float() / 255.0
    return torch.where(mask[..., None], out, rgb)
