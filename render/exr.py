"""OpenEXR frames for compositing, written and read with the `openexr` bindings (the only OpenEXR importer).

Channels: R, G, B, A as HALF (linear light, premultiplied: the OpenEXR convention, `render.compositing`) and Z as
FLOAT: planar depth in world units. Z is full float because half keeps only 11 significant bits (5 cm at 100
units), too coarse for depth-based defocus and fog; 1e10 where nothing was hit. ZIP compression is lossless.
String header attributes carry the provenance (`comments` is OpenEXR's standard attribute for it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vista_core.errors import VistaError


def write_exr(path: Path, rgba: np.ndarray, depth_z: np.ndarray, attributes: dict[str, str], fps: float) -> None:
    """Write float RGBA [H, W, 4] (stored as half) and Z [H, W] (float) to `path` through a temp file + rename."""
    import os
    import tempfile

    import OpenEXR

    path = Path(path)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, **attributes}
    header["framesPerSecond"] = _rational(fps)
    channels = {"RGBA": np.ascontiguousarray(rgba, dtype=np.float16),
                "Z": np.ascontiguousarray(depth_z, dtype=np.float32)}
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with OpenEXR.File(header, channels) as image:
            image.write(temp)
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as error:
        Path(temp).unlink(missing_ok=True)
        raise VistaError(f"{path}: cannot write the EXR frame ({error.strerror or error})") from error
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _rational(fps: float) -> tuple[int, int]:
    from fractions import Fraction

    rate = Fraction(fps).limit_denominator(1001)
    return rate.numerator, rate.denominator


def read_exr(path: Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """(channels by name, e.g. "R", "A", "Z", as float arrays; header attributes)."""
    import OpenEXR

    path = Path(path)
    if not path.is_file():
        raise VistaError(f"{path}: not found")
    try:
        with OpenEXR.File(str(path), separate_channels=True) as image:
            channels = {name: np.asarray(channel.pixels) for name, channel in image.channels().items()}
            header = dict(image.header())
    except (RuntimeError, OSError, ValueError) as error:
        raise VistaError(f"{path}: not a readable OpenEXR file ({error})") from error
    return channels, header


def rgba_from_channels(channels: dict[str, np.ndarray], path: Path) -> np.ndarray:
    """The R, G, B, A channels as float32 [H, W, 4] (alpha 1 if the file has none)."""
    missing = [name for name in "RGB" if name not in channels]
    if missing:
        raise VistaError(f"{path}: an EXR without {', '.join(missing)} channel(s); expected RGB(A)")
    alpha = channels.get("A", np.ones_like(channels["R"]))
    return np.stack([channels[n] for n in "RGB"] + [alpha], axis=-1).astype(np.float32)
