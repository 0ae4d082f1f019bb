"""Videos: a scene along a camera path to a labelled MP4 with its recipe (`vista render`, the studio's step 5),
the same shot again from a recipe (`vista render --recipe`), and the labels a video carries (`vista verify`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from vista_core.errors import VistaError
from vista_core.progress import ProgressCallback

if TYPE_CHECKING:
    from render.cameras import Cameras
    from render.paths import CameraPath
    from render.provenance import VerifyReport
    from render.video import VideoConfig, VideoResult
    from vista_api.farm import RayFarm

STAGE_RENDERING = "rendering frames"
"""render.frame_cache's event after each frame (done, total, eta_s)."""


@dataclass(frozen=True)
class Quality:
    """Encoding and anti-aliasing."""

    crf: int = 18
    """H.264 quality: lower is better and larger (18 is visually lossless)."""
    x264_preset: str = "medium"
    """libx264 speed/size trade-off."""
    supersample: int = 1
    """Rays per pixel side, averaged (2: anti-aliased, 4x the render time)."""
    motion_blur: float = 0.0
    """Shutter as a fraction of the frame interval, in [0, 1] (0: none, 0.5: 180 degrees; render.motion_blur)."""
    motion_blur_samples: int = 8
    """Sub-frame renders averaged per blurred frame."""


QUALITIES = {"draft": Quality(crf=28, x264_preset="veryfast"), "standard": Quality(),
             "anti-aliased": Quality(supersample=2)}
"""The studio's named qualities."""


@dataclass(frozen=True)
class Labels:
    """How the video says it is a synthetic render."""

    watermark: bool = True
    """Invisible watermark in every frame (frames of at least 256x256)."""
    label: bool = False
    """Visible corner label."""
    sign_cert: Path | None = None
    """PEM certificate chain for a C2PA manifest (with `sign_key`)."""
    sign_key: Path | None = None

    def __post_init__(self) -> None:
        if (self.sign_cert is None) != (self.sign_key is None):
            raise VistaError("C2PA signing needs both a certificate (--sign-cert) and a private key (--sign-key)")


@dataclass(frozen=True)
class ExtraOutputs:
    png_dir: Path | None = None
    """Also every frame as a PNG in this folder."""
    depth_video: Path | None = None
    opacity_video: Path | None = None
    keep_frames: bool = False
    """Keep the frame cache (OUT.frames) after encoding."""


@dataclass(frozen=True)
class ShotRequest:
    scene_dir: Path
    path: CameraPath | Path
    """A camera path file (nerfstudio camera_path.json, Vista keyframes, instant-ngp base_cam.json) or a
    CameraPath (then `width` and `height` are required)."""
    out: Path
    """The MP4 (or .mov, or folder of frames: `output_format`) to write; the recipe goes beside it."""
    width: int | None = None
    """Frame width in pixels (None: the path file's)."""
    height: int | None = None
    fps: float | None = None
    """None: the path's frame rate. Another rate re-times the path so the shot keeps its length in seconds
    (keyframes sampled again, a file of frames interpolated between them: render.path_io.retime_path_file)."""
    frames: str | None = None
    """Only frames a:b of the path (Python slice, b excluded)."""
    preview: bool = False
    """Quarter resolution, for a fast look."""
    quality: Quality = Quality()
    labels: Labels = Labels()
    extras: ExtraOutputs = ExtraOutputs()
    seed: int = 0
    """Recorded in the recipe."""
    path_source: str | None = None
    """What the recipe says the path came from (None: the file name, or "camera path")."""
    output_format: str | None = None
    """"mp4", "prores" (ProRes 4444 .mov with alpha), "png" or "exr" (a folder of frames with alpha; EXR adds
    depth); None: from `out` (.mp4, .mov). See render.frames_out."""
    farm: RayFarm | None = None
    """Render the frames on a Ray cluster (vista_api.farm); encoding, labels and the recipe stay local."""

    def __post_init__(self) -> None:
        from render.frames_out import resolve_format
        from render.video import VideoConfig

        resolve_format(Path(self.out), self.output_format)
        for name, value in (("--width", self.width), ("--height", self.height)):
            if value is not None and value < 2:
                raise VistaError(f"{name} {value}: must be at least 2 pixels")
        if not isinstance(self.path, (str, Path)) and (self.width is None or self.height is None):
            raise VistaError("rendering a camera path needs a width and a height")
        VideoConfig(fps=24.0 if self.fps is None else self.fps, crf=self.quality.crf,
                    x264_preset=self.quality.x264_preset, supersample=self.quality.supersample,
                    motion_blur=self.quality.motion_blur, motion_blur_samples=self.quality.motion_blur_samples)
        frame_slice(self.frames)

    @property
    def from_file(self) -> bool:
        return isinstance(self.path, (str, Path))

    def video_config(self, path_fps: float) -> VideoConfig:
        """The render settings; without `fps`, the path's frame rate, checked naming the file."""
        from render.video import VideoConfig

        if self.fps is None:
            try:
                VideoConfig(fps=path_fps)
            except VistaError as error:
                raise VistaError(f"{self.path}: its frame rate is unusable ({error}); pass --fps to override it") \
                    from error
        return VideoConfig(fps=path_fps if self.fps is None else self.fps, crf=self.quality.crf,
                           x264_preset=self.quality.x264_preset, watermark=self.labels.watermark,
                           label=self.labels.label, supersample=self.quality.supersample,
                           motion_blur=self.quality.motion_blur, motion_blur_samples=self.quality.motion_blur_samples)


def frame_slice(spec: str | None) -> tuple[int | None, int | None]:
    """'a:b', 'a:', ':b' or 'a' (Python slice semantics) -> (start, stop)."""
    if spec is None:
        return None, None
    try:
        parts = [int(p) if p.strip() else None for p in spec.split(":")]
    except ValueError as error:
        raise VistaError(f"--frames {spec!r}: expected a:b with integers") from error
    if len(parts) == 1:
        if parts[0] is None:
            raise VistaError(f"--frames {spec!r}: expected a:b with integers")
        parts = [parts[0], parts[0] + 1 if parts[0] != -1 else None]
    if len(parts) != 2:
        raise VistaError(f"--frames {spec!r}: expected a:b")
    return parts[0], parts[1]


def select_frames(spec: str | None, count: int) -> list[int]:
    """The frame indices `spec` selects of `count`; an empty selection is an error."""
    start, stop = frame_slice(spec)
    selected = list(range(count))[start:stop]
    if not selected:
        raise VistaError(f"--frames {spec or ':'}: selects no frames of the path's {count}")
    return selected


@dataclass(frozen=True)
class ShotResult:
    video: Path
    recipe_file: Path
    render: VideoResult
    """Frames, size, fps, flicker, watermark check, signing, extra outputs."""
    retimed: str | None = None
    """What re-timing the path to the requested frame rate did, in one line (None: not re-timed)."""

    @property
    def frames_per_s(self) -> float:
        return self.render.frames_per_s

    @property
    def flicker_summary(self) -> str:
        return self.render.flicker.summary()


def render_shot(request: ShotRequest, progress: ProgressCallback | None = None) -> ShotResult:
    """Render, encode, label, write the recipe. Frames are cached beside the video: if `progress` raises
    Cancelled (or the run is killed) the same request resumes from them."""
    from render.frames_out import ALPHA_FORMATS, resolve_format
    from render.video import VideoOutputs
    from scenes.recipe import render_shot as render_and_record
    from scenes.scene import load_scene

    cameras, path_fps, retimed = _shot_cameras(request)
    frames = select_frames(request.frames, len(cameras))
    config = request.video_config(path_fps)
    if request.from_file and request.width is None and request.height is None and not request.preview:
        _check_size_from_file(request.path, cameras, config)
    extras, labels = request.extras, request.labels
    source = request.path_source or (str(request.path) if request.from_file else "camera path")
    outputs = VideoOutputs(png_dir=extras.png_dir, depth_video=extras.depth_video,
                           opacity_video=extras.opacity_video, sign_cert=labels.sign_cert, sign_key=labels.sign_key,
                           keep_frames=extras.keep_frames, format=resolve_format(request.out, request.output_format))
    farm_run = (None if request.farm is None
                else _render_on_farm(request, cameras, frames, config, outputs.format in ALPHA_FORMATS, progress))
    result, recipe_file = render_and_record(
        load_scene(request.scene_dir), cameras, request.out, config, outputs, frames=frames, seed=request.seed,
        path_source=source, show_progress=False, progress=progress)
    if farm_run is not None:
        from vista_api.farm import check_frame_hashes

        check_frame_hashes(farm_run, frames, result.frame_sha256)
        result.rendered, result.render_seconds = farm_run.rendered, farm_run.seconds  # the cluster's, not the encode's
    return ShotResult(result.video, recipe_file, result, retimed)


def _render_on_farm(request: ShotRequest, cameras: Cameras, frames: list[int], config: VideoConfig,
                    float_color: bool, progress: ProgressCallback | None):
    """The frames missing from the shot's frame cache, rendered on Ray into it (vista_api.farm), so that
    render_and_record only encodes, labels and records them."""
    from render.frame_cache import frame_cache_dir
    from render.video import VideoOutputs, check_outputs
    from scenes.recipe import scene_content_hash
    from vista_api.farm import render_frames_on_ray

    check_outputs(cameras, request.out, config, VideoOutputs(), 0)  # refuse a bad size before the cluster starts
    return render_frames_on_ray(request.farm, request.scene_dir, scene_content_hash(request.scene_dir), cameras,
                                frames, config, frame_cache_dir(request.out), request.out, progress,
                                float_color=float_color)


def _shot_cameras(request: ShotRequest) -> tuple[Cameras, float, str | None]:
    """One camera per frame at the requested size, the path's frame rate, and what re-timing it to the requested
    rate did (None if it was not re-timed)."""
    from render.camera_motion import retime_path_file
    from render.path_io import read_path_file
    from render.video import preview_size, resize_cameras

    retimed = None
    if request.from_file:
        loaded = read_path_file(Path(request.path))
        if len(loaded.fov_y_deg) == 0:
            raise VistaError(f"{request.path}: the camera path has no frames")
        if request.fps is not None and not math.isclose(request.fps, loaded.fps, rel_tol=1e-6):
            before = len(loaded.fov_y_deg), loaded.fps, loaded.seconds
            loaded = retime_path_file(loaded, float(request.fps))
            retimed = _retimed_line(*before, len(loaded.fov_y_deg), loaded.fps)
        cameras, fps = loaded.cameras(request.width, request.height), loaded.fps
    else:
        path = request.path
        if request.fps is not None and not math.isclose(request.fps, path.fps, rel_tol=1e-6):
            retimed_path = replace(path, fps=float(request.fps))
            retimed = _retimed_line(path.n_frames, path.fps, path.seconds, retimed_path.n_frames, retimed_path.fps)
            path = retimed_path
        cameras, fps = path.sample(request.width, request.height), path.fps
    if request.preview:
        cameras = resize_cameras(cameras, *preview_size(cameras.width, cameras.height))
    return cameras, fps, retimed


def _retimed_line(frames: int, fps: float, seconds: float, new_frames: int, new_fps: float) -> str:
    return (f"re-timed the path from {frames} frames at {fps:g} fps to {new_frames} frames at {new_fps:g} fps, "
            f"so the shot keeps its length ({seconds:g} s)")


def _check_size_from_file(path: Path, cameras: Cameras, config: VideoConfig) -> None:
    """The size the path file asks for, checked up front so that the message names the file."""
    from render.video import check_render_size

    try:
        check_render_size(cameras.width, cameras.height, config, max_samples_per_ray=0)  # the scene's: later
    except VistaError as error:
        raise VistaError(f"{path}: the render size it asks for is unusable: {error}") from error


@dataclass(frozen=True)
class RerenderRequest:
    recipe: Path
    out: Path | None = None
    """None: `<video>.rerender.mp4` beside the original (never over it)."""
    scene_dir: Path | None = None
    """None: the recipe's scene folder."""
    labels: Labels = Labels()
    """Only the C2PA signing is taken from here; the rest is the recipe's."""


@dataclass(frozen=True)
class RerenderResult:
    shot: ShotResult
    identical: bool
    """Every frame's SHA-256 matches the recipe's."""
    mismatched_frames: tuple[int, ...]


def rerender(request: RerenderRequest, progress: ProgressCallback | None = None) -> RerenderResult:
    """Render a recipe again and compare every frame's hash with the recorded one (as
    scenes.recipe.render_from_recipe, with progress events)."""
    from scenes.recipe import render_from_recipe

    again = render_from_recipe(request.recipe, request.out, request.scene_dir, show_progress=False,
                               sign_cert=request.labels.sign_cert, sign_key=request.labels.sign_key,
                               progress=progress)
    shot = ShotResult(again.result.video, again.recipe_file, again.result)
    return RerenderResult(shot, again.identical, tuple(again.mismatched_frames))


@dataclass(frozen=True)
class VerifyRequest:
    video: Path
    """An MP4 or MOV, a PNG or EXR frame, or a folder of frames."""
    samples: int = 8
    """Frames checked for the watermark."""
    trust_anchors: Path | None = None
    """PEM CA certificates to trust when validating C2PA."""

    def __post_init__(self) -> None:
        if self.trust_anchors is not None and not Path(self.trust_anchors).is_file():
            raise VistaError(f"{self.trust_anchors}: trust anchors file not found")
        if self.samples < 1:
            raise VistaError(f"--samples {self.samples}: must be at least 1")


def verify(request: VerifyRequest) -> VerifyReport:
    """Which synthetic-render labels the video carries (C2PA, watermark, metadata tags) and the graded verdict:
    `.verdict` is signed, signed (untrusted signer), watermarked, invalid manifest, tagged only or unlabelled;
    `.label_found` is true for the first three only."""
    from render.provenance import verify_video

    anchors = None if request.trust_anchors is None else Path(request.trust_anchors).read_bytes()
    return verify_video(Path(request.video), request.samples, anchors)
