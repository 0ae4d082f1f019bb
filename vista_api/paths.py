"""Camera paths for a trained scene (`vista path`, the studio's step 3): a preset fitted to the scene or your
keyframes -> a CameraPath; writing it as nerfstudio's camera_path.json; coverage along it; previews.

    scene = open_path_scene(Path("scenes/lego"))
    path = make_path(PathRequest(preset="orbit", seconds=8), scene)
    write_path(PathFiles(Path("path.json"), 640, 360), path)
    coverage = check_coverage(CoverageRequest(640, 360), scene, path)
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from vista_core.errors import VistaError
from vista_core.progress import ProgressCallback

if TYPE_CHECKING:
    import numpy as np

    from render.coverage import CoverageReport
    from render.path_geometry import PathGeometry
    from render.path_presets import OccupancyQuery, SceneFrame
    from render.paths import CameraPath
    from render.render import Renderable
    from scenes.scene import Scene

EASES = ("linear", "ease-in", "ease-out", "ease-in-out")
MAX_RENDER_PIXELS = 64_000_000

# option -> keyword of the preset builders in render.path_presets (the first one the preset takes)
PRESET_KEYWORDS = {
    "degrees": ("degrees",),
    "radius_factor": ("radius_factor", "start_factor"),
    "end_factor": ("end_factor",),
    "elevation": ("elevation_deg", "start_elevation_deg"),
    "end_elevation": ("end_elevation_deg",),
    "azimuth": ("azimuth_deg",),
    "height_factor": ("height_factor",),
    "fov": ("fov_y_deg",),
    "keyframe_count": ("n_keyframes",),
}


@dataclass(frozen=True)
class PresetOptions:
    """A preset's shape; each applies to the presets that take it (None: the preset's default). Messages name
    them as `vista path` flags (`--radius-factor`)."""

    degrees: float | None = None
    """orbit/spiral: how far around the subject."""
    radius_factor: float | None = None
    """Distance as a multiple of the photos' median distance (orbit, crane-up; start of dolly-in, pull-back, spiral)."""
    end_factor: float | None = None
    """dolly-in/pull-back/spiral: distance factor at the end."""
    elevation: float | None = None
    """Degrees above the subject's horizon."""
    end_elevation: float | None = None
    """crane-up/spiral: elevation at the end, degrees."""
    azimuth: float | None = None
    """Degrees around the subject from the photos' side."""
    height_factor: float | None = None
    """fly-over: height in subject radii above its centre."""
    fov: float | None = None
    """Vertical field of view, degrees."""
    keyframe_count: int | None = None
    """follow-capture: keyframes kept."""

    def given(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def keywords_for(self, preset: str) -> dict[str, float]:
        """The options as keywords of `preset`'s builder; an option it does not take is an error."""
        accepted = set(inspect.signature(_preset_builder(preset)).parameters)
        keywords = {}
        for name, value in self.given().items():
            keyword = next((k for k in PRESET_KEYWORDS[name] if k in accepted), None)
            if keyword is None:
                raise VistaError(f"--{_flag(name)} does not apply to preset {preset}")
            if isinstance(value, float) and not math.isfinite(value):
                raise VistaError(f"--{_flag(name)} must be a finite number")
            keywords[keyword] = value
        return keywords


def _flag(option: str) -> str:
    return option.replace("_", "-")


def _preset_builder(preset: str):
    from render.path_presets import PRESET_BUILDERS

    return PRESET_BUILDERS[preset]


@dataclass(frozen=True)
class PathRequest:
    """A preset fitted to the scene, or a keyframe file; exactly one of `preset` and `keyframes`."""

    preset: str | None = None
    """One of render.path_presets.PRESETS."""
    keyframes: Path | None = None
    """Keyframe JSON (or a camera_path.json with keyframes)."""
    seconds: float | None = None
    """Length of the shot (None: 8, or the keyframe file's)."""
    fps: float | None = None
    """Frames per second (None: 30, or the keyframe file's)."""
    ease: str | None = None
    """Easing of the whole path (None: the preset's or the file's)."""
    options: PresetOptions = PresetOptions()
    avoid_occupied: bool = True
    """Step a preset out of occupied space."""

    def __post_init__(self) -> None:
        from render.path_presets import PRESETS

        if (self.preset is None) == (self.keyframes is None):
            raise VistaError("give a preset or a keyframe file (one of them)")
        if self.preset is not None and self.preset not in PRESETS:
            raise VistaError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.ease is not None and self.ease not in EASES:
            raise VistaError(f"unknown easing {self.ease!r}; choose one of {', '.join(EASES)}")
        if self.preset is not None:
            self.options.keywords_for(self.preset)  # each option applies to this preset and is finite
        else:
            given = list(self.options.given())
            if given:
                raise VistaError(f"--{_flag(given[0])} is a preset option; edit the keyframe file instead")


@dataclass(frozen=True)
class PathScene:
    """A loaded scene with what fitting and checking paths needs (computed once, reused for every path)."""

    folder: Path
    scene: Scene
    renderable: Renderable
    occupied: OccupancyQuery
    frame: SceneFrame
    """The subject: centre, radius, up, distance and fov of the photos."""
    geometry: PathGeometry | None = None
    """A place's surfaces as the photos saw them (unbounded scenes; None for an object in its box)."""

    def map_points(self) -> tuple[np.ndarray, np.ndarray]:
        """World points [P, 3] and uint8 colours a map or 3D preview draws: a place's focus region as the photos
        saw it, or an object's occupied cells (render.path_preview.scene_points)."""
        from render.path_preview import scene_points

        if self.geometry is not None:
            return self.geometry.focus_points()
        return scene_points(self.renderable, view_direction=-self.frame.up)


def open_path_scene(folder: Path) -> PathScene:
    """Load a scene for paths. An object is fitted to its occupancy grid; a place (unbounded: its grid calls most of
    space occupied) to the surfaces its photos saw (scenes.place, cached in the folder)."""
    from render.path_presets import fit_scene_frame, frame_around, occupancy_query
    from scenes.place import place_geometry
    from scenes.scene import load_scene

    scene = load_scene(folder)
    renderable = scene.renderable()
    if scene.kind == "unbounded":
        geometry = place_geometry(scene)
        return PathScene(Path(folder), scene, renderable, geometry.occupied,
                         frame_around(scene.capture, geometry.centre, geometry.radius), geometry)
    occupied = occupancy_query(renderable)
    return PathScene(Path(folder), scene, renderable, occupied,
                     fit_scene_frame(scene.capture, scene.scene_from_world, occupied))


def make_path(request: PathRequest, scene: PathScene) -> CameraPath:
    """The request's path: the preset fitted to `scene`, or the keyframe file with its overrides."""
    from render.path_presets import preset_path

    if request.preset is not None:
        seconds = 8.0 if request.seconds is None else request.seconds  # 0 is an error, not "the default"
        fps = 30.0 if request.fps is None else request.fps
        path = preset_path(request.preset, scene.frame, capture=scene.scene.capture, seconds=seconds, fps=fps,
                           occupied=scene.occupied if request.avoid_occupied else None,
                           **request.options.keywords_for(request.preset))
    else:
        path, _ = read_editable_path(request.keyframes)
        changes = {k: v for k, v in (("seconds", request.seconds), ("fps", request.fps)) if v is not None}
        path = replace(path, **changes) if changes else path
    return replace(path, ease=request.ease) if request.ease else path


def read_editable_path(file: Path) -> tuple[CameraPath, str]:
    """The keyframes of a path file and its source ("vista", "gltf", ...); for a file of frames only (a Blender
    camera, a nerfstudio frame list) a keyframe per frame (render.camera_motion.path_from_frames)."""
    from render.camera_motion import path_from_frames
    from render.path_io import read_path_file

    loaded = read_path_file(Path(file))
    if loaded.path is not None:
        return loaded.path, loaded.source
    return path_from_frames(loaded.world_from_camera, loaded.fov_y_deg, loaded.fps, str(file)), loaded.source


def check_render_size(width: int, height: int) -> None:
    if width < 1 or height < 1 or width * height > MAX_RENDER_PIXELS:
        raise VistaError(f"--width/--height {width}x{height} is not a sensible render size")


@dataclass(frozen=True)
class PathFiles:
    """Where a path is written: nerfstudio's camera_path.json at a render size, and optionally its keyframes."""

    out: Path
    width: int = 640
    height: int = 360
    keyframes_out: Path | None = None
    """Also write the keyframes (to edit and read back with PathRequest(keyframes=...))."""
    dataparser_transforms: Path | None = None
    """A nerfstudio run's dataparser_transforms.json: write camera_path.json in its coordinates."""
    camera_glb: Path | None = None
    """Also write the path as a glTF camera animation (.glb) for Blender and other tools (render.gltf_camera)."""

    def __post_init__(self) -> None:
        check_render_size(self.width, self.height)
        if self.camera_glb is not None and Path(self.camera_glb).suffix.lower() != ".glb":
            raise VistaError(f"{self.camera_glb}: the camera animation is written as a .glb file")


def write_path(files: PathFiles, path: CameraPath) -> None:
    from render.gltf_camera import write_camera_glb
    from render.path_io import read_dataparser_transforms, write_camera_path, write_keyframes

    dataparser = read_dataparser_transforms(files.dataparser_transforms) if files.dataparser_transforms else None
    write_camera_path(files.out, path, files.width, files.height, dataparser)
    if files.keyframes_out is not None:
        write_keyframes(files.keyframes_out, path)
    if files.camera_glb is not None:
        write_camera_glb(files.camera_glb, path, files.width, files.height)


def describe_path(path: CameraPath) -> str:
    """Frames, length, keyframe times ("240 frames, 8 s at 30 fps, 5 keyframes at 0.00, 2.00, ... s")."""
    times = [f"{t:.2f}" for t in path.keyframe_times()]
    shown = ", ".join(times) if len(times) <= 8 else ", ".join(times[:4] + ["..."] + times[-2:])
    return (f"{path.n_frames} frames, {path.seconds:g} s at {path.fps:g} fps, {len(path.keyframes)} keyframes at "
            f"{shown} s{' (loop)' if path.loop else ''}")


@dataclass(frozen=True)
class CoverageRequest:
    width: int = 640
    height: int = 360
    frames_scored: int = 60
    """Frames actually scored, evenly spread; the others take the nearest score."""

    def __post_init__(self) -> None:
        check_render_size(self.width, self.height)


STAGE_COVERAGE_PHOTOS = "coverage: rendering the photos"
"""render.coverage's events while the photos' depth maps are made."""
STAGE_COVERAGE_FRAMES = "coverage: scoring frames"
"""render.coverage's events while the path's frames are scored."""


def check_coverage(request: CoverageRequest, scene: PathScene, path: CameraPath,
                   progress: ProgressCallback | None = None) -> CoverageReport:
    """Per-frame coverage (did at least 2 photos see what the frame shows?) with warnings. Events: the photos'
    depth maps, then the scored frames; a Cancelled from `progress` stops it."""
    from render.coverage import path_coverage

    cameras = path.sample(request.width, request.height)
    step = max(1, math.ceil(len(cameras) / max(1, request.frames_scored)))
    return path_coverage(scene.renderable, scene.scene.capture, cameras, path.frame_times(), frame_step=step,
                         progress=progress)


@dataclass(frozen=True)
class PreviewRequest:
    glb: Path | None = None
    """3D preview: scene points, path, frusta."""
    top_down: Path | None = None
    """Top-down PNG of the path, coloured by coverage when a report is given."""
    aspect: float = 16 / 9
    """Width / height of the frusta drawn in the GLB."""


def write_previews(request: PreviewRequest, scene: PathScene, path: CameraPath,
                   coverage: CoverageReport | None = None) -> None:
    """The GLB and the top-down map, as `vista path --glb --top-down` and the studio draw them."""
    import numpy as np

    from render.path_preview import path_glb, top_down_map
    from vista_core.files import atomic_write_bytes

    frames, _ = path.evaluate(path.frame_times())
    points, colours = scene.map_points()
    keys = path.keyframe_matrices()
    if request.glb is not None:
        data = path_glb(frames, keys, np.array([k.fov_y_deg for k in path.keyframes]), request.aspect,
                        points=points, colours=colours, capture=scene.scene.capture)
        atomic_write_bytes(request.glb, data)
    if request.top_down is not None:
        image = top_down_map(frames, scene.frame.up, centre=scene.frame.centre, keyframe_positions=keys[:, :, 3],
                             points=points, colours=colours, capture=scene.scene.capture,
                             coverage=None if coverage is None else coverage.scores,
                             point_px=1 if scene.geometry is None else 2)
        atomic_write_bytes(request.top_down, image.png())
