"""Reading a dataset's image files safely: where a frame's image is, its size without decoding it, and its pixels
(uint8 RGB or RGBA, resized by Pillow's box filter when the dataset is downscaled), plus the dataset's content hash.

Pillow does the decoding and the resizing; this module only decides what is refused and how it is reported.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from vista_core.errors import VistaError

MAX_IMAGE_PIXELS = 40_000_000


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, read without decoding its pixels."""

    width: int
    height: int
    has_alpha: bool


def _wants_alpha(image: Image.Image) -> bool:
    return "A" in image.mode or image.mode == "P" and "transparency" in image.info


def probe_image(path: Path, where: str, root: Path) -> ImageHeader:
    """Size and alpha of the image at `path` from its header (every refusal `read_image` would make for the file
    itself: unreadable, not an image, too many pixels)."""
    def header(image: Image.Image) -> ImageHeader:
        return ImageHeader(image.width, image.height, _wants_alpha(image))

    return _with_image(path, where, root, header)


def read_image(path: Path, where: str, root: Path, factor: int = 1) -> np.ndarray:
    """The image's pixels [H, W, 3 or 4] uint8, downscaled by the whole number `factor` if > 1.

    Downscaling is Pillow's `Image.reduce`: each factor x factor block becomes its mean (exact area averaging;
    on premultiplied alpha for RGBA, which Pillow does itself so that transparent pixels' colours do not bleed
    into the edges). The last W mod factor columns and H mod factor rows are left out, so pixel (u, v) of the
    result covers exactly [factor u, factor (u + 1)) x [factor v, factor (v + 1)) of the photo."""
    return _with_image(path, where, root, lambda image: _decode(path, image, factor))


def _with_image(path: Path, where: str, root: Path, use):
    if not path.resolve().is_relative_to(root.resolve()):
        return _with_linked_image(path, where, use)
    if not path.is_file():
        raise VistaError(f"{path}: image listed in {where} is missing")
    try:
        return _open(path, use)
    except Image.DecompressionBombError as error:  # Pillow refuses huge headers before Vista can look
        raise VistaError(f"{path}: image is larger than {MAX_IMAGE_PIXELS:,} pixels ({error})") from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise VistaError(f"{path}: not a readable image ({error})") from error


def _with_linked_image(path: Path, where: str, use):
    """An image the dataset reaches through its own symlink: read it, but a failure says only that it cannot be
    read, never whether the file outside the dataset exists (no existence oracle)."""
    try:
        return _open(path, use)
    except VistaError:
        raise
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, SyntaxError) as error:
        raise VistaError(f"{path}: image listed in {where} cannot be read (a link out of the dataset folder to a "
                         "file that is missing, unreadable or not an image)") from error


def _open(path: Path, use):
    with Image.open(path) as image:
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise VistaError(f"{path}: {image.width}x{image.height} is larger than {MAX_IMAGE_PIXELS:,} pixels")
        return use(image)


def _decode(path: Path, image: Image.Image, factor: int) -> np.ndarray:
    image.load()
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit photos: scale by the bit depth, not by each image's own maximum, which would give
        # every photo of a capture a different exposure
        array = np.clip(np.asarray(image, dtype=np.float64) / 257.0, 0, 255).round().astype(np.uint8)
        image = Image.fromarray(array).convert("RGB")
    elif image.mode == "F":  # float images carry no range: [0, 1] is kept, larger ranges are scaled down
        array = np.asarray(image, dtype=np.float64)
        array = (array / max(array.max(), 1) * 255).clip(0, 255).astype(np.uint8)
        image = Image.fromarray(array).convert("RGB")
    else:
        image = image.convert("RGBA" if _wants_alpha(image) else "RGB")
    if factor > 1:
        width, height = image.width // factor * factor, image.height // factor * factor
        image = image.reduce(factor, box=(0, 0, width, height))
    return np.asarray(image)


def resolve_image_path(root: Path, file_path: str, where: str) -> Path:
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


def is_missing(path: Path, root: Path) -> bool:
    """An image inside the dataset folder that is not there. Links out of the folder never count (their failure
    is reported without saying whether the target exists)."""
    return path.resolve().is_relative_to(root.resolve()) and not path.exists()


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
