"""The one progress-and-cancel callback every long job takes (training, poses, rendering, refinement).

A job calls `callback(ProgressEvent(...))` as it goes. To cancel, the callback raises `Cancelled`: the job
keeps what it can (a checkpoint, cached frames), writes nothing half-done, and lets `Cancelled` propagate.
The CLI turns events into a progress bar; the studio writes them to the session's job file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    """What is happening, in words a user reads ("training", "poses: matching features", "rendering frames")."""
    done: int = 0
    """Units finished (steps, frames, photos)."""
    total: int = 0
    """Units in all; 0 when unknown."""
    eta_s: float | None = None
    """Seconds left, when the job can tell."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Numbers worth showing live (loss, psnr, rays_per_s, ...)."""
    snapshot: Any = None
    """The object being built (the Scene during training), for live previews; read it, never change it."""


ProgressCallback = Callable[[ProgressEvent], None]


class Cancelled(Exception):
    """Raised by a progress callback to stop a job; the job saves what it can and re-raises it."""


def report(callback: ProgressCallback | None, stage: str, done: int = 0, total: int = 0, **extra: Any) -> None:
    """Send one event if there is a callback (jobs call this instead of checking for None each time)."""
    if callback is not None:
        callback(ProgressEvent(stage, done, total, **extra))
