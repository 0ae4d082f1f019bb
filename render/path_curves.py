"""The curves a camera path is interpolated along (the `splines` package does the spline maths, scipy the
monotone curves); `render.paths` explains the choices.

Parameter u runs over [0, S] for S segments, keyframe k at u = k; arc-length tables map distance along each
segment back to u, for constant-speed timing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from render.keyframes import Keyframe, keyframe_rotation, quaternion_from_rotation

_LENGTH_SAMPLES = 512  # per segment, for the arc-length table


class PathCurves:
    """Splines over the parameter u in [0, S] (keyframe k at u = k) and the arc-length tables of one path."""

    def __init__(self, keyframes: Sequence[Keyframe], *, loop: bool, tension: float, up, seconds: float,
                 constant_speed: bool):
        import splines
        from scipy.interpolate import PchipInterpolator

        keys = tuple(keyframes)
        k = len(keys)
        ends = "closed" if loop else "natural"
        tcb = (tension, 0.0, 0.0)
        self.n_segments = k if loop else k - 1
        points = np.array([kf.position for kf in keys], dtype=np.float64)
        self._position_spline = splines.KochanekBartels(points, tcb=tcb, endconditions=ends) if k > 2 or loop \
            else splines.KochanekBartels(points, endconditions=ends)
        self._stationary = [np.linalg.norm(points[(s + 1) % k] - points[s]) <= 1e-9 * max(1.0, np.abs(points).max())
                            for s in range(self.n_segments)]
        self.targets = None
        self.rotations = None
        if all(kf.look_at is not None for kf in keys):
            targets = np.array([kf.look_at for kf in keys], dtype=np.float64)
            target_spline = splines.KochanekBartels(targets, tcb=tcb, endconditions=ends) if k > 2 or loop \
                else splines.KochanekBartels(targets, endconditions=ends)
            self.targets = lambda u: _evaluate_hermite(target_spline, u)
        else:
            from splines.quaternion import KochanekBartels as RotationSpline
            from splines.quaternion import UnitQuaternion

            quats = [UnitQuaternion.from_unit_xyzw(quaternion_from_rotation(keyframe_rotation(kf, up)))
                     for kf in keys]
            rotation_spline = RotationSpline(quats, tcb=tcb, endconditions=ends) if k > 2 or loop \
                else RotationSpline(quats, endconditions=ends)
            self.rotations = lambda u: _evaluate_rotations(rotation_spline, u)
        grid = np.arange(k + (1 if loop else 0), dtype=np.float64)
        self.fov = _scalar_curve(PchipInterpolator, grid, [kf.fov_y_deg for kf in keys], loop)
        self.roll = _scalar_curve(PchipInterpolator, grid, [kf.roll_deg for kf in keys], loop)
        self._arc_length_tables()
        self.progress = self._progress(keys, seconds, constant_speed)

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

    def _progress(self, keys: tuple[Keyframe, ...], seconds: float, constant_speed: bool) -> np.ndarray:
        """Cumulative progress-clock time at each segment boundary [S + 1]."""
        durations = [keys[s].duration_s for s in range(self.n_segments)]
        free = [s for s, d in enumerate(durations) if d is None]
        if free:
            remaining = seconds - sum(d for d in durations if d is not None)
            if constant_speed:
                moving = [self.lengths[s] for s in free if self.lengths[s] > 0]
                fallback = float(np.mean(moving)) if moving else 1.0
                weights = np.array([self.lengths[s] if self.lengths[s] > 0 else fallback for s in free])
            else:
                weights = np.ones(len(free))
            for s, w in zip(free, weights / weights.sum()):
                durations[s] = remaining * float(w)
        progress = np.concatenate([[0.0], np.cumsum(durations)])
        progress[-1] = seconds  # exact end despite rounding
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
