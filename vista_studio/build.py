"""Step 2, build: poses for uploaded photos, training with a live preview, evaluation on held-out views.

`start_build` turns the form into a vista_api TrainRequest (which checks it) and starts `build_work` as the
session's background job (vista_studio.workspace); the job writes its progress to job.json and a small
preview.png that the studio's poller shows.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from scenes.confidence import confidence_summary
from vista_api.poses import PosesRequest, estimate_poses
from vista_api.train import (
    STAGE_EVALUATING,
    STAGE_TRAINING,
    TrainRequest,
    continues_checkpoint,
    load_dataset,
    train_on,
)
from vista_core.errors import VistaError
from vista_core.files import atomic_write_bytes
from vista_core.progress import Cancelled, ProgressEvent
from vista_studio import limits
from vista_studio import workspace as wsp
from vista_studio.fields import number
from vista_studio.images import PREVIEW_SIDE_PX, png_bytes
from vista_studio.photos import selected_photos

PREVIEW_FILE = "preview.png"
PREVIEW_EVERY_S = 3.0
"""Least seconds between live preview renders while training (more on a slow or busy machine)."""
NO_PHOTOS = "no photos yet: pick the sample scene, upload photos or load a folder first"


ANTI_ALIAS_INFO = ("weigh the hash grid's fine levels by each sample's pixel footprint: less shimmer in shots "
                   "that pull back further than the photos were taken; a little slower")


def start_build(workspace: Path, preset: str, minutes: float | None, seed: float | None,
                anti_alias: bool = False) -> str:
    minutes = number(minutes, "time budget (minutes)", 0, 1e9, optional=True) or None
    if minutes is not None and minutes > limits.LIMITS.max_build_minutes:
        raise VistaError(f"time budget: {minutes:,g} minutes is more than the studio allows per build "
                         f"({limits.LIMITS.max_build_minutes:g} minutes)")
    seed = int(number(seed, "seed", 0, 2**31 - 1, optional=True) or 0)
    session = wsp.read_session(workspace)
    if not session.get("data") and not session.get("photos"):
        raise VistaError(NO_PHOTOS)
    # uploaded photos are posed into workspace/data by the job itself
    request = TrainRequest(Path(session.get("data") or workspace / "data"), workspace / "scene", preset=preset,
                           minutes=minutes, seed=seed, anti_alias=bool(anti_alias))
    # a checkpoint of the other field (anti-alias switched since the last Build) cannot be continued: start over
    switched = bool((session.get("build_options") or {}).get("anti_alias", False)) != request.anti_alias
    wsp.update_session(workspace, build_options={"preset": preset, "minutes": minutes, "seed": seed,
                                                 "anti_alias": request.anti_alias})
    wsp.start_job(workspace, "build", lambda job: build_work(job, workspace, request, may_resume=not switched))
    return "Build started: the progress shows below (it keeps running if you close or reload the page)."


def build_work(job: wsp.Job, workspace: Path, request: TrainRequest, may_resume: bool = True) -> dict:
    """The build job: 1. poses from photos (if uploaded), 2. train and 3. evaluate on held-out views
    (vista_api.train)."""
    session = wsp.read_session(workspace)
    result: dict[str, Any] = {}
    # 1. poses
    if session.get("photos") and not session.get("data"):
        result["poses"] = pose_photos(job, workspace, session, request.seed)
        wsp.update_session(workspace, data=str(request.data_dir), poses=result["poses"])
        job.check_cancelled()
    # 2. train: Build again after Cancel continues the same run (same data, preset, seed); anything else starts over
    # (and the same photos: after an upload or an excluded photo, the scene is trained again, never resumed stale)
    job.update(stage="loading posed photos", force=True)
    reporter = TrainingReporter(job, workspace, request.preset)
    data = load_dataset(request, reporter)
    resume = may_resume and continues_checkpoint(request, data)
    try:
        trained = train_on(data, dataclasses.replace(request, resume=resume, overwrite=not resume), reporter)
    except Cancelled:
        reporter.finish()  # the preview shows where the kept checkpoint is
        raise
    reporter.finish(trained.scene)
    result.update(scene=str(trained.scene_dir), step=trained.step, train_seconds=round(trained.train_seconds, 1))
    # 3. the held-out evaluation (train's last stage)
    if trained.heldout is not None:
        result.update(heldout_psnr=round(trained.heldout.psnr_db, 2), heldout_ssim=round(trained.heldout.ssim, 4))
    confidence = confidence_summary(trained.scene.metrics.get("photos"))
    if confidence:  # per-photo confidence (issue #22): photos whose pose may still be wrong
        result["photo_confidence"] = confidence
    wsp.update_session(workspace, scene=str(trained.scene_dir), build=result)
    return result


def pose_photos(job: wsp.Job, workspace: Path, session: dict, seed: int) -> str:
    """Structure from motion on the photos the user kept, into `workspace/data`; one line about how it went."""
    job.update(stage="poses: checking photos", force=True)
    posed = estimate_poses(PosesRequest(selected_photos(workspace, session), workspace / "data", seed=seed),
                           lambda event: job.update(stage=f"poses: {event.stage}", force=True))
    return posed.summary


class TrainingReporter:
    """vista_api.train's progress callback: the step, PSNR plot and ETA into job.json, a preview now and then,
    and Cancelled once the user pressed Cancel (train keeps the checkpoint of the last step)."""

    def __init__(self, job: wsp.Job, workspace: Path, preset: str):
        self.job, self.workspace, self.preset = job, workspace, preset
        self.scene = None  # the scene being trained, as the last step showed it
        self.next_preview = 0.0
        self.finished = False

    def __call__(self, event: ProgressEvent) -> None:
        job = self.job
        if event.stage == STAGE_TRAINING and not event.metrics:  # the data is loaded; training starts
            wsp.update_session(self.workspace, scene=None, refined=None)
            job.update(stage="training", total=event.total, force=True)
        elif event.stage == STAGE_TRAINING:
            self.on_step(event)
        elif event.stage == STAGE_EVALUATING:
            self.finish()
            job.check_cancelled()
            job.update(stage=STAGE_EVALUATING, force=True)
        # other events (a line about the data loaded) leave the stage at "loading posed photos"

    def on_step(self, event: ProgressEvent) -> None:
        job, metrics = self.job, event.metrics
        job.add_point(event.done, metrics["loss"], metrics["psnr"])
        job.update(step=event.done, total=event.total, psnr=metrics["psnr"], eta_s=event.eta_s,
                   stage=f"training ({self.preset} preset)")
        self.scene = event.snapshot if event.snapshot is not None else self.scene
        start = time.monotonic()
        if event.snapshot is not None and start >= self.next_preview:
            write_preview(self.scene, self.workspace)
            # previews take at most ~1/5 of the time, however slow the machine is today
            self.next_preview = start + max(PREVIEW_EVERY_S, 5 * (time.monotonic() - start))
        job.check_cancelled()

    def finish(self, scene=None) -> None:
        """The preview of the trained scene, once."""
        scene = scene if scene is not None else self.scene
        if scene is not None and not self.finished:
            write_preview(scene, self.workspace)
            self.finished = True


def write_preview(scene, workspace: Path, camera_index: int = 0) -> None:
    """Render one capture view of the scene being trained, small, as preview.png."""
    from render.render import render_camera

    camera = scene.capture[camera_index % len(scene.capture)]  # one camera: its own photo's size
    scale = min(1.0, PREVIEW_SIDE_PX / max(camera.width, camera.height))
    image = render_camera(scene.renderable(), camera.scaled(scale), 0).rgb
    atomic_write_bytes(workspace / PREVIEW_FILE, png_bytes(image.numpy()))
