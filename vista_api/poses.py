"""Posed datasets: camera poses for photos by structure from motion (`vista poses`, the studio's upload), and a
COLMAP model turned into a dataset (`vista import`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vista_core.errors import VistaError
from vista_core.progress import ProgressCallback

if TYPE_CHECKING:
    from scenes.sfm import SfmReport

MATCHERS = ("auto", "sequential", "exhaustive")


@dataclass(frozen=True)
class PosesRequest:
    photos: Path
    """Folder of photos, or a .zip of them."""
    out_dir: Path
    """Dataset folder to write."""
    matcher: str = "auto"
    """sequential (neighbours in capture order + checked loop closures), exhaustive (all pairs), auto (sequential
    when the photos have a capture order: numbered frames or EXIF times; else exhaustive up to 100 photos)."""
    max_size_px: int | None = None
    """Working resolution: the longest image side (None: scenes.preflight.DEFAULT_MAX_SIZE_PX)."""
    seed: int = 0
    """Seed of COLMAP's mapper."""

    def __post_init__(self) -> None:
        from scenes.preflight import MIN_SIDE_PX

        object.__setattr__(self, "photos", Path(self.photos))
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.matcher not in MATCHERS:  # scenes.sfm's own message
            raise VistaError(f"unknown matcher {self.matcher!r}: use auto, sequential or exhaustive")
        if self.max_size_px is not None and self.max_size_px < MIN_SIDE_PX:  # scenes.preflight's own message
            raise VistaError(f"--max-size {self.max_size_px} is below the {MIN_SIDE_PX} px minimum")


@dataclass(frozen=True)
class PosesResult:
    dataset_dir: Path
    report: SfmReport
    report_file: Path

    @property
    def summary(self) -> str:
        """One line for the user: registered photos, reprojection error, points and the suggestion, if any."""
        r = self.report
        return (f"{r.registered} of {len(r.photos)} photos registered, mean reprojection error "
                f"{r.mean_reprojection_error_px:.2f} px, {r.points} points"
                + (f", {r.suspicious} suspicious photo(s) left out" if r.suspicious else "")
                + (f"; {r.suggestion}" if r.suggestion else ""))


def estimate_poses(request: PosesRequest, progress: ProgressCallback | None = None) -> PosesResult:
    """Pre-flight checks + COLMAP structure from motion + pose checks -> images/, transforms.json, sparse_pc.ply,
    sfm_report.json.

    Events: one per phase, stage = what happens ("extracting features from 40 photos ..."), total 0. A capture
    that cannot be posed leaves its report in `out_dir` and raises VistaError with the reason."""
    from scenes.preflight import DEFAULT_MAX_SIZE_PX
    from scenes.sfm import REPORT_FILE
    from scenes.sfm import estimate_poses as run_sfm

    max_size = DEFAULT_MAX_SIZE_PX if request.max_size_px is None else request.max_size_px
    sfm_report = run_sfm(request.photos, request.out_dir, matcher=request.matcher, max_size=max_size,
                         seed=request.seed, progress=progress)
    return PosesResult(request.out_dir, sfm_report, request.out_dir / REPORT_FILE)


@dataclass(frozen=True)
class ImportRequest:
    colmap_dir: Path
    """COLMAP model folder (cameras/images/points3D, .bin or .txt), or a project folder with sparse/0."""
    out_dir: Path
    images_dir: Path | None = None
    """The photos (None: images/ next to or above the model)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "colmap_dir", Path(self.colmap_dir))
        object.__setattr__(self, "out_dir", Path(self.out_dir))


@dataclass(frozen=True)
class ImportResult:
    transforms_file: Path
    images: int
    width: int
    height: int

    def summary(self) -> str:
        return f"{self.images} posed images, {self.width}x{self.height}, written to {self.transforms_file}"


def import_colmap(request: ImportRequest) -> ImportResult:
    """Write transforms.json, images/ and sparse_pc.ply, then read the dataset back as the trainer will."""
    from scenes.colmap import import_colmap as write_dataset
    from scenes.data import load_posed_images

    transforms = write_dataset(request.colmap_dir, request.out_dir, images=request.images_dir)
    data = load_posed_images(request.out_dir)  # proves the trainer reads what was written
    return ImportResult(transforms, len(data.names), data.cameras.width, data.cameras.height)
