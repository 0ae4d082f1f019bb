"""Establishing-shot presets fitted to a scene: orbit, dolly-in, pull-back reveal, crane up, fly-over,
spiral, follow-the-capture.

Each preset is one call with a few intuitive parameters and returns an editable `CameraPath` of
look-at keyframes. What it fits to (`fit_scene_frame`): the capture cameras (where the photos were
taken: their distance, elevation, side and up direction), the scene box (`scene_from_world`) and,
when given, an occupancy query (`occupied(points_world [N, 3]) -> bool [N]`, e.g. `occupancy_query` of
a trained scene) that locates the subject and lets presets step out of occupied space.

Angles: azimuth is measured around `up` from the capture's mean side, elevation above the horizontal
plane through the subject centre; distances are multiples of the capture's median distance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from render.cameras import Cameras
from render.keyframes import MAX_FOV_DEG, MIN_FOV_DEG, Keyframe
from render.paths import CameraPath
from render.representation import SceneRepresentation
from vista_core.errors import VistaError

OccupancyQuery = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SceneFrame:
    """Where the subject is and how the photos saw it, in world coordinates."""

    centre: np.ndarray  # [3] subject centre
    up: np.ndarray  # [3] unit world up (the capture cameras' mean up)
    radius: float  # subject radius
    distance: float  # median capture distance to the centre
    elevation_deg: float  # median capture elevation
    azimuth0: np.ndarray  # [3] unit horizontal direction from the centre towards the capture's mean side
    fov_y_deg: float  # median capture vertical FOV
    eye_height: float = 0.0  # median height of the capture cameras above the centre (along up)

    @property
    def side(self) -> np.ndarray:
        """Horizontal unit vector 90 degrees counter-clockwise (about up) from `azimuth0`."""
        return np.cross(self.up, self.azimuth0)

    def point(self, azimuth_deg: float, elevation_deg: float, distance: float) -> np.ndarray:
        a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
        horizontal = math.cos(a) * self.azimuth0 + math.sin(a) * self.side
        return self.centre + distance * (math.cos(e) * horizontal + math.sin(e) * self.up)


def occupancy_query(renderable: SceneRepresentation) -> OccupancyQuery:
    """`occupied(points_world)` from a scene representation's `occupied` (scene coordinates)."""
    def occupied(points: np.ndarray) -> np.ndarray:
        m = renderable.scene_from_world.float()
        p = torch.as_tensor(np.asarray(points, dtype=np.float32), device=m.device).reshape(-1, 3)
        return renderable.occupied(p @ m[:3, :3].T + m[:3, 3]).cpu().numpy()

    return occupied


def _world_from_scene(scene_from_world: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.asarray(scene_from_world, dtype=np.float64))


def fit_scene_frame(capture: Cameras, scene_from_world, occupied: OccupancyQuery | None = None,
                    lattice: int = 40) -> SceneFrame:
    """Subject centre/radius from occupancy (or the scene box), distance/elevation/side/up from the capture."""
    world_from_scene = _world_from_scene(scene_from_world)
    scale = float(np.linalg.norm(np.asarray(scene_from_world, dtype=np.float64)[:3, 0]))
    centre = world_from_scene[:3, 3].copy()
    radius = 1.0 / scale  # half the box side
    if occupied is not None:
        axis = (np.arange(lattice) + 0.5) / lattice * 2 - 1
        grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
        world = grid @ world_from_scene[:3, :3].T + world_from_scene[:3, 3]
        hits = world[np.asarray(occupied(world), dtype=bool)]
        if len(hits) >= 8:
            centre = 0.5 * (hits.min(axis=0) + hits.max(axis=0))
            radius = float(np.percentile(np.linalg.norm(hits - centre, axis=1), 98))
    return frame_around(capture, centre, radius)


def frame_around(capture: Cameras, centre: np.ndarray, radius: float) -> SceneFrame:
    """The frame of a subject at `centre` with `radius` (world): distance, elevation, side and up of the photos
    that saw it (a place's subject comes from render.path_geometry, an object's from `fit_scene_frame`)."""
    centre = np.asarray(centre, dtype=np.float64)
    c2w = capture.world_from_camera.double().numpy()
    positions = c2w[:, :, 3]
    up = c2w[:, :, 1].mean(axis=0)
    if np.linalg.norm(up) < 1e-6:
        raise VistaError("the capture cameras have no common up direction; give the path's 'up' explicitly")
    up /= np.linalg.norm(up)
    offsets = positions - centre
    heights = offsets @ up
    horizontal = offsets - heights[:, None] * up
    distance = float(np.median(np.linalg.norm(offsets, axis=1)))
    elevation = float(np.median(np.degrees(np.arctan2(heights, np.linalg.norm(horizontal, axis=1)))))
    mean_side = (horizontal / np.maximum(np.linalg.norm(horizontal, axis=1, keepdims=True), 1e-12)).mean(axis=0)
    if np.linalg.norm(mean_side) < 0.2:  # photos all around: start where the first photo was taken
        mean_side = horizontal[0]
    if np.linalg.norm(mean_side) < 1e-9:
        mean_side = np.cross(up, [1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.cross(up, [0.0, 1.0, 0.0])
    azimuth0 = mean_side / np.linalg.norm(mean_side)
    fov = float(np.median(capture.fov_y_deg.double().numpy()))
    return SceneFrame(centre, up, float(radius), distance, elevation, azimuth0, fov, float(np.median(heights)))


# ---------------------------------------------------------------------------------------------
# presets


def _fov(frame: SceneFrame, fov_y_deg: float | None) -> float:
    """The requested vertical field of view, or the photos' when none was given (0 is a mistake, not a default)."""
    if fov_y_deg is None:
        return frame.fov_y_deg
    if not (math.isfinite(fov_y_deg) and MIN_FOV_DEG < fov_y_deg < MAX_FOV_DEG):
        raise VistaError(f"field of view must be between {MIN_FOV_DEG:g} and {MAX_FOV_DEG:g} degrees, got {fov_y_deg}")
    return float(fov_y_deg)


def _path(frame: SceneFrame, points: list[np.ndarray], targets: list[np.ndarray], fov: float, seconds: float,
          fps: float, **options) -> CameraPath:
    keys = tuple(Keyframe(position=tuple(float(v) for v in p), look_at=tuple(float(v) for v in t), fov_y_deg=fov)
                 for p, t in zip(points, targets))
    return CameraPath(keys, seconds=seconds, fps=fps, up=tuple(float(v) for v in frame.up), **options)


def orbit(frame: SceneFrame, seconds: float = 8.0, fps: float = 30.0, degrees: float = 360.0,
          radius_factor: float = 1.0, elevation_deg: float | None = None, fov_y_deg: float | None = None) -> CameraPath:
    """Circle the subject at the capture's distance and elevation, looking at its centre; a full turn loops."""
    if degrees == 0 or not math.isfinite(degrees):
        raise VistaError(f"orbit: degrees must be non-zero, got {degrees}")
    elevation = frame.elevation_deg if elevation_deg is None else elevation_deg
    full = abs(abs(degrees) - 360.0) < 1e-9
    n = max(4, math.ceil(abs(degrees) / 10))  # a key every 10 degrees keeps the spline on the circle (< 1e-4)
    angles = np.linspace(0.0, degrees, n + 1)[:-1] if full else np.linspace(0.0, degrees, n + 1)
    points = [frame.point(a, elevation, frame.distance * radius_factor) for a in angles]
    return _path(frame, points, [frame.centre] * len(points), _fov(frame, fov_y_deg), seconds, fps,
                 loop=full, ease="linear" if full else "ease-in-out")


def dolly_in(frame: SceneFrame, seconds: float = 6.0, fps: float = 30.0, start_factor: float = 1.0,
             end_factor: float = 0.6, azimuth_deg: float = 0.0, elevation_deg: float | None = None,
             fov_y_deg: float | None = None) -> CameraPath:
    """Push in towards the subject along one line of sight, easing in and out."""
    elevation = frame.elevation_deg if elevation_deg is None else elevation_deg
    start = frame.point(azimuth_deg, elevation, frame.distance * start_factor)
    end = frame.point(azimuth_deg, elevation, frame.distance * end_factor)
    return _path(frame, [start, end], [frame.centre] * 2, _fov(frame, fov_y_deg), seconds, fps,
                 ease="ease-in-out")


def pull_back(frame: SceneFrame, seconds: float = 6.0, fps: float = 30.0, start_factor: float = 0.6,
              end_factor: float = 1.5, rise_deg: float = 15.0, azimuth_deg: float = 0.0,
              elevation_deg: float | None = None, fov_y_deg: float | None = None) -> CameraPath:
    """Reveal: start close on the subject, pull back and rise to show the whole scene."""
    elevation = frame.elevation_deg if elevation_deg is None else elevation_deg
    points = [frame.point(azimuth_deg + 10 * s, elevation + rise_deg * s,
                          frame.distance * (start_factor + (end_factor - start_factor) * s)) for s in (0.0, 0.5, 1.0)]
    return _path(frame, points, [frame.centre] * 3, _fov(frame, fov_y_deg), seconds, fps, ease="ease-in-out")


def crane_up(frame: SceneFrame, seconds: float = 6.0, fps: float = 30.0, start_elevation_deg: float = 5.0,
             end_elevation_deg: float = 60.0, radius_factor: float = 1.0, azimuth_deg: float = 0.0,
             fov_y_deg: float | None = None) -> CameraPath:
    """Rise from near the ground to a high view while the camera keeps the subject centred."""
    if not -80 < start_elevation_deg < 85 or not -80 < end_elevation_deg < 85:
        raise VistaError("crane-up: elevations must be within (-80, 85) degrees so the camera never looks straight down")
    distance = frame.distance * radius_factor
    elevations = np.linspace(start_elevation_deg, end_elevation_deg, 4)
    points = [frame.point(azimuth_deg, e, distance) for e in elevations]
    return _path(frame, points, [frame.centre] * 4, _fov(frame, fov_y_deg), seconds, fps, ease="ease-in-out")


def fly_over(frame: SceneFrame, seconds: float = 8.0, fps: float = 30.0, height_factor: float = 1.5,
             length_factor: float = 1.2, azimuth_deg: float = 0.0, fov_y_deg: float | None = None) -> CameraPath:
    """Fly in a straight line over the subject at `height_factor` subject radii above its centre,
    looking ahead and down, from the capture side to the far side (`length_factor` capture distances long)."""
    a = math.radians(azimuth_deg)
    direction = -(math.cos(a) * frame.azimuth0 + math.sin(a) * frame.side)  # from the capture side over the top
    height = frame.radius * height_factor
    half = frame.distance * length_factor / 2
    # look this far ahead of the point below the camera; at least 3/4 of the half length so the camera never looks
    # straight down (nor back) on a place whose subject is small next to the photos' distance
    lead = max(height, frame.radius, 0.75 * half)
    xs = np.linspace(-half, half, 5)
    points = [frame.centre + direction * x + frame.up * height for x in xs]
    targets = [frame.centre + direction * (0.5 * x + lead) for x in xs]
    return _path(frame, points, targets, _fov(frame, fov_y_deg), seconds, fps)


def spiral(frame: SceneFrame, seconds: float = 10.0, fps: float = 30.0, degrees: float = 720.0,
           start_elevation_deg: float = 10.0, end_elevation_deg: float = 55.0, start_factor: float = 1.15,
           end_factor: float = 0.85, fov_y_deg: float | None = None) -> CameraPath:
    """Circle the subject while rising and closing in."""
    n = max(4, math.ceil(abs(degrees) / 10))
    s = np.linspace(0.0, 1.0, n + 1)
    points = [frame.point(degrees * x, start_elevation_deg + (end_elevation_deg - start_elevation_deg) * x,
                          frame.distance * (start_factor + (end_factor - start_factor) * x)) for x in s]
    return _path(frame, points, [frame.centre] * len(points), _fov(frame, fov_y_deg), seconds, fps,
                 ease="ease-in-out")


def follow_capture(frame: SceneFrame, capture: Cameras, seconds: float = 10.0, fps: float = 30.0,
                   n_keyframes: int = 12, smoothing: float = 2.0, order: str = "nearest",
                   fov_y_deg: float | None = None) -> CameraPath:
    """Follow the photographer: the capture cameras in order (file order, or a nearest-neighbour tour for
    unordered photos), smoothed with a Gaussian over `smoothing` cameras, thinned to `n_keyframes`; each
    keyframe looks where its photos looked (the point of their view axis nearest the subject centre)."""
    from scipy.ndimage import gaussian_filter1d

    c2w = capture.world_from_camera.double().numpy()
    if len(c2w) < 2:
        raise VistaError("follow-capture: the scene has fewer than 2 capture cameras")
    sequence = _nearest_tour(c2w[:, :, 3]) if order == "nearest" else np.arange(len(c2w))
    positions = c2w[sequence, :, 3]
    forward = -c2w[sequence, :, 2]
    reach = np.maximum(np.einsum("nd,nd->n", frame.centre - positions, forward), 0.2 * frame.distance)
    targets = positions + forward * reach[:, None]
    if smoothing > 0:
        positions = gaussian_filter1d(positions, smoothing, axis=0, mode="nearest")
        targets = gaussian_filter1d(targets, smoothing, axis=0, mode="nearest")
    picks = np.unique(np.linspace(0, len(positions) - 1, max(2, min(n_keyframes, len(positions)))).round().astype(int))
    return _path(frame, list(positions[picks]), list(targets[picks]), _fov(frame, fov_y_deg), seconds, fps)


def _nearest_tour(points: np.ndarray) -> np.ndarray:
    """Greedy nearest-neighbour ordering starting at the first camera."""
    left = list(range(1, len(points)))
    tour = [0]
    while left:
        last = points[tour[-1]]
        j = int(np.argmin(np.linalg.norm(points[left] - last, axis=1)))
        tour.append(left.pop(j))
    return np.array(tour)


PRESET_BUILDERS = {"orbit": orbit, "dolly-in": dolly_in, "pull-back": pull_back, "crane-up": crane_up,
                   "fly-over": fly_over, "spiral": spiral, "follow-capture": follow_capture}
"""Every preset by name: (frame, seconds, fps, **options) -> CameraPath (follow-capture also takes the capture
after the frame). A new preset is a function above and an entry here; the CLI, the API and the studio list these."""
PRESETS = tuple(PRESET_BUILDERS)


def preset_path(name: str, frame: SceneFrame, *, capture: Cameras | None = None, seconds: float = 8.0,
                fps: float = 30.0, occupied: OccupancyQuery | None = None, **options) -> CameraPath:
    """Build preset `name` (one of PRESETS) with its keyword `options`, then step it out of occupied space."""
    options = {k: v for k, v in options.items() if v is not None}
    try:
        if name == "follow-capture":
            if capture is None:
                raise VistaError("follow-capture needs the capture cameras")
            path = follow_capture(frame, capture, seconds, fps, **options)
        elif name in PRESET_BUILDERS:
            path = PRESET_BUILDERS[name](frame, seconds, fps, **options)
        else:
            raise VistaError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    except TypeError as error:
        raise VistaError(f"preset {name}: {error}") from error
    if occupied is not None:
        path = avoid_occupied(path, frame, occupied, what=name)
    path.evaluate(path.frame_times())  # a camera that cannot be oriented is an error now, not at render time
    return path


def avoid_occupied(path: CameraPath, frame: SceneFrame, occupied: OccupancyQuery, what: str = "path",
                   clearance: float = 0.05, attempts: int = 12) -> CameraPath:
    """Move keyframes away from the subject centre until no camera (nor a small ball around it, `clearance`
    subject radii) is in occupied space; if that does not work (a place's walls are outside the photos, not
    inside), move them towards the centre instead; raises if neither works."""
    for factor in (1.15, 1 / 1.15):
        moved = _step_keyframes(path, frame, occupied, clearance, attempts, factor)
        if moved is not None:
            return moved
    raise VistaError(f"{what}: the camera passes through occupied space even after moving it out "
                     f"{attempts} times; raise the distance (e.g. --radius-factor) or change the keyframes")


def _step_keyframes(path: CameraPath, frame: SceneFrame, occupied: OccupancyQuery, clearance: float,
                    attempts: int, factor: float) -> CameraPath | None:
    """Scale the distance to the centre of the keyframes next to occupied frames by `factor`, up to `attempts`
    times, until no frame is occupied; None if it stays occupied."""
    ball = np.concatenate([np.zeros((1, 3)), np.eye(3), -np.eye(3)]) * clearance * frame.radius
    times = np.linspace(0.0, path.seconds, max(2 * path.n_frames, 200))
    for _ in range(attempts):
        positions = path.positions_at(times)
        hit = np.asarray(occupied((positions[:, None, :] + ball[None]).reshape(-1, 3)), bool).reshape(len(times), -1)
        bad_times = times[hit.any(axis=1)]
        if len(bad_times) == 0:
            return path
        key_times = path.keyframe_times()
        bounds = np.append(key_times, path.seconds) if path.loop else key_times
        bad_keys = set()
        for t in bad_times:
            s = int(np.clip(np.searchsorted(bounds, t, side="right") - 1, 0, path.n_segments - 1))
            bad_keys.update({s, (s + 1) % len(path.keyframes)})
        keys = list(path.keyframes)
        for k in bad_keys:
            # scale the camera and its look-at point about the centre together: the view direction and where the
            # subject centre sits in the frame stay as they were (a fly-over does not end up looking straight down)
            keys[k] = replace(keys[k], position=_scaled_about(keys[k].position, frame.centre, factor),
                              look_at=None if keys[k].look_at is None else
                              _scaled_about(keys[k].look_at, frame.centre, factor))
        path = replace(path, keyframes=tuple(keys))
    return None


def _scaled_about(point, centre: np.ndarray, factor: float) -> tuple[float, float, float]:
    return tuple(float(v) for v in centre + (np.asarray(point, dtype=np.float64) - centre) * factor)
