"""Camera paths: keyframes -> one camera per frame, passing through every keyframe at its time.

A `CameraPath` is a list of `Keyframe`s (position; look-at point or orientation quaternion; vertical
field of view; roll; optional duration and easing of the segment that starts there) plus the path's
length in seconds, frame rate, tension, loop and easing. `path.sample(width, height)` gives one camera
per frame (`render.cameras.Cameras`), `path.frame_times()` their times.

How a path is interpolated (`render.path_curves`: the `splines` package does the spline maths, scipy the
monotone curves; `render.keyframes` has the keyframe type, easing and look-at maths):
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

import numpy as np
import torch

from render.cameras import Cameras
from render.configio import config_from_dict, config_to_dict
from render.keyframes import (
    EASINGS,
    MAX_FOV_DEG,
    MIN_FOV_DEG,
    Easing,
    Keyframe,
    checked_vector,
    ease_inverse,
    ease_scalar,
    keyframe_rotation,
    look_at_rotation,
    same_camera,
    validate_keyframe,
)
from render.path_curves import PathCurves
from vista_core.errors import VistaError, require_finite

# The keyframe type and its constants live in render.keyframes; they are importable from here too, beside the path.
__all__ = ["EASINGS", "MAX_FOV_DEG", "MAX_FRAMES", "MIN_FOV_DEG", "CameraPath", "Easing", "Keyframe", "validate_path"]


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
        return np.array([ease_inverse(self.ease, p / self.seconds) * self.seconds for p in c.progress[:len(self.keyframes)]])

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
            rotations = np.stack([look_at_rotation(p, q, self.up, r, where=f"t={t:.3f} s")
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
    def from_dict(data: dict, where: str = "camera path") -> CameraPath:
        if not isinstance(data, dict):
            raise VistaError(f"{where}: expected a JSON object with a 'keyframes' list")
        require_finite(list(_walk_numbers(data)), where)
        if "keyframes" not in data:
            raise VistaError(f"{where}: missing 'keyframes' (a list of at least 2 keyframes)")
        return config_from_dict(CameraPath, data, where)

    # -- internals ------------------------------------------------------------------------------
    @cached_property
    def _curves(self) -> PathCurves:
        return PathCurves(self.keyframes, loop=self.loop, tension=self.tension, up=self.up, seconds=self.seconds,
                          constant_speed=self.constant_speed)

    def _build(self) -> PathCurves:
        return self._curves

    def _spline_parameter(self, c: PathCurves, t: float) -> float:
        """Time (s) -> spline parameter u: path easing, then segment, segment easing, arc length."""
        if self.loop:
            t = t % self.seconds if t != self.seconds else self.seconds
        t = min(max(t, 0.0), self.seconds)
        p = ease_scalar(self.ease, t / self.seconds) * self.seconds
        s = int(np.clip(np.searchsorted(c.progress, p, side="right") - 1, 0, self.n_segments - 1))
        duration = c.progress[s + 1] - c.progress[s]
        local = min(max((p - c.progress[s]) / duration, 0.0), 1.0)
        kf = self.keyframes[s]
        local = ease_scalar(kf.ease or self.segment_ease, local)
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
    up = checked_vector(path.up, 3, "camera path: 'up'")
    if np.linalg.norm(up) < 1e-9:
        raise VistaError("camera path: 'up' must be a non-zero vector")
    if path.loop and len(keys) < 3:
        raise VistaError("camera path: a loop needs at least 3 keyframes")
    scale = max(1e-9, float(np.ptp(np.array([k.position for k in keys], dtype=np.float64), axis=0).max()))
    for i, kf in enumerate(keys):
        validate_keyframe(kf, f"keyframe {i}", scale)
        if kf.look_at is not None:
            look_at_rotation(kf.position, kf.look_at, up, kf.roll_deg, where=f"keyframe {i}")
    pairs = list(zip(keys, keys[1:])) + ([(keys[-1], keys[0])] if path.loop else [])
    for i, (a, b) in enumerate(pairs):
        if same_camera(a, b, scale):
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
