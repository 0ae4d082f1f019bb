"""Rendered frames on disk, so an interrupted render resumes where it stopped, and `Frames`, what rendering
hands to encoding.

Each frame is a PNG plus depth/opacity in safetensors (and, for the formats with alpha, the float colour), each
written atomically; the cache's key names the scene, cameras and render settings, so frames rendered for anything
else are never reused.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from render.bands import to_uint8
from render.cameras import Cameras
from render.config import VideoConfig
from render.motion_blur import render_video_frame
from render.representation import SceneRepresentation
from vista_core.errors import VistaError
from vista_core.files import atomic_write_bytes, atomic_write_json, read_json
from vista_core.progress import ProgressCallback, report

log = logging.getLogger(__name__)

CACHE_FORMAT = "vista-frame-cache-1"

STAGE_RENDERING = "rendering frames"
"""The stage of the event sent after each frame rendered (done, total, eta_s from this run's pace)."""


def frame_cache_dir(video: Path) -> Path:
    video = Path(video)
    return video.with_name(video.name + ".frames")


def cameras_digest(cameras: Cameras) -> str:
    digest = hashlib.sha256()
    for tensor in (cameras.world_from_camera, cameras.fx, cameras.fy, cameras.cx, cameras.cy):
        digest.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
    if cameras.distortion is not None:
        digest.update(cameras.distortion.float().contiguous().cpu().numpy().tobytes())
    digest.update(f"{cameras.width}x{cameras.height}".encode())
    return digest.hexdigest()


class FrameCache:
    """Rendered frames on disk: `NNNNNN.png` (uint8 RGB) + `NNNNNN.aux.safetensors` (depth, opacity).

    `key.json` identifies what the frames are renders of (scene hash, cameras, render settings); a cache
    made for anything else is emptied rather than reused. The PNG is written last, so its presence means
    the frame is complete.

    With `float_color`, each frame also keeps the render's float colour (`NNNNNN.color.safetensors`, float32
    [H, W, 3]): 16-bit PNG, ProRes and EXR need more than the PNG's 8 bits. A frame cached without it (by an MP4
    render) counts as missing and is rendered again."""

    def __init__(self, directory: Path, key: str, float_color: bool = False):
        self.directory = Path(directory)
        self.key = key
        self.float_color = float_color

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
        for orphan in self.directory.glob(".*.tmp"):  # half-written frames of a run that was killed
            orphan.unlink(missing_ok=True)
        return len(list(self.directory.glob("[0-9]*.png")))

    @contextmanager
    def locked(self, video: Path) -> Iterator[None]:
        """Hold the cache (an exclusive flock on its folder) while a render writes `video`: a second render of the
        same output is refused instead of racing the first for the same frames and temp files."""
        import fcntl

        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory, os.O_RDONLY)
        except OSError as error:
            raise VistaError(f"{self.directory}: cannot create the frame cache ({error.strerror or error})") from error
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                raise VistaError(f"{video}: another render is writing this video now (its frame cache "
                                 f"{self.directory} is in use); wait for it or choose another --out") from error
            yield
        finally:
            os.close(fd)

    def clear(self) -> None:
        for pattern in ("[0-9]*.png", "[0-9]*.aux.safetensors", "[0-9]*.color.safetensors", "key.json", ".*.tmp"):
            for path in self.directory.glob(pattern):
                path.unlink()

    def _png(self, index: int) -> Path:
        return self.directory / f"{index:06d}.png"

    def _aux(self, index: int) -> Path:
        return self.directory / f"{index:06d}.aux.safetensors"

    def _color(self, index: int) -> Path:
        return self.directory / f"{index:06d}.color.safetensors"

    def has(self, index: int) -> bool:
        complete = self._png(index).is_file() and self._aux(index).is_file()
        return complete and (not self.float_color or self._color(index).is_file())

    def save(self, index: int, rgb: np.ndarray, depth: np.ndarray, opacity: np.ndarray,
             color: np.ndarray | None = None) -> None:
        from PIL import Image as PILImage
        from safetensors.numpy import save

        if color is not None:
            atomic_write_bytes(self._color(index), save({"rgb": np.ascontiguousarray(color, dtype=np.float32)}))
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

    def load_color(self, index: int) -> np.ndarray:
        """The render's float colour [H, W, 3] in [0, 1] (composited on the scene's background, like the PNG)."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            return load_file(str(self._color(index)))["rgb"]
        except (OSError, SafetensorError, ValueError, KeyError) as error:
            raise VistaError(f"{self._color(index)}: cached frame is unreadable ({error}); delete {self.directory} "
                             "and render again") from error

    def remove(self) -> None:
        self.clear()
        try:
            self.directory.rmdir()
        except OSError:
            pass


def frame_cache_key(scene_key: str, cameras: Cameras, config: VideoConfig) -> str:
    """What the cached frames are renders of: the scene, the cameras and the settings that change pixels."""
    key = {"scene": scene_key, "cameras": cameras_digest(cameras), "band_pixels": config.band_pixels,
           "chunk_rays": config.chunk_rays, "supersample": config.supersample}
    if config.motion_blur > 0:  # only then, so the caches of unblurred renders keep their keys
        key["motion_blur"] = [config.motion_blur, config.motion_blur_samples]
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Frames:
    """Rendered frames in video order, waiting in a frame cache to be encoded."""

    cache: FrameCache
    indices: tuple[int, ...]
    """Camera index of each frame, in video order."""
    width: int
    height: int
    fps: float
    rendered: int = 0
    """Frames rendered in this run (the rest came from the cache)."""
    render_seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Camera `index`'s frame: (rgb uint8 [H, W, 3], depth [H, W], opacity [H, W])."""
        return self.cache.load(index)

    def load_color(self, index: int) -> np.ndarray:
        """Camera `index`'s float colour [H, W, 3] (a cache opened with `float_color`)."""
        return self.cache.load_color(index)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Every frame in video order, loaded one at a time."""
        return (self.cache.load(index) for index in self.indices)


def render_to_cache(renderable: SceneRepresentation, cameras: Cameras, indices: list[int], cache: FrameCache,
                    config: VideoConfig, show_progress: bool = True,
                    progress: ProgressCallback | None = None) -> Frames:
    """Render the frames `indices` missing from `cache` (an opened one); all of `indices` are then `Frames`.

    `show_progress` draws a terminal bar; `progress` gets a "rendering frames" event after each frame (done,
    total, eta_s from this run's pace). A `Cancelled` it raises stops the render: the frames rendered so far stay
    in the cache, so a rerun resumes from them."""
    from tqdm import tqdm

    todo = [i for i in indices if not cache.has(i)]
    done = len(indices) - len(todo)
    if done:
        log.info("resuming: %d of %d frames already rendered in %s", done, len(indices), cache.directory)
    start = time.perf_counter()
    with tqdm(total=len(indices), initial=done, unit="frame", desc="render", disable=not show_progress,
              dynamic_ncols=True) as bar:
        for rendered, index in enumerate(todo, start=1):
            image = render_video_frame(renderable, cameras, index, config)  # motion-blurred if asked
            color = image.rgb.cpu().numpy() if cache.float_color else None
            try:
                cache.save(index, to_uint8(image.rgb), image.depth.cpu().numpy(), image.opacity.cpu().numpy(), color)
            except VistaError as error:
                raise VistaError(f"{error}; the {done} frames rendered so far are kept in {cache.directory} and a "
                                 "rerun resumes from them") from error
            done += 1
            bar.update(1)
            if progress is not None:
                pace_s = (time.perf_counter() - start) / rendered
                report(progress, STAGE_RENDERING, done, len(indices), eta_s=pace_s * (len(indices) - done))
    return Frames(cache, tuple(indices), cameras.width, cameras.height, config.fps, len(todo),
                  time.perf_counter() - start)
