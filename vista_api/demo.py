"""The sample scene end to end (`vista demo`): train (or reuse) a scene, fit an orbit, render shot.mp4.

It runs the same actions as `vista train`, `vista path --preset orbit` and `vista render`, in order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from vista_api.checks import require_choice
from vista_core.errors import VistaError
from vista_core.progress import ProgressCallback, report

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lego-100"
"""The bundled sample: the NeRF-synthetic lego at 100x100."""


@dataclass(frozen=True)
class DemoRequest:
    data_dir: Path = SAMPLE
    out_dir: Path = Path("outputs/demo")
    preset: str = "preview"
    minutes: float = 3.0
    seconds: float = 4.0
    """Length of the shot."""
    fps: float = 24.0
    width: int = 320
    height: int = 240
    retrain: bool = False
    """Train again even if OUT/scene holds a scene."""

    def __post_init__(self) -> None:
        from scenes.config import PRESETS

        require_choice(self.preset, PRESETS, "preset")

    @property
    def scene_dir(self) -> Path:
        return Path(self.out_dir) / "scene"


@dataclass(frozen=True)
class DemoResult:
    scene_dir: Path
    path_file: Path
    video: Path
    recipe_file: Path
    frames: int
    frames_per_s: float
    seconds: float
    """Wall-clock time of the whole demo."""


def run_demo(request: DemoRequest, progress: ProgressCallback | None = None) -> DemoResult:
    """Events: "1/3 ...", "2/3 ...", "3/3 ..." notes (total 0) between the steps' own progress."""
    from scenes.data import load_posed_images
    from vista_api.paths import PathFiles, PathRequest, make_path, open_path_scene, write_path
    from vista_api.render import Labels, ShotRequest, render_shot

    if not Path(request.data_dir).exists():
        raise VistaError(f"{request.data_dir}: sample scene not found; pass --data with a posed dataset folder")
    start = time.perf_counter()

    # 1. posed images -> trained scene (reused when present)
    data = load_posed_images(request.data_dir)
    _train_or_reuse(request, data, progress)

    # 2. an orbit fitted to the scene's occupancy and capture cameras
    scene = open_path_scene(request.scene_dir)
    path = make_path(PathRequest(preset="orbit", seconds=request.seconds, fps=request.fps), scene)
    path_file = Path(request.out_dir) / "camera_path.json"
    write_path(PathFiles(path_file, request.width, request.height), path)
    frames = path.n_frames
    report(progress, f"2/3 orbit path: {frames} frames at {request.width}x{request.height}, {request.fps:g} fps "
                     f"-> {path_file}")

    # 3. render, encode, label
    video = Path(request.out_dir) / "shot.mp4"
    shot = render_shot(ShotRequest(request.scene_dir, path, video, request.width, request.height, request.fps,
                                   labels=Labels(), path_source=str(path_file)), progress)
    report(progress, f"3/3 wrote {video} ({len(shot.render.frames)} frames, {shot.frames_per_s:.1f} frames/s "
                     f"rendering), recipe {shot.recipe_file}")
    return DemoResult(request.scene_dir, path_file, video, shot.recipe_file, len(shot.render.frames),
                      shot.frames_per_s, time.perf_counter() - start)


def _train_or_reuse(request: DemoRequest, data, progress: ProgressCallback | None) -> None:
    from scenes.scene import SCENE_FILE, load_scene
    from vista_api.train import TrainRequest, measure_heldout, train_on

    scene_dir = request.scene_dir
    if (scene_dir / SCENE_FILE).is_file() and not request.retrain:
        scene = load_scene(scene_dir)
        report(progress, f"1/3 reusing the trained scene in {scene_dir} (step {scene.step}; --retrain to train again)")
        return
    report(progress, f"1/3 training {Path(request.data_dir).name} ({len(data.train_indices)} views) for up to "
                     f"{request.minutes:g} min, preset {request.preset}")
    trained = train_on(data, TrainRequest(request.data_dir, scene_dir, request.preset, minutes=request.minutes,
                                          overwrite=request.retrain, evaluate=False), progress)
    heldout = measure_heldout(trained.scene, data, progress)  # no held-out views: an error, as before
    report(progress, f"    held-out PSNR {heldout.psnr_db:.2f} dB, SSIM {heldout.ssim:.3f} ({heldout.views} views) "
                     f"after {trained.step} steps")
