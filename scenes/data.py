"""Posed images: Blender/NeRF-synthetic and nerfstudio/instant-ngp `transforms.json` datasets.

`load_posed_images(path)` reads either format into one `PosedImages`: cameras in the dataset's own
world coordinates (nerfstudio's conventions: camera-to-world, OpenGL axes, OPENCV intrinsics with
k1, k2, p1, p2 (k3, k4) distortion, per frame where photos differ), photos as uint8 of each one's own size
(`scenes.photos.Photos`), a train / held-out split and the similarity `scene_from_world` that normalises the scene
into the field's box. `LoadOptions` sets the resolution (`--downscale`, the cap on the long side) and whether
missing images are skipped (`scenes.frames` does the reading).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from render.cameras import Cameras
from render.render import SceneKind
from scenes.frames import Frame, LoadedFrames, load_frames, present_frames
from scenes.images_io import MAX_IMAGE_PIXELS, dataset_hash, resolve_image_path
from scenes.photos import LoadOptions, Photos
from vista_core.errors import VistaError
from vista_core.files import read_json

__all__ = ["MAX_IMAGE_PIXELS", "LoadOptions", "Photos", "PosedImages", "dataset_hash", "focus_point",
           "load_posed_images", "normalize_unbounded"]


@dataclass
class PosedImages:
    cameras: Cameras  # world coordinates, each camera of its photo's size
    images: Photos
    """The photos, uint8, C = 3 (RGB) or 4 (RGBA, straight alpha); a [N, H, W, C] tensor of photos of one size
    is packed into `Photos` on construction."""
    names: list[str]
    train_indices: list[int]
    heldout_indices: list[int]
    kind: SceneKind
    scene_from_world: torch.Tensor  # [4, 4]
    background: tuple[float, float, float]
    source: str
    content_hash: str = ""
    """`dataset_hash` of the files this was read from: a scene records it, so that `vista eval` can tell when the
    photos changed since training."""
    downscale: int = 1
    """The whole number the photos' sizes were divided by at load (1 = full size); a scene records it so that
    `vista eval` compares at the training resolution."""
    notes: list[str] = field(default_factory=list)
    """Lines for the user about how the dataset was loaded (an automatic downscale, skipped frames)."""

    def __post_init__(self) -> None:
        if isinstance(self.images, torch.Tensor):
            self.images = Photos.from_stacked(self.images)

    @property
    def has_alpha(self) -> bool:
        return self.images.channels == 4

    def size_of(self, index: int) -> tuple[int, int]:
        """(width, height) of photo `index`."""
        return self.images.size_of(index)

    def composited(self, index: int, background: tuple[float, float, float] | None = None) -> torch.Tensor:
        """Image `index` as float RGB [H, W, 3], RGBA composited over the background (white for Blender)."""
        image = self.images.photo(index).float() / 255.0
        if not self.has_alpha:
            return image
        bg = torch.tensor(self.background if background is None else background)
        alpha = image[..., 3:4]
        return image[..., :3] * alpha + bg * (1 - alpha)


def load_posed_images(path: Path, heldout_every: int = 8, options: LoadOptions = LoadOptions()) -> PosedImages:
    """Read a dataset folder (or its transforms file) in Blender or nerfstudio/instant-ngp format, at the
    resolution `options` sets (by default full size up to 1600 px on the long side)."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if not path.exists():
        raise VistaError(f"{path}: dataset folder not found")
    if (path / "transforms_train.json").is_file():
        return _load_blender(path, options)
    if (path / "transforms.json").is_file():
        return _load_transforms(path, heldout_every, options)
    raise VistaError(f"{path}: no transforms_train.json (Blender format) or transforms.json (nerfstudio format) found")


def _matrix(frame: dict, where: str) -> np.ndarray:
    matrix = frame.get("transform_matrix")
    if matrix is None:
        raise VistaError(f"{where}: missing 'transform_matrix'")
    if isinstance(matrix, str):
        raise VistaError(f"{where}: 'transform_matrix' is a string; expected a 4x4 list of numbers")
    try:
        m = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise VistaError(f"{where}: 'transform_matrix' is not a 4x4 list of numbers") from error
    if m.shape not in ((4, 4), (3, 4)):
        raise VistaError(f"{where}: 'transform_matrix' has shape {m.shape}, expected 4x4")
    if not np.all(np.isfinite(m)):
        raise VistaError(f"{where}: 'transform_matrix' holds NaN or infinity")
    rotation = m[:3, :3]
    det = np.linalg.det(rotation)
    if abs(det) < 1e-6:
        raise VistaError(f"{where}: 'transform_matrix' is degenerate (its rotation has determinant {det:.2g})")
    return m[:3, :4]


def _load_blender(root: Path, options: LoadOptions) -> PosedImages:
    frames, transforms_files = [], []
    for split_name in ("train", "test"):
        transforms_path = root / f"transforms_{split_name}.json"
        if not transforms_path.is_file():
            if split_name == "test":
                continue
            raise VistaError(f"{transforms_path}: not found")
        data = read_json(transforms_path, "transforms file")
        transforms_files.append(transforms_path)
        if not isinstance(data, dict) or "frames" not in data or "camera_angle_x" not in data:
            raise VistaError(f"{transforms_path}: needs 'camera_angle_x' and 'frames' (Blender format)")
        angle = data["camera_angle_x"]
        if not isinstance(angle, (int, float)) or not 0 < angle < math.pi:
            raise VistaError(f"{transforms_path}: 'camera_angle_x' must be an angle in radians in (0, pi)")
        if not isinstance(data["frames"], list) or not data["frames"]:
            raise VistaError(f"{transforms_path}: 'frames' is empty")
        for i, frame in enumerate(data["frames"]):
            where = f"{transforms_path} frame {i}"
            if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
                raise VistaError(f"{where}: missing 'file_path'")
            matrix = _matrix(frame, where)
            image_path = resolve_image_path(root, frame["file_path"], where)
            name = (image_path.relative_to(root.resolve()).as_posix() if image_path.is_relative_to(root.resolve())
                    else image_path.name)
            # camera_angle_x is the horizontal field of view: the focal length is a fraction of each image's width
            frames.append(Frame(image_path, name, str(transforms_path), matrix, split_name,
                                focal_x_fraction=0.5 / math.tan(0.5 * angle)))
    notes: list[str] = []
    frames = present_frames(frames, root, root, options, notes)
    loaded = load_frames(frames, root, options, notes)
    train = [i for i, f in enumerate(frames) if f.split == "train"]
    heldout = [i for i, f in enumerate(frames) if f.split == "test"]
    if not train:
        raise VistaError(f"{root}: no training images left")
    # NeRF-synthetic objects lie inside [-1.5, 1.5]^3: that box becomes the field's [-1, 1]^3.
    scene_from_world = torch.eye(4)
    scene_from_world[:3, :3] /= 1.5
    return _posed(loaded, train, heldout, "object", scene_from_world, (1.0, 1.0, 1.0), root,
                  dataset_hash(transforms_files, [f.path for f in frames], root))


def _posed(loaded: LoadedFrames, train: list[int], heldout: list[int], kind: SceneKind,
           scene_from_world: torch.Tensor, background: tuple[float, float, float], root: Path,
           content_hash: str) -> PosedImages:
    return PosedImages(loaded.cameras, loaded.photos, [f.name for f in loaded.frames], train, heldout, kind,
                       scene_from_world, background, str(root), content_hash, loaded.factor, loaded.notes)


_INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def _frame_value(frame: dict, data: dict, key: str, where: str, default=None):
    value = frame.get(key, data.get(key, default))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise VistaError(f"{where}: '{key}' must be a finite number, got {value!r}")
    return float(value)


def _load_transforms(root: Path, heldout_every: int, options: LoadOptions) -> PosedImages:
    transforms_path = root / "transforms.json"
    data = read_json(transforms_path, "transforms file")
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list) or not data["frames"]:
        raise VistaError(f"{transforms_path}: needs a non-empty 'frames' list (nerfstudio format)")
    if data.get("camera_model", "OPENCV") not in ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        raise VistaError(f"{transforms_path}: camera_model {data.get('camera_model')!r} is not supported "
                         "(use OPENCV or PINHOLE)")
    frames = [_nerfstudio_frame(root, transforms_path, data, frame, i) for i, frame in enumerate(data["frames"])]
    notes: list[str] = []
    frames = present_frames(frames, root, transforms_path, options, notes)
    loaded = load_frames(frames, root, options, notes)
    n = len(frames)
    heldout = list(range(0, n, heldout_every)) if n >= 2 * heldout_every else []
    train = [i for i in range(n) if i not in heldout]
    return _posed(loaded, train, heldout, "unbounded", normalize_unbounded(loaded.cameras), (0.0, 0.0, 0.0), root,
                  dataset_hash([transforms_path], [f.path for f in frames], root))


def _nerfstudio_frame(root: Path, transforms_path: Path, data: dict, frame: object, i: int) -> Frame:
    """A frame's pose, intrinsics and distortion; per-frame keys override the file's top level (nerfstudio)."""
    where = f"{transforms_path} frame {i}"
    if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
        raise VistaError(f"{where}: missing 'file_path'")
    matrix = _matrix(frame, where)
    values = {key: _frame_value(frame, data, key, where) for key in _INTRINSIC_KEYS}
    if values["fl_x"] is None:
        raise VistaError(f"{where}: missing focal length 'fl_x'")
    if values["fl_x"] <= 0 or (values["fl_y"] is not None and values["fl_y"] <= 0):
        raise VistaError(f"{where}: focal lengths 'fl_x' / 'fl_y' must be positive")
    image_path = resolve_image_path(root, frame["file_path"], where)
    return Frame(image_path, frame["file_path"], str(transforms_path), matrix,
                 intrinsics=(values["fl_x"], values["fl_y"] or values["fl_x"], values["cx"], values["cy"]),
                 declared_size=(values["w"], values["h"]),
                 distortion=[_frame_value(frame, data, k, where, 0.0) for k in _DISTORTION_KEYS])


def focus_point(cameras: Cameras) -> torch.Tensor:
    """The point closest to all optical axes in the least-squares sense (where an orbit looks)."""
    origins = cameras.positions.double()
    axes = -cameras.world_from_camera[:, :, 2].double()
    axes = axes / axes.norm(dim=-1, keepdim=True)
    projector = torch.eye(3, dtype=torch.float64) - axes[:, :, None] * axes[:, None, :]
    lhs = projector.sum(0)
    rhs = (projector @ origins[:, :, None]).sum(0).squeeze(-1)
    return torch.linalg.lstsq(lhs, rhs).solution.float()


def normalize_unbounded(cameras: Cameras) -> torch.Tensor:
    """Centre on the cameras' focus point (their mean if they do not converge) and scale the cameras into
    [-1, 1]^3, leaving the rest of the world to the scene contraction."""
    positions = cameras.positions
    center = focus_point(cameras) if len(cameras) >= 2 else positions.mean(0)
    spread = (positions - positions.mean(0)).norm(dim=-1).max().clamp(min=1e-6)
    if not torch.isfinite(center).all() or (center - positions.mean(0)).norm() > 3 * spread:
        center = positions.mean(0)
    extent = (positions - center).abs().max().clamp(min=1e-6)
    scale = 1.0 / float(extent)
    scene_from_world = torch.eye(4)
    scene_from_world[:3, :3] *= scale
    scene_from_world[:3, 3] = -center * scale
    return scene_from_world
