"""Vista studio: a Gradio app from photos to a downloadable establishing shot.

Wiring only: every step calls the same functions as the CLI (scenes.*, render.*, guidance.*). The
layout reads top to bottom, one section per step, with each step's events right under its
components. `gr.State` holds only the session's workspace folder; everything else lives in files
in that folder (scenes.workspace), so a browser refresh finds the session again (the folder's token
is kept in the browser's localStorage) and long jobs keep running in a background thread.

This is the only module that imports gradio. Start it with `vista app` or `python app.py`.
"""

from __future__ import annotations

import argparse
import functools
import html
import io
import logging
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import numpy as np
from PIL import Image as PILImage

from render.errors import VistaError, atomic_write_bytes, atomic_write_text
from scenes import workspace as wsp

log = logging.getLogger("vista.app")

REPO = Path(__file__).resolve().parent
SAMPLE_DATA = REPO.parent / "shared" / "data" / "lego-100"
"""The bundled sample scene (the NeRF-synthetic lego at 100x100, see ../shared/README.md)."""
DEFAULT_WORKSPACE = Path("outputs/app")
PREVIEW_FILE = "preview.png"
PREVIEW_EVERY_S = 3.0
"""Seconds between live preview renders while training."""
PREVIEW_SIDE_PX = 160
POLL_EVERY_S = 1.5


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
            raise gr.Error(html.escape(str(error)), print_exception=False) from error
        except Exception as error:
            log.exception("app handler %s failed", fn.__name__)
            raise gr.Error(html.escape(f"internal error ({type(error).__name__}: {error}); see the server log"),
                           print_exception=False) from error

    return wrapper


# --- sessions -------------------------------------------------------------------------------------

def session_folder(root: Path, ws: str | None) -> Path:
    """The session's workspace named by the state value, or a new one (first action of a session)."""
    if ws:
        folder = wsp.open_workspace(root, Path(ws).name)
        if folder is not None and Path(ws).resolve() == folder:
            return folder
    return wsp.new_workspace(root)


def restore_session(root: Path, token: str | None) -> Path:
    """On page load: the folder named by the browser's stored token, or a new one."""
    return wsp.open_workspace(root, token) or wsp.new_workspace(root)


# --- 1. photos ------------------------------------------------------------------------------------

def use_sample(root: Path, workspace: Path) -> str:
    if not (SAMPLE_DATA / "transforms_train.json").is_file():
        raise VistaError(f"{SAMPLE_DATA}: the sample scene is not installed (see ../shared/README.md)")
    wsp.update_session(workspace, data=str(SAMPLE_DATA), data_label="sample scene: lego (100 x 100, 100 views)",
                       photos=None, scene=None)
    return f"Using the **sample scene** (lego, 100 views at 100 × 100). Next: build it."


def load_folder(root: Path, workspace: Path, text: str) -> str:
    """A folder the user typed: a trained Vista scene, or a posed dataset to train."""
    folder = wsp.confine_path(root, workspace, text, "folder")
    if not folder.is_dir():
        raise VistaError(f"{text}: folder not found in the workspace {wsp.workspace_root(root)}")
    if (folder / "scene.json").is_file():
        from scenes.scene import load_scene

        scene = load_scene(folder)  # validates it now, not later in the path step
        wsp.update_session(workspace, scene=str(folder), data=scene.data_source or None,
                           data_label=f"scene folder {folder.name}", photos=None)
        return f"Loaded the **trained scene** `{folder.name}` (step {scene.step}). Next: draw a path."
    if (folder / "transforms_train.json").is_file() or (folder / "transforms.json").is_file():
        wsp.update_session(workspace, data=str(folder), data_label=f"posed dataset {folder.name}", photos=None,
                           scene=None)
        return f"Using the **posed dataset** `{folder.name}`. Next: build it."
    raise VistaError(f"{text}: neither a Vista scene folder (scene.json) nor a posed dataset (transforms.json)")


# --- 2. build -------------------------------------------------------------------------------------

def write_preview(scene, workspace: Path, camera_index: int = 0) -> None:
    """Render one capture view of the scene being trained, small, as preview.png."""
    from render.render import render_camera

    cameras = scene.capture
    scale = min(1.0, PREVIEW_SIDE_PX / max(cameras.width, cameras.height))
    image = render_camera(scene.renderable(), cameras.scaled(scale), camera_index % len(cameras)).rgb
    atomic_write_bytes(workspace / PREVIEW_FILE, png_bytes(image.clamp(0, 1).numpy()))


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    array = rgb if rgb.dtype == np.uint8 else (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    PILImage.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def build_work(job: wsp.Job, workspace: Path, preset: str, minutes: float | None, seed: int) -> dict:
    """The build job: (poses from photos, then) train, then evaluate on held-out views."""
    from scenes.config import preset_config
    from scenes.data import load_posed_images
    from scenes.evaluate import evaluate_scene
    from scenes.train import CHECKPOINTS, read_run_info, train_scene

    session = wsp.read_session(workspace)
    if not session.get("data"):
        raise VistaError("no photos yet: pick the sample scene, upload photos or load a folder first")
    data_dir = Path(session["data"])
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
    wsp.update_session(workspace, scene=None)
    job.update(stage="training", total=config.steps, force=True)
    next_preview = [0.0]

    def on_step(report) -> bool:
        job.add_point(report.step, report.loss, report.psnr)
        job.update(step=report.step, total=report.total_steps, psnr=report.psnr, eta_s=report.eta_s,
                   stage=f"training ({preset} preset)")
        start = time.monotonic()
        if report.scene is not None and start >= next_preview[0]:
            write_preview(report.scene, workspace)
            # previews may take at most ~1/5 of the time, however slow the machine is today
            spent = time.monotonic() - start
            next_preview[0] = start + max(PREVIEW_EVERY_S, 5 * spent)
        return not job.cancelled

    scene = train_scene(data, scene_dir, config, minutes=minutes, resume=resume, overwrite=not resume,
                        show_progress=False, callback=on_step)
    write_preview(scene, workspace)
    if job.cancelled:
        raise wsp.JobCancelled()
    result: dict[str, Any] = {"scene": str(scene_dir), "step": scene.step,
                              "train_seconds": round(float(scene.metrics.get("train_seconds", 0.0)), 1)}
    if data.heldout_indices:
        job.update(stage="evaluating on held-out views", force=True)
        metrics = evaluate_scene(scene, data)
        result.update(heldout_psnr=round(metrics.mean_psnr, 2), heldout_ssim=round(metrics.mean_ssim, 4))
    wsp.update_session(workspace, scene=str(scene_dir), build=result)
    return result


def start_build(root: Path, workspace: Path, preset: str, minutes: float | None, seed: float | None) -> str:
    from scenes.config import PRESETS

    if preset not in PRESETS:
        raise VistaError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if minutes is not None and minutes <= 0:
        minutes = None
    seed = int(seed or 0)
    if not wsp.read_session(workspace).get("data"):
        raise VistaError("no photos yet: pick the sample scene, upload photos or load a folder first")
    wsp.start_job(workspace, "build", lambda job: build_work(job, workspace, preset, minutes, seed))
    return "Build started."


# --- progress views -------------------------------------------------------------------------------

def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def progress_html(state: wsp.JobState | None, kind: str) -> str:
    """A progress bar and one status line for the job of `kind` (empty when another kind ran last)."""
    if state is None or state.kind != kind:
        return ""
    fraction = state.step / state.total if state.total else (1.0 if state.status == "done" else 0.0)
    parts = [state.stage or state.status]
    if state.total:
        parts.append(f"step {state.step} / {state.total}")
    if state.psnr is not None and kind == "build":
        parts.append(f"PSNR {state.psnr:.1f} dB")
    if state.active and state.eta_s is not None:
        parts.append(f"ETA {format_seconds(state.eta_s)}")
    colour = {"failed": "#c0392b", "cancelled": "#7f8c8d", "interrupted": "#d35400"}.get(state.status, "#2e86de")
    line = " · ".join(parts)
    message = f"<div class='vista-msg'>{html.escape(state.message)}</div>" if state.message else ""
    return (f"<div class='vista-progress' data-status='{state.status}'>"
            f"<div class='vista-bar'><div style='width:{100 * min(max(fraction, 0), 1):.1f}%;"
            f"background:{colour}'></div></div>"
            f"<div class='vista-line'><b>{html.escape(state.status)}</b> · {html.escape(line)}</div>{message}</div>")


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


# --- the layout -----------------------------------------------------------------------------------

CSS = """
.vista-bar {height: 14px; background: #e8eef5; border-radius: 7px; overflow: hidden}
.vista-bar > div {height: 100%; transition: width 0.4s}
.vista-line {margin-top: 4px; font-size: 0.95em}
.vista-msg {margin-top: 4px; color: #c0392b}
"""


def build_app(root: Path = DEFAULT_WORKSPACE) -> gr.Blocks:
    """The studio as a gr.Blocks (not launched)."""
    root = wsp.workspace_root(root)
    secret_file = root / ".browser-secret"
    if not secret_file.is_file():
        atomic_write_text(secret_file, secrets.token_urlsafe(24))
    browser_secret = secret_file.read_text().strip()

    def handler(fn: Callable) -> Callable:
        """Bind the workspace root and the session's folder; every handler returns the folder first."""

        @user_errors
        @functools.wraps(fn)
        def wrapper(ws, *args):
            workspace = session_folder(root, ws)
            out = fn(workspace, *args)
            out = out if isinstance(out, tuple) else (out,)
            return (str(workspace), *out)

        return wrapper

    with gr.Blocks(title="Vista studio") as demo:
        ws = gr.State(None)  # the session's workspace folder (a string), nothing heavier
        token = gr.BrowserState(None, storage_key="vista-workspace", secret=browser_secret)
        seen = gr.State({})  # what the poller last showed (job update time, status, preview mtime)

        gr.Markdown("# Vista studio\nPhotos → scene → camera path → establishing shot. "
                    "Work top to bottom; each step unlocks the next.")
        session_md = gr.Markdown("")

        # 1. Photos
        gr.Markdown("## 1. Photos")
        with gr.Row():
            sample_btn = gr.Button("Use the sample scene (lego)", variant="primary", elem_id="use-sample")
            folder_box = gr.Textbox(label="…or load a scene or posed-dataset folder (inside the workspace)",
                                    placeholder="e.g. my-scene", scale=2)
            folder_btn = gr.Button("Load folder")
        photos_md = gr.Markdown("")

        # 2. Build
        gr.Markdown("## 2. Build the scene")
        with gr.Row():
            preset = gr.Radio(["test", "preview", "quality"], value="preview", label="Quality preset",
                              info="test: a first look in under a minute; preview: minutes; quality: 10+ minutes")
            minutes = gr.Number(None, label="Time budget (minutes, optional)", minimum=0)
            seed = gr.Number(0, label="Seed", precision=0)
        with gr.Row():
            build_btn = gr.Button("Build", variant="primary", elem_id="build")
            cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel")
        build_progress = gr.HTML("", elem_id="build-progress")
        with gr.Row():
            preview_img = gr.Image(label="Live preview (a capture view)", interactive=False, height=260)
            psnr_plot = gr.LinePlot(x="step", y="PSNR (dB)", title="Training PSNR", height=260)
        with gr.Accordion("Job details", open=False):
            job_json = gr.JSON(label="job")
            status_btn = gr.Button("Refresh", size="sm")

        timer = gr.Timer(POLL_EVERY_S)

        # --- events ---------------------------------------------------------------------------
        sample_btn.click(handler(lambda w: use_sample(root, w)), [ws], [ws, photos_md], api_name="use_sample")
        folder_btn.click(handler(lambda w, t: load_folder(root, w, t)), [ws, folder_box], [ws, photos_md],
                         api_name="load_folder")
        build_btn.click(handler(lambda w, p, m, s: start_build(root, w, p, m, s)), [ws, preset, minutes, seed],
                        [ws, photos_md], api_name="build")
        cancel_btn.click(handler(lambda w: "Cancelling…" if wsp.cancel_job(w) else "Nothing is running."),
                         [ws], [ws, photos_md], api_name="cancel")
        status_btn.click(handler(lambda w: job_summary(wsp.read_job(w))), [ws], [ws, job_json],
                         api_name="job_status")

        def poll(ws_value, seen_value):
            """Timer tick: refresh the progress views when job.json changed; skip otherwise."""
            if not ws_value:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen_value
            workspace = session_folder(root, ws_value)
            state = wsp.read_job(workspace)
            preview_path = workspace / PREVIEW_FILE
            preview_mtime = preview_path.stat().st_mtime if preview_path.is_file() else None
            marker = (state.updated_at, state.status) if state else None
            if marker == seen_value.get("marker") and preview_mtime == seen_value.get("preview"):
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen_value
            new_seen = {"marker": marker, "preview": preview_mtime}
            preview = str(preview_path) if preview_mtime != seen_value.get("preview") and preview_mtime else gr.skip()
            return (progress_html(state, "build"), history_frame(state), preview, job_summary(state), new_seen)

        timer.tick(poll, [ws, seen], [build_progress, psnr_plot, preview_img, job_json, seen],
                   concurrency_limit=None, show_progress="hidden", api_visibility="private")

        def on_load(stored_token):
            workspace = restore_session(root, stored_token)
            return str(workspace), wsp.workspace_token(workspace), session_line(workspace)

        demo.load(on_load, [token], [ws, token, session_md], api_visibility="private")
    return demo


def session_line(workspace: Path) -> str:
    return f"<small>Session workspace: `{workspace.name[:8]}…` (kept across page reloads in this browser)</small>"


# --- launching ------------------------------------------------------------------------------------

def launch_app(root: Path = DEFAULT_WORKSPACE, host: str = "127.0.0.1", port: int | None = None,
               block: bool = True, quiet: bool = False) -> gr.Blocks:
    """Build, queue (one job at a time) and launch the studio; returns the running Blocks."""
    root = wsp.workspace_root(root)
    demo = build_app(root)
    demo.queue(default_concurrency_limit=1)
    # Files the app returns are copied into Gradio's cache; they must come from the cwd, the temp dir
    # or an allowed path. Only then is the workspace root added (it is served to anyone who knows a
    # file's full path, which includes a session's unguessable token).
    allowed = [] if any(root.is_relative_to(Path(p).resolve()) for p in (os.getcwd(), tempfile.gettempdir())) \
        else [str(root)]
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=quiet,
                max_file_size=wsp.MAX_UPLOAD_BYTES, allowed_paths=allowed, css=CSS, show_error=True)
    return demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description="Vista studio (Gradio)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    launch_app(args.workspace, args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
