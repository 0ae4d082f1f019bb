"""Render a batch of cameras (one per frame) to an H.264 MP4 that browsers play, or to frames for compositing
(ProRes 4444 with alpha, 16-bit PNG or OpenEXR sequences: `render.frames_out`).

Numbered steps of `render_video`:
1. check the size: even dimensions (yuv420p), an estimate of the memory a frame needs against what the
   machine has, and writable output folders;
2. render every frame not yet in the frame cache (`render.frame_cache`; each frame a band of rows at a time,
   `render.bands`, so memory stays bounded at any resolution), so an interrupted render resumes where it
   stopped; the result is `Frames`;
3. measure flicker (`render.flicker`): the mean change between consecutive frames after warping one onto the
   other with the rendered depth (a static scene rendered consistently scores near 0);
4. post-process (visible label, invisible watermark; `render.provenance`) and stream the `Frames` to the MP4
   (`render.encode`: PyAV/libx264, yuv420p, even size, constant frame rate) or the format asked for, plus the
   optional PNG sequence, depth video (turbo colormap) and opacity video;
   each output is written to a temp file (a sequence: a temp folder) beside its final name;
5. decode sampled frames of the encoded output and check the watermark survived encoding;
6. sign the temp MP4s with C2PA if a certificate and key were given, so no unsigned file ever has a final name;
7. fsync each MP4 and rename it over its final name (side videos first, the main video last), fsync the folder;
8. call `record` (render_shot writes the recipe there), and only then delete the frame cache.
Temp files of an earlier run of the same outputs that was killed are removed at the start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from render.cameras import Cameras
from render.config import VideoConfig
from render.encode import H264_MAX_PIXELS, H264_MAX_SIDE, commit_file, discard, remove_orphans
from render.flicker import FlickerReport, measure_flicker
from render.frame_cache import FrameCache, Frames, frame_cache_dir, frame_cache_key, render_to_cache
from render.frames_out import (
    ALPHA_FORMATS,
    OUTPUT_FORMATS,
    SEQUENCE_FORMATS,
    AlphaLayers,
    alpha_layers,
    check_sequence_target,
    colorize_depth,
    commit_sequence,
    depth_range,
    discard_output,
    opacity_rgb,
    open_writer,
    output_sha256,
    read_display_frames,
    remove_sequence_orphans,
    write_frame,
    write_png,
)
from render.provenance import add_label, embed_watermark, has_watermark, sign_c2pa, video_metadata, watermark_fits
from render.representation import SceneRepresentation
from vista_core.errors import VistaError
from vista_core.memory import keep_freed_memory
from vista_core.progress import ProgressCallback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoOutputs:
    """What a render writes besides its MP4, and how the files are finished."""

    png_dir: Path | None = None
    """Also write every frame, as shown in the video, to `frame_NNNNN.png` in this folder."""
    depth_video: Path | None = None
    """Also write a depth MP4 (matplotlib's turbo colormap: near red, far blue)."""
    opacity_video: Path | None = None
    """Also write an opacity (alpha) MP4."""
    sign_cert: Path | None = None
    """PEM certificate chain to sign every MP4 with C2PA (needs `sign_key`)."""
    sign_key: Path | None = None
    """PEM private key for C2PA signing (needs `sign_cert`)."""
    keep_frames: bool = False
    """Keep the frame cache after a successful encode (by default it is deleted)."""
    cache_dir: Path | None = None
    """The frame cache folder (default: the video's path + ".frames")."""
    format: str = "mp4"
    """The main output: "mp4" (H.264), "prores" (ProRes 4444 .mov with alpha), "png" or "exr" (a folder of
    frames with alpha; EXR adds depth): `render.frames_out`."""

    def __post_init__(self) -> None:
        if (self.sign_cert is None) != (self.sign_key is None):
            raise VistaError("C2PA signing needs both a certificate (--sign-cert) and a private key (--sign-key)")
        if self.format not in OUTPUT_FORMATS:
            raise VistaError(f"--format {self.format!r}: expected one of {', '.join(OUTPUT_FORMATS)}")
        if self.sign_cert is not None and self.format in SEQUENCE_FORMATS:
            raise VistaError(f"C2PA signing (--sign-cert) applies to MP4 and MOV files, not to a {self.format} "
                             "sequence; its frames carry the label in their metadata and the invisible watermark")


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
    video_sha256: dict[str, str] = field(default_factory=dict)
    """SHA-256 of each MP4 as written ("video", "depth", "opacity"), so a recipe can tell it is beside its video
    (of a sequence folder: over its frames' names and SHA-256)."""
    output_format: str = "mp4"
    metadata: dict[str, str] = field(default_factory=dict)
    """The provenance label written into the main output's metadata (MP4/MOV tags, PNG iTXt, EXR attributes)."""

    @property
    def frames_per_s(self) -> float:
        return self.rendered / self.render_seconds if self.render_seconds > 0 else 0.0


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


def select_frames(cameras: Cameras, frames: list[int] | None) -> list[int]:
    """The camera indices to render (default all), refusing an empty selection or indices off the path."""
    indices = list(range(len(cameras))) if frames is None else list(frames)
    if not indices:
        raise VistaError("the camera path selects no frames: nothing to render")
    bad = [i for i in indices if not 0 <= i < len(cameras)]
    if bad:
        raise VistaError(f"frame {bad[0]} is outside the path's {len(cameras)} frames")
    return indices


def check_outputs(cameras: Cameras, out: Path, config: VideoConfig, outputs: VideoOutputs,
                  max_samples_per_ray: int) -> None:
    """Step 1: the size fits the encoder and the machine, and every output folder is writable."""
    check_render_size(cameras.width, cameras.height, config, max_samples_per_ray)
    if outputs.format in SEQUENCE_FORMATS:
        check_sequence_target(out, outputs.format)
    for target in (out, outputs.depth_video, outputs.opacity_video):
        if target is not None:
            check_writable(Path(target).parent)
    if outputs.png_dir is not None:
        check_writable(outputs.png_dir)
    if config.watermark and not watermark_fits(cameras.width, cameras.height):
        log.warning("frames of %dx%d are too small for the invisible watermark (needs >= 256x256 pixels); the "
                    "video is labelled by its metadata%s only", cameras.width, cameras.height,
                    " and C2PA manifest" if outputs.sign_cert else "")


# --- 4. post-processing and encoding ---------------------------------------------------------------

def postprocess(rgb: np.ndarray, config: VideoConfig) -> np.ndarray:
    """Visible label first, then the invisible watermark over everything (render.provenance)."""
    if config.label:
        rgb = add_label(rgb)
    if config.watermark and watermark_fits(rgb.shape[1], rgb.shape[0]):
        rgb = embed_watermark(rgb)
    return rgb


def video_targets(out: Path, outputs: VideoOutputs) -> dict[str, Path]:
    """The MP4s a render writes, by name: "video" (always), "depth" and "opacity" (when asked for)."""
    targets = {"video": Path(out), "depth": outputs.depth_video, "opacity": outputs.opacity_video}
    return {name: Path(path) for name, path in targets.items() if path is not None}


def encode_frames(frames: Frames, targets: dict[str, Path], config: VideoConfig, outputs: VideoOutputs,
                  title: str, layers_of: AlphaLayers | None = None) -> tuple[dict[str, Path], list[str]]:
    """Step 4: post-process `frames` and stream them into the main output (`outputs.format`; an alpha format needs
    `layers_of`) and an MP4 per side target (`video_targets`).

    Returns each output's temp file (or folder) by name (not yet at its final name: `commit_videos` puts them there)
    and the SHA-256 of each raw frame. On any failure every output is abandoned (no partial files); the frames stay
    cached."""
    writers: dict[str, object] = {}
    hashes = []
    try:
        for name, path in targets.items():
            metadata = video_metadata(title if name == "video" else f"{title} ({name})")
            writers[name] = open_writer(outputs.format if name == "video" else "mp4", path, frames.width,
                                        frames.height, config.fps, config.crf, config.x264_preset, metadata)
        near, far = depth_range(frames) if "depth" in writers else (0.0, 1.0)
        for index in frames.indices:
            k = len(hashes)
            rgb, depth, opacity = frames.load(index)
            hashes.append(hashlib.sha256(rgb.tobytes()).hexdigest())
            shown = postprocess(rgb, config)
            layers = layers_of(index, rgb, depth, opacity, shown) if layers_of is not None else None
            write_frame(writers["video"], shown, layers)
            if outputs.png_dir is not None:
                write_png(Path(outputs.png_dir) / f"frame_{k:05d}.png", shown)
            if "depth" in writers:
                writers["depth"].write(postprocess(colorize_depth(depth, opacity, near, far), config))
            if "opacity" in writers:
                writers["opacity"].write(postprocess(opacity_rgb(opacity), config))
        return {name: writer.finish() for name, writer in writers.items()}, hashes
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise


# --- 5. and 6. labels that must survive: watermark check, C2PA --------------------------------------

def check_watermark(video: Path, frame_count: int, config: VideoConfig, width: int, height: int) -> tuple[int, int]:
    """Step 5: (frames checked, frames carrying the watermark) among up to 8 decoded from the finished output."""
    if not (config.watermark and watermark_fits(width, height)):
        return 0, 0
    n = frame_count
    sample = sorted({round(i * (n - 1) / 7) for i in range(8)} if n > 8 else set(range(n)))
    decoded = read_display_frames(video, sample)
    checked, detected = len(decoded), sum(has_watermark(f) for f in decoded)
    if detected < checked:
        log.warning("invisible watermark decoded in only %d of %d sampled frames after encoding", detected, checked)
    return checked, detected


def sign_videos(videos: dict[str, Path], outputs: VideoOutputs, title: str) -> bool:
    """Step 6: C2PA signs the exact bytes of the encoded temp files, before they take their final names.
    False when no certificate was given."""
    if outputs.sign_cert is None or outputs.sign_key is None:
        return False
    for name, path in videos.items():  # sequences refuse a certificate (VideoOutputs): these are MP4/MOV files
        sign_c2pa(path, Path(outputs.sign_cert), Path(outputs.sign_key),
                  title if name == "video" else f"{title} ({name})")
    return True


def file_sha256(path: Path) -> str:
    """Of a video file, or of a sequence folder (`render.frames_out.output_sha256`)."""
    return output_sha256(path)


def commit_videos(temps: dict[str, Path], targets: dict[str, Path]) -> dict[str, str]:
    """Step 7: fsync each temp output and rename it over its final name, the main one last; returns their SHA-256.

    A kill between two renames leaves a side video newer than the main one: the recipe's hashes tell."""
    digests = {name: file_sha256(path) for name, path in temps.items()}
    for name in sorted(temps, key=lambda n: n == "video"):
        if temps[name].is_dir():
            commit_sequence(temps[name], targets[name])
        else:
            commit_file(temps[name], targets[name])
    return digests


# --- the whole thing -------------------------------------------------------------------------------

def render_video(renderable: SceneRepresentation, cameras: Cameras, out: Path, config: VideoConfig = VideoConfig(),
                 outputs: VideoOutputs = VideoOutputs(), *, frames: list[int] | None = None, cache_key: str = "",
                 title: str = "Vista render", show_progress: bool = True,
                 progress: ProgressCallback | None = None,
                 record: Callable[[VideoResult], None] | None = None) -> VideoResult:
    """Render cameras `frames` (default all) of `cameras` to the MP4 `out`; see the module docstring for the steps.

    `cache_key` identifies the scene (e.g. its content hash) so cached frames of another scene are never reused.
    The frame cache is deleted after a successful encode unless `outputs.keep_frames`. `show_progress` draws a
    terminal bar; `progress` gets a "rendering frames" event per frame, and a `Cancelled` it raises stops the
    render with the frames so far kept in the cache (a rerun resumes from them). `record` is called with the
    result once the MP4s are at their final names and before the frame cache is deleted."""
    out = Path(out)
    keep_freed_memory()
    indices = select_frames(cameras, frames)
    # 1. sizes and folders
    check_outputs(cameras, out, config, outputs, renderable.max_samples_per_ray)
    targets = video_targets(out, outputs)
    alpha = outputs.format in ALPHA_FORMATS
    cache = FrameCache(outputs.cache_dir or frame_cache_dir(out), frame_cache_key(cache_key, cameras, config),
                       float_color=alpha)
    with cache.locked(out):  # one render of an output at a time: they would share the cache and the temp names
        for target in targets.values():  # temp files of an earlier, killed run of these outputs
            remove_orphans(target)
        if outputs.format in SEQUENCE_FORMATS:
            remove_sequence_orphans(out)
        # 2. render into the cache
        cache.open()
        rendered = render_to_cache(renderable, cameras, indices, cache, config, show_progress, progress)
        # 3. flicker
        flicker = measure_flicker(cameras, indices, rendered.load)
        # 4. encode, each MP4 to a temp file beside its final name
        background = renderable.background.detach().float().cpu().numpy()
        layers_of = alpha_layers(rendered, cameras, background) if alpha else None
        temps, hashes = encode_frames(rendered, targets, config, outputs, title, layers_of)
        try:
            # 5. the watermark must survive H.264: decode sampled frames of the encoded file
            checked, detected = check_watermark(temps["video"], len(indices), config, cameras.width, cameras.height)
            # 6. C2PA signs the exact bytes of the temp files: no unsigned MP4 ever has a final name
            signed = sign_videos(temps, outputs, title)
            # 7. fsync, rename into place, fsync the folder
            digests = commit_videos(temps, targets)
        finally:
            for temp in temps.values():  # what commit_videos did not rename (a failure or a kill before it)
                if temp.is_dir():
                    discard_output(temp)
                else:
                    discard(temp)
        extra = {name: str(path) for name, path in (("depth_video", outputs.depth_video),
                                                     ("opacity_video", outputs.opacity_video),
                                                     ("png_dir", outputs.png_dir)) if path is not None}
        result = VideoResult(out, indices, cameras.width, cameras.height, config.fps, hashes, flicker, rendered.rendered,
                             rendered.render_seconds, checked, detected, signed, extra, digests, outputs.format,
                             video_metadata(title))
        # 8. the recipe (if any) is written before the frame cache, which could render the video again, goes
        if record is not None:
            record(result)
        if not outputs.keep_frames:
            cache.remove()
        return result
