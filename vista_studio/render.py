"""Step 5, render: the session's path to an MP4 with its recipe and provenance verdict; also step 3's quick
preview clip (quarter size, draft quality, no watermark), which is the same job at a smaller size."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vista_api.paths import PathFiles, write_path
from vista_api.render import (
    QUALITIES,
    Labels,
    ShotRequest,
    VerifyRequest,
    render_shot,
    verify,
)
from vista_core.errors import VistaError
from vista_core.progress import ProgressEvent
from vista_studio import workspace as wsp
from vista_studio.fields import check_size, number
from vista_studio.limits import check_render
from vista_studio.path import read_path
from vista_studio.session import require

PREVIEW_CLIP_FPS = 8.0
NO_PATH = "no camera path yet: add keyframes or apply a preset in step 3"


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
    path = read_path(workspace)
    if path is None:
        raise VistaError(NO_PATH)
    check_render(w, h, dataclasses.replace(path, fps=float(fps)).n_frames)
    wsp.start_job(workspace, "preview" if preview else "render",
                  lambda job: render_work(job, workspace, w, h, fps, quality, preview))
    return f"{'Preview clip' if preview else 'Render'} started ({w} × {h}, {fps:g} fps)."


def start_preview_clip(workspace: Path, width, height, fps) -> str:
    return start_render(workspace, width, height, fps, "draft", True)


def start_final_render(workspace: Path, width, height, fps, quality: str) -> str:
    return start_render(workspace, width, height, fps, quality, False)


def render_work(job: wsp.Job, workspace: Path, width: int, height: int, fps: float, quality: str,
                preview: bool) -> dict:
    """Render the session's path with vista_api.render.render_shot (the same call as `vista render`), then
    write its camera_path.json and check its labels (vista_api.render.verify)."""
    session = wsp.read_session(workspace)
    scene_dir = Path(session.get("refined") or require(session, "scene", "no scene yet: build one first"))
    saved = read_path(workspace)
    if saved is None:
        raise VistaError(NO_PATH)
    path = dataclasses.replace(saved, fps=float(fps))  # the same length in seconds at the render's rate
    folder = workspace / ("preview" if preview else "render")
    folder.mkdir(parents=True, exist_ok=True)
    # the preview clip's size is already the quarter size (start_render): it is rendered as a small shot;
    # render_shot re-times the saved path to `fps` and says so (ShotResult.retimed)
    request = ShotRequest(scene_dir, saved, folder / ("preview.mp4" if preview else "shot.mp4"), width, height,
                          fps=float(fps), quality=QUALITIES["draft" if preview else quality],
                          labels=Labels(watermark=not preview), path_source="app")
    job.update(stage="rendering preview clip" if preview else "rendering frames", total=path.n_frames, force=True)
    shot = render_shot(request, frame_reporter(job))
    result, out = shot.render, request.out
    outputs = {"video": str(out), "frames": len(result.frames), "width": result.width, "height": result.height,
               "fps": result.fps, "frames_per_s": round(result.frames_per_s, 2), "flicker": result.flicker.summary()}
    if shot.retimed:
        outputs["retimed"] = shot.retimed
    if not preview:
        job.update(stage="checking the labels (provenance)", force=True)
        camera_path = folder / "camera_path.json"
        write_path(PathFiles(camera_path, width, height), path)
        report = verify(VerifyRequest(out)).text().replace(str(out), out.name)  # the verdict, without server paths
        outputs.update(recipe=str(shot.recipe_file), camera_path=str(camera_path), provenance=report)
        wsp.update_session(workspace, video=outputs)
    else:
        wsp.update_session(workspace, preview_clip=str(out))
    return outputs


def frame_reporter(job: wsp.Job):
    """render_shot's progress callback: frames done with an ETA, and Cancel (the frames rendered so far stay
    cached: Render again resumes from them)."""

    def on_frame(event: ProgressEvent) -> None:
        job.update(step=event.done, total=event.total, eta_s=event.eta_s)
        job.check_cancelled()

    return on_frame
