"""Vista studio: a Gradio app from photos to a downloadable establishing shot.

Wiring only: every step calls the same functions as the CLI (scenes.*, render.*, guidance.*). The
layout reads top to bottom, one section per step, with each step's events right under its
components. `gr.State` holds only the session's workspace folder; everything else lives in files
in that folder (vista_studio.workspace), so a browser refresh finds the session again (the folder's token
is kept in the browser's localStorage) and long jobs (poses + training, preview clips, refinement,
the final render) keep running in a background thread, one heavy job at a time on the machine.

This is the only module that imports gradio. Start it with `vista app` or `python app.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import io
import logging
import math
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import numpy as np
from PIL import Image as PILImage

from vista_core.errors import VistaError
from vista_core.files import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from vista_studio import workspace as wsp

log = logging.getLogger("vista.app")

REPO = Path(__file__).resolve().parent
SAMPLE_DATA = REPO.parent / "shared" / "data" / "lego-100"
"""The bundled sample scene (the NeRF-synthetic lego at 100x100, see ../shared/README.md)."""
DEFAULT_WORKSPACE = Path("outputs/app")
PREVIEW_FILE = "preview.png"
PREVIEW_EVERY_S = 3.0
"""Least seconds between live preview renders while training (more on a slow or busy machine)."""
PREVIEW_SIDE_PX = 160
POLL_EVERY_S = 1.5
THUMB_PX = 192
KEY_COLUMNS = ["x", "y", "z", "look x", "look y", "look z", "fov (deg)", "seconds to next", "easing"]
"""The keyframe table: world position, look-at point, vertical FOV, segment duration (blank: automatic,
constant speed) and segment easing (blank: the path's)."""
QUALITIES = {"draft": dict(crf=28, x264_preset="veryfast"), "standard": dict(crf=18, x264_preset="medium"),
             "anti-aliased": dict(crf=18, x264_preset="medium", supersample=2)}
PREVIEW_CLIP_FPS = 8.0


# --- errors ---------------------------------------------------------------------------------------

def user_errors(fn: Callable) -> Callable:
    """Show a user's mistake (VistaError) as a readable message; a bug as one line, traceback to the log."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except VistaError as error:
            raise gr.Error(html.escape(str(error), quote=False), print_exception=False) from error
        except Exception as error:
            log.exception("app handler %s failed", fn.__name__)
            raise gr.Error(html.escape(f"internal error ({type(error).__name__}: {error}); see the server log",
                                       quote=False),
                           print_exception=False) from error

    return wrapper


# --- sessions -------------------------------------------------------------------------------------

_SESSION_WORKSPACES: dict[str, str] = {}
"""Gradio session hash -> workspace token, for clients that never ran the page-load event (API clients):
their first action's state update may be lost to an error, and they must not get a new folder each time."""


def session_folder(root: Path, ws: str | None, session_hash: str | None = None) -> Path:
    """The session's workspace named by the state value, or the one this Gradio session already has, or a
    new one (first action of a session)."""
    if ws:
        folder = wsp.open_workspace(root, Path(ws).name)
        if folder is not None and Path(ws).resolve() == folder:
            return folder
    folder = wsp.open_workspace(root, _SESSION_WORKSPACES.get(session_hash or ""))
    if folder is None:
        folder = wsp.new_workspace(root)
        if session_hash:
            _SESSION_WORKSPACES[session_hash] = folder.name
    return folder


def request_hash(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None)


def restore_session(root: Path, token: str | None) -> Path:
    """On page load: the folder named by the browser's stored token, or a new one."""
    return wsp.open_workspace(root, token) or wsp.new_workspace(root)


def require_idle(workspace: Path, action: str) -> None:
    """Refuse to change a session's photos or scene under a running job."""
    state = wsp.read_job(workspace)
    if state is not None and state.active:
        raise VistaError(f"a {state.kind} job is running in this session: wait for it or cancel it before you "
                         f"{action}")


def require(session: dict, key: str, what: str) -> Path:
    value = session.get(key)
    if not value:
        raise VistaError(what)
    return Path(value)


# --- 1. photos ------------------------------------------------------------------------------------

def use_sample(workspace: Path) -> str:
    require_idle(workspace, "pick other photos")
    if not (SAMPLE_DATA / "transforms_train.json").is_file():
        raise VistaError(f"{SAMPLE_DATA}: the sample scene is not installed (see ../shared/README.md)")
    wsp.update_session(workspace, data=str(SAMPLE_DATA), photos=None, excluded=None, scene=None, refined=None,
                       data_label="the sample scene (lego, 100 views at 100 x 100)")
    return "Using **the sample scene** (lego, 100 views at 100 × 100, already posed). Next: build it."


def load_folder(root: Path, workspace: Path, text: str) -> str:
    """A folder the user typed: a trained Vista scene, or a posed dataset to train."""
    folder = wsp.confine_path(root, workspace, text, "folder")
    require_idle(workspace, "load another folder")
    if not folder.is_dir():
        raise VistaError(f"{text}: folder not found in the workspace {wsp.workspace_root(root)}")
    if (folder / "scene.json").is_file():
        from scenes.scene import load_scene

        scene = load_scene(folder)  # validated now, not later in the path step
        wsp.update_session(workspace, scene=str(folder), data=scene.data_source or None, photos=None, refined=None,
                           data_label=f"scene folder {folder.name}")
        return f"Loaded the **trained scene** `{folder.name}` (step {scene.step}). Next: draw a path."
    if (folder / "transforms_train.json").is_file() or (folder / "transforms.json").is_file():
        wsp.update_session(workspace, data=str(folder), photos=None, scene=None, refined=None,
                           data_label=f"posed dataset {folder.name}")
        return f"Using the **posed dataset** `{folder.name}`. Next: build it."
    raise VistaError(f"{text}: neither a Vista scene folder (scene.json) nor a posed dataset (transforms.json)")


def add_photos(workspace: Path, files: list[str] | None) -> str:
    """Copy an upload (photos and/or zips) into the session, then run the pre-flight check on it.

    The upload is unpacked into a staging folder first: a refused upload leaves the previous one as it was."""
    from scenes.preflight import list_photos, preflight_photos, summarize_exclusions
    from scenes.safezip import extract_zip

    paths = [Path(f) for f in (files or [])]
    wsp.check_upload(paths)
    require_idle(workspace, "upload other photos")
    staging = workspace / "photos.new"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        uploads = wsp.copy_uploads(paths, workspace / "uploads")
        for upload in uploads:
            if upload.suffix.lower() == ".zip":
                extract_zip(upload, staging / upload.stem)
            else:
                staging.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(upload, staging / upload.name)
        names = list_photos(staging) if staging.is_dir() else []
        if not names:
            raise VistaError("upload: no photos (.jpg, .png, ...) in it")
        wsp.check_upload(names)  # a zip may hold more photos than the limit
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(workspace / "uploads", ignore_errors=True)
    photos = workspace / "photos"
    shutil.rmtree(photos, ignore_errors=True)
    staging.rename(photos)
    check = preflight_photos(photos, workspace / "preflight" / "images")
    make_thumbnails(photos, [v.name for v in check.verdicts], workspace / "thumbs")
    atomic_write_json(workspace / "preflight" / "report.json", check.to_dict())
    wsp.update_session(workspace, photos=str(photos), excluded=[], data=None, scene=None, refined=None, poses=None,
                       data_label=f"{len(check.verdicts)} uploaded photos")
    return (f"{summarize_exclusions(check)}. Click a photo to exclude it (or include it again); "
            "Build estimates the poses of the photos marked ✓ and trains the scene.")


def make_thumbnails(folder: Path, names: list[str], out: Path) -> None:
    """Small JPEGs for the gallery; a grey tile for a photo that cannot be read."""
    out.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        try:
            with PILImage.open(folder / name) as image:
                image = image.convert("RGB")
                image.thumbnail((THUMB_PX, THUMB_PX))
        except Exception:  # unreadable: its verdict says why; the tile only has to exist
            image = PILImage.new("RGB", (THUMB_PX, THUMB_PX * 3 // 4), (150, 150, 150))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        atomic_write_bytes(out / f"{i:04d}.jpg", buffer.getvalue())


def photo_gallery(workspace: Path) -> list[tuple[str, str]]:
    """(thumbnail, caption) per uploaded photo: ✓ used, ✗ excluded by the check (why), ⊘ excluded by you."""
    report_file = workspace / "preflight" / "report.json"
    if not report_file.is_file() or not wsp.read_session(workspace).get("photos"):
        return []
    report = read_json(report_file, "pre-flight report")
    excluded = set(wsp.read_session(workspace).get("excluded", []))
    sfm_file = workspace / "data" / "sfm_report.json"  # after Build: which photos structure from motion posed
    sfm = {p["name"]: p for p in read_json(sfm_file, "poses report")["photos"]} if sfm_file.is_file() else {}
    items = []
    for i, photo in enumerate(report["photos"]):
        posed = sfm.get(photo["name"])
        if not photo["used"]:
            caption = f"✗ {photo['name']}: {photo['reason']}"
        elif posed is not None and posed["status"] == "not registered" and photo["name"] not in excluded:
            caption = f"✗ {photo['name']}: not registered: {posed['reason']}"
        elif photo["name"] in excluded:
            caption = f"⊘ {photo['name']}: excluded by you"
        else:
            caption = f"✓ {photo['name']}"
        items.append((str(workspace / "thumbs" / f"{i:04d}.jpg"), caption))
    return items


def toggle_photo(workspace: Path, index: int) -> str:
    require_idle(workspace, "change the photo selection")
    report = read_json(workspace / "preflight" / "report.json", "pre-flight report")
    photos = report["photos"]
    if not 0 <= index < len(photos):
        raise VistaError(f"photo {index} does not exist")
    photo = photos[index]
    if not photo["used"]:
        raise VistaError(f"{photo['name']} is excluded by the pre-flight check: {photo['reason']}")
    excluded = set(wsp.read_session(workspace).get("excluded", []))
    excluded ^= {photo["name"]}
    # another selection needs its own poses: the next Build runs structure from motion again
    wsp.update_session(workspace, excluded=sorted(excluded), data=None, poses=None, scene=None, refined=None)
    shutil.rmtree(workspace / "data", ignore_errors=True)
    state = "excluded" if photo["name"] in excluded else "included again"
    return f"{photo['name']} {state}; {sum(p['used'] for p in photos) - len(excluded)} photos will be used."


def selected_photos(workspace: Path, session: dict) -> Path:
    """A folder with the photos the user kept (links to the uploads), for structure from motion."""
    photos = Path(session["photos"])
    excluded = set(session.get("excluded", []))
    selected = workspace / "selected"
    if selected.exists():
        shutil.rmtree(selected)
    from scenes.preflight import list_photos

    for path in list_photos(photos):
        name = path.relative_to(photos).as_posix()
        if name in excluded:
            continue
        target = selected / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    return selected


# --- 2. build -------------------------------------------------------------------------------------

def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    array = rgb if rgb.dtype == np.uint8 else (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    PILImage.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_preview(scene, workspace: Path, camera_index: int = 0) -> None:
    """Render one capture view of the scene being trained, small, as preview.png."""
    from render.render import render_camera

    cameras = scene.capture
    scale = min(1.0, PREVIEW_SIDE_PX / max(cameras.width, cameras.height))
    image = render_camera(scene.renderable(), cameras.scaled(scale), camera_index % len(cameras)).rgb
    atomic_write_bytes(workspace / PREVIEW_FILE, png_bytes(image.numpy()))


def build_work(job: wsp.Job, workspace: Path, preset: str, minutes: float | None, seed: int) -> dict:
    """The build job: 1. poses from photos (if uploaded), 2. train, 3. evaluate on held-out views."""
    from scenes.config import preset_config
    from scenes.data import load_posed_images
    from scenes.evaluate import evaluate_scene
    from scenes.train import CHECKPOINTS, read_run_info, train_scene

    session = wsp.read_session(workspace)
    result: dict[str, Any] = {}
    # 1. poses
    if session.get("photos") and not session.get("data"):
        from scenes.sfm import estimate_poses

        job.update(stage="poses: checking photos", force=True)
        report = estimate_poses(selected_photos(workspace, session), workspace / "data", seed=seed,
                                progress=lambda message: job.update(stage=f"poses: {message}", force=True))
        result["poses"] = (f"{report.registered} of {len(report.photos)} photos registered, mean reprojection "
                           f"error {report.mean_reprojection_error_px:.2f} px, {report.points} points"
                           + (f"; {report.suggestion}" if report.suggestion else ""))
        session = wsp.update_session(workspace, data=str(workspace / "data"), poses=result["poses"])
        job.check_cancelled()
    data_dir = require(session, "data", "no photos yet: pick the sample scene, upload photos or load a folder first")
    # 2. train
    job.update(stage="loading posed photos", force=True)
    data = load_posed_images(data_dir)
    config = preset_config(preset, seed=int(seed))
    scene_dir = workspace / "scene"
    # Build again after Cancel continues the same run (same data, preset, seed); anything else starts over.
    resume = False
    if (scene_dir / CHECKPOINTS).is_dir():
        try:
            info = read_run_info(scene_dir)
            resume = (info.get("data") == data.source and info.get("preset") == preset
                      and info.get("seed") == int(seed))
        except VistaError:
            resume = False
    wsp.update_session(workspace, scene=None, refined=None)
    job.update(stage="training", total=config.steps, force=True)
    next_preview = [0.0]

    def on_step(report) -> bool:
        job.add_point(report.step, report.loss, report.psnr)
        job.update(step=report.step, total=report.total_steps, psnr=report.psnr, eta_s=report.eta_s,
                   stage=f"training ({preset} preset)")
        start = time.monotonic()
        if report.scene is not None and start >= next_preview[0]:
            write_preview(report.scene, workspace)
            # previews take at most ~1/5 of the time, however slow the machine is today
            next_preview[0] = start + max(PREVIEW_EVERY_S, 5 * (time.monotonic() - start))
        return not job.cancelled

    scene = train_scene(data, scene_dir, config, minutes=minutes, resume=resume, overwrite=not resume,
                        show_progress=False, callback=on_step)
    write_preview(scene, workspace)
    if job.cancelled:
        raise wsp.JobCancelled()
    result.update(scene=str(scene_dir), step=scene.step,
                  train_seconds=round(float(scene.metrics.get("train_seconds", 0.0)), 1))
    # 3. evaluate
    if data.heldout_indices:
        job.update(stage="evaluating on held-out views", force=True)
        metrics = evaluate_scene(scene, data)
        result.update(heldout_psnr=round(metrics.mean_psnr, 2), heldout_ssim=round(metrics.mean_ssim, 4))
    wsp.update_session(workspace, scene=str(scene_dir), build=result)
    return result


def start_build(workspace: Path, preset: str, minutes: float | None, seed: float | None) -> str:
    from scenes.config import PRESETS

    if preset not in PRESETS:
        raise VistaError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    minutes = number(minutes, "time budget (minutes)", 0, 10_000, optional=True) or None
    seed = int(number(seed, "seed", 0, 2**31 - 1, optional=True) or 0)
    session = wsp.read_session(workspace)
    if not session.get("data") and not session.get("photos"):
        raise VistaError("no photos yet: pick the sample scene, upload photos or load a folder first")
    wsp.update_session(workspace, build_options={"preset": preset, "minutes": minutes, "seed": seed})
    wsp.start_job(workspace, "build", lambda job: build_work(job, workspace, preset, minutes, seed))
    return "Build started: the progress shows below (it keeps running if you close or reload the page)."


# --- 3. path --------------------------------------------------------------------------------------

def scene_for_paths(workspace: Path):
    """The session's scene (the refined one if there is one), for presets, maps and previews."""
    from scenes.scene import load_scene

    session = wsp.read_session(workspace)
    folder = require(session, "refined", "") if session.get("refined") else \
        require(session, "scene", "no scene yet: build one (step 2) or load a scene folder (step 1)")
    return load_scene(folder), folder


def scene_frame(scene):
    from render.path_presets import fit_scene_frame, occupancy_query

    return fit_scene_frame(scene.capture, scene.scene_from_world, occupancy_query(scene.renderable()))


PATH_DIR = "path"
KEYS_FILE = "keyframes.json"


def read_path(workspace: Path):
    """The session's camera path, or None before the first keyframes."""
    from render.path_io import read_keyframes

    file = workspace / PATH_DIR / KEYS_FILE
    return read_keyframes(file) if file.is_file() else None


def write_path(workspace: Path, path) -> None:
    from render.path_io import write_keyframes

    write_keyframes(workspace / PATH_DIR / KEYS_FILE, path)
    wsp.update_session(workspace, path=str(workspace / PATH_DIR / KEYS_FILE))


def path_table(path) -> list[list]:
    if path is None:
        return []
    rows = []
    for kf in path.keyframes:
        look = kf.look_at if kf.look_at is not None else (None, None, None)
        rows.append([*(round(v, 4) for v in kf.position), *(None if v is None else round(v, 4) for v in look),
                     round(kf.fov_y_deg, 2), kf.duration_s, kf.ease or ""])
    return rows


def _cell(value, row: int, column: str, optional: bool = False) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, float) and math.isnan(value)):
        if optional:
            return None
        raise VistaError(f"keyframe {row + 1}: '{column}' is empty")
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise VistaError(f"keyframe {row + 1}: '{column}' must be a number, got {value!r}") from error
    if not math.isfinite(number):
        raise VistaError(f"keyframe {row + 1}: '{column}' must be finite")
    return number


def keyframes_from_table(rows: list[list], old_path, seconds: float, loop: bool, frame):
    """The edited table as a CameraPath (render.paths validates it); blank look-at: the subject centre."""
    from render.paths import EASINGS, CameraPath, Keyframe

    keys = []
    for r, row in enumerate(rows or []):
        row = list(row) + [None] * (len(KEY_COLUMNS) - len(row))
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
            continue  # an empty row the table editor left behind
        position = tuple(_cell(row[i], r, KEY_COLUMNS[i]) for i in range(3))
        look = [_cell(row[i], r, KEY_COLUMNS[i], optional=True) for i in range(3, 6)]
        look_at = tuple(float(v) for v in frame.centre) if all(v is None for v in look) else \
            tuple(_cell(row[i], r, KEY_COLUMNS[i]) for i in range(3, 6))
        fov = _cell(row[6], r, KEY_COLUMNS[6], optional=True) or frame.fov_y_deg
        duration = _cell(row[7], r, KEY_COLUMNS[7], optional=True)
        ease = str(row[8] or "").strip() or None
        if ease is not None and ease not in EASINGS:
            raise VistaError(f"keyframe {r + 1}: easing {ease!r} is not one of {', '.join(EASINGS)}")
        keys.append(Keyframe(position=position, look_at=look_at, fov_y_deg=fov, duration_s=duration, ease=ease))
    if len(keys) < 2:
        raise VistaError(f"a path needs at least 2 keyframes, the table has {len(keys)}: click the map to add some "
                         "or apply a preset")
    base = old_path if old_path is not None else CameraPath(tuple(keys), up=tuple(float(v) for v in frame.up))
    return dataclasses.replace(base, keyframes=tuple(keys), seconds=float(seconds), loop=bool(loop))


def apply_table(workspace: Path, rows, seconds: float, loop: bool) -> str:
    scene, _ = scene_for_paths(workspace)
    path = keyframes_from_table(rows, read_path(workspace), check_seconds(seconds), loop, scene_frame(scene))
    write_path(workspace, path)
    return f"Path updated: {len(path.keyframes)} keyframes, {path.seconds:g} s."


def number(value, what: str, low: float, high: float, optional: bool = False) -> float | None:
    """A value from a form field as a finite float in [low, high] (None if optional and blank)."""
    if value is None or (isinstance(value, str) and not value.strip()) or \
            (isinstance(value, float) and math.isnan(value)):
        if optional:
            return None
        raise VistaError(f"{what}: empty; give a number between {low:g} and {high:g}")
    try:
        result = float(value)
    except (TypeError, ValueError) as error:
        raise VistaError(f"{what}: {value!r} is not a number") from error
    if not (math.isfinite(result) and low <= result <= high):
        raise VistaError(f"{what} must be between {low:g} and {high:g}, got {value}")
    return result


def check_seconds(seconds) -> float:
    return number(seconds, "path length (seconds)", 0.5, 600)


def apply_preset(workspace: Path, name: str, seconds: float, distance: float, elevation: float | None,
                 sweep: float) -> str:
    """One of render.path_presets' presets, with the app's four sliders mapped onto its parameters."""
    from render.path_presets import PRESETS, occupancy_query, preset_path

    if name not in PRESETS:
        raise VistaError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    scene, _ = scene_for_paths(workspace)
    frame = scene_frame(scene)
    d = number(distance, "distance factor", 0.2, 5)
    elev = number(elevation, "elevation (degrees)", -85, 85, optional=True)
    sweep = number(sweep, "sweep (degrees)", -1440, 1440)
    options = {
        "orbit": dict(degrees=sweep, radius_factor=d, elevation_deg=elev),
        "dolly-in": dict(start_factor=d, end_factor=0.6 * d, elevation_deg=elev),
        "pull-back": dict(start_factor=0.6 * d, end_factor=1.5 * d, elevation_deg=elev),
        "crane-up": dict(radius_factor=d, end_elevation_deg=elev if elev is not None and elev > 5 else 60.0),
        "fly-over": dict(height_factor=1.5 * d),
        "spiral": dict(degrees=sweep, start_factor=1.15 * d, end_factor=0.85 * d),
        "follow-capture": dict(),
    }[name]
    path = preset_path(name, frame, capture=scene.capture, seconds=check_seconds(seconds),
                       occupied=occupancy_query(scene.renderable()), **options)
    write_path(workspace, path)
    return f"Preset **{name}**: {len(path.keyframes)} keyframes, {path.seconds:g} s."


def add_keyframe_at_pixel(workspace: Path, x: float, y: float, height: float, seconds: float) -> str:
    """A click on the top-down map at pixel (x, y) adds a keyframe there, `height` subject radii above the
    subject centre, looking at the centre. The pixel is mapped with the map the user saw (map.json)."""
    from render.path_preview import TopDownMap
    from render.paths import CameraPath, Keyframe

    scene, _ = scene_for_paths(workspace)
    frame = scene_frame(scene)
    x, y = number(x, "map pixel x", -1e6, 1e6), number(y, "map pixel y", -1e6, 1e6)
    height = number(height, "keyframe height (subject radii)", -10, 10)
    mapping_file = workspace / PATH_DIR / MAP_JSON
    if not mapping_file.is_file():
        raise VistaError("the map is not drawn yet; wait for it to appear, then click on it")
    m = read_json(mapping_file, "map file")
    top = TopDownMap(PILImage.new("RGB", tuple(m["size"])), np.array(m["centre"]), np.array(m["right"]),
                     np.array(m["forward"]), np.array(m["up"]), float(m["units_per_pixel"]))
    if not (0 <= float(x) <= m["size"][0] and 0 <= float(y) <= m["size"][1]):
        raise VistaError(f"pixel ({x:g}, {y:g}) is outside the {m['size'][0]} x {m['size'][1]} map")
    on_plane = top.pixel_to_world(float(x), float(y))
    position = on_plane + (top.height_of(frame.centre) + float(height) * frame.radius) * top.up
    key = Keyframe(position=tuple(float(v) for v in position), look_at=tuple(float(v) for v in frame.centre),
                   fov_y_deg=float(frame.fov_y_deg))
    path = read_path(workspace)
    pending = wsp.read_session(workspace).get("pending_key")
    if path is None and pending is None:
        # one keyframe is not a path yet: keep it until the second click
        wsp.update_session(workspace, pending_key=list(key.position))
        return "First keyframe placed; click the map again for the second one."
    if path is None:
        first = Keyframe(position=tuple(pending), look_at=key.look_at, fov_y_deg=key.fov_y_deg)
        path = CameraPath((first, key), seconds=check_seconds(seconds), up=tuple(float(v) for v in frame.up))
    else:
        path = dataclasses.replace(path, keyframes=(*path.keyframes, key))
    write_path(workspace, path)
    wsp.update_session(workspace, pending_key=None)
    return f"Keyframe {len(path.keyframes)} added at ({', '.join(f'{v:.2f}' for v in key.position)})."


def clear_path(workspace: Path) -> str:
    for name in (KEYS_FILE, COVERAGE_FILE):
        (workspace / PATH_DIR / name).unlink(missing_ok=True)
    wsp.update_session(workspace, path=None, pending_key=None)
    return "Keyframes cleared."


MAP_FILE = "map.png"
MAP_JSON = "map.json"
GLB_FILE = "path.glb"
COVERAGE_FILE = "coverage.json"
COVERAGE_FRAMES = 24
"""Frames of the path actually scored for coverage (the others take the nearest score), as `vista path
--coverage-frames`; the app keeps it small so the check takes seconds."""


def path_digest(path) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(path.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def read_coverage(workspace: Path, path) -> dict | None:
    """The coverage report of exactly this path, if it was checked."""
    file = workspace / PATH_DIR / COVERAGE_FILE
    if path is None or not file.is_file():
        return None
    data = read_json(file, "coverage report")
    return data if data.get("path") == path_digest(path) else None


def path_views(workspace: Path) -> dict:
    """The top-down map (path coloured by coverage once checked), the 3D preview and the notes, drawn by
    render.path_preview exactly as `vista path --top-down --glb` draws them."""
    from render.path_preview import path_glb, scene_points, top_down_map

    scene, _ = scene_for_paths(workspace)
    frame = scene_frame(scene)
    renderable = scene.renderable()
    path = read_path(workspace)
    folder = workspace / PATH_DIR
    points, colours = scene_points(renderable, view_direction=-frame.up)
    coverage = read_coverage(workspace, path)
    notes, glb = [], None
    pending = wsp.read_session(workspace).get("pending_key")
    if path is not None:
        frames, _ = path.evaluate(path.frame_times())
        keys = path.keyframe_matrices()
        key_positions = keys[:, :, 3]
        glb = folder / GLB_FILE
        atomic_write_bytes(glb, path_glb(frames, keys, np.array([k.fov_y_deg for k in path.keyframes]), 16 / 9,
                                         points=points, colours=colours, capture=scene.capture))
        notes.append(f"{len(path.keyframes)} keyframes, {path.seconds:g} s{' (loop)' if path.loop else ''}.")
        if coverage is None:
            notes.append("Coverage not checked yet: **Check coverage** colours the path by how well the photos "
                         "saw what each frame shows.")
        else:
            notes.append(f"Coverage: mean {coverage['mean_score']:.2f} (path green = well seen, red = unseen).")
            notes += [f"⚠ {w}" for w in coverage["warnings"]]
    else:
        # no path yet: the map still needs a frame to centre on (the subject centre, or the pending click)
        frames = np.concatenate([np.eye(3), np.asarray(frame.centre, float)[:, None]], 1)[None]
        key_positions = np.array([pending]) if pending else None
        notes.append("Click the map twice to place two keyframes, or apply a preset.")
    top = top_down_map(frames, frame.up, centre=frame.centre, keyframe_positions=key_positions, points=points,
                       colours=colours, capture=scene.capture,
                       coverage=None if coverage is None else np.array(coverage["scores"]))
    atomic_write_bytes(folder / MAP_FILE, top.png())
    atomic_write_json(folder / MAP_JSON, {"size": list(top.image.size), "centre": top.centre.tolist(),
                                          "right": top.right.tolist(), "forward": top.forward.tolist(),
                                          "up": top.up.tolist(), "units_per_pixel": top.units_per_pixel})
    if pending:
        notes.append("One keyframe placed; click the map again for the second.")
    return {"map": str(folder / MAP_FILE), "notes": "\n\n".join(notes), "glb": str(glb) if glb else None}


def coverage_work(job: wsp.Job, workspace: Path, width: int, height: int) -> dict:
    """Score the path's frames with render.coverage.path_coverage (as `vista path --coverage`)."""
    from render.coverage import path_coverage

    scene, _ = scene_for_paths(workspace)
    path = read_path(workspace)
    if path is None:
        raise VistaError("no camera path yet: add keyframes or apply a preset")
    cameras = path.sample(width, height)
    step = max(1, math.ceil(len(cameras) / COVERAGE_FRAMES))

    def progress(stage: str, i: int, n: int) -> None:
        job.update(stage=f"coverage: {'rendering the photos' if stage == 'photos' else 'scoring frames'}",
                   step=i, total=n)
        job.check_cancelled()

    report = path_coverage(scene.renderable(), scene.capture, cameras, path.frame_times(), frame_step=step,
                           progress=progress)
    data = {"path": path_digest(path), **report.to_dict()}
    atomic_write_json(workspace / PATH_DIR / COVERAGE_FILE, data)
    return {"mean_score": data["mean_score"], "warnings": report.warnings}


def start_coverage(workspace: Path, width, height) -> str:
    w, h = check_size(width, height)
    if read_path(workspace) is None:
        raise VistaError("no camera path yet: add keyframes or apply a preset")
    wsp.start_job(workspace, "coverage", lambda job: coverage_work(job, workspace, w, h))
    return "Checking coverage…"


def import_path(workspace: Path, file: str | None) -> str:
    from render.path_io import read_path_file

    if not file:
        raise VistaError("choose a camera_path.json (or keyframe JSON) to import")
    wsp.check_upload([Path(file)], max_files=1, max_bytes=64 * 1024 * 1024)
    loaded = read_path_file(Path(file))
    if loaded.path is None:
        raise VistaError(f"{Path(file).name}: holds frames but no keyframes to edit; Vista imports camera paths "
                         "with keyframes (nerfstudio's viewer and Vista write them)")
    write_path(workspace, loaded.path)
    return f"Imported {len(loaded.path.keyframes)} keyframes ({loaded.source}) from {Path(file).name}."


def export_path(workspace: Path, width: int, height: int) -> str:
    from render.path_io import write_camera_path

    path = read_path(workspace)
    if path is None:
        raise VistaError("no path to export yet: add keyframes or apply a preset")
    out = workspace / PATH_DIR / "camera_path.json"
    write_camera_path(out, path, *check_size(width, height))
    return str(out)


def check_size(width, height) -> tuple[int, int]:
    try:
        w, h = int(width), int(height)
    except (TypeError, ValueError) as error:
        raise VistaError(f"resolution must be two whole numbers, got {width} x {height}") from error
    if not (16 <= w <= 7680 and 16 <= h <= 4320):
        raise VistaError(f"resolution {w} x {h} is outside 16 x 16 .. 7680 x 4320")
    return w + w % 2, h + h % 2  # H.264 (yuv420p) needs even sides


# --- 5. render (and the quick preview clip) -------------------------------------------------------

def render_work(job: wsp.Job, workspace: Path, width: int, height: int, fps: float, quality: str,
                preview: bool) -> dict:
    """Render the session's path with scenes.recipe.render_shot (the same call as `vista render`)."""
    from render.path_io import write_camera_path
    from render.provenance import verify_video
    from render.video import VideoConfig
    from scenes.recipe import render_shot

    session = wsp.read_session(workspace)
    scene_dir = Path(session.get("refined") or require(session, "scene", "no scene yet: build one first"))
    path = read_path(workspace)
    if path is None:
        raise VistaError("no camera path yet: add keyframes or apply a preset in step 3")
    path = dataclasses.replace(path, fps=float(fps))
    cameras = path.sample(width, height)
    folder = workspace / ("preview" if preview else "render")
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / ("preview.mp4" if preview else "shot.mp4")
    config = VideoConfig(fps=float(fps), watermark=not preview, **QUALITIES["draft" if preview else quality])
    job.update(stage="rendering preview clip" if preview else "rendering frames", total=len(cameras), force=True)
    started = time.monotonic()

    def on_frame(done: int, total: int, index: int) -> None:
        elapsed = time.monotonic() - started
        job.update(step=done, total=total, eta_s=elapsed / max(done, 1) * (total - done))
        job.check_cancelled()  # frames rendered so far stay cached: Render again resumes from them

    result, recipe = render_shot(scene_dir, cameras, out, config, path_source="app", progress=False,
                                 on_frame=on_frame)
    outputs = {"video": str(out), "frames": len(result.frames), "width": result.width, "height": result.height,
               "fps": result.fps, "frames_per_s": round(result.frames_per_s, 2), "flicker": result.flicker.summary()}
    if not preview:
        job.update(stage="checking the labels (provenance)", force=True)
        camera_path = folder / "camera_path.json"
        write_camera_path(camera_path, path, width, height)
        report = verify_video(out).text().replace(str(out), out.name)  # the verdict, without server paths
        outputs.update(recipe=str(recipe), camera_path=str(camera_path), provenance=report)
        wsp.update_session(workspace, video=outputs)
    else:
        wsp.update_session(workspace, preview_clip=str(out))
    return outputs


def start_render(workspace: Path, width, height, fps, quality: str, preview: bool) -> str:
    if quality not in QUALITIES:
        raise VistaError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITIES)}")
    fps = number(fps, "frame rate (fps)", 1, 120)
    w, h = check_size(width, height)
    if preview:
        from render.video import preview_size

        w, h = preview_size(w, h)
        fps = min(fps, PREVIEW_CLIP_FPS)
    session = wsp.read_session(workspace)
    require(session, "scene", "no scene yet: build one (step 2) or load a scene folder (step 1)")
    if read_path(workspace) is None:
        raise VistaError("no camera path yet: add keyframes or apply a preset in step 3")
    wsp.start_job(workspace, "preview" if preview else "render",
                  lambda job: render_work(job, workspace, w, h, fps, quality, preview))
    return f"{'Preview clip' if preview else 'Render'} started ({w} × {h}, {fps:g} fps)."


# --- 4. refine ------------------------------------------------------------------------------------

def cli_arguments(module: str, argv: list[str]):
    """`argv` parsed by the CLI's own parser (so every option the app does not set keeps the CLI default)."""
    import argparse
    import importlib

    parser = argparse.ArgumentParser(prog="vista", exit_on_error=False)
    importlib.import_module(module).register(parser.add_subparsers(dest="command"))
    try:
        return parser.parse_args(argv)
    except (argparse.ArgumentError, SystemExit) as error:
        raise VistaError(f"vista {' '.join(argv)}: {error}") from None


def refine_work(job: wsp.Job, workspace: Path, tier: str, model_dir: Path | None, steps: int,
                prior_steps: int) -> dict:
    """`vista refine` (vista.refine.run_refine) on the session's scene along its path, into a new folder,
    then before/after renders of a few path frames."""
    from vista.refine import run_refine
    from render.path_io import write_camera_path
    from render.render import render_camera
    from scenes.scene import load_scene

    session = wsp.read_session(workspace)
    scene_dir = require(session, "scene", "no scene yet: build one first")
    path = read_path(workspace)
    if path is None:
        raise VistaError("no camera path yet: guidance aims at your path, so draw one first (step 3)")
    original = load_scene(scene_dir)
    path_file = workspace / PATH_DIR / "refine_path.json"
    write_camera_path(path_file, path, original.capture.width, original.capture.height)
    n = 1
    while (workspace / f"refined-{n}").exists():
        n += 1
    out = workspace / f"refined-{n}"  # a new folder every time: the scene it starts from is never touched
    job.update(stage=f"refining ({tier} tier)", force=True)
    argv = ["refine", str(scene_dir), "--out", str(out), "--path", str(path_file), "--tier", tier,
            "--steps", str(int(steps)), "--prior-steps", str(int(prior_steps))]

    def progress(stage: str, done: int, total: int) -> None:
        job.update(stage=f"{stage} ({tier} tier)", step=done, total=total)
        job.check_cancelled()  # refine writes its folder only at the end: a cancelled run leaves nothing behind

    run_refine(cli_arguments("vista.refine", argv + (["--model-dir", str(model_dir)] if model_dir else [])),
               progress=progress)
    job.update(stage="before / after renders", force=True)
    refined = load_scene(out)
    cameras = path.sample(original.capture.width, original.capture.height)
    scale = min(1.0, 2 * PREVIEW_SIDE_PX / max(cameras.width, cameras.height))
    cameras = cameras.scaled(scale)
    pairs = []
    for k, index in enumerate(sorted({0, len(cameras) // 2, len(cameras) - 1})):
        for label, scene in (("before", original), ("after", refined)):
            file = out / "before-after" / f"{k}-{label}.png"
            atomic_write_bytes(file, png_bytes(render_camera(scene.renderable(), cameras, index).rgb.numpy()))
            pairs.append([str(file), f"frame {index}: {label}"])
    wsp.update_session(workspace, refined=str(out), refine_pairs=pairs)
    return {"refined": str(out), "frames_compared": len(pairs) // 2}


def start_refine(root: Path, workspace: Path, tier: str, model_dir: str, steps, prior_steps) -> str:
    if tier not in ("prior", "pipeline"):
        raise VistaError(f"unknown guidance tier {tier!r}; choose prior or pipeline")
    folder = wsp.confine_path(root, workspace, model_dir, "model folder") if (model_dir or "").strip() else None
    if tier == "pipeline" and folder is None:
        raise VistaError("the pipeline tier needs a model folder (a local diffusers img2img pipeline)")
    steps, prior_steps = int(steps or 0), int(prior_steps or 0)
    if steps < 3 or prior_steps < 1:
        raise VistaError(f"guided steps must be at least 3 and prior steps at least 1, got {steps} and {prior_steps}")
    session = wsp.read_session(workspace)
    require(session, "scene", "no scene yet: build one (step 2) or load a scene folder (step 1)")
    if read_path(workspace) is None:
        raise VistaError("no camera path yet: guidance aims at your path, so draw one first (step 3)")
    wsp.start_job(workspace, "refine", lambda job: refine_work(job, workspace, tier, folder, steps, prior_steps))
    return "Refinement started; the refined scene is written to a new folder and used for rendering."


def cancel_current(workspace: Path) -> str:
    return "Cancelling…" if wsp.cancel_job(workspace) else "Nothing is running."


def use_original(workspace: Path) -> str:
    require_idle(workspace, "switch scenes")
    if not wsp.read_session(workspace).get("refined"):
        return "The original scene is already in use."
    wsp.update_session(workspace, refined=None, refine_pairs=None)
    return "Rendering the original (unrefined) scene again; the refined folder is kept."


# --- progress views -------------------------------------------------------------------------------

def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def progress_html(state: wsp.JobState | None, kinds: tuple[str, ...]) -> str:
    """A progress bar and one status line for a job of one of `kinds` (empty when another kind ran last)."""
    if state is None or state.kind not in kinds:
        return ""
    fraction = state.step / state.total if state.total else (1.0 if state.status == "done" else 0.0)
    parts = [state.stage or state.status]
    if state.total:
        parts.append(f"{'step' if state.kind in ('build', 'refine') else 'frame'} {state.step} / {state.total}")
    if state.psnr is not None and state.kind == "build":
        parts.append(f"PSNR {state.psnr:.1f} dB")
    if state.active and state.eta_s is not None:
        parts.append(f"ETA {format_seconds(state.eta_s)}")
    colour = {"failed": "#c0392b", "cancelled": "#7f8c8d", "interrupted": "#d35400"}.get(state.status, "#2e86de")
    message = f"<div class='vista-msg'>{html.escape(state.message)}</div>" if state.message else ""
    return (f"<div class='vista-progress' data-kind='{state.kind}' data-status='{state.status}'>"
            f"<div class='vista-bar'><div style='width:{100 * min(max(fraction, 0), 1):.1f}%;"
            f"background:{colour}'></div></div>"
            f"<div class='vista-line'><b>{html.escape(state.kind)}: {html.escape(state.status)}</b> · "
            f"{html.escape(' · '.join(parts))}</div>{message}</div>")


def history_frame(state: wsp.JobState | None):
    import pandas as pd

    rows = state.history if state is not None and state.kind == "build" else []
    return pd.DataFrame([{"step": int(s), "PSNR (dB)": p} for s, _, p in rows if p is not None],
                        columns=["step", "PSNR (dB)"])


def job_summary(state: wsp.JobState | None) -> dict:
    """What the API and the details box show: the job's state without the history."""
    if state is None:
        return {"status": "none"}
    return {"kind": state.kind, "status": state.status, "stage": state.stage, "step": state.step,
            "total": state.total, "psnr": state.psnr, "eta_s": state.eta_s, "message": state.message,
            "result": state.result}


def build_summary(session: dict) -> str:
    lines = []
    if session.get("data_label"):
        lines.append(f"Photos: {session['data_label']}.")
    if session.get("poses"):
        lines.append(f"Poses: {session['poses']}.")
    build = session.get("build")
    if build and session.get("scene"):
        text = f"Scene built: {build.get('step')} steps in {format_seconds(build.get('train_seconds'))}"
        if build.get("heldout_psnr") is not None:
            text += f"; held-out PSNR {build['heldout_psnr']:.2f} dB, SSIM {build['heldout_ssim']:.3f}"
        lines.append(text + ". Next: draw a path (step 3).")
    elif session.get("scene"):
        lines.append("Scene loaded. Next: draw a path (step 3).")
    return "\n\n".join(lines)


def render_summary(session: dict) -> tuple[str | None, list[str] | None, str]:
    video = session.get("video")
    if not video or not Path(video["video"]).is_file():
        return None, None, ""
    files = [video[k] for k in ("video", "camera_path", "recipe") if video.get(k) and Path(video[k]).is_file()]
    text = (f"{video['frames']} frames at {video['width']} × {video['height']}, {video['fps']:g} fps "
            f"({video['frames_per_s']} frames/s rendered). {video['flicker']}\n\n"
            f"**Provenance**\n```\n{video.get('provenance', '')}\n```")
    return video["video"], files, text


# --- the layout -----------------------------------------------------------------------------------

CSS = """
.vista-bar {height: 14px; background: #e8eef5; border-radius: 7px; overflow: hidden}
.vista-bar > div {height: 100%; transition: width 0.4s}
.vista-line {margin-top: 4px; font-size: 0.95em}
.vista-msg {margin-top: 4px; color: #c0392b}
"""


def build_app(root: Path = DEFAULT_WORKSPACE) -> gr.Blocks:
    """The studio as a gr.Blocks (not launched)."""
    from render.path_presets import PRESETS as PATH_PRESETS
    from render.paths import EASINGS

    root = wsp.workspace_root(root)
    secret_file = root / ".browser-secret"
    if not secret_file.is_file():
        atomic_write_text(secret_file, secrets.token_urlsafe(24))
    browser_secret = secret_file.read_text().strip()

    with gr.Blocks(title="Vista studio") as demo:
        ws = gr.State(None)  # the session's workspace folder (a string), nothing heavier
        token = gr.BrowserState(None, storage_key="vista-workspace", secret=browser_secret)
        seen = gr.State({})  # what the poller last showed (job update time and status, preview mtime)

        gr.Markdown("# Vista studio\nPhotos → scene → camera path → establishing shot. "
                    "Work top to bottom; each step unlocks the next.")
        session_md = gr.Markdown("", elem_id="session")
        notice = gr.Markdown("", elem_id="notice")

        # 1. Photos ------------------------------------------------------------------------------
        gr.Markdown("## 1. Photos")
        with gr.Row():
            with gr.Column():
                # step-1 buttons wake up when the page's load event has run: a click before it would be undone by
                # the load's (older) view of the session
                sample_btn = gr.Button("Use the sample scene (lego)", variant="primary", elem_id="use-sample",
                                       interactive=False)
                with gr.Row():
                    folder_box = gr.Textbox(label="…or load a scene / posed-dataset folder (inside the workspace)",
                                            placeholder="e.g. my-scene", scale=3)
                    folder_btn = gr.Button("Load folder", scale=1, interactive=False)
            with gr.Column():
                upload = gr.File(label=f"…or upload photos (JPEG/PNG, or one zip; at most {wsp.MAX_PHOTOS})",
                                 file_count="multiple", file_types=["image", ".zip"], height=140)
                check_btn = gr.Button("Check photos", interactive=False)
        gallery = gr.Gallery(label="Pre-flight check (click a photo to exclude or include it)", columns=8,
                             height=220, allow_preview=False, elem_id="photos")

        # 2. Build -------------------------------------------------------------------------------
        gr.Markdown("## 2. Build the scene")
        with gr.Row():
            preset = gr.Radio(["test", "preview", "quality"], value="preview", label="Quality preset",
                              info="test: a first look in about a minute; preview: minutes; quality: 10+ minutes",
                              elem_id="preset")
            minutes = gr.Number(None, label="Time budget (minutes, optional)", minimum=0)
            seed = gr.Number(0, label="Seed", precision=0)
        with gr.Row():
            build_btn = gr.Button("Build", variant="primary", elem_id="build", interactive=False)
            cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel")
        build_progress = gr.HTML("", elem_id="build-progress")
        build_md = gr.Markdown("")
        with gr.Row():
            preview_img = gr.Image(label="Live preview (a capture view)", interactive=False, height=260)
            psnr_plot = gr.LinePlot(x="step", y="PSNR (dB)", title="Training PSNR", height=260)

        # 3. Path --------------------------------------------------------------------------------
        gr.Markdown("## 3. Camera path")
        with gr.Row():
            with gr.Column(scale=3):
                map_img = gr.Image(label="Top-down map: click to add a keyframe", interactive=False, height=420,
                                   elem_id="map")
                click_height = gr.Slider(-1, 4, value=1.0, step=0.1, label="Height of clicked keyframes "
                                         "(subject radii above its centre)")
            with gr.Column(scale=2):
                model3d = gr.Model3D(label="3D preview: scene, path, cameras", height=420)
        path_md = gr.Markdown("", elem_id="path-notes")
        keys = gr.Dataframe(headers=KEY_COLUMNS, datatype=["number"] * 8 + ["str"], type="array",
                            label=f"Keyframes (world units; easing: {', '.join(EASINGS)})", interactive=True,
                            column_count=(len(KEY_COLUMNS), "fixed"), elem_id="keys")
        with gr.Row():
            path_seconds = gr.Slider(1, 60, value=8, step=0.5, label="Path length (seconds)", elem_id="path-seconds")
            loop = gr.Checkbox(False, label="Loop")
            apply_btn = gr.Button("Update path from table", interactive=False)
            clear_btn = gr.Button("Clear keyframes", interactive=False)
        with gr.Row():
            preset_dd = gr.Dropdown(list(PATH_PRESETS), value="orbit", label="Preset")
            p_distance = gr.Slider(0.3, 3, value=1.0, step=0.05, label="Distance (× the photos' distance)")
            p_elevation = gr.Textbox("", label="Elevation (degrees; blank: the photos')")
            p_sweep = gr.Slider(-720, 720, value=360, step=15, label="Sweep (degrees, orbit/spiral)")
            preset_btn = gr.Button("Apply preset", interactive=False, elem_id="apply-preset")
        with gr.Row():
            coverage_btn = gr.Button("Check coverage", interactive=False, elem_id="check-coverage")
            preview_btn = gr.Button("Quick preview clip (quarter size)", interactive=False, elem_id="preview-clip")
            import_file = gr.File(label="Import camera_path.json", file_types=[".json"], height=100)
            export_btn = gr.Button("Export camera_path.json", interactive=False)
            export_file = gr.File(label="camera_path.json", interactive=False, height=100)
        preview_progress = gr.HTML("")
        preview_video = gr.Video(label="Preview clip", interactive=False, height=240)
        with gr.Row(visible=False):  # the map click, as an API endpoint (pixel coordinates of the map image)
            click_x = gr.Number(label="x")
            click_y = gr.Number(label="y")
            click_btn = gr.Button("add keyframe at pixel")

        # 4. Refine ------------------------------------------------------------------------------
        gr.Markdown("## 4. Refine (optional)")
        with gr.Row():
            tier = gr.Radio(["prior", "pipeline"], value="prior", label="Guidance tier",
                            info="prior: a small model trained on your photos (CPU); pipeline: an img2img "
                                 "diffusion model from a local folder (GPU)")
            model_dir = gr.Textbox(label="Model folder (pipeline tier, inside the workspace)")
            refine_steps = gr.Slider(3, 3000, value=600, step=1, label="Guided training steps")
            prior_steps = gr.Slider(10, 3000, value=1500, step=10, label="Prior training steps (~15 min per 1500 "
                                                                         "on 2 CPU cores)")
        with gr.Row():
            refine_btn = gr.Button("Refine along the path", interactive=False, elem_id="refine")
            refine_cancel = gr.Button("Cancel", variant="stop", elem_id="refine-cancel")
            original_btn = gr.Button("Use the original scene")
        refine_progress = gr.HTML("", elem_id="refine-progress")
        refine_gallery = gr.Gallery(label="Before / after on path frames", columns=6, height=220, interactive=False)

        # 5. Render ------------------------------------------------------------------------------
        gr.Markdown("## 5. Render")
        with gr.Row():
            r_width = gr.Number(320, label="Width (px)", precision=0, elem_id="render-width")
            r_height = gr.Number(180, label="Height (px)", precision=0, elem_id="render-height")
            r_fps = gr.Slider(6, 60, value=24, step=1, label="Frames per second", elem_id="render-fps")
            r_quality = gr.Radio(list(QUALITIES), value="standard", label="Quality",
                                 info="anti-aliased: 2x2 rays per pixel, less shimmer when the camera pulls back; "
                                      "4x the render time")
        with gr.Row():
            render_btn = gr.Button("Render", variant="primary", interactive=False, elem_id="render")
            render_cancel = gr.Button("Cancel", variant="stop")
        render_progress = gr.HTML("", elem_id="render-progress")
        video = gr.Video(label="The shot", interactive=False, elem_id="shot", height=360)
        downloads = gr.File(label="Downloads: MP4, camera_path.json, recipe", file_count="multiple",
                            interactive=False)
        provenance_md = gr.Markdown("")

        with gr.Accordion("Job details", open=False):
            job_json = gr.JSON(label="job")
            status_btn = gr.Button("Refresh", size="sm")
            outputs_btn = gr.Button("Refresh everything", size="sm")

        timer = gr.Timer(POLL_EVERY_S)

        # --- views: what the session's files say, as component updates ------------------------
        def view(workspace: Path, photos: bool = False, path: bool = False, outputs: bool = False) -> dict:
            session = wsp.read_session(workspace)
            job = wsp.read_job(workspace)
            busy = job is not None and job.active
            has_scene = bool(session.get("scene")) and not busy
            has_path = has_scene and (workspace / PATH_DIR / KEYS_FILE).is_file()
            update = {
                ws: str(workspace), session_md: session_line(workspace), build_md: build_summary(session),
                build_btn: gr.update(interactive=bool(session.get("data") or session.get("photos")) and not busy),
                apply_btn: gr.update(interactive=has_scene), clear_btn: gr.update(interactive=has_scene),
                preset_btn: gr.update(interactive=has_scene), preview_btn: gr.update(interactive=has_path),
                coverage_btn: gr.update(interactive=has_path),
                export_btn: gr.update(interactive=has_path), render_btn: gr.update(interactive=has_path),
                refine_btn: gr.update(interactive=has_path),
            }
            if photos:
                update[gallery] = photo_gallery(workspace)
            if path:
                update[keys] = path_table(read_path(workspace))
                if session.get("scene"):
                    try:
                        views = path_views(workspace)
                        update.update({map_img: views["map"], path_md: views["notes"], model3d: views["glb"]})
                    except VistaError as error:
                        update[path_md] = f"⚠ {html.escape(str(error))}"
                else:
                    update.update({map_img: None, path_md: "", model3d: None})
                update[preview_video] = session.get("preview_clip")
                update[refine_gallery] = [tuple(p) for p in session.get("refine_pairs") or []
                                          if Path(p[0]).is_file()]
            if outputs:
                shot, files, text = render_summary(session)
                update.update({video: shot, downloads: files, provenance_md: text})
            return update

        VIEW = [ws, session_md, build_md, build_btn, apply_btn, clear_btn, preset_btn, preview_btn, coverage_btn, export_btn,
                render_btn, refine_btn, gallery, keys, map_img, path_md, model3d, preview_video, refine_gallery, video,
                downloads, provenance_md]

        def action(fn: Callable, photos: bool = False, path: bool = False, outputs: bool = False) -> Callable:
            """An event handler: run `fn(workspace, *inputs)`, show its message, refresh the views."""

            @user_errors
            def run(request: gr.Request, ws_value, *args):
                workspace = session_folder(root, ws_value, request_hash(request))
                message = fn(workspace, *args)
                return {notice: message, **view(workspace, photos, path, outputs)}

            return run

        # --- events, under the components they belong to -------------------------------------
        sample_btn.click(action(use_sample, photos=True, path=True), [ws], [notice, *VIEW], api_name="use_sample")
        folder_btn.click(action(functools.partial(load_folder, root), photos=True, path=True), [ws, folder_box],
                         [notice, *VIEW], api_name="load_folder")
        check_btn.click(action(add_photos, photos=True, path=True), [ws, upload], [notice, *VIEW],
                        api_name="add_photos")

        def on_gallery_select(request: gr.Request, ws_value, evt: gr.SelectData):
            return action(lambda w: toggle_photo(w, int(evt.index)), photos=True)(request, ws_value)

        gallery.select(on_gallery_select, [ws], [notice, *VIEW], api_visibility="private")

        build_btn.click(action(start_build), [ws, preset, minutes, seed], [notice, *VIEW], api_name="build")
        cancel_btn.click(action(cancel_current),
                         [ws], [notice, *VIEW], api_name="cancel")

        def on_map_select(request: gr.Request, ws_value, height, seconds, evt: gr.SelectData):
            x, y = evt.index
            return action(lambda w: add_keyframe_at_pixel(w, x, y, height, seconds), path=True)(request, ws_value)

        map_img.select(on_map_select, [ws, click_height, path_seconds], [notice, *VIEW], api_visibility="private")
        click_btn.click(action(add_keyframe_at_pixel, path=True), [ws, click_x, click_y, click_height, path_seconds],
                        [notice, *VIEW], api_name="add_keyframe_pixel")
        apply_btn.click(action(apply_table, path=True), [ws, keys, path_seconds, loop], [notice, *VIEW],
                        api_name="update_path")
        clear_btn.click(action(clear_path, path=True), [ws], [notice, *VIEW], api_name="clear_path")
        preset_btn.click(action(apply_preset, path=True), [ws, preset_dd, path_seconds, p_distance, p_elevation,
                                                           p_sweep], [notice, *VIEW], api_name="apply_preset")
        import_file.upload(action(import_path, path=True), [ws, import_file], [notice, *VIEW], api_name="import_path")
        @user_errors
        def on_export(request: gr.Request, ws_value, width, height):
            workspace = session_folder(root, ws_value, request_hash(request))
            return str(workspace), export_path(workspace, width, height)

        export_btn.click(on_export, [ws, r_width, r_height], [ws, export_file], api_name="export_path")
        preview_btn.click(action(lambda w, width, height, fps: start_render(w, width, height, fps, "draft", True)),
                          [ws, r_width, r_height, r_fps], [notice, *VIEW], api_name="preview_clip")

        coverage_btn.click(action(start_coverage), [ws, r_width, r_height], [notice, *VIEW], api_name="check_coverage")

        refine_btn.click(action(functools.partial(start_refine, root)), [ws, tier, model_dir, refine_steps, prior_steps],
                         [notice, *VIEW], api_name="refine")
        refine_cancel.click(action(cancel_current),
                            [ws], [notice, *VIEW], api_visibility="private")
        original_btn.click(action(use_original, path=True), [ws], [notice, *VIEW], api_name="use_original")

        render_btn.click(action(lambda w, width, height, fps, q: start_render(w, width, height, fps, q, False)),
                         [ws, r_width, r_height, r_fps, r_quality], [notice, *VIEW], api_name="render")
        render_cancel.click(action(cancel_current),
                            [ws], [notice, *VIEW], api_visibility="private")

        @user_errors
        def on_status(request: gr.Request, ws_value):
            workspace = session_folder(root, ws_value, request_hash(request))
            return str(workspace), job_summary(wsp.read_job(workspace))

        status_btn.click(on_status, [ws], [ws, job_json], api_name="job_status")
        outputs_btn.click(action(lambda w: "", photos=True, path=True, outputs=True), [ws], [notice, *VIEW],
                          api_name="refresh")

        PROGRESS = [build_progress, psnr_plot, preview_img, preview_progress, refine_progress, render_progress,
                    job_json, seen]

        def poll(ws_value, seen_value):
            """Timer tick: refresh the progress views when job.json changed; everything when a job ended."""
            if not ws_value:
                return {seen: seen_value}  # (an empty dict would be taken for one output's value)
            workspace = session_folder(root, ws_value)
            state = wsp.read_job(workspace)
            preview_path = workspace / PREVIEW_FILE
            preview_mtime = preview_path.stat().st_mtime if preview_path.is_file() else None
            marker = [state.updated_at, state.status] if state else None
            if marker == seen_value.get("marker") and preview_mtime == seen_value.get("preview"):
                return {seen: seen_value}
            update = {build_progress: progress_html(state, ("build",)), psnr_plot: history_frame(state),
                      preview_progress: progress_html(state, ("preview", "coverage")),
                      refine_progress: progress_html(state, ("refine",)),
                      render_progress: progress_html(state, ("render",)), job_json: job_summary(state),
                      seen: {"marker": marker, "preview": preview_mtime}}
            if preview_mtime is not None and preview_mtime != seen_value.get("preview"):
                update[preview_img] = str(preview_path)
            was_active = seen_value.get("marker") is not None and seen_value["marker"][1] in ("queued", "running")
            if state is not None and was_active and not state.active:  # a job just ended: refresh everything
                update.update(view(workspace, photos=False, path=True, outputs=True))
            return update

        timer.tick(poll, [ws, seen], [*PROGRESS, *VIEW], concurrency_limit=None, show_progress="hidden",
                   api_visibility="private")

        def on_load(stored_token):
            workspace = restore_session(root, stored_token)
            update = view(workspace, photos=True, path=True, outputs=True)
            update[token] = wsp.workspace_token(workspace)
            update.update({button: gr.update(interactive=True) for button in (sample_btn, folder_btn, check_btn)})
            state = wsp.read_job(workspace)
            update.update({build_progress: progress_html(state, ("build",)), psnr_plot: history_frame(state),
                           preview_progress: progress_html(state, ("preview", "coverage")),
                           refine_progress: progress_html(state, ("refine",)),
                           render_progress: progress_html(state, ("render",))})
            if (workspace / PREVIEW_FILE).is_file():
                update[preview_img] = str(workspace / PREVIEW_FILE)
            options = wsp.read_session(workspace).get("build_options")
            if options:  # show the settings the session's build ran with
                update.update({preset: options["preset"], minutes: options["minutes"], seed: options["seed"]})
            return update

        demo.load(user_errors(on_load), [token],
                  [token, preset, minutes, seed, sample_btn, folder_btn, check_btn, *PROGRESS, *VIEW],
                  api_visibility="private")
    return demo


def session_line(workspace: Path) -> str:
    return f"<small>Session workspace `{workspace.name[:8]}…` (kept across page reloads in this browser)</small>"


# --- launching ------------------------------------------------------------------------------------

def launch_app(root: Path = DEFAULT_WORKSPACE, host: str = "127.0.0.1", port: int | None = None,
               block: bool = True, quiet: bool = False) -> gr.Blocks:
    """Build, queue (one event at a time; heavy jobs run one at a time in the background) and launch."""
    root = wsp.workspace_root(root)
    demo = build_app(root)
    demo.queue(default_concurrency_limit=1)
    # Files the app returns are copied into Gradio's cache; they must come from the cwd, the temp dir or
    # an allowed path. Only a root elsewhere is added (Gradio serves allowed paths to anyone who knows a
    # file's full path, which for session files includes their unguessable token).
    allowed = [] if any(root.is_relative_to(Path(p).resolve()) for p in (os.getcwd(), tempfile.gettempdir())) \
        else [str(root)]
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=quiet,
                max_file_size=wsp.MAX_UPLOAD_BYTES, allowed_paths=allowed, css=CSS, show_error=True)
    return demo


def main(argv: list[str] | None = None) -> int:
    import vista

    return vista.main(["app", *(sys_argv() if argv is None else argv)])


def sys_argv() -> list[str]:
    import sys

    return sys.argv[1:]


if __name__ == "__main__":
    raise SystemExit(main())
