"""Small validation helpers the request dataclasses share."""

from __future__ import annotations

import math

from vista_core.errors import VistaError


def require_choice(value: str, choices, what: str) -> None:
    """`value` must be one of `choices`; the message lists them."""
    if value not in choices:
        raise VistaError(f"unknown {what} {value!r}; choose one of {sorted(choices)}")


def is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
