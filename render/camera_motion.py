"""Cameras between the frames of a shot, at fractional frame indices: for re-timing a path of frames to another
frame rate (`vista render --fps`) and for motion blur's sub-frame cameras (render.motion_blur).

Working from the frames themselves (not a path's keyframes) means every path file works the same way, a
nerfstudio frame list or a Blender camera as well as Vista's keyframes, and a render recipe, which stores the
frames' cameras, determines the sub-frames exactly. scipy does the curves: positions a cubic spline over the
frame index (C2, through every frame), rotations `RotationSpline` (continuous angular velocity and acceleration,
through every frame), focal lengths and principal points PCHIP (monotone between frames, so a zoom never
overshoots). With two frames: straight line, slerp and linear.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from render.cameras import Cameras
from vista_core.errors import VistaError

if TYPE_CHECKING:
    from render.path_io import PathFile
    from render.paths import CameraPath


def interpolate_frames(world_from_camera: np.ndarray, values: np.ndarray,
                       at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames [F, 3, 4] and per-frame numbers [F, K] (fov, focal lengths, ...) at fractional frame indices `at` [T]
    (clamped to [0, F - 1]: the camera holds still before the first frame and after the last)."""
    from scipy.interpolate import CubicSpline, PchipInterpolator
    from scipy.spatial.transform import Rotation, RotationSpline, Slerp

    world_from_camera = np.asarray(world_from_camera, np.float64)
    values = np.asarray(values, np.float64).reshape(len(world_from_camera), -1)
    count = len(world_from_camera)
    if count < 1:
        raise VistaError("a path with no frames cannot be re-timed")
    at = np.clip(np.asarray(at, np.float64).reshape(-1), 0, count - 1)
    if count == 1:
        return np.repeat(world_from_camera, len(at), axis=0), np.repeat(values, len(at), axis=0)
    index = np.arange(count, dtype=np.float64)
    rotations = Rotation.from_matrix(world_from_camera[:, :, :3])
    if count == 2:
        positions = np.stack([np.interp(at, index, world_from_camera[:, i, 3]) for i in range(3)], axis=1)
        rotation = Slerp(index, rotations)(at).as_matrix()
        numbers = np.stack([np.interp(at, index, values[:, k]) for k in range(values.shape[1])], axis=1)
    else:
        positions = CubicSpline(index, world_from_camera[:, :, 3], axis=0)(at)
        rotation = RotationSpline(index, rotations)(at).as_matrix()
        numbers = PchipInterpolator(index, values, axis=0)(at)
    return np.concatenate([rotation, positions[:, :, None]], axis=2), numbers


def interpolate_cameras(cameras: Cameras, at: np.ndarray) -> Cameras:
    """`cameras` (one per frame, one image size, no distortion) at fractional frame indices `at` [T]."""
    if cameras.mixed_sizes or cameras.distortion is not None:
        raise VistaError("only path cameras (one image size, no lens distortion) can be interpolated between frames")
    intrinsics = torch.stack([cameras.fx, cameras.fy, cameras.cx, cameras.cy], dim=1).double().cpu().numpy()
    world_from_camera, numbers = interpolate_frames(cameras.world_from_camera.double().cpu().numpy(), intrinsics, at)
    w = torch.from_numpy(world_from_camera).float()
    fx, fy, cx, cy = (torch.from_numpy(numbers[:, k]).float() for k in range(4))
    return Cameras(w, fx, fy, cx, cy, cameras.width, cameras.height)


def retimed_indices(count: int, new_count: int) -> np.ndarray:
    """Fractional frame indices of `new_count` frames spanning the same shot as `count` frames: the first and the
    last frame are kept, the rest evenly between (Vista's open paths span [0, seconds] with both ends)."""
    if new_count < 2 or count < 2:
        return np.zeros(max(new_count, 1))
    return np.linspace(0.0, count - 1.0, new_count)


def retime_path_file(loaded: PathFile, fps: float) -> PathFile:
    """The same shot at `fps`: as many frames as keep its length in seconds (round(seconds * fps)), the first
    and last camera unchanged. Keyframes are sampled again at the new rate; a file of frames only is interpolated
    between its frames (`interpolate_frames`)."""
    from dataclasses import replace

    from render.path_io import PathFile

    if loaded.path is not None:
        path = replace(loaded.path, fps=float(fps))
        world_from_camera, fov = path.evaluate(path.frame_times())
        return PathFile(world_from_camera, fov, loaded.width, loaded.height, path.seconds, path.fps, path,
                        loaded.source)
    count = max(2, round(loaded.seconds * fps))
    world_from_camera, fov = interpolate_frames(loaded.world_from_camera, loaded.fov_y_deg[:, None],
                                                retimed_indices(len(loaded.fov_y_deg), count))
    return PathFile(world_from_camera, fov[:, 0], loaded.width, loaded.height, count / fps, float(fps), None,
                    loaded.source)


def path_from_frames(world_from_camera: np.ndarray, fov_y_deg: np.ndarray, fps: float, where: str) -> CameraPath:
    """An editable path from a file of frames (a Blender camera, a nerfstudio frame list): a keyframe per frame
    (orientation, field of view), each segment one frame long, so the path passes through every frame at its time
    (F frames over F / fps seconds). A camera that holds still cannot be a Vista path (two keyframes would be the
    same camera): that is refused, naming the frames, and the file still renders as it is (`vista render --path`)."""
    from render.keyframes import Keyframe, quaternion_from_rotation
    from render.paths import CameraPath

    count = len(fov_y_deg)
    if count < 2:
        raise VistaError(f"{where}: a path needs at least 2 frames, the file has {count}")
    scale = max(1.0, float(np.ptp(world_from_camera[:, :, 3], axis=0).max()))
    moves = np.abs(np.diff(world_from_camera, axis=0)) / np.array([1.0, 1.0, 1.0, scale])  # rotation; position
    if (still := np.flatnonzero((moves.max(axis=(1, 2)) < 1e-6) & (np.abs(np.diff(fov_y_deg)) < 1e-6))).size:
        raise VistaError(f"{where}: the camera holds still at frames {still[0]} and {still[0] + 1}, which a Vista path "
                         f"cannot do; render the file as it is (vista render --path {where})")
    seconds = count / fps
    frame_s = seconds / (count - 1)  # an open path's F frames span [0, seconds], both ends included
    keyframes = tuple(Keyframe(tuple(float(v) for v in m[:, 3]), orientation=quaternion_from_rotation(m[:, :3]),
                               fov_y_deg=float(f), duration_s=frame_s if k < count - 1 else None)
                      for k, (m, f) in enumerate(zip(world_from_camera, fov_y_deg)))
    try:
        return CameraPath(keyframes, seconds=seconds, fps=fps, constant_speed=False)
    except VistaError as error:
        raise VistaError(f"{where}: its frames do not make an editable path ({error})") from error
