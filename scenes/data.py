"""Posed images: Blender/NeRF-synthetic and nerfstudio/instant-ngp `transforms.json` datasets.

`load_posed_images(path)` reads either format into one `PosedImages`: cameras in the dataset's own
world coordinates (nerfstudio's conventions: camera-to-world, OpenGL axes, OPENCV intrinsics with
k1, k2, p1, p2 (k3, k4) distortion), images as uint8, a train / held-out split and the similarity
`scene_from_world` that normalises the scene into the field's box.
"""

from __future__ import annotations

import hashlib
import math
import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from render.cameras import Cameras
from render.render import SceneKind
from vista_core.errors import VistaError, require_finite
from vista_core.files import read_json

MAX_IMAGE_PIXELS = 40_000_000


@dataclass
class PosedImages:
    cameras: Cameras  # world coordinates
    images: torch.Tensor  # [N, H, W, C] uint8, C = 3 (RGB) or 4 (RGBA, straight alpha)
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

    @property
    def has_alpha(self) -> bool:
        return self.images.shape[-1] == 4

    def composited(self, index: int, background: tuple[float, float, float] | None = None) -> torch.Tensor:
        """Image `index` as float RGB [H, W, 3], RGBA composited over the background (white for Blender)."""
        image = self.images[index].float() / 255.0
        if not self.has_alpha:
            return image
        bg = torch.tensor(self.background if background is None else background)
        alpha = image[..., 3:4]
        return image[..., :3] * alpha + bg * (1 - alpha)


def load_posed_images(path: Path, heldout_every: int = 8) -> PosedImages:
    """Read a dataset folder (or its transforms file) in Blender or nerfstudio/instant-ngp format."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if not path.exists():
        raise VistaError(f"{path}: dataset folder not found")
    if (path / "transforms_train.json").is_file():
        return _load_blender(path)
    if (path / "transforms.json").is_file():
        return _load_transforms(path, heldout_every)
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


def _read_image(path: Path, where: str, root: Path) -> np.ndarray:
    if not path.resolve().is_relative_to(root.resolve()):
        return _read_linked_image(path, where)
    if not path.is_file():
        raise VistaError(f"{path}: image listed in {where} is missing")
    try:
        return _decode_image(path)
    except Image.DecompressionBombError as error:  # Pillow refuses huge headers before Vista can look
        raise VistaError(f"{path}: image is larger than {MAX_IMAGE_PIXELS:,} pixels ({error})") from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise VistaError(f"{path}: not a readable image ({error})") from error


def _read_linked_image(path: Path, where: str) -> np.ndarray:
    """An image the dataset reaches through its own symlink: read it, but a failure says only that it cannot be
    read, never whether the file outside the dataset exists (no existence oracle)."""
    try:
        return _decode_image(path)
    except VistaError:
        raise
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, SyntaxError) as error:
        raise VistaError(f"{path}: image listed in {where} cannot be read (a link out of the dataset folder to a "
                         "file that is missing, unreadable or not an image)") from error


def _decode_image(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise VistaError(f"{path}: {image.width}x{image.height} is larger than {MAX_IMAGE_PIXELS:,} pixels")
        image.load()
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            # 16-bit photos: scale by the bit depth, not by each image's own maximum, which would give
            # every photo of a capture a different exposure
            array = np.clip(np.asarray(image, dtype=np.float64) / 257.0, 0, 255).round().astype(np.uint8)
            return np.repeat(array[..., None], 3, axis=-1)
        if image.mode == "F":  # float images carry no range: [0, 1] is kept, larger ranges are scaled down
            array = np.asarray(image, dtype=np.float64)
            array = (array / max(array.max(), 1) * 255).clip(0, 255).astype(np.uint8)
            return np.repeat(array[..., None], 3, axis=-1)
        image = image.convert("RGBA" if "A" in image.mode or image.mode == "P" and "transparency" in image.info
                              else "RGB")
        return np.asarray(image)


def _resolve_image_path(root: Path, file_path: str, where: str) -> Path:
    """The image a frame's `file_path` names. Absolute paths and relative ones that climb out of the dataset folder
    are refused before anything is looked up, so the message cannot tell whether such a file exists. The check is
    lexical: a symlink the user put inside the dataset folder still works."""
    if not file_path.strip():
        raise VistaError(f"{where}: 'file_path' is empty")
    climbs = posixpath.normpath(file_path.replace("\\", "/")).split("/")[0] == ".."
    if ("\0" in file_path or PurePosixPath(file_path).is_absolute()
            or PureWindowsPath(file_path).is_absolute() or PureWindowsPath(file_path).drive or climbs):
        raise VistaError(f"{where}: 'file_path' {file_path!r} is not inside the dataset folder; image paths must be "
                         "relative to the folder of the transforms file and stay inside it")
    candidate = (root / posixpath.normpath(file_path)).resolve()
    if not candidate.suffix:
        candidate = candidate.with_suffix(".png")
    return candidate


def dataset_hash(transforms_files: list[Path], images: list[Path], root: Path) -> str:
    """sha256 over the transforms files' bytes and, sorted by path inside the dataset, each image's path, size and
    sha256. Sound (any changed byte, rename, added or removed photo or changed split changes it; mtimes, which a
    copy changes, do not) and cheap next to decoding the images, which reads them anyway."""
    digest = hashlib.sha256(b"vista-dataset-1\0")
    for path in transforms_files:
        data = path.read_bytes()
        digest.update(f"{path.name}\0{len(data)}\0".encode())
        digest.update(data)
    resolved_root = root.resolve()
    named = sorted((p.relative_to(resolved_root).as_posix() if p.is_relative_to(resolved_root) else p.name, p)
                   for p in images)
    for name, path in named:
        data = path.read_bytes()
        digest.update(f"{name}\0{len(data)}\0{hashlib.sha256(data).hexdigest()}\0".encode())
    return digest.hexdigest()


def _stack_images(images: list[np.ndarray], paths: list[Path]) -> torch.Tensor:
    h, w = images[0].shape[:2]
    channels = 4 if any(img.shape[2] == 4 for img in images) else 3
    out = np.empty((len(images), h, w, channels), dtype=np.uint8)
    for i, (img, p) in enumerate(zip(images, paths)):
        if img.shape[:2] != (h, w):
            raise VistaError(f"{p}: image is {img.shape[1]}x{img.shape[0]} but {paths[0].name} is {w}x{h}; "
                             "all images of a scene must have one size")
        if img.shape[2] == 3 and channels == 4:
            img = np.concatenate([img, np.full((h, w, 1), 255, np.uint8)], axis=-1)
        out[i] = img
    return torch.from_numpy(out)


def _load_blender(root: Path) -> PosedImages:
    matrices, images, paths, names, split, transforms_files = [], [], [], [], [], []
    focal_x = None
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
        frames = data["frames"]
        if not isinstance(frames, list) or not frames:
            raise VistaError(f"{transforms_path}: 'frames' is empty")
        for i, frame in enumerate(frames):
            where = f"{transforms_path} frame {i}"
            if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
                raise VistaError(f"{where}: missing 'file_path'")
            matrices.append(_matrix(frame, where))
            image_path = _resolve_image_path(root, frame["file_path"], where)
            images.append(_read_image(image_path, str(transforms_path), root))
            paths.append(image_path)
            names.append(image_path.relative_to(root.resolve()).as_posix() if image_path.is_relative_to(root.resolve())
                         else image_path.name)
            split.append(split_name)
        focal_x = 0.5 / math.tan(0.5 * angle)  # relative to width
    stacked = _stack_images(images, paths)
    n, h, w = stacked.shape[:3]
    fx = torch.full((n,), focal_x * w)
    cameras = Cameras(torch.tensor(np.stack(matrices), dtype=torch.float32), fx, fx.clone(),
                      torch.full((n,), w / 2), torch.full((n,), h / 2), w, h)
    train = [i for i, s in enumerate(split) if s == "train"]
    heldout = [i for i, s in enumerate(split) if s == "test"]
    # NeRF-synthetic objects lie inside [-1.5, 1.5]^3: that box becomes the field's [-1, 1]^3.
    scene_from_world = torch.eye(4)
    scene_from_world[:3, :3] /= 1.5
    return PosedImages(cameras, stacked, names, train, heldout, "object", scene_from_world, (1.0, 1.0, 1.0), str(root),
                       dataset_hash(transforms_files, paths, root))


_INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def _frame_value(frame: dict, data: dict, key: str, where: str, default=None):
    value = frame.get(key, data.get(key, default))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise VistaError(f"{where}: '{key}' must be a finite number, got {value!r}")
    return float(value)


def _load_transforms(root: Path, heldout_every: int) -> PosedImages:
    transforms_path = root / "transforms.json"
    data = read_json(transforms_path, "transforms file")
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list) or not data["frames"]:
        raise VistaError(f"{transforms_path}: needs a non-empty 'frames' list (nerfstudio format)")
    if data.get("camera_model", "OPENCV") not in ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        raise VistaError(f"{transforms_path}: camera_model {data.get('camera_model')!r} is not supported "
                         "(use OPENCV or PINHOLE)")
    matrices, images, paths, names, intrinsics, distortions = [], [], [], [], [], []
    for i, frame in enumerate(data["frames"]):
        where = f"{transforms_path} frame {i}"
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            raise VistaError(f"{where}: missing 'file_path'")
        matrices.append(_matrix(frame, where))
        values = {}
        for key in _INTRINSIC_KEYS:
            values[key] = _frame_value(frame, data, key, where)
        if values["fl_x"] is None:
            raise VistaError(f"{where}: missing focal length 'fl_x'")
        values["fl_y"] = values["fl_y"] or values["fl_x"]
        image_path = _resolve_image_path(root, frame["file_path"], where)
        image = _read_image(image_path, str(transforms_path), root)
        h, w = image.shape[:2]
        if values["w"] is not None and (round(values["w"]), round(values["h"] or h)) != (w, h):
            raise VistaError(f"{image_path}: image is {w}x{h} but {transforms_path} says "
                             f"{values['w']:.0f}x{(values['h'] or 0):.0f}")
        intrinsics.append([values["fl_x"], values["fl_y"], values["cx"] if values["cx"] is not None else w / 2,
                           values["cy"] if values["cy"] is not None else h / 2])
        distortions.append([_frame_value(frame, data, k, where, 0.0) for k in _DISTORTION_KEYS])
        images.append(image)
        paths.append(image_path)
        names.append(frame["file_path"])
    stacked = _stack_images(images, paths)
    n, h, w = stacked.shape[:3]
    k = torch.tensor(intrinsics, dtype=torch.float32)
    distortion = torch.tensor(distortions, dtype=torch.float32)
    require_finite(distortion.tolist(), f"{transforms_path}: distortion")
    world_from_camera = torch.tensor(np.stack(matrices), dtype=torch.float32)
    cameras = Cameras(world_from_camera, k[:, 0], k[:, 1], k[:, 2], k[:, 3], w, h,
                      distortion if torch.any(distortion != 0) else None)
    heldout = list(range(0, n, heldout_every)) if n >= 2 * heldout_every else []
    train = [i for i in range(n) if i not in heldout]
    return PosedImages(cameras, stacked, names, train, heldout, "unbounded", normalize_unbounded(cameras),
                       (0.0, 0.0, 0.0), str(root), dataset_hash([transforms_path], paths, root))


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
