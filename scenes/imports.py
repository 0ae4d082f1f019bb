"""Posed datasets in, nerfstudio `transforms.json` out.

A sparse model (from `vista poses` or any COLMAP model folder) becomes a dataset folder that
`scenes.data.load_posed_images` reads: `transforms.json` in nerfstudio's format, `images/`, and
`sparse_pc.ply` (written with trimesh). The conversion follows nerfstudio's
`process_data.colmap_utils.colmap_to_json` exactly, so files match what `ns-process-data` makes:

- camera-to-world = inverse of COLMAP's world-to-camera, with the camera's y and z axes negated
  (OpenCV camera axes: +y down, looks +z  ->  OpenGL: +y up, looks -z);
- the world is then turned z-up by `applied_transform` (rows x, z, -y of COLMAP's world), which is
  recorded in the file and applied to the sparse points as well.

instant-ngp, nerfstudio and Blender datasets need no import: `load_posed_images` reads them as
they are. This module does not import pycolmap; reading COLMAP's binary/text files (and `vista import`)
is `scenes.colmap`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from render.meshes import write_point_cloud
from vista_core.errors import VistaError
from vista_core.files import atomic_write_json

# diag(1, -1, -1) on the camera axes: OpenCV (COLMAP) <-> OpenGL (nerfstudio); it is its own inverse.
OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0])
# nerfstudio's applied_transform: new world = rows (x, z, -y) of COLMAP's world, so +z is up.
APPLIED_TRANSFORM = np.array([[1.0, 0.0, 0.0, 0.0],
                              [0.0, 0.0, 1.0, 0.0],
                              [0.0, -1.0, 0.0, 0.0]])


@dataclass
class SparseCamera:
    """A camera in nerfstudio's OPENCV model (pinhole + k1, k2, p1, p2), pixels."""

    width: int
    height: int
    fl_x: float
    fl_y: float
    cx: float
    cy: float
    k1: float = 0.0
    k2: float = 0.0
    p1: float = 0.0
    p2: float = 0.0

    def to_json(self) -> dict:
        return {"camera_model": "OPENCV", "w": self.width, "h": self.height, "fl_x": self.fl_x, "fl_y": self.fl_y,
                "cx": self.cx, "cy": self.cy, "k1": self.k1, "k2": self.k2, "p1": self.p1, "p2": self.p2}


@dataclass
class SparseImage:
    name: str  # file name relative to the image folder
    camera_id: int
    camera_from_world: np.ndarray  # [3, 4] COLMAP's pose: world-to-camera, OpenCV camera axes
    image_id: int = 0


@dataclass
class SparseModel:
    """A registered sparse reconstruction in plain numpy, independent of pycolmap."""

    cameras: dict[int, SparseCamera]
    images: list[SparseImage]
    points_xyz: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # [P, 3] COLMAP world
    points_rgb: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))  # [P, 3]
    points_error_px: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [P] reprojection error


def colmap_camera_to_opencv(model_name: str, params: list[float], width: int, height: int, where: str) -> SparseCamera:
    """COLMAP camera model parameters -> nerfstudio OPENCV (as nerfstudio's parse_colmap_camera_params)."""
    p = [float(v) for v in params]
    if model_name == "SIMPLE_PINHOLE":
        return SparseCamera(width, height, p[0], p[0], p[1], p[2])
    if model_name == "PINHOLE":
        return SparseCamera(width, height, p[0], p[1], p[2], p[3])
    if model_name == "SIMPLE_RADIAL":
        return SparseCamera(width, height, p[0], p[0], p[1], p[2], k1=p[3])
    if model_name == "RADIAL":
        return SparseCamera(width, height, p[0], p[0], p[1], p[2], k1=p[3], k2=p[4])
    if model_name == "OPENCV":
        return SparseCamera(width, height, *p[:8])
    raise VistaError(f"{where}: COLMAP camera model {model_name} is not supported (use SIMPLE_PINHOLE, PINHOLE, "
                     "SIMPLE_RADIAL, RADIAL or OPENCV, or undistort the images with COLMAP first)")


def opengl_world_from_camera(camera_from_world: np.ndarray) -> np.ndarray:
    """COLMAP world-to-camera [3, 4] (OpenCV axes) -> camera-to-world [4, 4] in nerfstudio's world and axes."""
    w2c = np.eye(4)
    w2c[:3, :4] = camera_from_world
    c2w = np.linalg.inv(w2c)
    c2w[:3, :3] = c2w[:3, :3] @ OPENGL_FROM_OPENCV
    applied = np.eye(4)
    applied[:3, :4] = APPLIED_TRANSFORM
    return applied @ c2w


def colmap_camera_from_world(world_from_camera_gl: np.ndarray) -> np.ndarray:
    """The inverse of `opengl_world_from_camera`: nerfstudio camera-to-world -> COLMAP world-to-camera [3, 4]."""
    applied = np.eye(4)
    applied[:3, :4] = APPLIED_TRANSFORM
    c2w = np.linalg.inv(applied) @ _as_4x4(world_from_camera_gl)
    c2w[:3, :3] = c2w[:3, :3] @ OPENGL_FROM_OPENCV
    return np.linalg.inv(c2w)[:3, :4]


def _as_4x4(matrix: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :4] = np.asarray(matrix, dtype=np.float64)[:3, :4]
    return out


def transforms_from_model(model: SparseModel, image_folder: str = "images") -> dict:
    """nerfstudio transforms.json content for the model's images, sorted by name."""
    if not model.images:
        raise VistaError("the reconstruction has no registered images")
    used_cameras = sorted({image.camera_id for image in model.images})
    single = len(used_cameras) == 1
    out: dict = dict(model.cameras[used_cameras[0]].to_json()) if single else {"camera_model": "OPENCV"}
    frames = []
    for image in sorted(model.images, key=lambda im: im.name):
        frame = {"file_path": f"{image_folder}/{image.name}",
                 "transform_matrix": opengl_world_from_camera(image.camera_from_world).tolist(),
                 "colmap_im_id": image.image_id}
        if not single:
            frame.update({k: v for k, v in model.cameras[image.camera_id].to_json().items() if k != "camera_model"})
        frames.append(frame)
    out["frames"] = frames
    out["applied_transform"] = APPLIED_TRANSFORM.tolist()
    out["ply_file_path"] = "sparse_pc.ply"
    return out


def points_in_transforms_world(model: SparseModel) -> np.ndarray:
    """Sparse points [P, 3] moved by applied_transform into transforms.json's world (as nerfstudio does)."""
    return model.points_xyz @ APPLIED_TRANSFORM[:3, :3].T + APPLIED_TRANSFORM[:3, 3]


def write_posed_dataset(model: SparseModel, out_dir: Path, image_folder: str = "images") -> Path:
    """Write transforms.json and sparse_pc.ply (trimesh) into `out_dir`; images must already be in place."""
    out_dir = Path(out_dir)
    transforms = transforms_from_model(model, image_folder)
    if len(model.points_xyz):
        write_point_cloud(points_in_transforms_world(model), model.points_rgb, out_dir / "sparse_pc.ply")
    else:
        transforms.pop("ply_file_path")
    atomic_write_json(out_dir / "transforms.json", transforms)
    return out_dir / "transforms.json"


def transforms_from_posed(cameras_world_from_camera: np.ndarray, fx: np.ndarray, fy: np.ndarray, cx: np.ndarray,
                          cy: np.ndarray, width: int, height: int, names: list[str],
                          distortion: np.ndarray | None = None) -> dict:
    """transforms.json content (per-frame intrinsics) for cameras already in nerfstudio's convention.

    `distortion` is nerfstudio's order (k1, k2, k3, k4, p1, p2). Inverse of `scenes.data`'s reader.
    """
    frames = []
    for i, name in enumerate(names):
        frame = {"file_path": name, "transform_matrix": _as_4x4(cameras_world_from_camera[i]).tolist(),
                 "fl_x": float(fx[i]), "fl_y": float(fy[i]), "cx": float(cx[i]), "cy": float(cy[i])}
        if distortion is not None:
            k1, k2, k3, k4, p1, p2 = (float(v) for v in distortion[i])
            frame.update({"k1": k1, "k2": k2, "k3": k3, "k4": k4, "p1": p1, "p2": p2})
        frames.append(frame)
    return {"camera_model": "OPENCV", "w": int(width), "h": int(height), "frames": frames}
