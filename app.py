"""Vista studio: a Gradio app from photos to a downloadable establishing shot.

Wiring only. Each step is a plain module in vista_studio (photos, build, path, refine, render) whose
functions take the session's folder and return a message; vista_studio.views says what every component
shows. Every event finds its session's folder on the server from Gradio's session hash (vista_studio.session), never
from a value the client sends; everything lives in files in that folder (vista_studio.workspace), so a browser
refresh finds the session again (the browser keeps an opaque key in localStorage that the server looks up) and
long jobs keep running in a background thread, one heavy job at a time.

This is the only module that imports gradio. Start it with `vista app` or `python app.py`.
"""

from __future__ import annotations

import functools
import html
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from vista_core.errors import VistaError
from vista_studio import build, path, photos, published, refine, session, views
from vista_studio import jobs as studio_jobs
from vista_studio import render as render_step
from vista_studio import workspace as wsp
from vista_studio.limits import LIMITS

log = logging.getLogger("vista.app")

DEFAULT_WORKSPACE = Path("outputs/app")
POLL_EVERY_S = 1.5


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


def uploaded(fn: Callable) -> Callable:
    """`fn(workspace, files, ...)`, then the upload's temporary files in Gradio's cache deleted (copied by then)."""

    @functools.wraps(fn)
    def run(workspace: Path, files, *args):
        try:
            return fn(workspace, files, *args)
        finally:
            photos.discard_uploads(files, Path(gr.utils.get_upload_folder()))

    return run


class Studio:
    """The studio's components by name (each section adds its own; the names are vista_studio.views'), and
    the translation from the steps' plain values to Gradio events and updates."""

    def __init__(self, root: Path, publisher: published.Publisher | None = None):
        self.root = root
        self.publisher = publisher  # set when the root lies outside the cwd and the temp dir

    def updates(self, values: dict[str, Any], workspace: Path | None = None) -> dict:
        """A view (component name -> value) as Gradio updates; the session's files made returnable."""
        if self.publisher is not None and workspace is not None:
            values = self.publisher.values(workspace, values)
        return {getattr(self, name): gr.update(interactive=value.on) if isinstance(value, views.Enabled) else value
                for name, value in values.items()}

    def outputs(self, *names: str) -> list:
        return [getattr(self, name) for name in names]

    @property
    def view(self) -> list:
        """What every action returns: its message, then the views."""
        return [self.notice, *self.outputs(*views.VIEW)]

    def workspace(self, request: gr.Request | None) -> Path:
        return session.session_folder(self.root, session.request_hash(request))

    def action(self, fn: Callable, photos: bool = False, path: bool = False, outputs: bool = False) -> Callable:
        """An event handler: run `fn(workspace, *inputs)`, show its message, refresh the views."""

        @user_errors
        def run(request: gr.Request, *args):
            workspace = self.workspace(request)
            message = fn(workspace, *args)
            return self.updates({"notice": message, **views.studio_view(workspace, photos, path, outputs)}, workspace)

        return run

    def query(self, fn: Callable, output: str = "job_json") -> Callable:
        """An event handler returning `fn(workspace, *inputs)` as the value of `output`, and no view refresh."""

        @user_errors
        def run(request: gr.Request, *args):
            workspace = self.workspace(request)
            return self.updates({output: fn(workspace, *args)}, workspace)[getattr(self, output)]

        return run


# --- the layout: one section per step, each followed by its events (wired once all sections exist: every action
# refreshes the views of all steps, and some read a later step's fields) ----------------------------------------

def header(ui: Studio) -> None:
    # the browser's opaque session key (vista_studio.session); the server maps it to a folder on page load
    ui.token = gr.BrowserState(None, storage_key="vista-session", secret=session.browser_secret(ui.root))
    ui.seen = gr.State({})  # what the poller last showed (job update time and status, preview mtime)
    gr.Markdown("# Vista studio\nPhotos → scene → camera path → establishing shot. "
                "Work top to bottom; each step unlocks the next.")
    ui.session_md = gr.Markdown("", elem_id="session")
    ui.notice = gr.Markdown("", elem_id="notice")


def photos_section(ui: Studio) -> None:
    gr.Markdown("## 1. Photos")
    with gr.Row():
        with gr.Column():
            # step-1 buttons wake up after the page's load event: its (older) view of the session would undo a click
            ui.sample_btn = gr.Button("Use the sample scene (lego)", variant="primary", elem_id="use-sample",
                                      interactive=False)
            with gr.Row():
                ui.folder_box = gr.Textbox(label="…or load a scene / posed-dataset folder (inside the workspace)",
                                           placeholder="e.g. my-scene", scale=3)
                ui.folder_btn = gr.Button("Load folder", scale=1, interactive=False)
        with gr.Column():
            ui.upload = gr.File(label=f"…or upload photos (JPEG/PNG, or one zip; at most {wsp.MAX_PHOTOS})",
                                file_count="multiple", file_types=["image", ".zip"], height=140)
            ui.check_btn = gr.Button("Check photos", interactive=False)
    ui.gallery = gr.Gallery(label="Pre-flight check (click a photo to exclude or include it)", columns=8,
                            height=220, allow_preview=False, elem_id="photos")


def wire_photos(ui: Studio) -> None:
    ui.sample_btn.click(ui.action(photos.use_sample, photos=True, path=True), [], ui.view,
                        api_name="use_sample")
    ui.folder_btn.click(ui.action(functools.partial(photos.load_folder, ui.root), photos=True, path=True),
                        [ui.folder_box], ui.view, api_name="load_folder")
    ui.check_btn.click(ui.action(uploaded(photos.add_photos), photos=True, path=True), [ui.upload], ui.view,
                       api_name="add_photos")

    def on_gallery_select(request: gr.Request, evt: gr.SelectData):
        return ui.action(lambda w: photos.toggle_photo(w, int(evt.index)), photos=True)(request)

    ui.gallery.select(on_gallery_select, [], ui.view, api_visibility="private")


def build_section(ui: Studio) -> None:
    gr.Markdown("## 2. Build the scene")
    with gr.Row():
        ui.preset = gr.Radio(["test", "preview", "quality"], value="preview", label="Quality preset",
                             info="test: a first look in about a minute; preview: minutes; quality: 10+ minutes",
                             elem_id="preset")
        ui.minutes = gr.Number(None, label="Time budget (minutes, optional)", minimum=0)
        ui.seed = gr.Number(0, label="Seed", precision=0)
        ui.anti_alias = gr.Checkbox(False, label="Anti-alias (footprint-weighted levels)", info=build.ANTI_ALIAS_INFO)
    with gr.Row():
        ui.build_btn = gr.Button("Build", variant="primary", elem_id="build", interactive=False)
        ui.cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel")
    ui.build_progress = gr.HTML("", elem_id="build-progress")
    ui.build_md = gr.Markdown("")
    with gr.Row():
        ui.preview_img = gr.Image(label="Live preview (a capture view)", interactive=False, height=260)
        ui.psnr_plot = gr.LinePlot(x="step", y="PSNR (dB)", title="Training PSNR", height=260)


def wire_build(ui: Studio) -> None:
    ui.build_btn.click(ui.action(build.start_build), [ui.preset, ui.minutes, ui.seed, ui.anti_alias], ui.view,
                       api_name="build")
    ui.cancel_btn.click(ui.action(session.cancel_current), [], ui.view, api_name="cancel")


def path_section(ui: Studio) -> None:
    from render.path_presets import PRESETS as PATH_PRESETS
    from render.paths import EASINGS

    gr.Markdown("## 3. Camera path")
    with gr.Row():
        with gr.Column(scale=3):
            ui.map_img = gr.Image(label="Top-down map: click to add a keyframe", interactive=False, height=420,
                                  elem_id="map")
            ui.click_height = gr.Slider(-3, 4, value=0.0, step=0.1, label="Height of clicked keyframes "
                                        "(subject radii above the photos' median height)")
        with gr.Column(scale=2):
            ui.model3d = gr.Model3D(label="3D preview: scene, path, cameras", height=420)
    ui.path_md = gr.Markdown("", elem_id="path-notes")
    ui.keys = gr.Dataframe(headers=path.KEY_COLUMNS, datatype=["number"] * 8 + ["str"], type="array",
                           label=f"Keyframes (world units; easing: {', '.join(EASINGS)})", interactive=True,
                           column_count=(len(path.KEY_COLUMNS), "fixed"), elem_id="keys")
    with gr.Row():
        ui.path_seconds = gr.Slider(1, 60, value=8, step=0.5, label="Path length (seconds)", elem_id="path-seconds")
        ui.loop = gr.Checkbox(False, label="Loop")
        ui.apply_btn = gr.Button("Update path from table", interactive=False)
        ui.clear_btn = gr.Button("Clear keyframes", interactive=False)
    with gr.Row():
        ui.preset_dd = gr.Dropdown(list(PATH_PRESETS), value="orbit", label="Preset")
        ui.p_distance = gr.Slider(0.3, 3, value=1.0, step=0.05, label="Distance (× the photos' distance)")
        ui.p_elevation = gr.Textbox("", label="Elevation (degrees; blank: the photos')")
        ui.p_sweep = gr.Slider(-720, 720, value=360, step=15, label="Sweep (degrees, orbit/spiral)")
        ui.preset_btn = gr.Button("Apply preset", interactive=False, elem_id="apply-preset")
    with gr.Row():
        ui.coverage_btn = gr.Button("Check coverage", interactive=False, elem_id="check-coverage")
        ui.preview_btn = gr.Button("Quick preview clip (quarter size)", interactive=False, elem_id="preview-clip")
        ui.import_file = gr.File(label="Import camera_path.json or glTF camera (.glb)",
                                 file_types=[".json", ".glb", ".gltf"], height=100)
        ui.export_btn = gr.Button("Export camera_path.json", interactive=False)
        ui.export_file = gr.File(label="camera_path.json", interactive=False, height=100)
        ui.camera_btn = gr.Button("Download camera (.glb)", interactive=False, elem_id="export-camera")
        ui.camera_file = gr.File(label="camera.glb (glTF, for Blender)", interactive=False, height=100)
    ui.preview_progress = gr.HTML("")
    ui.preview_video = gr.Video(label="Preview clip", interactive=False, height=240)
    with gr.Row(visible=False):  # the map click, as an API endpoint (pixel coordinates of the map image)
        ui.click_x, ui.click_y = gr.Number(label="x"), gr.Number(label="y")
        ui.click_btn = gr.Button("add keyframe at pixel")


def wire_path(ui: Studio) -> None:
    def on_map_select(request: gr.Request, height, seconds, evt: gr.SelectData):
        x, y = evt.index
        click = ui.action(lambda w: path.add_keyframe_at_pixel(w, x, y, height, seconds), path=True)
        return click(request)

    ui.map_img.select(on_map_select, [ui.click_height, ui.path_seconds], ui.view, api_visibility="private")
    ui.click_btn.click(ui.action(path.add_keyframe_at_pixel, path=True),
                       [ui.click_x, ui.click_y, ui.click_height, ui.path_seconds], ui.view,
                       api_name="add_keyframe_pixel")
    ui.apply_btn.click(ui.action(path.apply_table, path=True), [ui.keys, ui.path_seconds, ui.loop], ui.view,
                       api_name="update_path")
    ui.clear_btn.click(ui.action(path.clear_path, path=True), [], ui.view, api_name="clear_path")
    ui.preset_btn.click(ui.action(path.apply_preset, path=True),
                        [ui.preset_dd, ui.path_seconds, ui.p_distance, ui.p_elevation, ui.p_sweep], ui.view,
                        api_name="apply_preset")
    ui.import_file.upload(ui.action(uploaded(path.import_path), path=True), [ui.import_file], ui.view,
                          api_name="import_path")
    ui.export_btn.click(ui.query(path.export_path), [ui.r_width, ui.r_height], [ui.export_file],
                        api_name="export_path")
    ui.camera_btn.click(ui.query(path.export_camera, "camera_file"), [ui.r_width, ui.r_height], [ui.camera_file],
                        api_name="export_camera")
    ui.preview_btn.click(ui.action(render_step.start_preview_clip), [ui.r_width, ui.r_height, ui.r_fps],
                         ui.view, api_name="preview_clip")
    ui.coverage_btn.click(ui.action(path.start_coverage), [ui.r_width, ui.r_height], ui.view,
                          api_name="check_coverage")


def refine_section(ui: Studio) -> None:
    gr.Markdown("## 4. Refine (optional)")
    with gr.Row():
        ui.tier = gr.Radio(list(refine.TIERS_OFFERED), value=refine.DEFAULT_TIER, label="Guidance tier",
                           info="geometric: smooth depth against floaters (CPU, the default); inpaint: plus holes filled (CPU); "
                                "prior: plus a model trained on your photos (CPU); pipeline: img2img from a folder (GPU)")
        ui.model_dir = gr.Textbox(label="Model folder (pipeline tier, inside the workspace)")
        ui.refine_steps = gr.Slider(3, 3000, value=refine.RefineRequest.steps, step=1, label="Guided training steps")
        ui.prior_steps = gr.Slider(10, 3000, value=refine.RefineRequest.prior_steps, step=10,
                                   label="Prior training steps (~50 s per 300 on 2 CPU cores)")
    with gr.Row():
        ui.refine_btn = gr.Button("Refine along the path", interactive=False, elem_id="refine")
        ui.refine_cancel = gr.Button("Cancel", variant="stop", elem_id="refine-cancel")
        ui.original_btn = gr.Button("Use the original scene")
    ui.refine_progress = gr.HTML("", elem_id="refine-progress")
    ui.refine_gallery = gr.Gallery(label="Before | after on path frames, with the check along the path",
                                   columns=3, height=260, interactive=False)


def wire_refine(ui: Studio) -> None:
    ui.refine_btn.click(ui.action(functools.partial(refine.start_refine, ui.root)),
                        [ui.tier, ui.model_dir, ui.refine_steps, ui.prior_steps], ui.view, api_name="refine")
    ui.refine_cancel.click(ui.action(session.cancel_current), [], ui.view, api_visibility="private")
    ui.original_btn.click(ui.action(refine.use_original, path=True), [], ui.view, api_name="use_original")


def render_section(ui: Studio) -> None:
    gr.Markdown("## 5. Render")
    with gr.Row():
        ui.r_width = gr.Number(320, label="Width (px)", precision=0, elem_id="render-width")
        ui.r_height = gr.Number(180, label="Height (px)", precision=0, elem_id="render-height")
        ui.r_fps = gr.Slider(6, 60, value=24, step=1, label="Frames per second", elem_id="render-fps")
        ui.r_quality = gr.Radio(list(render_step.QUALITIES), value="standard", label="Quality",
                                info="anti-aliased: 2x2 rays per pixel, less shimmer when the camera pulls back; "
                                     "4x the render time")
    with gr.Row():
        ui.r_format = gr.Radio(list(render_step.OUTPUTS), value="mp4", label="Output format", elem_id="render-format",
                               info=render_step.FORMAT_INFO)
        ui.r_shutter = gr.Slider(0, 1, value=0, step=0.05, label="Motion blur (shutter)", info=render_step.SHUTTER_INFO)
        ui.r_samples = gr.Slider(2, 16, value=8, step=1, label="Motion blur samples", info=render_step.SAMPLES_INFO)
    with gr.Row():
        ui.render_btn = gr.Button("Render", variant="primary", interactive=False, elem_id="render")
        ui.render_cancel = gr.Button("Cancel", variant="stop")
    ui.render_progress = gr.HTML("", elem_id="render-progress")
    ui.video = gr.Video(label="The shot", interactive=False, elem_id="shot", height=360)
    ui.downloads = gr.File(label="Downloads: the shot (MP4, MOV or zip of frames), camera_path.json, recipe",
                           file_count="multiple", interactive=False)
    ui.provenance_md = gr.Markdown("")


def wire_render(ui: Studio) -> None:
    ui.render_btn.click(ui.action(render_step.start_final_render),
                        [ui.r_width, ui.r_height, ui.r_fps, ui.r_quality, ui.r_format, ui.r_shutter, ui.r_samples],
                        ui.view, api_name="render")
    ui.render_cancel.click(ui.action(session.cancel_current), [], ui.view, api_visibility="private")


def details_section(ui: Studio) -> None:
    with gr.Accordion("Job details", open=False):
        ui.job_json = gr.JSON(label="job")
        ui.status_btn = gr.Button("Refresh", size="sm")
        ui.outputs_btn = gr.Button("Refresh everything", size="sm")
    ui.timer = gr.Timer(POLL_EVERY_S)


def wire_details(ui: Studio, demo: gr.Blocks) -> None:
    """The details box, the poller that keeps the progress views current, and the page load."""
    ui.status_btn.click(ui.query(lambda w: views.job_summary(wsp.read_job(w))), [], [ui.job_json],
                        api_name="job_status")
    ui.outputs_btn.click(ui.action(lambda w: "", photos=True, path=True, outputs=True), [], ui.view,
                         api_name="refresh")
    progress = ui.outputs(*views.PROGRESS)

    def poll(request: gr.Request, seen):
        workspace = session.known_folder(session.request_hash(request))
        return ui.updates(views.poll_view(workspace, seen), workspace)

    ui.timer.tick(poll, [ui.seen], [*progress, *ui.outputs(*views.VIEW)], concurrency_limit=None,
                  show_progress="hidden", api_visibility="private")

    def on_load(request: gr.Request, stored_key):
        update = views.load_view(ui.root, stored_key, session.request_hash(request))
        return ui.updates(update, session.known_folder(session.request_hash(request)))

    demo.load(user_errors(on_load), [ui.token], [*ui.outputs(*views.LOAD), *progress, *ui.outputs(*views.VIEW)],
              api_visibility="private")


def jobs_section(ui: Studio) -> None:  # the job service's table (vista_studio.jobs): it survives a restart
    with gr.Accordion("Jobs", open=False):  # the studio's steps still run as job.json threads; see vista_studio.jobs
        ui.jobs_table = gr.Dataframe(headers=studio_jobs.COLUMNS, interactive=False, elem_id="jobs")
        ui.job_id = gr.Number(None, label="Job", precision=0)
        ui.jobs_btn, ui.job_cancel = gr.Button("Refresh", size="sm"), gr.Button("Cancel job", variant="stop")
    table = ui.query(lambda w: studio_jobs.jobs_table(ui.root, w), "jobs_table")
    ui.jobs_btn.click(table, [], [ui.jobs_table], api_name="jobs")
    ui.job_cancel.click(ui.action(lambda w, n: studio_jobs.cancel(ui.root, w, n)), [ui.job_id], ui.view,
                        api_name="cancel_job")


def build_app(root: Path = DEFAULT_WORKSPACE) -> gr.Blocks:
    """The studio as a gr.Blocks (not launched). The root is never an allowed path of the web server: when it lies
    outside the cwd and the temp dir, the files a view shows are published (vista_studio.published) first."""
    root = wsp.workspace_root(root)
    ui = Studio(root, None if published.servable_without_help(root) else published.Publisher(root))
    with gr.Blocks(title="Vista studio") as demo:
        for section in (header, photos_section, build_section, path_section, refine_section, render_section,
                        details_section, jobs_section):
            section(ui)
        for wire in (wire_photos, wire_build, wire_path, wire_refine, wire_render):
            wire(ui)
        wire_details(ui, demo)
    return demo


# --- launching ------------------------------------------------------------------------------------

def launch_app(root: Path = DEFAULT_WORKSPACE, host: str = "127.0.0.1", port: int | None = None,
               block: bool = True, quiet: bool = False,
               session_ttl_hours: float = LIMITS.session_ttl_hours) -> gr.Blocks:
    """Build, queue (one event at a time; heavy jobs run one at a time in the background) and launch; sessions
    idle for longer than `session_ttl_hours` are deleted now and every hour."""
    root = wsp.workspace_root(root)
    session.start_cleaner(root, session_ttl_hours)
    demo = build_app(root)
    demo.queue(default_concurrency_limit=1)
    # allowed_paths stays empty: Gradio serves allowed paths to anyone who names a file in them
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=quiet,
                max_file_size=wsp.MAX_UPLOAD_BYTES, allowed_paths=[], css=views.CSS, show_error=True)
    return demo


def main(argv: list[str] | None = None) -> int:
    import vista

    return vista.main(["app", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
