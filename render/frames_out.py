"""Output formats of `vista render --format`: which one an --out names, the writer of each, and reading them back.

| format | --out | frames | alpha |
|---|---|---|---|
| mp4 | `shot.mp4` | H.264 yuv420p, 8-bit (`render.encode.Mp4Writer`) | none: the render on the scene's background |
| prores | `shot.mov` | ProRes 4444, 10-bit 4:4:4 (`render.encode.ProResWriter`) | straight, 10-bit |
| png | a folder | `frame_00000.png`..., RGBA 16-bit (`render.png16`) | straight, 16-bit |
| exr | a folder | `frame_00000.exr`..., RGBA half + Z float (`render.exr`) | premultiplied, linear |

(`render.compositing` has the colour conventions.) A sequence is written into a temp folder beside its final name
and renamed into place whole, like the videos; an existing output folder is replaced only if it holds nothing but
frames of a sequence (never a user's other files).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from render.cameras import Cameras
from render.compositing import AlphaFrame, alpha_frame, display_from_exr, linear_premultiplied, rgba16, with_marks
from render.encode import Mp4Writer, ProResWriter, discard, fsync_dir, probe_video, read_frames
from render.frame_cache import Frames
from vista_core.errors import VistaError
from vista_core.files import atomic_write_bytes

OutputFormat = Literal["mp4", "prores", "png", "exr"]
OUTPUT_FORMATS: tuple[str, ...] = ("mp4", "prores", "png", "exr")
SEQUENCE_FORMATS = ("png", "exr")
ALPHA_FORMATS = ("prores", "png", "exr")
VIDEO_SUFFIX = {"mp4": ".mp4", "prores": ".mov"}
_FILE_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".png", ".exr", ".jpg", ".jpeg", ".tif", ".tiff"}
FRAME_DIGITS = 5


def frame_name(k: int, output_format: str) -> str:
    """The k-th frame of a sequence (0-based, in video order), zero-padded as Nuke/After Effects read `frame_#####`."""
    return f"frame_{k:0{FRAME_DIGITS}d}.{output_format}"


def resolve_format(out: Path, output_format: str | None) -> str:
    """The format `--format` names, or the one --out's suffix implies; a mismatch is one clear line."""
    out = Path(out)
    suffix = out.suffix.lower()
    if output_format is None:
        by_suffix = {".mp4": "mp4", ".mov": "prores"}
        if suffix in by_suffix:
            return by_suffix[suffix]
        if suffix in (".png", ".exr"):
            raise VistaError(f"--out {out}: {suffix[1:].upper()} frames are written into a folder; give a folder "
                             f"(e.g. --out {out.with_suffix('')}) with --format {suffix[1:]}")
        raise VistaError(f"--out {out}: cannot tell the format from the name; end it in .mp4 or .mov, or give a "
                         f"folder with --format png or --format exr")
    if output_format not in OUTPUT_FORMATS:
        raise VistaError(f"--format {output_format!r}: expected one of {', '.join(OUTPUT_FORMATS)}")
    if output_format in VIDEO_SUFFIX and suffix != VIDEO_SUFFIX[output_format]:
        raise VistaError(f"--format {output_format} writes a {VIDEO_SUFFIX[output_format]} file, but --out is "
                         f"{out}; name it {out.with_suffix(VIDEO_SUFFIX[output_format]).name}")
    if output_format in SEQUENCE_FORMATS and (suffix in _FILE_SUFFIXES or out.is_file()):
        raise VistaError(f"--format {output_format} writes a folder of frames, but --out {out} names a file; "
                         f"give a folder, e.g. --out {out.with_suffix('')}_{output_format}")
    return output_format


def check_sequence_target(out: Path, output_format: str) -> None:
    """A sequence may replace a folder only if it holds nothing but `frame_*.png|exr` files (a former render)."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise VistaError(f"--out {out}: exists and is not a folder; a {output_format} sequence needs a folder")
    if out.is_dir():
        others = [p.name for p in out.iterdir() if not re.fullmatch(r"frame_\d+\.(png|exr)", p.name)]
        if others:
            raise VistaError(f"--out {out}: the folder holds other files ({others[0]!r}...); Vista replaces only a "
                             "folder of rendered frames: choose a new or empty folder")


# --- writers -----------------------------------------------------------------------------------------

class SequenceWriter:
    """Frames of a PNG or EXR sequence into a temp folder beside `path` (`.NAME.XXXXXXXX.partial`);
    `commit_sequence` renames it into place."""

    def __init__(self, path: Path, output_format: str, fps: float, metadata: dict[str, str]):
        self.path, self.format, self.fps, self.metadata = Path(path), output_format, fps, metadata
        self.temp_path = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent))
        self._count = 0

    def write(self, frame: AlphaFrame) -> None:
        from render import exr, png16

        target = self.temp_path / frame_name(self._count, self.format)
        if self.format == "png":
            png16.write_png16(target, rgba16(frame), png_text(self.metadata))
        else:
            exr.write_exr(target, linear_premultiplied(frame), frame.depth_z, exr_attributes(self.metadata), self.fps)
        self._count += 1

    def finish(self) -> Path:
        fsync_dir(self.temp_path)
        return self.temp_path

    def abort(self) -> None:
        discard_output(self.temp_path)


AlphaLayers = Callable[[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], AlphaFrame]
"""(camera index, cached uint8 RGB, depth, opacity, post-processed RGB) -> the frame for an alpha format."""


def alpha_layers(frames: Frames, cameras: Cameras, background: np.ndarray) -> AlphaLayers:
    """The alpha formats' frames from the cache's float colour (`render.compositing`), carrying the watermark and
    label that post-processing put on the 8-bit picture."""
    def layers(index: int, rgb: np.ndarray, depth: np.ndarray, opacity: np.ndarray, shown: np.ndarray) -> AlphaFrame:
        return with_marks(alpha_frame(frames.load_color(index), depth, opacity, background, cameras, index), rgb, shown)

    return layers


def open_writer(output_format: str, path: Path, width: int, height: int, fps: float, crf: int, preset: str,
                metadata: dict[str, str]) -> Mp4Writer | ProResWriter | SequenceWriter:
    """The main output's writer: `write` takes uint8 RGB (mp4), uint16 RGBA (prores) or an AlphaFrame (sequences);
    `write_frame` hides the difference."""
    if output_format == "mp4":
        return Mp4Writer(path, width, height, fps, crf, preset, metadata)
    if output_format == "prores":
        return ProResWriter(path, width, height, fps, metadata)
    return SequenceWriter(path, output_format, fps, metadata)


def write_frame(writer: Mp4Writer | ProResWriter | SequenceWriter, shown8: np.ndarray,
                layers: AlphaFrame | None) -> None:
    if isinstance(writer, Mp4Writer):
        writer.write(shown8)
    elif isinstance(writer, ProResWriter):
        writer.write(rgba16(layers))
    else:
        writer.write(layers)


def png_text(metadata: dict[str, str]) -> dict[str, str]:
    """The label as PNG's registered keywords (Title, Comment, Software, Description: PNG spec 11.3.4.2)."""
    return {key.capitalize(): value for key, value in metadata.items()}


def exr_attributes(metadata: dict[str, str]) -> dict[str, str]:
    """The label as EXR string attributes: OpenEXR's standard `comments`, plus each tag under its own name."""
    return {"comments": f"{metadata.get('comment', '')}: {metadata.get('description', '')}", **metadata}


# --- side outputs beside the main one (--png-dir, --depth-video, --opacity-video) ----------------------

def colorize_depth(depth: np.ndarray, opacity: np.ndarray, near: float, far: float) -> np.ndarray:
    """Depth -> uint8 RGB with matplotlib's turbo colormap (near red, far blue), faded to black where empty."""
    from matplotlib import colormaps

    lut = (colormaps["turbo"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)
    t = np.clip((depth - near) / max(far - near, 1e-9), 0, 1)
    rgb = lut[np.round((1 - t) * 255).astype(np.int64)] * np.clip(opacity, 0, 1)[..., None]
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def opacity_rgb(opacity: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(np.round(opacity * 255), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def depth_range(frames: Frames) -> tuple[float, float]:
    """1st-99th percentile of foreground depth over the whole video, so the colours mean the same in every frame."""
    values = []
    for _, depth, opacity in frames:
        fg = depth[opacity > 0.5]
        if fg.size:
            values.append(np.percentile(fg, [1, 99]))
    if not values:
        return 0.0, 1.0
    stacked = np.array(values)
    return float(stacked[:, 0].min()), float(stacked[:, 1].max())


def write_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


# --- committing and cleaning up ----------------------------------------------------------------------

def discard_output(path: Path) -> None:
    """Delete a temp output: a file, or a sequence's temp folder."""
    if Path(path).is_dir() and not Path(path).is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        discard(path)


def commit_sequence(temp: Path, final: Path) -> None:
    """Rename the finished temp folder over `final`; a former sequence there is moved aside first and deleted
    after (a kill in between leaves it as `.NAME.XXXXXXXX.old`, which the next run of the same output restores
    if `final` is missing, else deletes)."""
    final = Path(final)
    try:
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.replace(final, old)
        os.replace(temp, final)
        fsync_dir(final.parent)
    except OSError as error:
        discard_output(temp)
        raise VistaError(f"{final}: cannot write the frames ({error.strerror or error})") from error
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_sequence_orphans(final: Path) -> None:
    """Temp folders an earlier, killed run writing the sequence `final` left beside it."""
    final = Path(final)
    pattern = re.compile(rf"\.{re.escape(final.name)}\.[a-z0-9_]{{8}}\.(partial|old)")
    try:
        entries = [Path(e.path) for e in os.scandir(final.parent) if pattern.fullmatch(e.name) and e.is_dir()]
    except OSError:
        return
    for entry in sorted(entries, key=lambda p: p.suffix != ".old"):  # a moved-aside former output first
        if entry.suffix == ".old" and not final.exists():
            os.replace(entry, final)  # killed between moving the former output aside and putting the new one
        else:
            shutil.rmtree(entry, ignore_errors=True)


def output_sha256(path: Path) -> str:
    """SHA-256 of a video file, or of a sequence folder (over each frame's name and SHA-256, in name order)."""
    path = Path(path)
    if not path.is_dir():
        return _file_sha256(path)
    digest = hashlib.sha256()
    for frame in sorted(path.iterdir()):
        digest.update(f"{frame.name}\0{_file_sha256(frame)}\n".encode())
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- reading back (vista verify, the watermark check) ------------------------------------------------

def sequence_frames(path: Path) -> list[Path]:
    """The frames of a sequence: the file itself, or a folder's `*.png`/`*.exr` in name order."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    frames = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".exr") and p.is_file())
    if not frames:
        raise VistaError(f"{path}: a folder without PNG or EXR frames")
    return frames


def read_labels(path: Path) -> tuple[int, dict[str, str]]:
    """(frame count, the label's tags by lower-case name) of a video, a frame, or a folder of frames."""
    path = Path(path)
    if not path.is_dir() and path.suffix.lower() not in (".png", ".exr"):
        info = probe_video(path)
        return info.frames, info.metadata
    frames = sequence_frames(path)
    first = frames[0]
    if first.suffix.lower() == ".png":
        from render.png16 import read_png

        text = read_png(first)[1]
    else:
        from render.exr import read_exr

        text = {k: v for k, v in read_exr(first)[1].items() if isinstance(v, str)}
    return len(frames), {key.lower(): value for key, value in text.items()}


def read_display_frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    """Frames `indices` as uint8 RGB, as a viewer shows the colour channels (where the watermark lives)."""
    path = Path(path)
    if not path.is_dir() and path.suffix.lower() not in (".png", ".exr"):
        return read_frames(path, indices)
    frames = sequence_frames(path)
    out = []
    for index in indices:
        frame = frames[index]
        if frame.suffix.lower() == ".png":
            from render.png16 import read_png, to_rgb8

            out.append(to_rgb8(read_png(frame)[0]))
        else:
            from render.exr import read_exr, rgba_from_channels

            out.append(display_from_exr(rgba_from_channels(read_exr(frame)[0], frame)))
    return out
