"""Step 5, render: the session's path to an MP4 (or a ProRes 4444 .mov, or a PNG or EXR sequence, optionally with
motion blur) with its recipe and provenance verdict; also step 3's quick preview clip (quarter size, draft quality,
MP4, no blur, no watermark), which is the same job at a smaller size."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from vista_api.paths import PathFiles, write_path
from vista_api.render import (
    QUALITIES,
    Labels,
    Quality,
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
OUTPUTS = {"mp4": "shot.mp4", "prores": "shot.mov", "png": "shot_png", "exr": "shot_exr"}
"""The output formats (render.frames_out) and what each is written as in the session's render folder: a file for
the videos, a folder of frames for the sequences (as render.frames_out.resolve_format expects), zipped to download."""
FORMAT_INFO = ("mp4: H.264, plays in the browser; prores: ProRes 4444 .mov with alpha; png: 16-bit RGBA frames; "
               "exr: half-float RGBA frames with a depth (Z) channel. The frame sequences download as one zip.")
SHUTTER_INFO = "fraction of the frame interval the shutter is open: 0 = no blur, 0.5 = 180 degrees, 1 = 360 degrees"
SAMPLES_INFO = "sub-frame renders averaged per blurred frame: smoother blur, that many times the render time"


@dataclass(frozen=True)
class ShotChoice:
    """The render step's form beyond size and frame rate: a named quality (QUALITIES), the output format
    (OUTPUTS), and motion blur's shutter (0: none) and sub-frame samples (render.motion_blur)."""

    quality: str = "standard"
    output_format: str = "mp4"
    shutter: float = 0.0
    samples: int = 8

    @classmethod
    def from_form(cls, quality: str, output_format: str, shutter, samples) -> ShotChoice:
        if quality not in QUALITIES:
            raise VistaError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITIES)}")
        if output_format not in OUTPUTS:
            raise VistaError(f"unknown output format {output_format!r}; choose one of {', '.join(OUTPUTS)}")
        return cls(quality, output_format, number(shutter, "motion blur shutter", 0, 1),
                   int(number(samples, "motion blur samples", 2, 64)))

    @property
    def settings(self) -> Quality:
        return dataclasses.replace(QUALITIES[self.quality], motion_blur=self.shutter, motion_blur_samples=self.samples)

    @property
    def renders_per_frame(self) -> int:
        return self.samples if self.shutter > 0 else 1


PREVIEW_CHOICE = ShotChoice("draft")


def start_render(workspace: Path, width, height, fps, choice: ShotChoice, preview: bool) -> str:
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
    check_render(w, h, dataclasses.replace(path, fps=float(fps)).n_frames, choice.renders_per_frame)
    wsp.start_job(workspace, "preview" if preview else "render",
                  lambda job: render_work(job, workspace, w, h, fps, choice, preview))
    blur = f", motion blur {choice.shutter:g}" if choice.shutter > 0 else ""
    what = "Preview clip" if preview else f"Render ({choice.output_format}{blur})"
    return f"{what} started ({w} × {h}, {fps:g} fps)."


def start_preview_clip(workspace: Path, width, height, fps) -> str:
    return start_render(workspace, width, height, fps, PREVIEW_CHOICE, True)


def start_final_render(workspace: Path, width, height, fps, quality: str, output_format: str = "mp4",
                       shutter: float = 0.0, samples: int = 8) -> str:
    choice = ShotChoice.from_form(quality, output_format, shutter, samples)
    return start_render(workspace, width, height, fps, choice, False)


def render_work(job: wsp.Job, workspace: Path, width: int, height: int, fps: float, choice: ShotChoice,
                preview: bool) -> dict:
    """Render the session's path with vista_api.render.render_shot (the same call as `vista render`), then
    write its camera_path.json, zip a frame sequence and check its labels (vista_api.render.verify)."""
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
    request = ShotRequest(scene_dir, saved, folder / ("preview.mp4" if preview else OUTPUTS[choice.output_format]),
                          width, height, fps=float(fps), quality=choice.settings, labels=Labels(watermark=not preview),
                          path_source="app", output_format=choice.output_format)
    job.update(stage="rendering preview clip" if preview else "rendering frames", total=path.n_frames, force=True)
    shot = render_shot(request, frame_reporter(job))
    result, out = shot.render, request.out
    outputs = {"video": str(out), "frames": len(result.frames), "width": result.width, "height": result.height,
               "fps": result.fps, "frames_per_s": round(result.frames_per_s, 2), "flicker": result.flicker.summary()}
    if shot.retimed:
        outputs["retimed"] = shot.retimed
    if not preview:
        outputs.update(format=choice.output_format, motion_blur=choice.shutter, download=str(out))
        if out.is_dir():
            job.update(stage="zipping the frames", force=True)
            outputs["download"] = str(zip_sequence(out))
        job.update(stage="checking the labels (provenance)", force=True)
        camera_path = folder / "camera_path.json"
        write_path(PathFiles(camera_path, width, height), path)
        report = verify(VerifyRequest(out)).text().replace(str(out), out.name)  # the verdict, without server paths
        outputs.update(recipe=str(shot.recipe_file), camera_path=str(camera_path), provenance=report)
        wsp.update_session(workspace, video=outputs)
    else:
        wsp.update_session(workspace, preview_clip=str(out))
    return outputs


def zip_sequence(folder: Path) -> Path:
    """A folder of frames as one zip beside it (FOLDER.zip, in the session's folder), to download in one go; written
    under a temporary name and renamed, so a half-written zip is never offered. Stored, not deflated: PNG and EXR
    frames are already zip-compressed inside."""
    target = folder.with_name(folder.name + ".zip")
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=folder.parent)
    os.close(handle)
    try:
        with zipfile.ZipFile(temp, "w", zipfile.ZIP_STORED) as archive:
            for frame in sorted(folder.iterdir()):
                archive.write(frame, f"{folder.name}/{frame.name}")
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def frame_reporter(job: wsp.Job):
    """render_shot's progress callback: frames done with an ETA, and Cancel (the frames rendered so far stay
    cached: Render again resumes from them)."""

    def on_frame(event: ProgressEvent) -> None:
        job.update(step=event.done, total=event.total, eta_s=event.eta_s)
        job.check_cancelled()

    return on_frame
