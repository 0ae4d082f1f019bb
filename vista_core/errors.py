"""The one user-facing error type, shared by every package.

A `VistaError` is a mistake the user can fix (bad input, missing file, wrong flag). The CLI and the
studio print its message as one line and never a traceback; anything else is a bug.
"""

from __future__ import annotations

import math
from typing import Any


class VistaError(Exception):
    """An error caused by the user's input; its message names the file and the problem."""


def require_finite(values: Any, where: str) -> None:
    """Raise if a nested list/number structure holds NaN or infinity."""
    stack = [values]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            if not math.isfinite(item):
                raise VistaError(f"{where}: holds NaN or infinity")
