"""Camera paths: keyframes -> one camera per frame, passing through every keyframe at its time.

A `CameraPath` is a list of `Keyframe`s (position; look-at point or orientation quaternion; vertical
field of view; roll; optional duration and easing of the segment that starts there) plus the path's
length in seconds, frame rate, tension, loop and easing. `path.sample(width, height)` gives one camera
per frame (`render.cameras.Cameras`), `path.frame_times()` their times.

How a path is interpolated (the `splines` package does the spline maths, scipy the monotone curves):
- positions (and look-at targets): Kochanek–Bartels spline on a uniform grid (tension 0 is Catmull–Rom),
  'closed' end conditions when the path loops, 'natural' otherwise;
- orientation: when every keyframe has a look-at point, the camera looks at the interpolated target
  (so an orbit keeps its subject exactly centred) with `up` and an interpolated roll; otherwise the
  keyframe rotations are interpolated by the Kochanek–Bartels rotation spline (`splines.quaternion`);
- field of view and roll: piecewise-monotone cubic (scipy's PCHIP), which never overshoots a keyframe;
- timing: by default segment durations are proportional to their arc length and each segment is walked
  at constant speed (arc-length reparametrisation from a dense length table), so the camera neither
  races between distant keyframes nor stops at each one (nerfstudio issue #553). A keyframe's
  `duration_s` fixes the time to the next keyframe; the remaining time is shared by the other segments.
- easing: `ease` eases the whole path (start and end), `segment_ease` every segment, a keyframe's `ease`
  its own segment: linear, ease-in (u^2), ease-out, ease-in-out (smoothstep 3u^2 - 2u^3); eased ends
  have zero velocity.

Frame times: n = round(seconds * fps) frames; an open path spans [0, seconds] including both ends, a
loop spans [0, seconds) (the frame at `seconds` would repeat the first).

Keyframe JSON (`vista path SCENE --keyframes keys.json`; world coordinates of the scene's dataset):

    {
      "seconds": 8.0, "fps": 30.0, "loop": false, "tension": 0.0, "constant_speed": true,
      "ease": "ease-in-out", "segment_ease": "linear", "up": [0, 0, 1],
      "keyframes": [
        {"position": [4.0, 0.0, 1.5], "look_at": [0, 0, 0], "fov_y_deg": 45, "roll_deg": 0},
        {"position": [0.0, 4.0, 2.0], "look_at": [0, 0, 0.3], "duration_s": 3.0, "ease": "ease-out"},
        {"position": [-4.0, 0.0, 1.5], "orientation": [0.5, -0.5, -0.5, 0.5]}
      ]
    }

Only "position" is required per keyframe, with exactly one of "look_at" or "orientation" (a
world_from_camera rotation quaternion [x, y, z, w], OpenGL camera axes: the camera looks along -z);
"fov_y_deg" defaults to 50, "roll_deg" to 0 (degrees about the viewing axis, look-at keyframes only).
Unknown keys are errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import torch

from render.cameras import Cameras
from render.configio import config_from_dict, config_to_dict
from vista_core.errors import VistaError, require_finite

Easing = Literal["linear", "ease-in", "ease-out", "ease-in-out"]
EASINGS: tuple[str, ...] = ("linear", "ease-in", "ease-out", "ease-in-out")

MIN_FOV_DEG = 1.0
MAX_FOV_DEG = 179.0
_LENGTH_SAMPLES = 512  # per segment, for the arc-length table
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


@dataclass(frozen=True)
class CameraPath:
    """Keyframes plus timing; see the module docstring for how it is interpolated."""

    keyframes: tuple[Keyframe, ...]
    seconds: float = 8.0
    fps: float = 30.0
    loop: bool = False
    tension: float = 0.0  # Kochanek–Bartels tension: 0 = Catmull–Rom, 1 = tight corners, < 0 = rounder
    constant_speed: bool = True
    ease: Easing = "linear"  # easing of the whole path
    segment_ease: Easing = "linear"  # easing of every segment (a keyframe's `ease` overrides it)
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)  # world up, for look-at keyframes

    def __post_init__(self) -> None:
        object.__setattr__(self, "keyframes", tuple(self.keyframes))
        validate_path(self)

    # -- timing ---------------------------------------------------------------------------------
    @property
    def n_segments(self) -> int:
        return len(self.keyframes) if self.loop else len(self.keyframes) - 1

    @property
    def n_frames(self) -> int:
        return max(2, round(self.seconds * self.fps))

    def frame_times(self) -> np.ndarray:
        """Time in seconds of each frame [F]."""
        n = self.n_frames
        if self.loop:
            return np.arange(n) * (self.seconds / n)
        return np.linspace(0.0, self.seconds, n)

    def keyframe_times(self) -> np.ndarray:
        """When the camera is at each keyframe [K] (a loop returns to keyframe 0 at `seconds`)."""
        c = self._build()
        return np.array([_ease_inverse(self.ease, p / self.seconds) * self.seconds for p in c.progress[:len(self.keyframes)]])

    def segment_durations(self) -> np.ndarray:
        """Progress-clock duration of each segment [S] (equal to real durations when `ease` is linear)."""
        return np.diff(self._build().progress)

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, times: np.ndarray | list[float]) -> tuple[np.ndarray, np.ndarray]:
        """world_from_camera [T, 3, 4] (float64, OpenGL axes) and vertical FOV in degrees [T] at `times`."""
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        c = self._build()
        u = np.array([self._spline_parameter(c, float(t)) for t in times])
        positions = c.positions(u)
        fov = np.clip(c.fov(u), MIN_FOV_DEG, MAX_FOV_DEG)
        if c.targets is not None:
            rotations = np.stack([_look_at_rotation(p, q, np.asarray(self.up), r, where=f"t={t:.3f} s")
                                  for p, q, r, t in zip(positions, c.targets(u), c.roll(u), times)])
        else:
            rotations = c.rotations(u)
        return np.concatenate([rotations, positions[:, :, None]], axis=2), fov

    def sample(self, width: int, height: int) -> Cameras:
        """One camera per frame at `width` x `height` (square pixels, centred principal point)."""
        world_from_camera, fov = self.evaluate(self.frame_times())
        return Cameras.from_fov(torch.from_numpy(world_from_camera).float(), torch.from_numpy(fov).float(),
                                width, height)

    def keyframe_matrices(self) -> np.ndarray:
        """world_from_camera [K, 3, 4] (float64) of the keyframes themselves."""
        return np.stack([np.concatenate([keyframe_rotation(kf, self.up), np.asarray(kf.position, float)[:, None]], 1)
                         for kf in self.keyframes])

    def positions_at(self, times: np.ndarray) -> np.ndarray:
        """Camera centres [T, 3] (cheaper than `evaluate` when orientation is not needed)."""
        c = self._build()
        return c.positions(np.array([self._spline_parameter(c, float(t)) for t in np.reshape(times, -1)]))

    # -- JSON -----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = config_to_dict(self)
        data["keyframes"] = [{k: v for k, v in kf.items() if v is not None} for kf in data["keyframes"]]
        return data

    @staticmethod
    def from_dict(data: dict, where: str = "camera path") -> "CameraPath":
        if not isinstance(data, dict):
            raise VistaError(f"{where}: expected a JSON object with a 'keyframes' list")
        require_finite(list(_walk_numbers(data)), where)
        if "keyframes" not in data:
            raise VistaError(f"{where}: missing 'keyframes' (a list of at least 2 keyframes)")
        return config_from_dict(CameraPath, data, where)

    # -- internals ------------------------------------------------------------------------------
    @cached_property
    def _curves(self) -> "_Curves":
        return _Curves(self)

    def _build(self) -> "_Curves":
        return self._curves

    def _spline_parameter(self, c: "_Curves", t: float) -> float:
        """Time (s) -> spline parameter u: path easing, then segment, segment easing, arc length."""
        if self.loop:
            t = t % self.seconds if t != self.seconds else self.seconds
        t = min(max(t, 0.0), self.seconds)
        p = _ease(self.ease, t / self.seconds) * self.seconds
        s = int(np.clip(np.searchsorted(c.progress, p, side="right") - 1, 0, self.n_segments - 1))
        duration = c.progress[s + 1] - c.progress[s]
        local = min(max((p - c.progress[s]) / duration, 0.0), 1.0)
        kf = self.keyframes[s]
        local = _ease(kf.ease or self.segment_ease, local)
        if c.lengths[s] > 0 and self.constant_speed:
            return float(np.interp(local * c.lengths[s], c.cumulative[s], c.table_u[s]))
        return s + local


def _walk_numbers(data):
    if isinstance(data, dict):
        for v in data.values():
            yield from _walk_numbers(v)
    elif isinstance(data, (list, tuple)):
        for v in data:
            yield from _walk_numbers(v)
    elif isinstance(data, float):
        yield data


# ---------------------------------------------------------------------------------------------
# validation


MAX_FRAMES = 100_000  # over an hour at 24 fps; beyond this a typo, not a shot (and days of rendering)


def validate_path(path: CameraPath) -> None:
    """Raise VistaError for anything that would make a silent garbage video."""
    keys = path.keyframes
    if len(keys) < 2:
        raise VistaError(f"a camera path needs at least 2 keyframes, got {len(keys)}")
    for name in ("seconds", "fps", "tension"):
        if not math.isfinite(getattr(path, name)):
            raise VistaError(f"camera path: '{name}' is NaN or infinite")
    if path.seconds <= 0:
        raise VistaError(f"camera path: 'seconds' must be positive, got {path.seconds}")
    if not 1 <= path.fps <= 240:
        raise VistaError(f"camera path: 'fps' must be in [1, 240], got {path.fps}")
    if not -1 < path.tension < 1:
        raise VistaError(f"camera path: 'tension' must be in (-1, 1), got {path.tension}")
    if path.seconds * path.fps > MAX_FRAMES:
        raise VistaError(f"camera path: {path.seconds:g} s at {path.fps:g} fps is {path.seconds * path.fps:,.0f} "
                         f"frames; Vista renders at most {MAX_FRAMES:,} frames per path (split the shot)")
    for name in ("ease", "segment_ease"):
        if getattr(path, name) not in EASINGS:
            raise VistaError(f"camera path: '{name}' must be one of {list(EASINGS)}, got {getattr(path, name)!r}")
    up = _vector(path.up, 3, "camera path: 'up'")
    if np.linalg.norm(up) < 1e-9:
        raise VistaError("camera path: 'up' must be a non-zero vector")
    if path.loop and len(keys) < 3:
        raise VistaError("camera path: a loop needs at least 3 keyframes")
    scale = max(1e-9, float(np.ptp(np.array([k.position for k in keys], dtype=np.float64), axis=0).max()))
    for i, kf in enumerate(keys):
        _validate_keyframe(kf, f"keyframe {i}", scale)
        if kf.look_at is not None:
            _look_at_rotation(np.asarray(kf.position, float), np.asarray(kf.look_at, float), up, kf.roll_deg,
                              where=f"keyframe {i}")
    pairs = list(zip(keys, keys[1:])) + ([(keys[-1], keys[0])] if path.loop else [])
    for i, (a, b) in enumerate(pairs):
        if _same_camera(a, b, scale):
            j = (i + 1) % len(keys)
            raise VistaError(f"keyframes {i} and {j} are the same camera (position, view and FOV); "
                             "remove one, or give the pause a duration with a different view")
    durations = [k.duration_s for k in keys[:path.n_segments]]
    explicit = sum(d for d in durations if d is not None)
    if all(d is not None for d in durations):
        if abs(explicit - path.seconds) > 1e-6 * max(1.0, path.seconds):
            raise VistaError(f"camera path: keyframe durations add up to {explicit:g} s but 'seconds' is "
                             f"{path.seconds:g}; make them agree or leave some durations out")
    elif explicit >= path.seconds:
        raise VistaError(f"camera path: keyframe durations already add up to {explicit:g} s, leaving no time "
                         f"for the other segments of the {path.seconds:g} s path")
    if not path.loop and keys[-1].duration_s is not None:
        raise VistaError(f"keyframe {len(keys) - 1}: the last keyframe of an open path has no segment after it, "
                         "so it cannot have 'duration_s'")


def _vector(values, n: int, where: str) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise VistaError(f"{where}: expected {n} numbers") from error
    if v.shape != (n,):
        raise VistaError(f"{where}: expected {n} numbers, got {list(np.reshape(v, -1))}")
    if not np.all(np.isfinite(v)):
        raise VistaError(f"{where}: holds NaN or infinity")
    return v


def _validate_keyframe(kf: Keyframe, where: str, scale: float) -> None:
    position = _vector(kf.position, 3, f"{where}: 'position'")
    if (kf.look_at is None) == (kf.orientation is None):
        raise VistaError(f"{where}: give exactly one of 'look_at' (a point) or 'orientation' (a quaternion)")
    if kf.look_at is not None:
        target = _vector(kf.look_at, 3, f"{where}: 'look_at'")
        if np.linalg.norm(target - position) <= 1e-9 * max(1.0, scale):
            raise VistaError(f"{where}: 'look_at' equals 'position'; the camera has no view direction")
    if kf.orientation is not None:
        q = _vector(kf.orientation, 4, f"{where}: 'orientation'")
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


def _same_camera(a: Keyframe, b: Keyframe, scale: float) -> bool:
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


def _ease(kind: str, u: float) -> float:
    if kind == "linear":
        return u
    if kind == "ease-in":
        return u * u
    if kind == "ease-out":
        return 1 - (1 - u) ** 2
    return u * u * (3 - 2 * u)  # ease-in-out: smoothstep


def ease(kind: str, u: np.ndarray | float) -> np.ndarray:
    """Easing curve on [0, 1] (vectorised)."""
    return np.vectorize(lambda x: _ease(kind, float(x)))(u)


def _ease_inverse(kind: str, y: float) -> float:
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


def look_at_rotation(position, target, up, roll_deg: float = 0.0) -> np.ndarray:
    """world_from_camera rotation [3, 3] (OpenGL axes) of a camera at `position` looking at `target`."""
    return _look_at_rotation(np.asarray(position, float), np.asarray(target, float), np.asarray(up, float),
                             roll_deg, where="look-at")


def _look_at_rotation(position: np.ndarray, target: np.ndarray, up: np.ndarray, roll_deg: float,
                      where: str) -> np.ndarray:
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


# ---------------------------------------------------------------------------------------------
# the interpolating curves of one path


class _Curves:
    """Splines over the parameter u in [0, S] (keyframe k at u = k) and the arc-length tables."""

    def __init__(self, path: CameraPath):
        import splines
        from scipy.interpolate import PchipInterpolator

        keys = path.keyframes
        k = len(keys)
        ends = "closed" if path.loop else "natural"
        tcb = (path.tension, 0.0, 0.0)
        self.n_segments = path.n_segments
        points = np.array([kf.position for kf in keys], dtype=np.float64)
        self._position_spline = splines.KochanekBartels(points, tcb=tcb, endconditions=ends) if k > 2 or path.loop \
            else splines.KochanekBartels(points, endconditions=ends)
        self._stationary = [np.linalg.norm(points[(s + 1) % k] - points[s]) <= 1e-9 * max(1.0, np.abs(points).max())
                            for s in range(self.n_segments)]
        self.targets = None
        self.rotations = None
        if all(kf.look_at is not None for kf in keys):
            targets = np.array([kf.look_at for kf in keys], dtype=np.float64)
            target_spline = splines.KochanekBartels(targets, tcb=tcb, endconditions=ends) if k > 2 or path.loop \
                else splines.KochanekBartels(targets, endconditions=ends)
            self.targets = lambda u: _evaluate_hermite(target_spline, u)
        else:
            from splines.quaternion import KochanekBartels as RotationSpline
            from splines.quaternion import UnitQuaternion

            quats = [UnitQuaternion.from_unit_xyzw(quaternion_from_rotation(keyframe_rotation(kf, path.up)))
                     for kf in keys]
            rotation_spline = RotationSpline(quats, tcb=tcb, endconditions=ends) if k > 2 or path.loop \
                else RotationSpline(quats, endconditions=ends)
            self.rotations = lambda u: _evaluate_rotations(rotation_spline, u)
        grid = np.arange(k + (1 if path.loop else 0), dtype=np.float64)
        self.fov = _scalar_curve(PchipInterpolator, grid, [kf.fov_y_deg for kf in keys], path.loop)
        self.roll = _scalar_curve(PchipInterpolator, grid, [kf.roll_deg for kf in keys], path.loop)
        self._arc_length_tables()
        self.progress = self._progress(path)

    def positions(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64).reshape(-1)
        out = _evaluate_hermite(self._position_spline, u)
        # A segment between equal positions is a pan in place: hold the camera still (the spline would loop).
        seg = np.clip(np.floor(u).astype(int), 0, self.n_segments - 1)
        still = np.array([self._stationary[s] for s in seg], dtype=bool)
        if still.any():
            out[still] = _evaluate_hermite(self._position_spline, seg[still].astype(np.float64))
        return out

    def _arc_length_tables(self) -> None:
        self.lengths, self.cumulative, self.table_u = [], [], []
        for s in range(self.n_segments):
            u = np.linspace(s, s + 1, _LENGTH_SAMPLES + 1)
            if self._stationary[s]:
                cumulative = np.zeros_like(u)
            else:
                p = _evaluate_hermite(self._position_spline, u)
                cumulative = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
            self.lengths.append(float(cumulative[-1]))
            self.cumulative.append(cumulative)
            self.table_u.append(u)

    def _progress(self, path: CameraPath) -> np.ndarray:
        """Cumulative progress-clock time at each segment boundary [S + 1]."""
        durations = [path.keyframes[s].duration_s for s in range(self.n_segments)]
        free = [s for s, d in enumerate(durations) if d is None]
        if free:
            remaining = path.seconds - sum(d for d in durations if d is not None)
            if path.constant_speed:
                moving = [self.lengths[s] for s in free if self.lengths[s] > 0]
                fallback = float(np.mean(moving)) if moving else 1.0
                weights = np.array([self.lengths[s] if self.lengths[s] > 0 else fallback for s in free])
            else:
                weights = np.ones(len(free))
            for s, w in zip(free, weights / weights.sum()):
                durations[s] = remaining * float(w)
        progress = np.concatenate([[0.0], np.cumsum(durations)])
        progress[-1] = path.seconds  # exact end despite rounding
        return progress


def _scalar_curve(pchip, grid: np.ndarray, values: list[float], loop: bool):
    values = np.asarray(values, dtype=np.float64)
    if np.ptp(values) == 0:
        return lambda u: np.full(np.shape(u), values[0])
    if loop:
        k = len(values)
        x = np.concatenate([[-1.0], grid, [k + 1.0]])
        y = np.concatenate([values[-1:], values, values[:1], values[1:2]])
        return pchip(x, y)
    return pchip(grid, values)


def _evaluate_hermite(spline, u: np.ndarray) -> np.ndarray:
    """Vectorised evaluation of a `splines` piecewise-cubic (monomial coefficients, highest power first)."""
    u = np.asarray(u, dtype=np.float64).reshape(-1)
    grid = np.asarray(spline.grid, dtype=np.float64)
    coefficients = np.stack(spline.segments)  # [S, 4, D]
    seg = np.clip(np.searchsorted(grid, u, side="right") - 1, 0, len(spline.segments) - 1)
    x = (u - grid[seg]) / (grid[seg + 1] - grid[seg])
    powers = np.stack([x ** 3, x ** 2, x, np.ones_like(x)], axis=1)  # [T, 4]
    return np.einsum("tc,tcd->td", powers, coefficients[seg])


def _evaluate_rotations(spline, u: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    top = spline.grid[-1]
    quats = [spline.evaluate(float(min(max(x, 0.0), top))).xyzw for x in np.reshape(u, -1)]
    return Rotation.from_quat(np.array(quats)).as_matrix()


def path_from_cameras_list(world_from_camera: np.ndarray, fov_y_deg: np.ndarray, seconds: float, fps: float,
                           up=(0.0, 0.0, 1.0)) -> CameraPath:
    """A path whose keyframes are the given cameras (orientation keyframes), e.g. to re-edit a file's keyframes."""
    keys = tuple(Keyframe(position=tuple(float(v) for v in m[:3, 3]), orientation=quaternion_from_rotation(m[:3, :3]),
                          fov_y_deg=float(f)) for m, f in zip(world_from_camera, fov_y_deg))
    return CameraPath(keys, seconds=seconds, fps=fps, up=tuple(float(v) for v in up))
