"""Target cameras for guidance: the user's path, or an establishing shot built from the capture.

Guidance renders views "a step closer" to the target path (Difix3D+'s progressive schedule): each
target camera is paired with its nearest capture camera and the pose is interpolated between the
two (position linearly, rotation by scipy's Slerp).

Path files are read by `render.path_io.load_path_cameras`; the establishing shot is Vista's own
`pull-back` preset (`render.path_presets`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from render.cameras import Cameras
from vista_core.errors import VistaError


def establishing_path(capture: Cameras, scene_from_world: torch.Tensor, n_frames: int, pull_back: float = 1.5,
                      rise_deg: float = 20.0, width: int | None = None, height: int | None = None) -> Cameras:
    """Vista's own `pull-back` preset (render.path_presets) fitted to the capture: from the capture's distance
    out to `pull_back` times it while rising `rise_deg`, one camera per frame."""
    from render.path_presets import fit_scene_frame
    from render.path_presets import pull_back as pull_back_preset

    if n_frames < 2:
        raise VistaError(f"an establishing path needs at least 2 frames, got {n_frames}")
    frame = fit_scene_frame(capture, scene_from_world)
    seconds = 4.0
    path = pull_back_preset(frame, seconds=seconds, fps=n_frames / seconds, start_factor=1.0, end_factor=pull_back,
                            rise_deg=rise_deg)
    return path.sample(width or capture.width, height or capture.height)


def interpolate_poses(a: torch.Tensor, b: torch.Tensor, fraction: float) -> torch.Tensor:
    """Poses [N, 3, 4] a fraction of the way from a to b (scipy Slerp for the rotations)."""
    from scipy.spatial.transform import Rotation, Slerp

    out = []
    for pa, pb in zip(a.double().numpy(), b.double().numpy()):
        slerp = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([pa[:, :3], pb[:, :3]])))
        rotation = slerp([fraction]).as_matrix()[0]
        position = (1 - fraction) * pa[:, 3] + fraction * pb[:, 3]
        out.append(np.concatenate([rotation, position[:, None]], axis=1))
    return torch.tensor(np.stack(out), dtype=torch.float32)


def nearest_capture(capture: Cameras, targets: Cameras) -> torch.Tensor:
    """Index [T] of the capture camera nearest (in position) to each target camera."""
    return torch.cdist(targets.positions, capture.positions).argmin(dim=1)


def stepping_cameras(capture: Cameras, targets: Cameras, fraction: float) -> Cameras:
    """Target cameras moved back toward their nearest capture cameras: fraction 1 is the target itself."""
    nearest = nearest_capture(capture, targets)
    poses = interpolate_poses(capture.world_from_camera[nearest], targets.world_from_camera, fraction)
    fy = (1 - fraction) * capture.fy[nearest] * targets.height / capture.height + fraction * targets.fy
    return Cameras(poses, fy.clone(), fy.clone(), targets.cx.clone(), targets.cy.clone(), targets.width,
                   targets.height)


def capture_inbetweens(capture: Cameras) -> Cameras:
    """Views half-way between consecutive capture cameras: the target when no path is given."""
    if len(capture) < 2:
        raise VistaError("the scene has a single capture camera: there is no trajectory to guide along; "
                         "give a path with --path")
    mid = interpolate_poses(capture.world_from_camera[:-1], capture.world_from_camera[1:], 0.5)
    return Cameras(mid, capture.fx[:-1], capture.fy[:-1], capture.cx[:-1], capture.cy[:-1], capture.width,
                   capture.height)


def load_target_cameras(path: Path, width: int, height: int) -> Cameras:
    """The cameras of a path file (any format `render.path_io` reads) at the given image size."""
    from render.path_io import load_path_cameras

    path = Path(path)
    if not path.is_file():
        raise VistaError(f"{path}: path file not found")
    cameras, _fps = load_path_cameras(path, width=width, height=height)
    return cameras
