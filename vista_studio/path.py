"""Step 3, the camera path: the keyframe table, presets, clicks on the top-down map, coverage, import and export.

Presets, coverage and the exported camera_path.json go through vista_api.paths. The session's path lives in
`path/keyframes.json` (render.path_io's keyframe format), and edits that vista_api has no action for (table
rows and map clicks as keyframes, importing a camera_path.json) build render.paths values directly. The map
the user clicks, its pixel mapping and the 3D preview are drawn by vista_studio.path_views.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from vista_api.paths import (
    CoverageRequest,
    PathFiles,
    PathRequest,
    PathScene,
    PresetOptions,
    check_coverage,
    make_path,
    open_path_scene,
    read_editable_path,
    write_path,
)
from vista_core.errors import VistaError
from vista_core.files import atomic_write_json, read_json
from vista_core.progress import ProgressEvent
from vista_studio import workspace as wsp
from vista_studio.fields import blank, check_seconds, check_size, number
from vista_studio.session import require

KEY_COLUMNS = ["x", "y", "z", "look x", "look y", "look z", "fov (deg)", "seconds to next", "easing"]
"""The keyframe table: world position, look-at point, vertical FOV, segment duration (blank: automatic,
constant speed) and segment easing (blank: the path's)."""
PATH_DIR = "path"
KEYS_FILE = "keyframes.json"
MAP_JSON = "map.json"
COVERAGE_FILE = "coverage.json"
CAMERA_GLB = "camera.glb"
COVERAGE_FRAMES = 24
"""Frames of the path actually scored for coverage (the others take the nearest score), as `vista path
--coverage-frames`; the app keeps it small so the check takes seconds."""


def path_scene(workspace: Path) -> PathScene:
    """The session's scene (the refined one if there is one) with where its subject is, for presets, maps and
    previews."""
    session = wsp.read_session(workspace)
    folder = require(session, "refined", "") if session.get("refined") else \
        require(session, "scene", "no scene yet: build one (step 2) or load a scene folder (step 1)")
    return open_path_scene(folder)


def read_path(workspace: Path):
    """The session's camera path, or None before the first keyframes."""
    from render.path_io import read_keyframes

    file = workspace / PATH_DIR / KEYS_FILE
    return read_keyframes(file) if file.is_file() else None


def save_path(workspace: Path, path) -> None:
    from render.path_io import write_keyframes

    write_keyframes(workspace / PATH_DIR / KEYS_FILE, path)
    wsp.update_session(workspace, path=str(workspace / PATH_DIR / KEYS_FILE))


# --- the keyframe table ---------------------------------------------------------------------------

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
    if blank(value):
        if optional:
            return None
        raise VistaError(f"keyframe {row + 1}: '{column}' is empty")
    try:
        result = float(value)
    except (TypeError, ValueError) as error:
        raise VistaError(f"keyframe {row + 1}: '{column}' must be a number, got {value!r}") from error
    if not math.isfinite(result):
        raise VistaError(f"keyframe {row + 1}: '{column}' must be finite")
    return result


def keyframe_from_row(row: list, r: int, frame):
    """One table row as a Keyframe; blank look-at: the subject centre, blank FOV: the photos'."""
    from render.paths import EASINGS, Keyframe

    position = tuple(_cell(row[i], r, KEY_COLUMNS[i]) for i in range(3))
    look = [_cell(row[i], r, KEY_COLUMNS[i], optional=True) for i in range(3, 6)]
    look_at = tuple(float(v) for v in frame.centre) if all(v is None for v in look) else \
        tuple(_cell(row[i], r, KEY_COLUMNS[i]) for i in range(3, 6))
    fov = _cell(row[6], r, KEY_COLUMNS[6], optional=True) or frame.fov_y_deg
    duration = _cell(row[7], r, KEY_COLUMNS[7], optional=True)
    ease = str(row[8] or "").strip() or None
    if ease is not None and ease not in EASINGS:
        raise VistaError(f"keyframe {r + 1}: easing {ease!r} is not one of {', '.join(EASINGS)}")
    return Keyframe(position=position, look_at=look_at, fov_y_deg=fov, duration_s=duration, ease=ease)


def keyframes_from_table(rows: list[list], old_path, seconds: float, loop: bool, frame):
    """The edited table as a CameraPath (render.paths validates it)."""
    from render.paths import CameraPath

    keys = []
    for r, row in enumerate(rows or []):
        row = list(row) + [None] * (len(KEY_COLUMNS) - len(row))
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
            continue  # an empty row the table editor left behind
        keys.append(keyframe_from_row(row, r, frame))
    if len(keys) < 2:
        raise VistaError(f"a path needs at least 2 keyframes, the table has {len(keys)}: click the map to add some "
                         "or apply a preset")
    base = old_path if old_path is not None else CameraPath(tuple(keys), up=tuple(float(v) for v in frame.up))
    return dataclasses.replace(base, keyframes=tuple(keys), seconds=float(seconds), loop=bool(loop))


def apply_table(workspace: Path, rows, seconds: float, loop: bool) -> str:
    frame = path_scene(workspace).frame
    path = keyframes_from_table(rows, read_path(workspace), check_seconds(seconds), loop, frame)
    save_path(workspace, path)
    return f"Path updated: {len(path.keyframes)} keyframes, {path.seconds:g} s."


def clear_path(workspace: Path) -> str:
    for name in (KEYS_FILE, COVERAGE_FILE):
        (workspace / PATH_DIR / name).unlink(missing_ok=True)
    wsp.update_session(workspace, path=None, pending_key=None)
    return "Keyframes cleared."


# --- presets and map clicks -----------------------------------------------------------------------

def preset_options(name: str, distance: float, elevation: float | None, sweep: float) -> PresetOptions:
    """The app's three preset sliders (distance factor, elevation, sweep) as the preset's own options; an
    unknown preset gets none (its PathRequest says it is unknown). `radius_factor` is the start distance of the
    presets that move in or out (vista_api.paths.PRESET_KEYWORDS)."""
    d, elev = distance, elevation
    return {
        "orbit": PresetOptions(degrees=sweep, radius_factor=d, elevation=elev),
        "dolly-in": PresetOptions(radius_factor=d, end_factor=0.6 * d, elevation=elev),
        "pull-back": PresetOptions(radius_factor=0.6 * d, end_factor=1.5 * d, elevation=elev),
        "crane-up": PresetOptions(radius_factor=d, end_elevation=elev if elev is not None and elev > 5 else 60.0),
        "fly-over": PresetOptions(height_factor=1.5 * d),
        "spiral": PresetOptions(degrees=sweep, radius_factor=1.15 * d, end_factor=0.85 * d),
    }.get(name, PresetOptions())


def apply_preset(workspace: Path, name: str, seconds: float, distance: float, elevation: float | None,
                 sweep: float) -> str:
    """One of render.path_presets' presets fitted to the scene (vista_api.paths.make_path), with the app's four
    sliders mapped onto its options."""
    options = preset_options(name, number(distance, "distance factor", 0.2, 5),
                             number(elevation, "elevation (degrees)", -85, 85, optional=True),
                             number(sweep, "sweep (degrees)", -1440, 1440))
    request = PathRequest(preset=name, seconds=check_seconds(seconds), options=options)
    path = make_path(request, path_scene(workspace))
    save_path(workspace, path)
    return f"Preset **{name}**: {len(path.keyframes)} keyframes, {path.seconds:g} s."


def map_pixel_to_world(workspace: Path, x: float, y: float):
    """A pixel of the top-down map the user saw (its mapping is map.json) as (a point on the map's plane,
    the render.path_preview.TopDownMap)."""
    from render.path_preview import TopDownMap

    mapping_file = workspace / PATH_DIR / MAP_JSON
    if not mapping_file.is_file():
        raise VistaError("the map is not drawn yet; wait for it to appear, then click on it")
    m = read_json(mapping_file, "map file")
    top = TopDownMap(PILImage.new("RGB", tuple(m["size"])), np.array(m["centre"]), np.array(m["right"]),
                     np.array(m["forward"]), np.array(m["up"]), float(m["units_per_pixel"]))
    if not (0 <= float(x) <= m["size"][0] and 0 <= float(y) <= m["size"][1]):
        raise VistaError(f"pixel ({x:g}, {y:g}) is outside the {m['size'][0]} x {m['size'][1]} map")
    return top.pixel_to_world(float(x), float(y)), top


def add_keyframe_at_pixel(workspace: Path, x: float, y: float, height: float, seconds: float) -> str:
    """A click on the top-down map at pixel (x, y) adds a keyframe there at the photos' median height plus
    `height` subject radii, looking at the subject centre (a place is filmed from where people stand, not from
    its centre's height). The pixel is mapped with the map the user saw (map.json); a click inside what the
    scene holds is refused."""
    from render.paths import CameraPath, Keyframe

    opened = path_scene(workspace)
    frame = opened.frame
    x, y = number(x, "map pixel x", -1e6, 1e6), number(y, "map pixel y", -1e6, 1e6)
    height = number(height, "keyframe height (subject radii)", -10, 10)
    on_plane, top = map_pixel_to_world(workspace, x, y)
    position = on_plane + (top.height_of(frame.centre) + frame.eye_height + float(height) * frame.radius) * top.up
    if bool(np.asarray(opened.occupied(position[None]))[0]):
        raise VistaError("that point is inside the scene (or right against it): click further from the subject "
                         "or raise the keyframe height")
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
    save_path(workspace, path)
    wsp.update_session(workspace, pending_key=None)
    return f"Keyframe {len(path.keyframes)} added at ({', '.join(f'{v:.2f}' for v in key.position)})."


# --- coverage --------------------------------------------------------------------------------------

def path_digest(path) -> str:
    """Which path a coverage report belongs to (any edit makes the old report stale)."""
    return hashlib.sha256(json.dumps(path.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def read_coverage(workspace: Path, path) -> dict | None:
    """The coverage report of exactly this path, if it was checked."""
    file = workspace / PATH_DIR / COVERAGE_FILE
    if path is None or not file.is_file():
        return None
    data = read_json(file, "coverage report")
    return data if data.get("path") == path_digest(path) else None


def start_coverage(workspace: Path, width, height) -> str:
    request = CoverageRequest(*check_size(width, height), frames_scored=COVERAGE_FRAMES)
    if read_path(workspace) is None:
        raise VistaError("no camera path yet: add keyframes or apply a preset")
    wsp.start_job(workspace, "coverage", lambda job: coverage_work(job, workspace, request))
    return "Checking coverage…"


def coverage_work(job: wsp.Job, workspace: Path, request: CoverageRequest) -> dict:
    """Score the path's frames with vista_api.paths.check_coverage (as `vista path --coverage`)."""
    scene = path_scene(workspace)
    path = read_path(workspace)
    if path is None:
        raise VistaError("no camera path yet: add keyframes or apply a preset")

    def progress(event: ProgressEvent) -> None:
        job.update(stage=event.stage, step=event.done, total=event.total)
        job.check_cancelled()

    report = check_coverage(request, scene, path, progress)
    data = {"path": path_digest(path), **report.to_dict()}
    atomic_write_json(workspace / PATH_DIR / COVERAGE_FILE, data)
    return {"mean_score": data["mean_score"], "warnings": report.warnings}


# --- import and export ----------------------------------------------------------------------------

def import_path(workspace: Path, file: str | None) -> str:
    if not file:
        raise VistaError("choose a camera_path.json, keyframe JSON or glTF camera (.glb) to import")
    wsp.check_upload([Path(file)], max_files=1, max_bytes=64 * 1024 * 1024)
    path, source = read_editable_path(Path(file))  # a file of frames only becomes a keyframe per frame
    save_path(workspace, path)
    return f"Imported {len(path.keyframes)} keyframes ({source}) from {Path(file).name}."


def export_files(workspace: Path, width, height, camera_glb: bool = False) -> PathFiles:
    """The session's path written by vista_api.paths.write_path at the render size: nerfstudio's camera_path.json,
    and with `camera_glb` also the glTF camera animation (as `vista path --export-camera`)."""
    path = read_path(workspace)
    if path is None:
        raise VistaError("no path to export yet: add keyframes or apply a preset")
    folder = workspace / PATH_DIR
    files = PathFiles(folder / "camera_path.json", *check_size(width, height),
                      camera_glb=folder / CAMERA_GLB if camera_glb else None)
    write_path(files, path)
    return files


def export_path(workspace: Path, width: int, height: int) -> str:
    """The path as nerfstudio's camera_path.json at the render size; the file to download."""
    return str(export_files(workspace, width, height).out)


def export_camera(workspace: Path, width: int, height: int) -> str:
    """The path as a glTF camera animation (.glb) for Blender, Nuke or three.js; the file to download. It imports
    back (import_path) as the same keyframes."""
    return str(export_files(workspace, width, height, camera_glb=True).camera_glb)
