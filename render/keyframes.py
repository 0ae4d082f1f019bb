"""Keyframes of a camera path and the per-keyframe maths: validation, easing curves, look-at orientation.

A keyframe is a camera the path passes through: position; look-at point or orientation quaternion; vertical field
of view; roll; optional duration and easing of the segment that starts there (`render.paths` has the JSON form).
Easing curves on [0, 1]: linear, ease-in (u^2), ease-out, ease-in-out (smoothstep 3u^2 - 2u^3); eased ends have
zero velocity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vista_core.errors import VistaError

Easing = Literal["linear", "ease-in", "ease-out", "ease-in-out"]
EASINGS: tuple[str, ...] = ("linear", "ease-in", "ease-out", "ease-in-out")

MIN_FOV_DEG = 1.0
MAX_FOV_DEG = 179.0
_PARALLEL_COS = math.cos(math.radians(0.5))  # view direction this close to `up` has no defined roll


@dataclass(frozen=True)
class Keyframe:
    """One camera the path passes through (world coordinates)."""

    position: tuple[float, float, float]
    look_at: tuple[float, float, float] | None = None
    orientation: tuple[float, float, float, float] | None = None  # world_from_camera quaternion (x, y, z, w)
    fov_y_deg: float = 50.0
    roll_deg: float = 0.0
    duration_s: float | None = None  # time from this keyframe to the next
    ease: Easing | None = None  # easing of the segment from this keyframe to the next (overrides segment_ease)


# ---------------------------------------------------------------------------------------------
# validation


def checked_vector(values, n: int, where: str) -> np.ndarray:
    """`values` as n finite float64 numbers, or a VistaError naming `where`."""
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise VistaError(f"{where}: expected {n} numbers") from error
    if v.shape != (n,):
        raise VistaError(f"{where}: expected {n} numbers, got {list(np.reshape(v, -1))}")
    if not np.all(np.isfinite(v)):
        raise VistaError(f"{where}: holds NaN or infinity")
    return v


def validate_keyframe(kf: Keyframe, where: str, scale: float) -> None:
    """Raise VistaError for a keyframe that has no well-defined camera (`scale`: the path's extent)."""
    position = checked_vector(kf.position, 3, f"{where}: 'position'")
    if (kf.look_at is None) == (kf.orientation is None):
        raise VistaError(f"{where}: give exactly one of 'look_at' (a point) or 'orientation' (a quaternion)")
    if kf.look_at is not None:
        target = checked_vector(kf.look_at, 3, f"{where}: 'look_at'")
        if np.linalg.norm(target - position) <= 1e-9 * max(1.0, scale):
            raise VistaError(f"{where}: 'look_at' equals 'position'; the camera has no view direction")
    if kf.orientation is not None:
        q = checked_vector(kf.orientation, 4, f"{where}: 'orientation'")
        if abs(np.linalg.norm(q) - 1) > 1e-3:
            raise VistaError(f"{where}: 'orientation' must be a unit quaternion [x, y, z, w], norm is "
                             f"{np.linalg.norm(q):.4f}")
        if kf.roll_deg != 0:
            raise VistaError(f"{where}: 'roll_deg' only applies to look-at keyframes; put the roll in 'orientation'")
    for name in ("fov_y_deg", "roll_deg"):
        if not math.isfinite(getattr(kf, name)):
            raise VistaError(f"{where}: '{name}' is NaN or infinite")
    if not MIN_FOV_DEG < kf.fov_y_deg < MAX_FOV_DEG:
        raise VistaError(f"{where}: 'fov_y_deg' must be between {MIN_FOV_DEG:g} and {MAX_FOV_DEG:g} degrees, "
                         f"got {kf.fov_y_deg}")
    if kf.duration_s is not None and not (math.isfinite(kf.duration_s) and kf.duration_s > 0):
        raise VistaError(f"{where}: 'duration_s' must be a positive number of seconds, got {kf.duration_s}")
    if kf.ease is not None and kf.ease not in EASINGS:
        raise VistaError(f"{where}: 'ease' must be one of {list(EASINGS)}, got {kf.ease!r}")


def same_camera(a: Keyframe, b: Keyframe, scale: float) -> bool:
    """Whether two keyframes are the same camera (position, view and FOV) up to rounding."""
    if np.linalg.norm(np.subtract(a.position, b.position)) > 1e-7 * scale or abs(a.fov_y_deg - b.fov_y_deg) > 1e-9:
        return False
    if a.look_at is not None and b.look_at is not None:
        da = np.subtract(a.look_at, a.position)
        db = np.subtract(b.look_at, b.position)
        same_dir = np.dot(da, db) / (np.linalg.norm(da) * np.linalg.norm(db)) > 1 - 1e-12
        return bool(same_dir and abs(a.roll_deg - b.roll_deg) < 1e-9)
    if a.orientation is not None and b.orientation is not None:
        return abs(float(np.dot(a.orientation, b.orientation))) > 1 - 1e-12
    return False


# ---------------------------------------------------------------------------------------------
# easing


def ease_scalar(kind: str, u: float) -> float:
    """Easing curve `kind` at one u in [0, 1]."""
    if kind == "linear":
        return u
    if kind == "ease-in":
        return u * u
    if kind == "ease-out":
        return 1 - (1 - u) ** 2
    return u * u * (3 - 2 * u)  # ease-in-out: smoothstep


def ease(kind: str, u: np.ndarray | float) -> np.ndarray:
    """Easing curve on [0, 1] (vectorised)."""
    return np.vectorize(lambda x: ease_scalar(kind, float(x)))(u)


def ease_inverse(kind: str, y: float) -> float:
    """The u in [0, 1] that easing curve `kind` maps to y."""
    if y <= 0.0 or y >= 1.0:
        return 0.0 if y <= 0.0 else 1.0
    if kind == "linear":
        return y
    if kind == "ease-in":
        return math.sqrt(y)
    if kind == "ease-out":
        return 1 - math.sqrt(1 - y)
    return 0.5 - math.sin(math.asin(1 - 2 * y) / 3)  # inverse of smoothstep


# ---------------------------------------------------------------------------------------------
# geometry


def look_at_rotation(position, target, up, roll_deg: float = 0.0, where: str = "look-at") -> np.ndarray:
    """world_from_camera rotation [3, 3] (OpenGL axes) of a camera at `position` looking at `target`; a VistaError
    naming `where` if the view direction, or its roll about `up`, is undefined."""
    position, target, up = (np.asarray(v, float) for v in (position, target, up))
    forward = target - position
    norm = np.linalg.norm(forward)
    if norm < 1e-12:
        raise VistaError(f"camera path at {where}: the camera is at its look-at point")
    forward = forward / norm
    up = up / np.linalg.norm(up)
    if abs(np.dot(forward, up)) > _PARALLEL_COS:
        raise VistaError(f"camera path at {where}: the camera looks straight along 'up', so its roll is undefined; "
                         "move the look-at point or use 'orientation' keyframes")
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    camera_up = np.cross(right, forward)
    rotation = np.stack([right, camera_up, -forward], axis=1)
    if roll_deg:
        a = math.radians(roll_deg)
        roll = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        rotation = rotation @ roll
    return rotation


def quaternion_from_rotation(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix (scipy's convention)."""
    from scipy.spatial.transform import Rotation

    return tuple(float(v) for v in Rotation.from_matrix(np.asarray(rotation, float)).as_quat())


def keyframe_rotation(kf: Keyframe, up) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    if kf.orientation is not None:
        return Rotation.from_quat(kf.orientation).as_matrix()
    return look_at_rotation(kf.position, kf.look_at, up, kf.roll_deg)

