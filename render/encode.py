"""Frames to files and back: BT.709 YUV conversion, H.264 MP4 muxing (PyAV + libx264), ProRes 4444 MOV muxing
with alpha (PyAV + FFmpeg's prores_ks), probing and decoding. The only PyAV importer.

Encoding takes frames one at a time, so a video of any length streams through bounded memory.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vista_core.errors import VistaError

log = logging.getLogger(__name__)

H264_MAX_SIDE = 8192  # H.264 level 6.2 allows at most 8192x4320 (35.6 Mpx) per frame
H264_MAX_PIXELS = 8192 * 4320

_KR, _KB = 0.2126, 0.0722  # BT.709 luma weights (HD video; the stream is tagged BT.709, limited range)


def rgb_to_yuv420(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB [H, W, 3] (even H, W) -> yuv420p planes stacked as [3H/2, W] uint8, BT.709 limited range.

    Chroma is the plain 2x2 mean (the Haar approximation band): predictable, and exact on flat colour. Vista's
    watermark lives in luma (render.watermark), which is not subsampled."""
    h, w = rgb.shape[:2]
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    y = _KR * r + (1 - _KR - _KB) * g + _KB * b
    cb = (b - y) / (2 * (1 - _KB))
    cr = (r - y) / (2 * (1 - _KR))

    def quantize(plane: np.ndarray) -> np.ndarray:
        return np.clip(np.round(plane), 0, 255).astype(np.uint8)

    luma = quantize(16 + y * (219 / 255))
    u = quantize(128 + (cb * (224 / 255)).reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)))
    v = quantize(128 + (cr * (224 / 255)).reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)))
    return np.concatenate([luma.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(h * 3 // 2, w)


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


class _StreamWriter:
    """One video stream muxed (PyAV) into a temp file beside `path` (`.NAME.XXXXXXXX.partial.SUFFIX`) that `close`
    (or `finish` + `commit_file`) renames over `path`. Subclasses add the stream and `write`."""

    container_format = "mp4"

    def __init__(self, path: Path, width: int, height: int, fps: float, metadata: dict[str, str] | None):
        import av

        self.path = Path(path)
        self.width, self.height = width, height
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=f".partial.{self.container_format}",
                                    dir=self.path.parent)
        os.close(fd)
        self.temp_path = Path(temp)
        self._count = 0
        self._rate = _fps_fraction(fps)
        self._time_base = 1 / self._rate
        # use_metadata_tags: write arbitrary keys (e.g. "software") as MP4/MOV 'mdta' metadata
        self._container = av.open(str(self.temp_path), mode="w", format=self.container_format,
                                  options={"movflags": "use_metadata_tags"})
        self._container.metadata.update(metadata or {})
        self._stream = None

    def _encode(self, frame) -> None:
        frame.pts, frame.time_base = self._count, self._time_base
        self._count += 1
        self._mux(self._stream.encode(frame))

    def _mux(self, packets) -> None:
        try:
            self._container.mux(packets)
        except OSError as error:
            self.abort()
            if error.errno == errno.ENOSPC:
                raise VistaError(f"{self.path}: the disk is full while encoding; the rendered frames are kept in "
                                 "the frame cache, free space and rerun") from error
            raise

    def finish(self) -> Path:
        """Flush the encoder and close the file, which stays at its temp name (`temp_path`): sign it, then
        `commit_file` it over `path`. Closing is `finish` + `commit_file`."""
        self._mux(self._stream.encode())
        self._container.close()
        return self.temp_path

    def close(self) -> None:
        commit_file(self.finish(), self.path)

    def abort(self) -> None:
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the container may be half-open; the temp file goes anyway
            pass
        discard(self.temp_path)


class Mp4Writer(_StreamWriter):
    """Stream uint8 RGB frames into an H.264 MP4 (PyAV + libx264), yuv420p BT.709 limited range."""

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int = 18, preset: str = "medium",
                 metadata: dict[str, str] | None = None):
        super().__init__(path, width, height, fps, metadata)
        stream = self._container.add_stream("libx264", rate=self._rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = self._time_base
        # BT.709 limited range, as `rgb_to_yuv420` converts (tagged so players and decoders agree)
        context = stream.codec_context
        context.colorspace, context.color_range, context.color_primaries, context.color_trc = 1, 1, 1, 1
        # mbtree=0: with x264's macroblock-tree rate control the bytes (and decoded pixels) differed between runs
        # over identical frames in our tests, even with one thread; without it a resumed or repeated render
        # gives the identical file, for a few percent more bits
        stream.options = {"crf": str(crf), "preset": preset, "x264-params": "mbtree=0"}
        self._stream = stream

    def write(self, rgb: np.ndarray) -> None:
        import av

        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 [{self.height}, {self.width}, 3], got {rgb.dtype} {rgb.shape}")
        frame = av.VideoFrame.from_ndarray(rgb_to_yuv420(rgb), format="yuv420p")
        frame.colorspace, frame.color_range = 1, 1
        self._encode(frame)


PRORES_PIX_FMT = "yuva444p10le"  # what FFmpeg's prores_ks takes for 4444 with alpha: 10-bit colour and alpha


class ProResWriter(_StreamWriter):
    """Stream uint16 straight-alpha RGBA frames into a ProRes 4444 QuickTime `.mov` with alpha (FFmpeg's
    prores_ks through PyAV, profile 4444, yuva444p10le; swscale converts RGB to BT.709 limited-range YUV)."""

    container_format = "mov"

    def __init__(self, path: Path, width: int, height: int, fps: float, metadata: dict[str, str] | None = None):
        super().__init__(path, width, height, fps, metadata)
        stream = self._container.add_stream("prores_ks", rate=self._rate)
        stream.width, stream.height, stream.pix_fmt = width, height, PRORES_PIX_FMT
        stream.codec_context.time_base = self._time_base
        context = stream.codec_context
        context.colorspace, context.color_range, context.color_primaries, context.color_trc = 1, 1, 1, 1
        # vendor apl0: the fourcc Apple's own encoder writes, which some players check before trusting the alpha
        stream.options = {"profile": "4444", "vendor": "apl0"}
        self._stream = stream

    def write(self, rgba: np.ndarray) -> None:
        import av

        if rgba.shape != (self.height, self.width, 4) or rgba.dtype != np.uint16:
            raise ValueError(f"frame must be uint16 [{self.height}, {self.width}, 4], got {rgba.dtype} {rgba.shape}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba), format="rgba64le")
        frame = frame.reformat(format=PRORES_PIX_FMT, dst_colorspace=1, dst_color_range=1)
        frame.colorspace, frame.color_range = 1, 1
        self._encode(frame)


# --- temp files and crash-safe renames -------------------------------------------------------------

def _temp_patterns(final: Path) -> list[re.Pattern]:
    """Our temp names for `final` (tempfile.mkstemp's 8 random characters), no other file's:
    `.shot.mp4.XXXXXXXX.partial.mp4` (Mp4Writer), `..shot.mp4.XXXXXXXX.partial.mp4.YYYYYYYY.signing.mp4` (C2PA
    signing the temp file), `.shot.mp4.XXXXXXXX.signing.mp4` (signing in place, before the temp file was signed)
    and `.NAME.XXXXXXXX.tmp` (vista_core.files.atomic_write_bytes, e.g. a recipe); `.mov` the same (ProResWriter)."""
    name, rand, ext = re.escape(Path(final).name), r"[a-z0-9_]{8}", r"(mp4|mov)"
    return [re.compile(rf"\.{name}\.{rand}\.(partial|signing)\.{ext}"),
            re.compile(rf"\.\.{name}\.{rand}\.partial\.{ext}\.{rand}\.signing\.{ext}"),
            re.compile(rf"\.{name}\.{rand}\.tmp")]


def remove_orphans(final: Path) -> list[Path]:
    """Delete temp files that an earlier, killed run writing `final` left beside it; returns what it deleted.

    Only names matching our own temp patterns for `final` are touched (two renders to the same output at the
    same time are not supported: they share the frame cache too)."""
    final = Path(final)
    patterns = _temp_patterns(final)
    try:
        entries = [entry for entry in os.scandir(final.parent) if entry.name.startswith(".")]
    except OSError:
        return []
    removed = []
    for entry in entries:
        if entry.is_file(follow_symlinks=False) and any(p.fullmatch(entry.name) for p in patterns):
            discard(Path(entry.path))
            removed.append(Path(entry.path))
    if removed:
        log.info("removed %d temp file(s) of an interrupted earlier run beside %s", len(removed), final)
    return removed


def discard(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX: the directory entry is only safe once the folder is synced)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):  # some filesystems cannot sync a folder
            raise
    finally:
        os.close(fd)


def commit_file(temp: Path, final: Path) -> None:
    """fsync `temp`, rename it over `final`, fsync the folder: after a crash `final` holds the old file or the
    new one, whole. On failure `temp` is deleted and `final` is left as it was."""
    final = Path(final)
    try:
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, final)
        fsync_dir(final.parent)
    except OSError as error:
        discard(temp)
        if error.errno == errno.ENOSPC:
            raise VistaError(f"{final}: the disk is full while writing the video; the rendered frames are kept "
                             "in the frame cache, free space and rerun") from error
        raise VistaError(f"{final}: cannot write the video ({error.strerror or error})") from error


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    width: int
    height: int
    fps: float
    codec: str
    pix_fmt: str
    metadata: dict[str, str]


def probe_video(path: Path) -> VideoInfo:
    """What a video file holds (PyAV/FFmpeg's demuxer); a VistaError if it is not a readable video."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VistaError(f"{path}: video not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VistaError(f"{path}: holds no video stream")
            stream = container.streams.video[0]
            frames = stream.frames or sum(1 for _ in container.demux(stream) if _.size)
            rate = stream.average_rate or stream.guessed_rate or 0
            return VideoInfo(frames, stream.codec_context.width, stream.codec_context.height, float(rate),
                             stream.codec_context.name, stream.codec_context.pix_fmt or "",
                             {**dict(container.metadata), **dict(stream.metadata)})
    except av.FFmpegError as error:
        raise VistaError(f"{path}: not a readable video ({error})") from error


def read_frames(path: Path, indices: Iterable[int] | None = None) -> list[np.ndarray]:
    """Decode frames (all, or those at `indices`) to uint8 RGB with FFmpeg's H.264 decoder."""
    return _decode(path, indices, lambda frame: frame.to_ndarray(format="rgb24"))


def _decode(path: Path, indices: Iterable[int] | None, convert) -> list[np.ndarray]:
    """`convert(frame)` of the video's frames (all, or those at `indices`), decoded by FFmpeg through PyAV."""
    import av

    wanted = None if indices is None else set(indices)
    out = []
    try:
        with av.open(str(path)) as container:
            for k, frame in enumerate(container.decode(video=0)):
                if wanted is None or k in wanted:
                    out.append(convert(frame))
    except av.FFmpegError as error:
        raise VistaError(f"{path}: not a readable video ({error})") from error
    return out


def read_frames_rgba16(path: Path, indices: Iterable[int] | None = None) -> list[np.ndarray]:
    """Decode frames (all, or those at `indices`) to uint16 RGBA [H, W, 4] (alpha 65535 if the video has none);
    for ProRes 4444 the alpha is the stored one, the colour BT.709 as tagged."""
    return _decode(path, indices,
                   lambda frame: frame.reformat(format="rgba64le", src_colorspace=1, src_color_range=1).to_ndarray())
