"""Step 4, refine (optional): diffusion guidance along the session's path into a new scene folder, then
before | after renders of a few path frames side by side, captioned with the refine's own check along the path
(coverage and floaters, before -> after; `vista refine` prints the same line). The scene it starts from is never
touched; "Use the original scene" goes back to it."""

from __future__ import annotations

from pathlib import Path

from vista_api.paths import PathFiles, write_path
from vista_api.refine import GEOMETRIC, TIERS_OFFERED, RefineRequest, refine
from vista_core.errors import VistaError
from vista_core.files import atomic_write_bytes
from vista_core.progress import ProgressEvent
from vista_studio import workspace as wsp
from vista_studio.images import PREVIEW_SIDE_PX, png_bytes
from vista_studio.limits import check_steps
from vista_studio.path import PATH_DIR, read_path
from vista_studio.session import require, require_idle

DEFAULT_TIER = GEOMETRIC
"""The form's preselected tier: what the CLI's auto picks on a CPU."""
NO_PATH = "no camera path yet: guidance aims at your path, so draw one first (step 3)"
REFINE_PATH = "refine_path.json"


def start_refine(root: Path, workspace: Path, tier: str, model_dir: str, steps, prior_steps) -> str:
    """The form as a vista_api RefineRequest (which checks the numbers), then the refine job."""
    if tier not in TIERS_OFFERED:  # "auto" is the CLI's
        raise VistaError(f"unknown guidance tier {tier!r}; choose {', '.join(TIERS_OFFERED)}")
    folder = wsp.confine_path(root, workspace, model_dir, "model folder") if (model_dir or "").strip() else None
    if tier == "pipeline" and folder is None:  # said in the studio's words (the request's names the CLI flags)
        raise VistaError("the pipeline tier needs a model folder (a local diffusers img2img pipeline)")
    session = wsp.read_session(workspace)
    scene_dir = require(session, "scene", "no scene yet: build one (step 2) or load a scene folder (step 1)")
    request = RefineRequest(scene_dir, new_refined_folder(workspace), path=workspace / PATH_DIR / REFINE_PATH,
                            tier=tier, model_dir=folder, steps=check_steps(int(steps or 0), "guided training steps"),
                            prior_steps=check_steps(int(prior_steps or 0), "prior training steps"))
    if read_path(workspace) is None:
        raise VistaError(NO_PATH)
    wsp.start_job(workspace, "refine", lambda job: refine_work(job, workspace, request))
    return "Refinement started; the refined scene is written to a new folder and used for rendering."


def new_refined_folder(workspace: Path) -> Path:
    """refined-1, refined-2, ...: a new folder every time, so the scene refinement starts from is never touched."""
    n = 1
    while (workspace / f"refined-{n}").exists():
        n += 1
    return workspace / f"refined-{n}"


def refine_work(job: wsp.Job, workspace: Path, request: RefineRequest) -> dict:
    """vista_api.refine on the session's scene along its path (written at the capture's size to
    path/refine_path.json), into a new folder, then before/after renders of a few path frames."""
    from scenes.scene import load_scene

    path = read_path(workspace)
    if path is None:
        raise VistaError(NO_PATH)
    original = load_scene(request.scene_dir)
    write_path(PathFiles(request.path, original.capture.width, original.capture.height), path)
    tier = request.tier
    job.update(stage=f"refining ({tier} tier)", force=True)

    def progress(event: ProgressEvent) -> None:
        if event.total:  # steps of the patch prior or of guided training; notes keep the stage as it is
            job.update(stage=f"{event.stage} ({tier} tier)", step=event.done, total=event.total)
        job.check_cancelled()  # refine writes its folder only at the end: a cancelled run leaves nothing behind

    refined = refine(request, progress)
    job.update(stage="before / after renders", force=True)
    pairs = before_after(original, refined.scene, path, request.out_dir, check_caption(refined))
    wsp.update_session(workspace, refined=str(request.out_dir), refine_pairs=pairs, refine_check=refined.check_line())
    return {"refined": str(request.out_dir), "frames_compared": len(pairs), "check": refined.check_line()}


def check_caption(result) -> str:
    """The path check, before -> after, short enough for a gallery caption ('' when it was not run)."""
    if result.before is None or result.after is None:
        return ""
    b, a = result.before, result.after
    return f"coverage {b.coverage:.2f} → {a.coverage:.2f}, floaters {b.floaters:.3f} → {a.floaters:.3f}"


def before_after(original, refined, path, out: Path, numbers: str = "") -> list[list[str]]:
    """The first, middle and last path frames rendered from both scenes, before | after side by side in one
    image each: [png file, caption] pairs, the caption ending with `numbers` (the path check)."""
    import numpy as np

    from render.render import render_camera

    cameras = path.sample(original.capture.width, original.capture.height)
    scale = min(1.0, 2 * PREVIEW_SIDE_PX / max(cameras.width, cameras.height))
    cameras = cameras.scaled(scale)
    pairs = []
    for k, index in enumerate(sorted({0, len(cameras) // 2, len(cameras) - 1})):
        before, after = (render_camera(scene.renderable(), cameras, index).rgb.clamp(0, 1).numpy()
                         for scene in (original, refined))
        gap = np.ones((cameras.height, max(2, cameras.width // 64), 3), dtype=before.dtype)  # a white seam
        file = out / "before-after" / f"{k}-before-after.png"
        atomic_write_bytes(file, png_bytes(np.concatenate([before, gap, after], axis=1)))
        pairs.append([str(file), f"frame {index}: before | after" + (f" · {numbers}" if numbers else "")])
    return pairs


def use_original(workspace: Path) -> str:
    require_idle(workspace, "switch scenes")
    if not wsp.read_session(workspace).get("refined"):
        return "The original scene is already in use."
    wsp.update_session(workspace, refined=None, refine_pairs=None, refine_check=None)
    return "Rendering the original (unrefined) scene again; the refined folder is kept."
