"""Camera path files: nerfstudio's camera_path.json (read and write), instant-ngp's base_cam.json (read),
Vista's keyframe JSON (read and write), glTF camera animations (.glb/.gltf: render.gltf_camera, with their axes).

nerfstudio `camera_path.json`, as `ns-render camera-path` reads it (`get_path_from_json` in
nerfstudio/cameras/camera_paths.py): `camera_path` is a list of frames, each with `camera_to_world` (a
4x4 camera-to-world matrix flattened row-major, OpenGL camera axes: +x right, +y up, looking along -z)
and `fov` (vertical, degrees); `render_width`, `render_height`, `seconds` (ns-render's frame rate is
frames / seconds) and `camera_type`. The viewer's `keyframes` (`matrix` flattened row-major, `fov`,
`aspect`, `override_transition_*`) make the path editable again in nerfstudio's viewer; Vista adds its
own keyframes under `"vista"`, so a path written here reads back exactly.

Coordinates: nerfstudio renders in its dataparser's space: camera_to_world = transform @ pose, with the
translation then multiplied by scale (`dataparser_transforms.json` in a nerfstudio run folder: 3x4
`transform` and `scale`). Vista's cameras are in the dataset's own world coordinates, so give the
dataparser transform when a file is meant for, or comes from, a nerfstudio run; Vista records the
transform it used in the file and undoes it on reading.

The legacy (three.js) nerfstudio viewer wrote keyframe `matrix` as a string holding three.js's
column-major array; it is decoded as such. A `camera_to_world` that is a string is refused.

instant-ngp `base_cam.json`: `{"path": [{"R": [x, y, z, w], "T": [x, y, z], "fov": deg, ...}], "time": t}`
in instant-ngp's own space (transforms.json coordinates with camera y/z flipped, times `scale` (0.33)
plus `offset` (0.5), axes cycled xyz <- yzx). Its keyframes are read into a Vista path and interpolated by
Vista's spline (instant-ngp's own player uses a smoothing B-spline that does not pass through them).
The file holds no duration or image size: 1 s per segment, 30 fps and 640x360 unless given.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from render.cameras import Cameras
from render.keyframes import MAX_FOV_DEG, MIN_FOV_DEG, Keyframe, quaternion_from_rotation
from render.paths import CameraPath
from vista_core.errors import VistaError, require_finite
from vista_core.files import atomic_write_json, read_json

VISTA_BLOCK = "vista"
FORMAT_VERSION = 1
NGP_SCALE = 0.33  # instant-ngp's default NeRF scale and offset (nerf_loader)
NGP_OFFSET = (0.5, 0.5, 0.5)
DEFAULT_SIZE = (640, 360)


@dataclass(frozen=True)
class DataparserTransform:
    """nerfstudio's dataparser transform: ns = scale * (transform @ world) for points."""

    transform: np.ndarray  # [3, 4]
    scale: float

    def __post_init__(self) -> None:
        rotation = self.transform[:, :3]
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5) or not math.isfinite(self.scale) \
                or self.scale <= 0:
            raise VistaError("dataparser transform: 'transform' must be a rotation plus translation and "
                             "'scale' a positive number")

    def ns_from_world(self, world_from_camera: np.ndarray) -> np.ndarray:
        rotation, translation = self.transform[:, :3], self.transform[:, 3]
        out = np.empty_like(world_from_camera, dtype=np.float64)
        out[:, :, :3] = rotation @ world_from_camera[:, :, :3]
        out[:, :, 3] = (world_from_camera[:, :, 3] @ rotation.T + translation) * self.scale
        return out

    def world_from_ns(self, ns_from_camera: np.ndarray) -> np.ndarray:
        rotation, translation = self.transform[:, :3], self.transform[:, 3]
        out = np.empty_like(ns_from_camera, dtype=np.float64)
        out[:, :, :3] = rotation.T @ ns_from_camera[:, :, :3]
        out[:, :, 3] = (ns_from_camera[:, :, 3] / self.scale - translation) @ rotation
        return out

    def to_dict(self) -> dict:
        return {"transform": self.transform.tolist(), "scale": self.scale}

    @staticmethod
    def from_dict(data, where: str) -> DataparserTransform:
        if not isinstance(data, dict) or "transform" not in data or "scale" not in data:
            raise VistaError(f"{where}: expected {{'transform': 3x4 matrix, 'scale': number}} "
                             "(nerfstudio's dataparser_transforms.json)")
        try:
            transform = np.asarray(data["transform"], dtype=np.float64)
            scale = float(data["scale"])
        except (TypeError, ValueError) as error:
            raise VistaError(f"{where}: 'transform' must be a 3x4 list of numbers and 'scale' a number") from error
        if transform.shape == (4, 4):
            transform = transform[:3]
        if transform.shape != (3, 4) or not np.all(np.isfinite(transform)):
            raise VistaError(f"{where}: 'transform' must be a finite 3x4 matrix, got shape {transform.shape}")
        try:
            return DataparserTransform(transform, scale)
        except VistaError as error:
            raise VistaError(f"{where}: {error}") from None


def read_dataparser_transforms(path: Path) -> DataparserTransform:
    return DataparserTransform.from_dict(read_json(path, "dataparser transforms"), str(path))


@dataclass
class PathFile:
    """What a camera path file holds, in Vista world coordinates."""

    world_from_camera: np.ndarray  # [F, 3, 4] float64, OpenGL axes
    fov_y_deg: np.ndarray  # [F]
    width: int
    height: int
    seconds: float
    fps: float
    path: CameraPath | None  # keyframes for re-editing, when the file has them
    source: str  # "vista" | "nerfstudio" | "nerfstudio-legacy" | "instant-ngp" | "vista-keyframes" | "gltf"

    def cameras(self, width: int | None = None, height: int | None = None) -> Cameras:
        """One camera per frame; a new size keeps the vertical FOV (and the other side's aspect if one is given)."""
        width, height = _resolve_size(self.width, self.height, width, height)
        return Cameras.from_fov(torch.from_numpy(self.world_from_camera).float(),
                                torch.from_numpy(self.fov_y_deg).float(), width, height)


def load_path_cameras(path: Path, width: int | None = None, height: int | None = None, *,
                      dataparser_transforms: Path | None = None) -> tuple[Cameras, float]:
    """One camera per frame (world coordinates) and the frame rate, from any path file Vista reads:
    nerfstudio camera_path.json (Vista's or nerfstudio's), Vista keyframe JSON, instant-ngp base_cam.json, glTF."""
    dataparser = read_dataparser_transforms(dataparser_transforms) if dataparser_transforms else None
    loaded = read_path_file(path, dataparser=dataparser)
    return loaded.cameras(width, height), loaded.fps


def read_path_file(path: Path, *, dataparser: DataparserTransform | None = None, seconds: float | None = None,
                   fps: float | None = None) -> PathFile:
    """Read a camera path file; the format is recognised from its keys."""
    path = Path(path)
    try:
        return _read_path_file(path, dataparser, seconds, fps)
    except VistaError as error:
        if str(path) in str(error):
            raise
        # keyframe and path checks (render/paths.py) do not know which file they came from
        raise VistaError(f"{path}: {error}") from error


def _read_path_file(path: Path, dataparser: DataparserTransform | None, seconds: float | None,
                    fps: float | None) -> PathFile:
    if path.suffix.lower() in (".glb", ".gltf"):
        from render.gltf_camera import read_camera_gltf

        camera = read_camera_gltf(path, fps=fps)  # None: the file's own rate
        return PathFile(camera.world_from_camera, camera.fov_y_deg, camera.width, camera.height, camera.seconds,
                        camera.fps, camera.path, "gltf")
    data = read_json(path, "camera path file")
    where = str(path)
    if not isinstance(data, dict):
        raise VistaError(f"{where}: expected a JSON object (a camera path)")
    if "camera_path" in data:
        return _read_nerfstudio(data, where, dataparser)
    if isinstance(data.get("path"), list):
        return _read_ngp(data, where, seconds=seconds, fps=fps)
    if isinstance(data.get("keyframes"), list) and all(isinstance(k, dict) and "position" in k
                                                      for k in data["keyframes"]):
        camera_path = CameraPath.from_dict(data, where)
        w, f = camera_path.evaluate(camera_path.frame_times())
        return PathFile(w, f, *DEFAULT_SIZE, camera_path.seconds, camera_path.fps, camera_path, "vista-keyframes")
    raise VistaError(f"{where}: not a camera path: expected nerfstudio's 'camera_path' list, Vista keyframes "
                     "('keyframes' with 'position') or instant-ngp's 'path' list")


def read_keyframes(path: Path) -> CameraPath:
    """A Vista keyframe JSON file (format in render/paths.py), or the Vista/nerfstudio keyframes of a camera_path.json."""
    loaded = read_path_file(path)
    if loaded.path is None:
        raise VistaError(f"{path}: holds frames but no keyframes to edit")
    return loaded.path


def write_keyframes(out: Path, path: CameraPath) -> None:
    atomic_write_json(out, path.to_dict())


# ---------------------------------------------------------------------------------------------
# nerfstudio


def camera_path_json(path: CameraPath, width: int, height: int,
                     dataparser: DataparserTransform | None = None) -> dict:
    """The camera_path.json dict for `path` at `width` x `height` (nerfstudio coordinates if `dataparser`)."""
    if width < 1 or height < 1:
        raise VistaError(f"render size must be positive, got {width}x{height}")
    world_from_camera, fov = path.evaluate(path.frame_times())
    key_matrices = path.keyframe_matrices()
    if dataparser is not None:
        world_from_camera = dataparser.ns_from_world(world_from_camera)
        key_matrices = dataparser.ns_from_world(key_matrices)
    aspect = width / height
    default_transition = path.seconds / path.n_segments
    return {
        "camera_type": "perspective",
        "render_width": width,
        "render_height": height,
        "fps": path.fps,
        "seconds": path.seconds,
        "is_cycle": path.loop,
        "smoothness_value": path.tension,
        "default_fov": path.keyframes[0].fov_y_deg,
        "default_transition_sec": default_transition,
        "keyframes": [
            {"matrix": _flat4x4(m), "fov": kf.fov_y_deg, "aspect": aspect,
             "override_transition_enabled": kf.duration_s is not None,
             "override_transition_sec": kf.duration_s}
            for m, kf in zip(key_matrices, path.keyframes)
        ],
        "camera_path": [{"camera_to_world": _flat4x4(m), "fov": float(f), "aspect": aspect}
                        for m, f in zip(world_from_camera, fov)],
        "crop": None,
        VISTA_BLOCK: {
            "format": "vista-camera-path",
            "version": FORMAT_VERSION,
            "path": path.to_dict(),
            "dataparser_transform": None if dataparser is None else dataparser.to_dict(),
        },
    }


def write_camera_path(out: Path, path: CameraPath, width: int, height: int,
                      dataparser: DataparserTransform | None = None) -> dict:
    data = camera_path_json(path, width, height, dataparser)
    atomic_write_json(out, data)
    return data


def _flat4x4(m: np.ndarray) -> list[float]:
    return [float(v) for v in np.concatenate([m, [[0.0, 0.0, 0.0, 1.0]]], axis=0).reshape(-1)]


def _matrix_3x4(value, where: str, legacy_string: bool) -> np.ndarray:
    if isinstance(value, str):
        if not legacy_string:
            raise VistaError(f"{where}: is a string; nerfstudio's camera_to_world is a list of 16 numbers "
                             "(re-export the path from a current nerfstudio viewer)")
        try:
            value = np.asarray(json.loads(value), dtype=np.float64).reshape(4, 4).T  # three.js: column-major
        except (ValueError, TypeError) as error:
            raise VistaError(f"{where}: the legacy viewer's string matrix is not 16 numbers") from error
    try:
        m = np.asarray(value, dtype=np.float64).reshape(4, 4)
    except (ValueError, TypeError) as error:
        raise VistaError(f"{where}: expected a 4x4 matrix as 16 numbers") from error
    if not np.all(np.isfinite(m)):
        raise VistaError(f"{where}: holds NaN or infinity")
    if not np.allclose(m[3], [0, 0, 0, 1], atol=1e-6):
        raise VistaError(f"{where}: last row is {m[3].tolist()}, not [0, 0, 0, 1]; is it column-major?")
    rotation = m[:3, :3]
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-4) or np.linalg.det(rotation) < 0:
        raise VistaError(f"{where}: the rotation part is not a rotation (scaled, sheared or mirrored)")
    return m[:3]


def _number(data: dict, key: str, where: str, default=None) -> float:
    value = data.get(key, default)
    if value is None:
        raise VistaError(f"{where}: missing '{key}'")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise VistaError(f"{where}: '{key}' must be a number, got {value!r}")
    return float(value)


def _read_nerfstudio(data: dict, where: str, dataparser: DataparserTransform | None) -> PathFile:
    camera_type = data.get("camera_type", "perspective")
    if camera_type != "perspective":
        raise VistaError(f"{where}: camera_type {camera_type!r} is not supported; Vista renders perspective cameras")
    frames = data["camera_path"]
    if not isinstance(frames, list) or not frames:
        raise VistaError(f"{where}: 'camera_path' must be a non-empty list of frames")
    width = int(_number(data, "render_width", where))
    height = int(_number(data, "render_height", where))
    if width < 1 or height < 1:
        raise VistaError(f"{where}: render size {width}x{height} is not positive")
    vista = data.get(VISTA_BLOCK)
    if dataparser is None and isinstance(vista, dict) and vista.get("dataparser_transform") is not None:
        dataparser = DataparserTransform.from_dict(vista["dataparser_transform"], f"{where}: vista.dataparser_transform")
    matrices, fovs = [], []
    for i, frame in enumerate(frames):
        at = f"{where}: camera_path[{i}]"
        if not isinstance(frame, dict) or "camera_to_world" not in frame:
            raise VistaError(f"{at}: missing 'camera_to_world'")
        matrices.append(_matrix_3x4(frame["camera_to_world"], f"{at}.camera_to_world", legacy_string=False))
        fov = _number(frame, "fov", at)
        if not MIN_FOV_DEG < fov < MAX_FOV_DEG:
            raise VistaError(f"{at}: 'fov' {fov} is outside ({MIN_FOV_DEG:g}, {MAX_FOV_DEG:g}) degrees")
        fovs.append(fov)
    world_from_camera = np.stack(matrices)
    if dataparser is not None:
        world_from_camera = dataparser.world_from_ns(world_from_camera)
    if "seconds" in data:
        seconds = _number(data, "seconds", where)
    elif "fps" in data:
        seconds = len(frames) / _number(data, "fps", where)
    else:
        raise VistaError(f"{where}: missing 'seconds' (the video length ns-render needs)")
    if seconds <= 0:
        raise VistaError(f"{where}: 'seconds' must be positive, got {seconds}")
    fps = len(frames) / seconds  # what ns-render uses
    path, source = None, "nerfstudio"
    if isinstance(vista, dict) and "path" in vista:
        path, source = CameraPath.from_dict(vista["path"], f"{where}: vista.path"), "vista"
    elif isinstance(data.get("keyframes"), list):
        path, source = _nerfstudio_keyframes(data, where, dataparser, seconds, fps)
    return PathFile(world_from_camera, np.array(fovs), width, height, seconds, fps, path, source)


def _nerfstudio_keyframes(data: dict, where: str, dataparser: DataparserTransform | None, seconds: float,
                          fps: float) -> tuple[CameraPath | None, str]:
    """The viewer's keyframes as an editable Vista path (orientation keyframes); None if they cannot be used."""
    keys = data["keyframes"]
    legacy = any(isinstance(k, dict) and isinstance(k.get("matrix"), str) for k in keys)
    source = "nerfstudio-legacy" if legacy else "nerfstudio"
    if len(keys) < 2:
        return None, source
    matrices, fovs, durations = [], [], []
    for i, k in enumerate(keys):
        at = f"{where}: keyframes[{i}]"
        if not isinstance(k, dict) or "matrix" not in k:
            raise VistaError(f"{at}: missing 'matrix'")
        matrices.append(_matrix_3x4(k["matrix"], f"{at}.matrix", legacy_string=True))
        fovs.append(_number(k, "fov", at, default=data.get("default_fov", 50.0)))
        durations.append(k.get("override_transition_sec") if k.get("override_transition_enabled") else None)
    matrices = np.stack(matrices)
    if dataparser is not None:
        matrices = dataparser.world_from_ns(matrices)
    loop = bool(data.get("is_cycle", False))
    n_segments = len(keys) if loop else len(keys) - 1
    keyframes = tuple(
        Keyframe(position=tuple(float(v) for v in m[:, 3]), orientation=quaternion_from_rotation(m[:, :3]),
                 fov_y_deg=float(f), duration_s=(float(d) if d is not None and i < n_segments else None))
        for i, (m, f, d) in enumerate(zip(matrices, fovs, durations)))
    try:
        return CameraPath(keyframes, seconds=seconds, fps=fps, loop=loop), source
    except VistaError:
        return None, source  # frames are still usable; the keyframes just cannot be re-edited as they are


# ---------------------------------------------------------------------------------------------
# instant-ngp


def ngp_to_world(rotation_xyzw, translation, scale: float = NGP_SCALE,
                 offset=NGP_OFFSET) -> np.ndarray:
    """instant-ngp keyframe (R quaternion x, y, z, w; T) -> world_from_camera [3, 4] in transforms.json
    coordinates: the inverse of instant-ngp's nerf_matrix_to_ngp."""
    from scipy.spatial.transform import Rotation

    ngp = np.concatenate([Rotation.from_quat(rotation_xyzw).as_matrix(), np.asarray(translation, float)[:, None]], 1)
    nerf = ngp[[2, 0, 1]]  # undo the row cycle xyz <- yzx
    nerf[:, 3] = (nerf[:, 3] - np.asarray(offset, float)) / scale
    nerf[:, 1:3] *= -1  # instant-ngp cameras look along +z with y down; OpenGL looks along -z with y up
    return nerf


def _read_ngp(data: dict, where: str, *, seconds: float | None, fps: float | None,
              scale: float = NGP_SCALE, offset=NGP_OFFSET) -> PathFile:
    entries = data["path"]
    if len(entries) < 2:
        raise VistaError(f"{where}: instant-ngp path has {len(entries)} keyframe(s); at least 2 are needed")
    keyframes = []
    for i, e in enumerate(entries):
        at = f"{where}: path[{i}]"
        if not isinstance(e, dict) or "R" not in e or "T" not in e:
            raise VistaError(f"{at}: missing 'R' (quaternion) or 'T' (position)")
        require_finite([e["R"], e["T"]], at)
        try:
            q = np.asarray(e["R"], dtype=np.float64).reshape(4)
            t = np.asarray(e["T"], dtype=np.float64).reshape(3)
        except (ValueError, TypeError) as error:
            raise VistaError(f"{at}: 'R' must be 4 numbers and 'T' 3 numbers") from error
        if np.linalg.norm(q) < 1e-6:
            raise VistaError(f"{at}: 'R' is a zero quaternion")
        m = ngp_to_world(q / np.linalg.norm(q), t, scale, offset)
        fov = _number(e, "fov", at, default=50.0)
        keyframes.append(Keyframe(position=tuple(float(v) for v in m[:, 3]),
                                  orientation=quaternion_from_rotation(m[:, :3]), fov_y_deg=fov))
    seconds = seconds or float(len(entries) - 1)
    path = CameraPath(tuple(keyframes), seconds=seconds, fps=fps or 30.0, constant_speed=False)
    w, f = path.evaluate(path.frame_times())
    return PathFile(w, f, *DEFAULT_SIZE, path.seconds, path.fps, path, "instant-ngp")


def _resolve_size(file_width: int, file_height: int, width: int | None, height: int | None) -> tuple[int, int]:
    if width is None and height is None:
        return file_width, file_height
    if width is not None and height is not None:
        return int(width), int(height)
    if width is not None:
        return int(width), max(1, round(width * file_height / file_width))
    return max(1, round(height * file_width / file_height)), int(height)
