"""Widget values (numbers that may be blank, NaN or text) as the typed values the steps take."""

from __future__ import annotations

import math

from vista_core.errors import VistaError


def blank(value) -> bool:
    """What an emptied form field sends: None, whitespace, or NaN (a cleared gr.Number)."""
    return value is None or (isinstance(value, str) and not value.strip()) or \
        (isinstance(value, float) and math.isnan(value))


def number(value, what: str, low: float, high: float, optional: bool = False) -> float | None:
    """A value from a form field as a finite float in [low, high] (None if optional and blank)."""
    if blank(value):
        if optional:
            return None
        raise VistaError(f"{what}: empty; give a number between {low:g} and {high:g}")
    try:
        result = float(value)
    except (TypeError, ValueError) as error:
        raise VistaError(f"{what}: {value!r} is not a number") from error
    if not (math.isfinite(result) and low <= result <= high):
        raise VistaError(f"{what} must be between {low:g} and {high:g}, got {value}")
    return result


def check_seconds(seconds) -> float:
    return number(seconds, "path length (seconds)", 0.5, 600)


def check_size(width, height) -> tuple[int, int]:
    """A render resolution from the two fields, rounded up to even sides."""
    try:
        w, h = int(width), int(height)
    except (TypeError, ValueError) as error:
        raise VistaError(f"resolution must be two whole numbers, got {width} x {height}") from error
    if not (16 <= w <= 7680 and 16 <= h <= 4320):
        raise VistaError(f"resolution {w} x {h} is outside 16 x 16 .. 7680 x 4320")
    return w + w % 2, h + h % 2  # H.264 (yuv420p) needs even sides
