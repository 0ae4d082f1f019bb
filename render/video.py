"""Render a batch of cameras (one per frame) to an H.264 MP4 that browsers play.

Numbered steps of `render_video`:
1. check the size: even dimensions (yuv420p), an estimate of the memory a frame needs against what the
   machine has, and a writable output folder;
2. render every frame not yet in the frame cache (`render.render.render_camera`, a band of rows at a time so
   memory stays bounded at any resolution) and cache it on disk: a PNG plus depth/opacity in safetensors,
   each written atomically, so an interrupted render resumes where it stopped;
3. measure flicker: the mean change between consecutive frames after warping one onto the other with the
   rendered depth (a static scene rendered consistently scores near 0);
4. post-process (visible label, invisible watermark; `render.provenance`) and stream the frames to the MP4
   through PyAV/libx264 (yuv420p, even size, constant frame rate), plus the optional PNG sequence, depth
   video (turbo colormap) and opacity video;
5. decode sampled frames of the finished MP4 and check the watermark survived encoding;
6. last, sign the MP4s with C2PA if a certificate and key were given.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from render.cameras import Cameras, image_rays
from vista_core.errors import VistaError
from vista_core.files import atomic_write_bytes, atomic_write_json, read_json
from render.render import DEFAULT_CHUNK_RAYS, Image, Renderable, render_camera

log = logging.getLogger(__name__)

H264_MAX_SIDE = 8192  # H.264 level 6.2 allows at most 8192x4320 (35.6 Mpx) per frame
H264_MAX_PIXELS = 8192 * 4320
CACHE_FORMAT = "vista-frame-cache-1"


@dataclass(frozen=True)
class VideoConfig:
    """How frames are rendered and encoded (recorded in the recipe)."""

    fps: float = 24.0
    """Frames per second (constant frame rate)."""
    crf: int = 18
    """libx264 constant rate factor: lower is better quality and larger files (18 is visually lossless)."""
    x264_preset: str = "medium"
    """libx264 speed/size trade-off."""
    band_pixels: int = 1 << 16
    """Pixels rendered at once (rows of the frame); bounds memory at any resolution."""
    chunk_rays: int = DEFAULT_CHUNK_RAYS
    """Rays per `render_rays` call inside a band."""
    watermark: bool = True
    """Embed the invisible 'synthetic render' watermark in every frame (frames must have >= 256x256 pixels)."""
    label: bool = False
    """Draw a visible 'synthetic render' label in the bottom-right corner."""
    supersample: int = 1
    """Rays per pixel along each side, averaged (2: 2x2 rays, 4x the render time). One ray per pixel aliases
    texture that a pull-back shrinks, and the aliasing shimmers from frame to frame (bench/guidance.py:
    2x2 lowered the pull-back's flicker against the truth by 0.001-0.002)."""

    def __post_init__(self) -> None:
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and 0 < self.fps <= 240):
            raise VistaError(f"fps must be in (0, 240], got {self.fps}")
        if not 0 <= self.crf <= 51:
            raise VistaError(f"crf must be in [0, 51], got {self.crf}")
        if self.band_pixels < 1 or self.chunk_rays < 1:
            raise VistaError("band_pixels and chunk_rays must be positive")
        if not (isinstance(self.supersample, int) and 1 <= self.supersample <= 4):
            raise VistaError(f"supersample must be 1, 2, 3 or 4 rays per pixel side, got {self.supersample}")


@dataclass
class FlickerReport:
    """Temporal consistency of a rendered path (values in [0, 1] colour units, x255 for 8-bit levels)."""

    per_pair: list[float]
    """Mean |frame[k+1] - warp(frame[k])| over pixels seen in both frames, for each consecutive pair."""
    unwarped_per_pair: list[float]
    """The same without warping (how much the picture moves), for scale."""
    valid_fraction: list[float]
    """Share of each frame's pixels compared (foreground, visible in both, not occluded)."""

    @property
    def mean(self) -> float:
        return float(np.mean(self.per_pair)) if self.per_pair else 0.0

    @property
    def max(self) -> float:
        return float(np.max(self.per_pair)) if self.per_pair else 0.0

    @property
    def unwarped_mean(self) -> float:
        return float(np.mean(self.unwarped_per_pair)) if self.unwarped_per_pair else 0.0

    def summary(self) -> str:
        if not self.per_pair:
            return "flicker: needs at least two frames"
        return (f"flicker (depth-warped mean abs change between consecutive frames): mean {self.mean * 255:.2f}, "
                f"max {self.max * 255:.2f} 8-bit levels (unwarped {self.unwarped_mean * 255:.2f}; "
                f"{np.mean(self.valid_fraction) * 100:.0f}% of pixels compared)")

    def to_dict(self) -> dict:
        return {"mean": self.mean, "max": self.max, "unwarped_mean": self.unwarped_mean,
                "per_pair": self.per_pair, "unwarped_per_pair": self.unwarped_per_pair,
                "valid_fraction": self.valid_fraction}


@dataclass
class VideoResult:
    video: Path
    frames: list[int]
    """Camera indices rendered, in order."""
    width: int
    height: int
    fps: float
    frame_sha256: list[str]
    """SHA-256 of each frame's raw render (uint8 RGB before label/watermark), to check reproducibility."""
    flicker: FlickerReport
    rendered: int
    """Frames rendered in this run (the rest came from the cache)."""
    render_seconds: float
    watermark_checked: int = 0
    watermark_detected: int = 0
    signed: bool = False
    extra_outputs: dict[str, str] = field(default_factory=dict)

    @property
    def frames_per_s(self) -> float:
        return self.rendered / self.render_seconds if self.render_seconds > 0 else 0.0


FrameCallback = Callable[[int, int, int], None]  # (frames done, frames total, camera index) after each frame


# --- 1. sizes, cameras, memory ---------------------------------------------------------------------

def resize_cameras(cameras: Cameras, width: int, height: int) -> Cameras:
    """The same cameras (same field of view) at another image size."""
    if width < 1 or height < 1:
        raise VistaError(f"image size must be positive, got {width}x{height}")
    sx, sy = width / cameras.width, height / cameras.height
    return Cameras(cameras.world_from_camera, cameras.fx * sx, cameras.fy * sy, cameras.cx * sx, cameras.cy * sy,
                   width, height, cameras.distortion)


def preview_size(width: int, height: int) -> tuple[int, int]:
    """Quarter resolution (each side / 4), rounded to even numbers for yuv420p."""
    return max(2, 2 * round(width / 8)), max(2, 2 * round(height / 8))


@dataclass(frozen=True)
class MemoryEstimate:
    frame_bytes: int
    band_bytes: int
    chunk_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.frame_bytes + self.band_bytes + self.chunk_bytes


def estimate_memory(width: int, height: int, config: VideoConfig, max_samples_per_ray: int) -> MemoryEstimate:
    """Peak memory of rendering + encoding one frame (rough, on the high side).

    Whole-frame buffers (float RGB/depth/opacity, uint8 copies, the watermark's float planes, the encoder's
    reference frames) cost ~100 B/pixel; a band of rays ~150 B/ray; a chunk's candidate samples ~64 B each.
    A supersampled band is box-filtered before the next is rendered, so only the band grows."""
    pixels = width * height
    band = min(config.band_pixels, pixels * config.supersample**2)
    return MemoryEstimate(frame_bytes=pixels * 100, band_bytes=band * 150,
                          chunk_bytes=min(config.chunk_rays, band) * max_samples_per_ray * 64)


def available_memory_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def check_render_size(width: int, height: int, config: VideoConfig, max_samples_per_ray: int) -> MemoryEstimate:
    """Refuse sizes the encoder cannot take or the machine cannot hold, saying how much memory it would need."""
    if width < 2 or height < 2:
        raise VistaError(f"resolution {width}x{height} is too small: width and height must be at least 2")
    if width % 2 or height % 2:
        raise VistaError(f"resolution {width}x{height}: H.264 yuv420p needs even width and height")
    estimate = estimate_memory(width, height, config, max_samples_per_ray)
    available = available_memory_bytes()
    too_big = max(width, height) > H264_MAX_SIDE or width * height > H264_MAX_PIXELS
    if too_big or estimate.total_bytes > 0.8 * available:
        reason = (f"H.264 allows at most {H264_MAX_SIDE} pixels a side and {H264_MAX_PIXELS / 1e6:.1f} Mpx a frame"
                  if too_big else f"this machine has {available / 1e9:.1f} GB available")
        raise VistaError(f"resolution {width}x{height} would need about {estimate.total_bytes / 1e9:,.1f} GB of "
                         f"memory per frame ({reason}); choose a smaller --width/--height")
    return estimate


def check_writable(folder: Path) -> None:
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise VistaError(f"{folder}: output folder is not writable ({error.strerror})") from error


# --- 2. rendering and the frame cache --------------------------------------------------------------

def _band_camera(cameras: Cameras, index: int, row0: int, rows: int) -> Cameras:
    """Camera `index` cropped to rows [row0, row0 + rows): same rays, fewer of them."""
    one = cameras[index]
    return Cameras(one.world_from_camera, one.fx, one.fy, one.cx, one.cy - row0, cameras.width, rows,
                   one.distortion)


def render_frame(renderable: Renderable, cameras: Cameras, index: int, band_pixels: int = 1 << 16,
                 chunk_rays: int = DEFAULT_CHUNK_RAYS, supersample: int = 1) -> Image:
    """`render_camera` a band of rows at a time, so a frame of any size needs bounded memory; with
    `supersample` s > 1, s x s rays per pixel, box-filtered band by band (colour and opacity are averaged,
    depth is averaged weighted by opacity)."""
    s = supersample
    fine = cameras[index].scaled(s) if s > 1 else cameras[index]
    rows = max(s, band_pixels // fine.width // s * s)  # whole output rows per band
    parts = [_box_filter(render_camera(renderable, _band_camera(fine, 0, row0, min(rows, fine.height - row0)), 0,
                                       chunk_rays), s)
             for row0 in range(0, fine.height, rows)]
    return Image(torch.cat([p.rgb for p in parts]), torch.cat([p.depth for p in parts]),
                 torch.cat([p.opacity for p in parts]))


def _box_filter(image: Image, s: int) -> Image:
    """Average s x s blocks of a render [s*h, s*w]; depth weighted by opacity (an empty ray's depth means nothing)."""
    if s == 1:
        return image

    def box(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[0] // s, x.shape[1] // s
        return x.reshape(h, s, w, s, *x.shape[2:]).mean(dim=(1, 3))

    opacity = box(image.opacity)
    depth = box(image.depth * image.opacity) / opacity.clamp(min=1e-6)
    return Image(box(image.rgb), torch.where(opacity > 1e-6, depth, box(image.depth)), opacity)


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def cameras_digest(cameras: Cameras) -> str:
    digest = hashlib.sha256()
    for tensor in (cameras.world_from_camera, cameras.fx, cameras.fy, cameras.cx, cameras.cy):
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    if cameras.distortion is not None:
        digest.update(cameras.distortion.float().contiguous().numpy().tobytes())
    digest.update(f"{cameras.width}x{cameras.height}".encode())
    return digest.hexdigest()


class FrameCache:
    """Rendered frames on disk: `NNNNNN.png` (uint8 RGB) + `NNNNNN.aux.safetensors` (depth, opacity).

    `key.json` identifies what the frames are renders of (scene hash, cameras, render settings); a cache
    made for anything else is emptied rather than reused. The PNG is written last, so its presence means
    the frame is complete."""

    def __init__(self, directory: Path, key: str):
        self.directory = Path(directory)
        self.key = key

    def open(self) -> int:
        """Create or validate the cache; returns how many frames it already holds."""
        key_file = self.directory / "key.json"
        if key_file.exists():
            try:
                stored = read_json(key_file, "frame cache key")
            except VistaError:
                stored = None
            if not isinstance(stored, dict) or stored.get("key") != self.key or stored.get("format") != CACHE_FORMAT:
                log.info("%s: cached frames belong to another scene, path or size; re-rendering", self.directory)
                self.clear()
        if not key_file.exists():
            atomic_write_json(key_file, {"format": CACHE_FORMAT, "key": self.key})
        return len(list(self.directory.glob("[0-9]*.png")))

    def clear(self) -> None:
        for pattern in ("[0-9]*.png", "[0-9]*.aux.safetensors", "key.json", ".*.tmp"):
            for path in self.directory.glob(pattern):
                path.unlink()

    def _png(self, index: int) -> Path:
        return self.directory / f"{index:06d}.png"

    def _aux(self, index: int) -> Path:
        return self.directory / f"{index:06d}.aux.safetensors"

    def has(self, index: int) -> bool:
        return self._png(index).is_file() and self._aux(index).is_file()

    def save(self, index: int, rgb: np.ndarray, depth: np.ndarray, opacity: np.ndarray) -> None:
        from PIL import Image as PILImage
        from safetensors.numpy import save

        atomic_write_bytes(self._aux(index), save({"depth": np.ascontiguousarray(depth, dtype=np.float32),
                                                   "opacity": np.ascontiguousarray(opacity, dtype=np.float32)}))
        buffer = io.BytesIO()
        PILImage.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
        atomic_write_bytes(self._png(index), buffer.getvalue())

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb uint8 [H, W, 3], depth [H, W], opacity [H, W])."""
        from PIL import Image as PILImage
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            with PILImage.open(self._png(index)) as image:
                rgb = np.asarray(image.convert("RGB"))
            aux = load_file(str(self._aux(index)))
        except (OSError, SafetensorError, ValueError) as error:
            raise VistaError(f"{self._png(index)}: cached frame is unreadable ({error}); delete {self.directory} "
                             "and render again") from error
        return rgb, aux["depth"], aux["opacity"]

    def remove(self) -> None:
        self.clear()
        try:
            self.directory.rmdir()
        except OSError:
            pass


def render_to_cache(renderable: Renderable, cameras: Cameras, indices: list[int], cache: FrameCache,
                    config: VideoConfig, progress: bool = True, on_frame: FrameCallback | None = None) -> tuple[int, float]:
    """Render the frames `indices` missing from `cache`; returns (frames rendered, seconds spent)."""
    from tqdm import tqdm

    todo = [i for i in indices if not cache.has(i)]
    done = len(indices) - len(todo)
    if done:
        log.info("resuming: %d of %d frames already rendered in %s", done, len(indices), cache.directory)
    start = time.perf_counter()
    with tqdm(total=len(indices), initial=done, unit="frame", desc="render", disable=not progress,
              dynamic_ncols=True) as bar:
        for index in todo:
            image = render_frame(renderable, cameras, index, config.band_pixels, config.chunk_rays, config.supersample)
            try:
                cache.save(index, to_uint8(image.rgb), image.depth.numpy(), image.opacity.numpy())
            except VistaError as error:
                raise VistaError(f"{error}; the {done} frames rendered so far are kept in {cache.directory} and a "
                                 "rerun resumes from them") from error
            done += 1
            bar.update(1)
            if on_frame is not None:
                on_frame(done, len(indices), index)
    return len(todo), time.perf_counter() - start


# --- 3. temporal consistency -----------------------------------------------------------------------

def _project(cameras: Cameras, index: int, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World points [P, 3] -> pixel positions [P, 2] (continuous, 0.5 = first pixel centre) and in-front mask.

    Pinhole only: path cameras carry no distortion."""
    c2w = cameras.world_from_camera[index]
    local = (points - c2w[:, 3]) @ c2w[:, :3]  # R^T (p - t)
    z = -local[:, 2]  # OpenGL cameras look along -z
    safe = z.clamp(min=1e-6)
    u = cameras.fx[index] * local[:, 0] / safe + cameras.cx[index]
    v = -cameras.fy[index] * local[:, 1] / safe + cameras.cy[index]
    return torch.stack([u, v], dim=-1), z > 1e-6


def _sample(image: torch.Tensor, pixels: torch.Tensor, width: int, height: int, mode: str) -> torch.Tensor:
    """Sample image [H, W, C] at continuous pixel positions [P, 2] (grid_sample, align_corners=False)."""
    grid = torch.stack([pixels[:, 0] / width * 2 - 1, pixels[:, 1] / height * 2 - 1], dim=-1)
    out = torch.nn.functional.grid_sample(image.permute(2, 0, 1)[None], grid[None, None], mode=mode,
                                          padding_mode="border", align_corners=False)
    return out[0, :, 0].T


def warp_error(cameras: Cameras, a: int, b: int, rgb_a: np.ndarray, rgb_b: np.ndarray, depth_a: np.ndarray,
               depth_b: np.ndarray, opacity_a: np.ndarray, opacity_b: np.ndarray,
               depth_tolerance: float = 0.03) -> tuple[float, float, float]:
    """Mean |rgb_b - rgb_a warped onto b| over b's foreground pixels also visible in a.

    Each foreground pixel of b is lifted to 3D with b's rendered depth (distance along the ray), projected into
    camera a, and compared with a's colour there; pixels out of a's view or hidden in a (a's depth there is
    shorter by more than `depth_tolerance` relative) are skipped. Returns (warped error, unwarped error,
    fraction of pixels compared)."""
    h, w = cameras.height, cameras.width
    col_a = torch.tensor(rgb_a).float() / 255
    col_b = torch.tensor(rgb_b).float().reshape(-1, 3) / 255
    rays = image_rays(cameras, b)
    dist_b = torch.tensor(depth_b).reshape(-1)
    fg = torch.tensor(opacity_b).reshape(-1) > 0.5
    points = rays.origins + rays.directions * dist_b[:, None]
    pixels, in_front = _project(cameras, a, points)
    inside = in_front & (pixels[:, 0] >= 0) & (pixels[:, 0] <= w) & (pixels[:, 1] >= 0) & (pixels[:, 1] <= h)
    aux_a = torch.stack([torch.tensor(depth_a), torch.tensor(opacity_a)], dim=-1)
    sampled_aux = _sample(aux_a, pixels, w, h, "nearest")
    dist_in_a = (points - cameras.world_from_camera[a, :, 3]).norm(dim=-1)
    visible = (sampled_aux[:, 1] > 0.5) & ((sampled_aux[:, 0] - dist_in_a).abs() <= depth_tolerance * dist_in_a)
    valid = fg & inside & visible
    unwarped = float((col_a.reshape(-1, 3) - col_b).abs().mean())
    if not bool(valid.any()):
        return 0.0, unwarped, 0.0
    warped = _sample(col_a, pixels[valid], w, h, "bilinear")
    error = float((warped - col_b[valid]).abs().mean())
    return error, unwarped, float(valid.float().mean())


def measure_flicker(cameras: Cameras, indices: list[int],
                    load: Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]]) -> FlickerReport:
    """Depth-warped frame-to-frame change along a rendered path (`load(i)` gives rgb, depth, opacity)."""
    report = FlickerReport([], [], [])
    previous = load(indices[0]) if indices else None
    for a, b in zip(indices, indices[1:]):
        current = load(b)
        error, unwarped, fraction = warp_error(cameras, a, b, previous[0], current[0], previous[1], current[1],
                                               previous[2], current[2])
        report.per_pair.append(error)
        report.unwarped_per_pair.append(unwarped)
        report.valid_fraction.append(fraction)
        previous = current
    return report


# --- 4. encoding -----------------------------------------------------------------------------------

_KR, _KB = 0.2126, 0.0722  # BT.709 luma weights (HD video; the stream is tagged BT.709, limited range)


def rgb_to_yuv420(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB [H, W, 3] (even H, W) -> yuv420p planes stacked as [3H/2, W] uint8, BT.709 limited range.

    Chroma is the plain 2x2 mean, i.e. the Haar approximation band imwatermark's dwtDct writes into; letting
    swscale subsample instead erased the watermark in our tests."""
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


class Mp4Writer:
    """Stream uint8 RGB frames into an H.264 MP4 (PyAV + libx264), written to a temp file and renamed at the end."""

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int = 18, preset: str = "medium",
                 metadata: dict[str, str] | None = None):
        import av

        self.path = Path(path)
        self.width, self.height = width, height
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial.mp4", dir=self.path.parent)
        os.close(fd)
        self._count = 0
        rate = _fps_fraction(fps)
        # use_metadata_tags: write arbitrary keys (e.g. "software") as MP4 'mdta' metadata
        self._container = av.open(self._tmp, mode="w", format="mp4", options={"movflags": "use_metadata_tags"})
        self._container.metadata.update(metadata or {})
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        # BT.709 limited range, as `rgb_to_yuv420` converts (tagged so players and decoders agree)
        context = stream.codec_context
        context.colorspace, context.color_range, context.color_primaries, context.color_trc = 1, 1, 1, 1
        # mbtree=0: with x264's macroblock-tree rate control the bytes (and decoded pixels) differed between runs
        # over identical frames in our tests, even with one thread; without it a resumed or repeated render
        # gives the identical file, for a few percent more bits
        stream.options = {"crf": str(crf), "preset": preset, "x264-params": "mbtree=0"}
        self._stream = stream
        self._time_base = 1 / rate

    def write(self, rgb: np.ndarray) -> None:
        import av

        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 [{self.height}, {self.width}, 3], got {rgb.dtype} {rgb.shape}")
        frame = av.VideoFrame.from_ndarray(rgb_to_yuv420(rgb), format="yuv420p")
        frame.colorspace, frame.color_range = 1, 1
        frame.pts, frame.time_base = self._count, self._time_base
        self._count += 1
        self._mux(self._stream.encode(frame))

    def _mux(self, packets) -> None:
        try:
            self._container.mux(packets)
        except OSError as error:
            self.abort()
            if error.errno == 28:
                raise VistaError(f"{self.path}: the disk is full while encoding; the rendered frames are kept in "
                                 "the frame cache, free space and rerun") from error
            raise

    def close(self) -> None:
        self._mux(self._stream.encode())
        self._container.close()
        try:
            os.replace(self._tmp, self.path)
        except OSError as error:
            self.abort()
            raise VistaError(f"{self.path}: cannot write the video ({error.strerror})") from error

    def abort(self) -> None:
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the container may be half-open; the temp file goes anyway
            pass
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)


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
    import av

    wanted = None if indices is None else set(indices)
    out = []
    try:
        with av.open(str(path)) as container:
            for k, frame in enumerate(container.decode(video=0)):
                if wanted is None or k in wanted:
                    out.append(frame.to_ndarray(format="rgb24"))
    except av.FFmpegError as error:
        raise VistaError(f"{path}: not a readable video ({error})") from error
    return out


def colorize_depth(depth: np.ndarray, opacity: np.ndarray, near: float, far: float) -> np.ndarray:
    """Depth -> uint8 RGB with matplotlib's turbo colormap (near red, far blue), faded to black where empty."""
    from matplotlib import colormaps

    lut = (colormaps["turbo"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)
    t = np.clip((depth - near) / max(far - near, 1e-9), 0, 1)
    rgb = lut[np.round((1 - t) * 255).astype(np.int64)] * np.clip(opacity, 0, 1)[..., None]
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def opacity_rgb(opacity: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(np.round(opacity * 255), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def depth_range(cache: FrameCache, indices: list[int]) -> tuple[float, float]:
    """1st-99th percentile of foreground depth over the whole video, so the colours mean the same in every frame."""
    values = []
    for i in indices:
        _, depth, opacity = cache.load(i)
        fg = depth[opacity > 0.5]
        if fg.size:
            values.append(np.percentile(fg, [1, 99]))
    if not values:
        return 0.0, 1.0
    stacked = np.array(values)
    return float(stacked[:, 0].min()), float(stacked[:, 1].max())


def postprocess(rgb: np.ndarray, config: VideoConfig) -> np.ndarray:
    """Visible label first, then the invisible watermark over everything (render.provenance)."""
    from render.provenance import add_label, embed_watermark, watermark_fits

    if config.label:
        rgb = add_label(rgb)
    if config.watermark and watermark_fits(rgb.shape[1], rgb.shape[0]):
        rgb = embed_watermark(rgb)
    return rgb


def write_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


# --- the whole thing -------------------------------------------------------------------------------

def frame_cache_dir(video: Path) -> Path:
    video = Path(video)
    return video.with_name(video.name + ".frames")


def render_video(renderable: Renderable, cameras: Cameras, out: Path, config: VideoConfig = VideoConfig(), *,
                 frames: list[int] | None = None, cache_key: str = "", title: str = "Vista render",
                 png_dir: Path | None = None, depth_video: Path | None = None, opacity_video: Path | None = None,
                 sign_cert: Path | None = None, sign_key: Path | None = None, progress: bool = True,
                 on_frame: FrameCallback | None = None, keep_frames: bool = False,
                 cache_dir: Path | None = None) -> VideoResult:
    """Render cameras `frames` (default all) of `cameras` to the MP4 `out`; see the module docstring for the steps.

    `cache_key` identifies the scene (e.g. its content hash) so cached frames of another scene are never reused.
    The frame cache (`out` + ".frames") is deleted after a successful encode unless `keep_frames`."""
    from render.provenance import has_watermark, sign_c2pa, video_metadata, watermark_fits

    out = Path(out)
    indices = list(range(len(cameras))) if frames is None else list(frames)
    if not indices:
        raise VistaError("the camera path selects no frames: nothing to render")
    bad = [i for i in indices if not 0 <= i < len(cameras)]
    if bad:
        raise VistaError(f"frame {bad[0]} is outside the path's {len(cameras)} frames")
    if (sign_cert is None) != (sign_key is None):
        raise VistaError("C2PA signing needs both a certificate (--sign-cert) and a private key (--sign-key)")
    # 1. sizes and folders
    check_render_size(cameras.width, cameras.height, config, renderable.sampling.max_samples_per_ray)
    for target in (out, depth_video, opacity_video):
        if target is not None:
            check_writable(Path(target).parent)
    if png_dir is not None:
        check_writable(png_dir)
    if config.watermark and not watermark_fits(cameras.width, cameras.height):
        log.warning("frames of %dx%d are too small for the invisible watermark (needs >= 256x256 pixels); the "
                    "video is labelled by its metadata%s only", cameras.width, cameras.height,
                    " and C2PA manifest" if sign_cert else "")
    # 2. render into the cache
    key = hashlib.sha256(json.dumps({"scene": cache_key, "cameras": cameras_digest(cameras),
                                     "band_pixels": config.band_pixels, "chunk_rays": config.chunk_rays,
                                     "supersample": config.supersample},
                                    sort_keys=True).encode()).hexdigest()
    cache = FrameCache(cache_dir or frame_cache_dir(out), key)
    cache.open()
    rendered, seconds = render_to_cache(renderable, cameras, indices, cache, config, progress, on_frame)
    # 3. flicker
    flicker = measure_flicker(cameras, indices, cache.load)
    # 4. encode
    metadata = video_metadata(title)
    writers: dict[str, Mp4Writer] = {}
    extra: dict[str, str] = {}
    hashes = []
    try:
        writers["video"] = Mp4Writer(out, cameras.width, cameras.height, config.fps, config.crf, config.x264_preset,
                                     metadata)
        near, far = (0.0, 1.0)
        if depth_video is not None:
            near, far = depth_range(cache, indices)
            writers["depth"] = Mp4Writer(Path(depth_video), cameras.width, cameras.height, config.fps, config.crf,
                                         config.x264_preset, video_metadata(f"{title} (depth)"))
            extra["depth_video"] = str(depth_video)
        if opacity_video is not None:
            writers["opacity"] = Mp4Writer(Path(opacity_video), cameras.width, cameras.height, config.fps,
                                           config.crf, config.x264_preset, video_metadata(f"{title} (opacity)"))
            extra["opacity_video"] = str(opacity_video)
        for k, index in enumerate(indices):
            rgb, depth, opacity = cache.load(index)
            hashes.append(hashlib.sha256(rgb.tobytes()).hexdigest())
            shown = postprocess(rgb, config)
            writers["video"].write(shown)
            if png_dir is not None:
                write_png(Path(png_dir) / f"frame_{k:05d}.png", shown)
            if "depth" in writers:
                writers["depth"].write(postprocess(colorize_depth(depth, opacity, near, far), config))
            if "opacity" in writers:
                writers["opacity"].write(postprocess(opacity_rgb(opacity), config))
        for writer in writers.values():
            writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    if png_dir is not None:
        extra["png_dir"] = str(png_dir)
    # 5. the watermark must survive H.264: decode sampled frames of the finished file
    checked = detected = 0
    if config.watermark and watermark_fits(cameras.width, cameras.height):
        n = len(indices)
        sample = sorted({round(i * (n - 1) / 7) for i in range(8)} if n > 8 else set(range(n)))
        decoded = read_frames(out, sample)
        checked, detected = len(decoded), sum(has_watermark(f) for f in decoded)
        if detected < checked:
            log.warning("invisible watermark decoded in only %d of %d sampled frames after encoding", detected, checked)
    # 6. C2PA, last: it signs the exact bytes of the finished files
    signed = False
    if sign_cert is not None and sign_key is not None:
        for name, writer in writers.items():
            sign_c2pa(writer.path, Path(sign_cert), Path(sign_key), title if name == "video" else f"{title} ({name})")
        signed = True
    if not keep_frames:
        cache.remove()
    return VideoResult(out, indices, cameras.width, cameras.height, config.fps, hashes, flicker, rendered, seconds,
                       checked, detected, signed, extra)
