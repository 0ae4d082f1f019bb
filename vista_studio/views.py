"""What the studio shows, read from the session's files: summaries, progress bars, and the new value of every
view after an action, a timer tick or a page load.

Views are plain dicts from a component's name in app.py (the names in VIEW, PROGRESS and LOAD) to its new
value; a button's value is `Enabled`, which app.py turns into `gr.update(interactive=...)`. Keeping them
plain keeps gradio in app.py alone and lets tests read a view without a server.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vista_core.errors import VistaError
from vista_studio import workspace as wsp
from vista_studio.build import PREVIEW_FILE
from vista_studio.path import KEYS_FILE, PATH_DIR, path_table, read_path
from vista_studio.path_views import path_views
from vista_studio.photos import photo_gallery
from vista_studio.session import restore_session, session_line

VIEW = ("session_md", "build_md", "build_btn", "apply_btn", "clear_btn", "preset_btn", "preview_btn",
        "coverage_btn", "export_btn", "camera_btn", "render_btn", "refine_btn", "gallery", "keys", "map_img", "path_md", "model3d",
        "preview_video", "refine_gallery", "video", "downloads", "provenance_md")
"""What every action refreshes, in the order of its outputs (gradio_client callers index into that tuple)."""
PROGRESS = ("build_progress", "psnr_plot", "preview_img", "preview_progress", "refine_progress",
            "render_progress", "job_json", "seen")
"""What the timer refreshes while a job runs."""
LOAD = ("token", "preset", "minutes", "seed", "anti_alias", "sample_btn", "folder_btn", "check_btn")
"""What only the page load sets: the browser's session key, the build settings, the step-1 buttons."""
CSS = """
.vista-bar {height: 14px; background: #e8eef5; border-radius: 7px; overflow: hidden}
.vista-bar > div {height: 100%; transition: width 0.4s}
.vista-line {margin-top: 4px; font-size: 0.95em}
.vista-msg {margin-top: 4px; color: #c0392b}
"""
"""The progress bars' look (vista-bar: the bar, vista-line: its status line, vista-msg: a failed job's message)."""


@dataclass(frozen=True)
class Enabled:
    """A button's new state: clickable or not."""
    on: bool


# --- summaries ------------------------------------------------------------------------------------

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
    """The build's PSNR points as the table the line plot reads."""
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
        if build.get("photo_confidence"):
            lines.append(build["photo_confidence"][0].upper() + build["photo_confidence"][1:] + ".")
    elif session.get("scene"):
        lines.append("Scene loaded. Next: draw a path (step 3).")
    return "\n\n".join(lines)


def render_summary(session: dict) -> tuple[str | None, list[str] | None, str]:
    """The shot to play (an MP4 only: the browser plays no ProRes and no frame sequence), its downloads (the shot as
    written, a sequence as its zip; camera_path.json, recipe) and the text under it (with the provenance)."""
    video = session.get("video")
    if not video or not Path(video["video"]).exists():
        return None, None, ""
    shown = video["video"] if video.get("format", "mp4") == "mp4" else None
    files = [video[k] for k in ("download", "camera_path", "recipe") if video.get(k) and Path(video[k]).is_file()]
    if not video.get("download") and Path(video["video"]).is_file():  # a session rendered before the formats
        files.insert(0, video["video"])
    written = "" if shown else (f"Written as {video['format']} ({Path(video['video']).name}): download it below; "
                                "the browser shows MP4 only. ")
    blur = f" Motion blur: shutter {video['motion_blur']:g}." if video.get("motion_blur") else ""
    text = (written + f"{video['frames']} frames at {video['width']} × {video['height']}, {video['fps']:g} fps "
            f"({video['frames_per_s']} frames/s rendered). {video['flicker']}{blur}"
            + (f" {video['retimed'][0].upper()}{video['retimed'][1:]}." if video.get("retimed") else "")
            + "\n\n"
            f"**Provenance**\n```\n{video.get('provenance', '')}\n```")
    return shown, files, text


# --- views ----------------------------------------------------------------------------------------

def studio_view(workspace: Path, photos: bool = False, path: bool = False, outputs: bool = False) -> dict[str, Any]:
    """The views an action refreshes: always the buttons and summaries; the gallery, the path step and the
    render's outputs when asked (they cost a file read or a map drawing)."""
    session = wsp.read_session(workspace)
    job = wsp.read_job(workspace)
    busy = job is not None and job.active
    has_scene = bool(session.get("scene")) and not busy
    has_path = has_scene and (workspace / PATH_DIR / KEYS_FILE).is_file()
    update: dict[str, Any] = {
        "session_md": session_line(workspace), "build_md": build_summary(session),
        "build_btn": Enabled(bool(session.get("data") or session.get("photos")) and not busy),
        **{name: Enabled(has_scene) for name in ("apply_btn", "clear_btn", "preset_btn")},
        **{name: Enabled(has_path) for name in ("preview_btn", "coverage_btn", "export_btn", "camera_btn", "render_btn",
                                                 "refine_btn")},
    }
    if photos:
        update["gallery"] = photo_gallery(workspace)
    if path:
        update.update(path_step_view(workspace, session))
    if outputs:
        shot, files, text = render_summary(session)
        update.update(video=shot, downloads=files, provenance_md=text)
    return update


def path_step_view(workspace: Path, session: dict) -> dict[str, Any]:
    """The keyframe table, map, 3D preview and notes, the preview clip and refinement's before/after frames."""
    update: dict[str, Any] = {"keys": path_table(read_path(workspace))}
    if session.get("scene"):
        try:
            views = path_views(workspace)
            update.update(map_img=views["map"], path_md=views["notes"], model3d=views["glb"])
        except VistaError as error:
            update["path_md"] = f"⚠ {html.escape(str(error))}"
    else:
        update.update(map_img=None, path_md="", model3d=None)
    update["preview_video"] = session.get("preview_clip")
    update["refine_gallery"] = [tuple(p) for p in session.get("refine_pairs") or [] if Path(p[0]).is_file()]
    return update


def progress_views(state: wsp.JobState | None) -> dict[str, Any]:
    """Each step's progress bar (only the running kind's shows) and the PSNR plot."""
    return {"build_progress": progress_html(state, ("build",)), "psnr_plot": history_frame(state),
            "preview_progress": progress_html(state, ("preview", "coverage")),
            "refine_progress": progress_html(state, ("refine",)), "render_progress": progress_html(state, ("render",))}


def poll_view(workspace: Path | None, seen: dict) -> dict[str, Any]:
    """Timer tick: refresh the progress views when job.json changed; everything when a job ended. `seen` is
    what the last tick showed (job update time and status, preview mtime); `workspace` is None while the page's
    session has no folder yet."""
    if workspace is None:
        return {"seen": seen}
    state = wsp.read_job(workspace)
    preview_path = workspace / PREVIEW_FILE
    preview_mtime = preview_path.stat().st_mtime if preview_path.is_file() else None
    marker = [state.updated_at, state.status] if state else None
    if marker == seen.get("marker") and preview_mtime == seen.get("preview"):
        return {"seen": seen}
    update = {**progress_views(state), "job_json": job_summary(state),
              "seen": {"marker": marker, "preview": preview_mtime}}
    if preview_mtime is not None and preview_mtime != seen.get("preview"):
        update["preview_img"] = str(preview_path)
    was_active = seen.get("marker") is not None and seen["marker"][1] in ("queued", "running")
    if state is not None and was_active and not state.active:  # a job just ended: refresh everything
        update.update(studio_view(workspace, photos=False, path=True, outputs=True))
    return update


def load_view(root: Path, key: str | None, session_hash: str | None = None) -> dict[str, Any]:
    """Page load: the browser's session found again by its stored key (or a new one, with a new key), every view,
    the running job's progress and the settings its build ran with; the step-1 buttons wake up only now (a click
    before the load would be undone by the load's older view of the session)."""
    workspace, key = restore_session(root, key, session_hash)
    update = studio_view(workspace, photos=True, path=True, outputs=True)
    update["token"] = key
    update.update({name: Enabled(True) for name in ("sample_btn", "folder_btn", "check_btn")})
    update.update(progress_views(wsp.read_job(workspace)))
    if (workspace / PREVIEW_FILE).is_file():
        update["preview_img"] = str(workspace / PREVIEW_FILE)
    options = wsp.read_session(workspace).get("build_options")
    if options:  # show the settings the session's build ran with
        update.update(preset=options["preset"], minutes=options["minutes"], seed=options["seed"],
                      anti_alias=bool(options.get("anti_alias", False)))
    return update
