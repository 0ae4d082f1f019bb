"""Small PNG renders the studio shows (the live training preview, refinement's before/after frames)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage

PREVIEW_SIDE_PX = 160
"""Longest side of the live training preview (before/after frames are twice that)."""


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB image (uint8, or floats in [0, 1]) as PNG bytes."""
    buffer = io.BytesIO()
    array = rgb if rgb.dtype == np.uint8 else (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    PILImage.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
