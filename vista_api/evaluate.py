"""How good a trained scene is on its held-out views (`vista eval`) and what a scene folder holds (`vista info`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vista_core.progress import ProgressCallback, report

if TYPE_CHECKING:
    from scenes.evaluate import Metrics

STAGE_EVALUATING = "evaluating held-out views"


@dataclass(frozen=True)
class EvalRequest:
    scene_dir: Path
    data_dir: Path | None = None
    """Dataset folder (None: the one the scene was trained on)."""
    out_dir: Path | None = None
    """Folder for side-by-side images render | ground truth | error (None: SCENE/eval)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "scene_dir", Path(self.scene_dir))

    @property
    def images_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir is not None else self.scene_dir / "eval"


@dataclass(frozen=True)
class EvalResult:
    metrics: Metrics
    """Per-view PSNR/SSIM and their means (`.table()` for a Markdown table)."""
    images_dir: Path

    def to_dict(self) -> dict[str, Any]:
        return {"mean_psnr": self.metrics.mean_psnr, "mean_ssim": self.metrics.mean_ssim,
                "views": [v.__dict__ for v in self.metrics.views]}


def evaluate(request: EvalRequest, progress: ProgressCallback | None = None) -> EvalResult:
    """Render every held-out view, compare it with its photo, save the side-by-sides. One event per view."""
    from scenes.data import load_posed_images
    from scenes.evaluate import Metrics, evaluate_scene
    from scenes.scene import load_scene

    scene = load_scene(request.scene_dir)
    data = load_posed_images(request.data_dir or Path(scene.data_source))
    indices = data.heldout_indices
    if not indices or progress is None:
        return EvalResult(evaluate_scene(scene, data, request.images_dir), request.images_dir)
    metrics = Metrics()
    report(progress, STAGE_EVALUATING, 0, len(indices))
    for done, index in enumerate(indices, 1):  # one view at a time, so the user sees it advance
        metrics.views += evaluate_scene(scene, data, request.images_dir, indices=[index]).views
        report(progress, STAGE_EVALUATING, done, len(indices))
    return EvalResult(metrics, request.images_dir)


@dataclass(frozen=True)
class SceneInfo:
    step: int
    backend: str
    kind: str
    preset: str
    data: str
    capture_views: int
    metrics: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "backend": self.backend, "kind": self.kind, "preset": self.preset,
                "data": self.data, "capture_views": self.capture_views, "metrics": self.metrics}


def describe_scene(scene_dir: Path) -> SceneInfo:
    from scenes.scene import load_scene

    scene = load_scene(Path(scene_dir))
    return SceneInfo(scene.step, scene.backend, scene.kind, scene.config.preset, scene.data_source,
                     len(scene.capture), dict(scene.metrics))
