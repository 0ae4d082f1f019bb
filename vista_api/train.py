"""Train a scene from a posed dataset, then measure it on the held-out views (`vista train`, the studio's Build).

    result = train(TrainRequest(Path("data/lego"), Path("scenes/lego"), preset="test"), progress=print)
    result.heldout.psnr_db
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from vista_api.checks import is_finite_number, require_choice
from vista_core.errors import VistaError
from vista_core.progress import ProgressCallback, report

if TYPE_CHECKING:
    from scenes.config import TrainConfig
    from scenes.data import LoadOptions, PosedImages
    from scenes.scene import Scene

BACKENDS = ("auto", "torch", "tcnn")
SAMPLERS = ("occupancy", "proposal")
STAGE_TRAINING = "training"
STAGE_EVALUATING = "evaluating on held-out views"


@dataclass(frozen=True)
class TrainRequest:
    """One training run; every field is checked on construction."""

    data_dir: Path
    """Dataset folder (Blender transforms_*.json, or nerfstudio / instant-ngp transforms.json)."""
    out_dir: Path
    """Scene folder to write (checkpoints inside)."""
    preset: str = "preview"
    """A scenes.config preset: test, preview or quality."""
    minutes: float | None = None
    """Wall-clock budget; training stops at the preset's (or `steps`) step count if that comes first."""
    steps: int | None = None
    """Optimisation steps (None: the preset's)."""
    seed: int = 0
    backend: str = "auto"
    pixel_jitter: bool | None = None
    """None: the preset's setting (off)."""
    resume: bool = False
    """Continue from the folder's last checkpoint."""
    overwrite: bool = False
    """Discard what the folder holds and start again."""
    evaluate: bool = True
    """Measure PSNR/SSIM on the held-out views at the end (skipped when the dataset has none)."""
    downscale: int = 1
    """Train on the photos with width and height divided by this whole number (N x N blocks averaged, intrinsics
    divided by N)."""
    max_long_side: int | None = None
    """Downscale by more, if needed, so no photo's long side exceeds this many pixels (None: 1600; 0: no cap)."""
    skip_missing: bool = False
    """Train on the frames whose images exist when some listed ones are missing (otherwise refuse, naming them)."""
    sampler: str | None = None
    """Unbounded captures' sampler, "occupancy" or "proposal" (None: the preset's)."""
    anti_alias: bool = False
    """Weigh the hash grid's levels by each sample's pixel footprint (`HashGridConfig.footprint_weighting`)."""
    distortion: float | None = None
    """mip-NeRF 360's distortion loss weight (`TrainConfig.distortion_loss_weight`; None: the preset's; 0: off)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        require_choice(self.backend, BACKENDS, "backend")
        if self.sampler is not None:
            require_choice(self.sampler, SAMPLERS, "sampler")
        if self.minutes is not None and not (is_finite_number(self.minutes) and self.minutes > 0):
            raise VistaError(f"minutes must be a positive number, got {self.minutes}")
        self.config()  # the preset's own checks (unknown preset, steps < 1) with its messages
        self.load_options()  # downscale >= 1, max_long_side 0 or >= 64

    def load_options(self) -> LoadOptions:
        from scenes.data import LoadOptions
        from scenes.photos import DEFAULT_MAX_LONG_SIDE

        cap = DEFAULT_MAX_LONG_SIDE if self.max_long_side is None else self.max_long_side
        return LoadOptions(self.downscale, cap, self.skip_missing)

    def config(self) -> TrainConfig:
        from scenes.config import preset_config, with_footprint_weighting

        config = preset_config(self.preset, steps=self.steps, seed=self.seed, backend=self.backend,
                               pixel_jitter=self.pixel_jitter, distortion_loss_weight=self.distortion)
        if self.sampler is not None:
            config = replace(config, sampling=replace(config.sampling, unbounded_sampler=self.sampler))
        return with_footprint_weighting(config) if self.anti_alias else config


@dataclass(frozen=True)
class HeldOut:
    """Mean quality on the held-out views."""

    psnr_db: float
    ssim: float
    views: int


@dataclass(frozen=True)
class TrainResult:
    scene_dir: Path
    scene: Scene
    step: int
    train_seconds: float
    heldout: HeldOut | None
    """None when evaluation was not asked for or the dataset holds no held-out views."""

    def speed_line(self) -> str:
        """Steps, seconds and throughput, as `vista train` prints them."""
        m = self.scene.metrics
        return (f"trained {self.step} steps in {m.get('train_seconds', 0):.0f} s: {m.get('rays_per_s', 0):,.0f} "
                f"rays/s, {m.get('samples_per_s', 0):,.0f} samples/s, {m.get('samples_per_ray', 0):.1f} samples/ray")


def describe_data(data: PosedImages) -> str:
    """One line on what was loaded ("87 training / 13 held-out views, 100x100, object scene"); photos of several
    sizes are counted ("3 sizes, most 270x480"), a downscale is named ("downscaled by 2")."""
    sizes = {data.size_of(i) for i in range(len(data.names))}
    size = f"{data.cameras.width}x{data.cameras.height}"
    shown = f"{len(sizes)} sizes, most {size}" if len(sizes) > 1 else size
    scaled = f" (downscaled by {data.downscale})" if data.downscale != 1 else ""
    return (f"{len(data.train_indices)} training / {len(data.heldout_indices)} held-out views, "
            f"{shown}{scaled}, {data.kind} scene")


def train(request: TrainRequest, progress: ProgressCallback | None = None) -> TrainResult:
    """Load the dataset, train, evaluate. Events: a line describing the data (total 0), then "training"
    (done/total steps, loss/psnr/rays_per_s metrics, the live Scene as snapshot), then the evaluation.
    If `progress` raises Cancelled, the checkpoint of the last step is kept (a `resume=True` request continues
    it) and Cancelled propagates."""
    config = request.config()
    return train_on(load_dataset(request, progress), request, progress, config)


def load_dataset(request: TrainRequest, progress: ProgressCallback | None = None) -> PosedImages:
    """The request's posed photos, and a line describing them (an event with total 0)."""
    from scenes.data import load_posed_images

    data = load_posed_images(request.data_dir, options=request.load_options())
    for note in data.notes:  # an automatic downscale, skipped frames
        report(progress, note)
    report(progress, describe_data(data))
    return data


def train_on(data: PosedImages, request: TrainRequest, progress: ProgressCallback | None = None,
             config: TrainConfig | None = None) -> TrainResult:
    """`train` for a dataset already loaded (the demo loads it first to say how many views it has)."""
    from scenes.train import train_scene

    config = config or request.config()
    report(progress, STAGE_TRAINING, 0, config.steps)
    # each step reports a "training" event (loss, psnr, rays_per_s, samples_per_ray; the live Scene as snapshot);
    # a Cancelled raised by `progress` saves a checkpoint in train_scene and propagates
    scene = train_scene(data, request.out_dir, config, minutes=request.minutes, resume=request.resume,
                        overwrite=request.overwrite, show_progress=False, progress=progress)
    heldout = None
    if request.evaluate and data.heldout_indices:
        heldout = measure_heldout(scene, data, progress)
    return TrainResult(request.out_dir, scene, scene.step, float(scene.metrics.get("train_seconds", 0.0)), heldout)


def measure_heldout(scene: Scene, data: PosedImages, progress: ProgressCallback | None = None) -> HeldOut:
    """Mean PSNR/SSIM over the held-out views (none is an error naming the dataset)."""
    from scenes.evaluate import evaluate_scene

    if data.heldout_indices:
        report(progress, STAGE_EVALUATING, 0, len(data.heldout_indices))
    metrics = evaluate_scene(scene, data)
    return HeldOut(metrics.mean_psnr, metrics.mean_ssim, len(metrics.views))


def continues_checkpoint(request: TrainRequest, data: PosedImages | None = None) -> bool:
    """Whether `out_dir` holds checkpoints of a run on the same dataset with the same preset and seed, so that
    a cancelled run can be resumed (`resume=True`) rather than started again. Given the loaded `data`, its photos
    must also be the ones that run trained on (content hash): after photos were added, excluded or changed in the
    same folder, the answer is no, and the scene is trained again instead of resumed stale."""
    from scenes.train import CHECKPOINTS, read_run_info

    if not (request.out_dir / CHECKPOINTS).is_dir():
        return False
    try:
        info = read_run_info(request.out_dir)
    except VistaError:
        return False
    # the dataset's `source` as scenes.data.load_posed_images records it: the folder, or a transforms file's folder
    source = request.data_dir.parent if request.data_dir.is_file() else request.data_dir
    same_photos = data is None or (info.get("data_hash") == data.content_hash
                                    and info.get("downscale", 1) == data.downscale)
    return info.get("data") == str(source) and info.get("preset") == request.preset and \
        info.get("seed") == request.seed and same_photos
