"""The studio's limits: what one job, one upload and one session may use, and how many jobs may wait.

One server is shared by every browser that reaches it (2 CPU cores, one disk): each cap below ends a request
with one clear line instead of letting one session take the machine. The CLI has none of these (a user on
their own machine may run what they like). README's studio section lists them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vista_core.errors import VistaError


@dataclass(frozen=True)
class StudioLimits:
    max_build_minutes: float = 120.0
    """Longest time budget one Build may ask for."""
    max_refine_steps: int = 20_000
    """Most guided-training steps, and most patch-prior steps, one refinement may ask for."""
    max_render_pixel_frames: int = 1920 * 1080 * 600
    """Most width x height x frames one render (or preview clip) may ask for: 600 frames of 1080p."""
    session_quota_bytes: int = 5 * 1024**3
    """Most bytes one session's folder may hold; checked before each job and each upload."""
    max_waiting_jobs: int = 4
    """Most jobs waiting for the machine across the server (one runs at a time); more: "the studio is busy"."""
    max_upload_photos: int = 500
    """Most photos one upload may hold, all zips and photos of it together (structure from motion: 20-300)."""
    max_upload_bytes: int = 2 * 1024**3
    """Most bytes one upload may send (also the per-file limit given to the web server)."""
    max_unpacked_bytes: int = 4 * 1024**3
    """Most bytes one upload may hold once its zips are unpacked, all of them together."""
    session_ttl_hours: float = 72.0
    """Sessions idle longer than this are deleted (at startup and every hour); `vista app --session-ttl-hours`."""


LIMITS = StudioLimits()
"""The limits in force, read when each request is checked (read it as `limits.LIMITS`, not imported by name)."""


def gigabytes(n_bytes: float) -> str:
    return f"{n_bytes / 1024**3:.1f} GB"


def folder_bytes(folder: Path) -> int:
    """Bytes the files under `folder` hold (links are not followed; a hard-linked file counts once)."""
    total, seen = 0, set()
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except OSError:  # removed meanwhile (a job's temporary file)
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def check_quota(workspace: Path, adding: int = 0) -> None:
    """Refuse a job or an upload when the session's folder (plus `adding` bytes) is over its disk quota."""
    used = folder_bytes(workspace)
    if used + adding > LIMITS.session_quota_bytes:
        extra = f" and this upload needs {gigabytes(adding)}" if adding else ""
        raise VistaError(f"this session's disk quota is {gigabytes(LIMITS.session_quota_bytes)}: it holds "
                         f"{gigabytes(used)}{extra}; start a new session (a new browser profile) for more work")


def check_render(width: int, height: int, frames: int, renders_per_frame: int = 1) -> None:
    """Refuse a render larger than width x height x frames allows; a motion-blurred frame is `renders_per_frame`
    sub-frame renders, and costs as many frames."""
    if width * height * frames * renders_per_frame > LIMITS.max_render_pixel_frames:
        cap = LIMITS.max_render_pixel_frames
        blurred = renders_per_frame > 1
        raise VistaError(f"render: {width} x {height} x {frames:,} frames"
                         f"{f' x {renders_per_frame} motion blur samples' if blurred else ''} is more than the studio "
                         f"allows per job ({cap:,} pixels x frames, e.g. {cap // (1920 * 1080):,} frames at 1920 x "
                         "1080); make it smaller, shorter or at a lower frame rate"
                         + (", or use fewer motion blur samples" if blurred else ""))


def check_steps(steps: int, what: str) -> int:
    if steps > LIMITS.max_refine_steps:
        raise VistaError(f"{what}: {steps:,} is more than the studio's limit of {LIMITS.max_refine_steps:,} per job")
    return steps
