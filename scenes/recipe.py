"""Render recipes: everything needed to render a shot again, written beside every video.

`shot.mp4` gets `shot.recipe.json`: the scene folder and its content hash (SHA-256 of scene.json and
field.safetensors), the path's cameras exactly as rendered (float32 values survive JSON unchanged), the
frames, the render config, the seed, the package versions, and the SHA-256 of every rendered frame.
`render_from_recipe` renders the same frames again and says whether they are bit-identical (they are on the
same machine and package versions: rendering is deterministic).

The recipe is written right after its video is renamed into place and before the frame cache is deleted
(render.video.render_video's `record`). A kill between the two leaves the new video beside the previous
recipe; the recipe records each MP4's SHA-256 (and the frame count), so `render_from_recipe` refuses a recipe
that does not describe the video beside it instead of reproducing a shot that is no longer there.

A recipe is a user file, so the paths in it are confined (issue #23): they are written relative to the recipe's
folder, and on reading each must resolve (symlinks followed) inside a root, by default the recipe's own folder
(or a workspace root the caller passes). A scene folder outside it needs an explicit `scene_dir` (`vista render SCENE --recipe R`);
an output outside it refuses the recipe. The refusal names only the recipe and the recorded text, and it comes
before any look at the file system there, so a recipe cannot probe whether a file outside exists.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch

from render.cameras import Cameras
from render.configio import config_from_dict, config_to_dict
from render.encode import fsync_dir, probe_video, remove_orphans
from render.frames_out import OUTPUT_FORMATS, resolve_format
from render.video import VideoConfig, VideoOutputs, VideoResult, file_sha256, render_video
from scenes.scene import SCENE_FILE, WEIGHTS_FILE, Scene, load_scene
from vista_core.errors import VistaError
from vista_core.files import atomic_write_json, read_json
from vista_core.progress import ProgressCallback

RECIPE_FORMAT = "vista-render-recipe"
RECIPE_VERSION = 1
_PACKAGES = ("vista", "torch", "numpy", "av", "c2pa-python", "pillow", "safetensors", "openexr", "pypng")


def scene_content_hash(scene_dir: Path) -> str:
    """SHA-256 over scene.json and field.safetensors (streamed), as 'sha256:<hex>'."""
    digest = hashlib.sha256()
    for name in (SCENE_FILE, WEIGHTS_FILE):
        path = Path(scene_dir) / name
        if not path.is_file():
            raise VistaError(f"{path}: not found; is {scene_dir} a Vista scene folder (made by `vista train`)?")
        digest.update(name.encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    versions["torch_threads"] = str(torch.get_num_threads())
    return versions


def recipe_path_for(video: Path) -> Path:
    video = Path(video)
    return video.with_name(video.stem + ".recipe.json")


@dataclass
class Recipe:
    scene_recorded: str
    """The scene folder as the recipe records it (relative to its folder); `scene_folder` confines it."""
    scene_hash: str
    path_source: str
    cameras: Cameras
    frames: list[int]
    config: VideoConfig
    seed: int
    video: Path
    png_dir: Path | None
    depth_video: Path | None
    opacity_video: Path | None
    frame_sha256: list[str]
    versions: dict[str, str]
    video_sha256: dict[str, str] = field(default_factory=dict)
    """SHA-256 of each MP4 as written ("video", "depth", "opacity"); empty in recipes of older versions."""
    output_format: str = "mp4"
    """The main output's format (`render.frames_out`): "mp4" in recipes of older versions."""
    source: Path = Path(".")
    """The recipe file."""
    root: Path = Path(".")
    """Where its paths may point: the recipe's folder unless the reader gave a root."""

    def scene_folder(self) -> Path:
        """The recorded scene folder, refused (VistaError) unless inside `root`."""
        return _confined(self.scene_recorded, self.source, self.root, "scene folder")


def _relative_to(path: Path | str, base: Path) -> str:
    """`path` relative to the recipe's folder `base` (with `..` if need be), so a folder moved whole still works."""
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())


def _confined(recorded: str, recipe_path: Path, root: Path, what: str) -> Path:
    """A path recorded in a recipe, resolved from the recipe's folder; refused unless inside `root`.

    Checked on the text and the resolved path only (no exists/is_file before it), and the message is the same
    whether or not something is there: a recipe must not tell its reader what exists outside."""
    if not isinstance(recorded, str) or not recorded or "\0" in recorded:
        raise VistaError(f"{recipe_path}: {what} {recorded!r} is not a path")
    resolved = (Path(recipe_path).parent / recorded).resolve()
    if not resolved.is_relative_to(Path(root).resolve()):
        hint = "; name the scene folder to render it again: vista render SCENE --recipe ..." if what == "scene folder" else ""
        raise VistaError(f"{recipe_path}: its {what} {recorded!r} is outside {root}, where a recipe may point{hint}")
    return resolved


def build_recipe(scene_dir: Path, scene_hash: str, path_source: str, cameras: Cameras, config: VideoConfig,
                 seed: int, result: VideoResult, base: Path) -> dict:
    """The recipe's JSON; `base` is the folder it is written to (its paths are relative to it)."""
    return {
        "format": RECIPE_FORMAT,
        "schema_version": RECIPE_VERSION,
        "scene": {"dir": _relative_to(scene_dir, base), "content_hash": scene_hash},
        "path": {"source": path_source, "cameras": cameras.to_dict()},
        "frames": result.frames,
        "render": config_to_dict(config),
        "seed": seed,
        "outputs": {"video": _relative_to(result.video, base),
                    **{key: _relative_to(result.extra_outputs[key], base) if result.extra_outputs.get(key) else None
                       for key in ("png_dir", "depth_video", "opacity_video")},
                    "c2pa_signed": result.signed,
                    "sha256": result.video_sha256,
                    "format": result.output_format,
                    "metadata": result.metadata},
        "result": {"frame_sha256": result.frame_sha256, "flicker": result.flicker.to_dict(),
                   "watermark_detected": [result.watermark_detected, result.watermark_checked],
                   "rendered_frames_per_s": result.frames_per_s},
        "versions": package_versions(),
    }


def read_recipe(path: Path, root: Path | None = None) -> Recipe:
    """Read and check a recipe; its output paths must lie inside `root` (default: the recipe's folder)."""
    path = Path(path)
    root = Path(root) if root is not None else path.resolve().parent
    data = read_json(path, "render recipe")
    where = str(path)
    if not isinstance(data, dict) or data.get("format") != RECIPE_FORMAT:
        raise VistaError(f"{path}: not a Vista render recipe")
    if not isinstance(data.get("schema_version"), int) or data["schema_version"] > RECIPE_VERSION:
        raise VistaError(f"{path}: recipe schema version {data.get('schema_version')!r} is newer than this Vista "
                         f"understands ({RECIPE_VERSION}); upgrade Vista")
    try:
        outputs = data["outputs"]
        camera_data = data["path"]["cameras"]
        count = len(camera_data.get("world_from_camera", []))
        frames = data["frames"]
        if (not isinstance(frames, list) or not frames
                or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < count for i in frames)):
            raise VistaError(f"{where}: 'frames' must be a non-empty list of indices into the path's {count} cameras")
        cameras = Cameras.from_dict(camera_data, f"{where}: path")

        def optional(key: str) -> Path | None:
            return _confined(outputs[key], path, root, key.replace("_", " ")) if outputs.get(key) else None

        return Recipe(
            scene_recorded=data["scene"]["dir"], scene_hash=str(data["scene"]["content_hash"]),
            path_source=str(data["path"].get("source", "")), cameras=cameras, frames=frames,
            config=config_from_dict(VideoConfig, data["render"], f"{where}: render"), seed=int(data["seed"]),
            video=_confined(outputs["video"], path, root, "video"), png_dir=optional("png_dir"), depth_video=optional("depth_video"),
            opacity_video=optional("opacity_video"),
            frame_sha256=[str(h) for h in data.get("result", {}).get("frame_sha256", [])],
            versions={str(k): str(v) for k, v in data.get("versions", {}).items()},
            video_sha256={str(k): str(v) for k, v in (outputs.get("sha256") or {}).items()},
            output_format=_output_format(outputs.get("format", "mp4"), where), source=path, root=root,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise VistaError(f"{where}: recipe is malformed ({error!r})") from error


def _output_format(value: object, where: str) -> str:
    if value not in OUTPUT_FORMATS:
        raise VistaError(f"{where}: outputs.format {value!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    return str(value)


def require_scene_hash(scene_dir: Path, expected_hash: str) -> None:
    """Refuse a scene folder whose content changed since a recipe recorded `expected_hash`."""
    scene_hash = scene_content_hash(scene_dir)
    if scene_hash != expected_hash:
        raise VistaError(f"{scene_dir}: the scene changed since the recipe was written (content hash {scene_hash}, "
                         f"recipe {expected_hash}); its frames cannot be reproduced")


def check_recipe_describes_videos(recipe: Recipe, recipe_path: Path) -> None:
    """Refuse a recipe whose videos, where they still exist, are not the ones it recorded (frame count, SHA-256):
    e.g. a render killed after renaming its new video into place but before writing the new recipe."""
    for name, video in (("video", recipe.video), ("depth", recipe.depth_video), ("opacity", recipe.opacity_video)):
        if video is None or not video.exists():
            continue  # moved or deleted: the recipe can still render the shot again
        stale = f"{recipe_path}: does not describe {video} beside it"
        hint = "the video was replaced after the recipe was written (e.g. an interrupted render); render the shot again"
        if name == "video" and video.is_file() and (frames := probe_video(video).frames) != len(recipe.frames):
            raise VistaError(f"{stale} (it has {frames} frames, the recipe {len(recipe.frames)}): {hint}")
        if name in recipe.video_sha256 and file_sha256(video) != recipe.video_sha256[name]:
            raise VistaError(f"{stale} (its SHA-256 differs from the recorded one): {hint}")


def write_recipe(recipe_file: Path, recipe: dict) -> None:
    """Atomically, and durably: the folder is synced so the recipe's rename survives a crash."""
    atomic_write_json(recipe_file, recipe)
    fsync_dir(Path(recipe_file).parent)


def render_shot(scene: Scene, cameras: Cameras, out: Path, config: VideoConfig,
                outputs: VideoOutputs = VideoOutputs(), *, frames: list[int] | None = None, seed: int = 0,
                path_source: str = "", show_progress: bool = True,
                progress: ProgressCallback | None = None) -> tuple[VideoResult, Path]:
    """Render the video (render.video.render_video) of a saved scene and write the recipe beside it.

    The recipe names the scene by its folder's content hash, so `scene` must be as saved in `scene.folder`.
    `show_progress` and `progress` are render_video's: a terminal bar, and "rendering frames" events."""
    if scene.folder is None:
        raise VistaError("a render recipe needs a saved scene: save the scene to a folder before rendering a shot")
    if cameras.distortion is not None:
        raise VistaError("path cameras with lens distortion cannot be written to a recipe")
    scene_dir = scene.folder
    scene_hash = scene_content_hash(scene_dir)
    torch.manual_seed(seed)  # rendering draws no random numbers today; seeded so any future sampling is repeatable
    recipe_file = recipe_path_for(out)

    def record(result: VideoResult) -> None:  # right after the video's rename, before the frame cache goes
        remove_orphans(recipe_file)  # a recipe half-written by a killed run
        recipe = build_recipe(scene_dir, scene_hash, path_source, cameras, config, seed, result, recipe_file.parent)
        write_recipe(recipe_file, recipe)

    result = render_video(scene.renderable(), cameras, out, config, outputs, frames=frames, cache_key=scene_hash,
                          title=f"Vista render of {scene_dir.name}", show_progress=show_progress,
                          progress=progress, record=record)
    return result, recipe_file


@dataclass
class Reproduction:
    result: VideoResult
    recipe_file: Path
    identical: bool
    mismatched_frames: list[int]


def render_from_recipe(recipe_path: Path, out: Path | None = None, scene_dir: Path | None = None, *,
                       show_progress: bool = True, sign_cert: Path | None = None, sign_key: Path | None = None,
                       progress: ProgressCallback | None = None, root: Path | None = None) -> Reproduction:
    """Render a recipe again (default output: `<video>.rerender.mp4` beside the original, never over it) and
    compare every frame's hash with the recorded one. The recipe's paths must lie inside `root` (default: its
    folder); `scene_dir`, the caller's own choice, replaces the recorded scene folder."""
    recipe = read_recipe(recipe_path, root)
    check_recipe_describes_videos(recipe, Path(recipe_path))
    if out is None:  # shot.mp4 -> shot.rerender.mp4, shot.mov -> shot.rerender.mov, a folder F -> F.rerender
        out = recipe.video.with_name(recipe.video.stem + ".rerender" + recipe.video.suffix
                                     if recipe.video.suffix in (".mp4", ".mov") else recipe.video.name + ".rerender")
    resolve_format(Path(out), recipe.output_format)  # the recipe's format; an --out of another kind is refused
    if Path(out).resolve() == recipe.video.resolve():
        raise VistaError(f"{out}: is the recipe's own video; choose another --out so the original is kept")
    scene_dir = Path(scene_dir) if scene_dir is not None else recipe.scene_folder()
    require_scene_hash(scene_dir, recipe.scene_hash)  # before loading: a changed scene is refused as such
    result, recipe_file = render_shot(
        load_scene(scene_dir), recipe.cameras, Path(out), recipe.config,
        VideoOutputs(sign_cert=sign_cert, sign_key=sign_key, format=recipe.output_format), frames=recipe.frames,
        seed=recipe.seed,
        path_source=recipe.path_source, show_progress=show_progress, progress=progress)
    mismatched = [recipe.frames[k] for k, (a, b) in enumerate(zip(result.frame_sha256, recipe.frame_sha256)) if a != b]
    identical = len(result.frame_sha256) == len(recipe.frame_sha256) and not mismatched
    return Reproduction(result, recipe_file, identical, mismatched)
