"""How good a trained scene is on its held-out views (`vista eval`) and what a scene folder holds (`vista info`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vista_core.errors import VistaError
from vista_core.progress import ProgressCallback, report

if TYPE_CHECKING:
    from scenes.data import LoadOptions, PosedImages
    from scenes.evaluate import Metrics
    from scenes.scene import Scene

STAGE_EVALUATING = "evaluating held-out views"


@dataclass(frozen=True)
class EvalRequest:
    scene_dir: Path
    data_dir: Path | None = None
    """Dataset folder (None: the one the scene was trained on)."""
    out_dir: Path | None = None
    """Folder for side-by-side images render | ground truth | error (None: SCENE/eval)."""
    downscale: int | None = None
    """Compare with the photos' width and height divided by this whole number (None: the resolution the scene was trained at,
    as its train.json records; full size up to the 1600 px cap for scenes that record none)."""
    skip_missing: bool = False
    """Evaluate on the views whose images exist when some listed ones are missing."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "scene_dir", Path(self.scene_dir))
        self.load_options(None)  # downscale >= 1

    def load_options(self, trained_downscale: float | None) -> LoadOptions:
        """The resolution to compare at: the request's downscale, else the training one, exactly (no cap)."""
        from scenes.data import LoadOptions

        if self.downscale is not None:
            return LoadOptions(self.downscale, 0, self.skip_missing)
        if trained_downscale is not None:
            return LoadOptions(trained_downscale, 0, self.skip_missing)
        return LoadOptions(skip_missing=self.skip_missing)

    @property
    def images_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir is not None else self.scene_dir / "eval"


@dataclass(frozen=True)
class EvalResult:
    metrics: Metrics
    """Per-view PSNR/SSIM and their means (`.table()` for a Markdown table)."""
    images_dir: Path
    warnings: tuple[str, ...] = ()
    """One line each, e.g. that the photos changed since the scene was trained."""

    def to_dict(self) -> dict[str, Any]:
        return {"mean_psnr": self.metrics.mean_psnr, "mean_ssim": self.metrics.mean_ssim,
                "views": [v.__dict__ for v in self.metrics.views]}


def evaluate(request: EvalRequest, progress: ProgressCallback | None = None) -> EvalResult:
    """Render every held-out view, compare it with its photo, save the side-by-sides. One event per view."""
    from scenes.data import load_posed_images
    from scenes.evaluate import Metrics, evaluate_scene, refuse_training_views
    from scenes.scene import load_scene

    scene = load_scene(request.scene_dir)
    options = request.load_options(training_downscale(request.scene_dir))
    data = load_posed_images(request.data_dir or dataset_of(scene), options=options)
    indices = data.heldout_indices
    if indices:
        refuse_training_views(scene, data, indices)  # before any image is written
    warnings = stale_data_warnings(scene, data, request.data_dir)
    if not indices or progress is None:
        return EvalResult(evaluate_scene(scene, data, request.images_dir), request.images_dir, warnings)
    metrics = Metrics()
    report(progress, STAGE_EVALUATING, 0, len(indices))
    for done, index in enumerate(indices, 1):  # one view at a time, so the user sees it advance
        metrics.views += evaluate_scene(scene, data, request.images_dir, indices=[index]).views
        report(progress, STAGE_EVALUATING, done, len(indices))
    return EvalResult(metrics, request.images_dir, warnings)


def training_load_options(scene_dir: Path) -> LoadOptions:
    """How to load a scene's dataset to see it as training did: at the recorded downscale, exactly."""
    return EvalRequest(scene_dir).load_options(training_downscale(scene_dir))


def training_downscale(scene_dir: Path) -> int | None:
    """The downscale a scene's photos were trained at, as its train.json records it (None: not recorded, or no
    readable train.json: scenes from before it was recorded)."""
    from scenes.train import read_run_info

    try:
        recorded = read_run_info(scene_dir).get("downscale")
    except (VistaError, AttributeError):
        return None
    valid = isinstance(recorded, int) and not isinstance(recorded, bool) and 1 <= recorded <= 64
    return recorded if valid else None


def dataset_of(scene: Scene) -> Path:
    """The dataset folder a scene records as its `data_source` (followed when no --data is given): it must be a
    folder holding a transforms file. One message for missing, not a folder and not a dataset, so that a scene.json
    cannot be used to probe which paths exist."""
    from scenes.scene import SCENE_FILE

    recorded = Path(scene.data_source) if scene.data_source else None
    where = scene.folder / SCENE_FILE if scene.folder is not None else Path(SCENE_FILE)
    if recorded is None or not recorded.is_dir() or not (
            (recorded / "transforms_train.json").is_file() or (recorded / "transforms.json").is_file()):
        raise VistaError(f"{where}: the dataset it records ('data_source' {scene.data_source!r}) is not found or "
                         "is not a dataset folder; pass the dataset with --data")
    return recorded


def stale_data_warnings(scene: Scene, data: PosedImages, data_dir: Path | None) -> tuple[str, ...]:
    """A warning when the scene's own dataset changed since training (its recorded hash differs). A dataset given
    with --data that is another folder is another dataset, not a stale one; old scenes record no hash."""
    same_folder = data_dir is None or Path(data.source).resolve() == Path(scene.data_source).resolve()
    if scene.data_hash is None or not same_folder or data.content_hash == scene.data_hash:
        return ()
    return (f"{data.source}: the photos or poses changed since this scene was trained (dataset hash "
            f"{scene.data_hash[:12]} then, {data.content_hash[:12]} now); the scores may not be of held-out views",)


@dataclass(frozen=True)
class SceneInfo:
    step: int
    backend: str
    kind: str
    preset: str
    data: str
    capture_views: int
    metrics: dict[str, Any]
    capture_sizes: dict[str, int]
    """How many training photos of each size ("270x480": 30), at the resolution trained on."""
    downscale: int | None
    """The downscale the photos were trained at (None: not recorded)."""

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "backend": self.backend, "kind": self.kind, "preset": self.preset,
                "data": self.data, "capture_views": self.capture_views, "capture_sizes": self.capture_sizes,
                "downscale": self.downscale, "metrics": self.metrics}


def describe_scene(scene_dir: Path) -> SceneInfo:
    from scenes.scene import load_scene

    scene = load_scene(Path(scene_dir))
    sizes: dict[str, int] = {}
    for i in range(len(scene.capture)):
        width, height = scene.capture.size_of(i)
        sizes[f"{width}x{height}"] = sizes.get(f"{width}x{height}", 0) + 1
    return SceneInfo(scene.step, scene.backend, scene.kind, scene.config.preset, scene.data_source,
                     len(scene.capture), dict(scene.metrics), sizes, training_downscale(Path(scene_dir)))
