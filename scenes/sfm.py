"""Photos -> camera poses with structure from motion in-process: the only module that imports pycolmap.

pycolmap bundles COLMAP, so SIFT extraction, matching, geometric verification and incremental
mapping run on the CPU without a separately installed binary. `estimate_poses` is, step by step:

1. the photos (a folder, or a zip extracted with `scenes.safezip`) pass the pre-flight check
   (`scenes.preflight`): upright, 8-bit, one working size, blurred and duplicate photos excluded;
2. COLMAP extracts SIFT features with one shared OPENCV camera (the EXIF focal length, when the photos
   carry one, is its prior), then matches pairs: all of them for small sets, neighbours in name order
   for long ordered sequences (video frames);
3. incremental mapping; of the models it returns, the one with the most registered photos is kept;
4. the model becomes `transforms.json` + `sparse_pc.ply` (`scenes.imports`, nerfstudio's conventions)
   and `sfm_report.json`, which says for every photo whether it was used and, if not, why, and for the
   capture the registered fraction, mean reprojection error, number of points and one suggestion.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from scenes.colmap import (
    MatchStats,
    extract_features,
    map_incrementally,
    match_pairs,
    match_stats,
    sparse_model_from_reconstruction,
)
from scenes.imports import write_posed_dataset
from scenes.preflight import DEFAULT_MAX_SIZE_PX, Preflight, preflight_photos, summarize_exclusions
from vista_core.errors import VistaError
from vista_core.files import atomic_write_json
from vista_core.progress import ProgressCallback, ProgressEvent

log = logging.getLogger(__name__)

Matcher = Literal["auto", "sequential", "exhaustive"]
MIN_PHOTOS = 3
EXHAUSTIVE_MAX_PHOTOS = 100  # 4,950 pairs: about ten minutes of matching on two cores
MIN_FEATURES = 100  # fewer SIFT features than this: textureless, dark or very blurred
MIN_INLIERS = 15  # COLMAP's mapper ignores image pairs with fewer verified matches (min_num_matches)
REPORT_FILE = "sfm_report.json"


@dataclass
class PhotoResult:
    """One photo's outcome; `status` is 'registered' or 'excluded' (pre-flight) or 'not registered'."""

    name: str
    status: str
    reason: str = ""
    working_name: str | None = None
    features: int = 0
    best_inliers: int = 0  # most verified matches with any other photo
    points: int = 0  # 3D points it observes (registered photos)


@dataclass
class SfmReport:
    photos: list[PhotoResult]
    matcher: str = ""
    registered: int = 0
    considered: int = 0  # photos that passed the pre-flight check
    registered_fraction: float = 0.0  # of all photos given
    mean_reprojection_error_px: float = 0.0
    points: int = 0
    models: list[int] = field(default_factory=list)  # registered photos per model COLMAP produced
    suggestion: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    working_size: tuple[int, int] = (0, 0)
    focal_prior_px: float | None = None

    @property
    def ok(self) -> bool:
        return self.registered >= MIN_PHOTOS

    def table(self) -> str:
        """A plain-text table: one row per photo, then the capture's summary."""
        width = max([len(p.name) for p in self.photos] + [5])
        lines = [f"{'photo':<{width}}  {'status':<15} {'feat':>5} {'inl':>5} {'pts':>5}  reason"]
        for p in self.photos:
            lines.append(f"{p.name:<{width}}  {p.status:<15} {p.features:>5} {p.best_inliers:>5} {p.points:>5}  "
                         f"{p.reason}")
        lines.append(f"registered {self.registered}/{len(self.photos)} photos ({self.registered_fraction:.0%}), "
                     f"mean reprojection error {self.mean_reprojection_error_px:.2f} px, {self.points} points, "
                     f"matcher {self.matcher}, {sum(self.seconds.values()):.0f} s")
        if self.suggestion:
            lines.append(f"suggestion: {self.suggestion}")
        return "\n".join(lines)


def choose_matcher(names: list[str], matcher: Matcher) -> str:
    """Exhaustive for sets COLMAP can match all-pairs in minutes; sequential for longer captures.

    Without a vocabulary tree (a download) sequential matching is the only scalable choice; it needs
    the name order to follow the capture order, as it does for video frames and phone photo numbering.
    """
    if matcher != "auto":
        return matcher
    return "exhaustive" if len(names) <= EXHAUSTIVE_MAX_PHOTOS else "sequential"


_MARKER = ".made-by-vista-poses"


def _fresh_dir(path: Path) -> Path:
    """An empty folder at `path`, replacing one an earlier `vista poses` run made; never anyone else's."""
    if path.is_symlink() or (path.exists() and not (path / _MARKER).is_file()):
        raise VistaError(f"{path}: exists and was not made by `vista poses`; choose another --out "
                         "(nothing was changed)")
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / _MARKER).write_text("this folder is replaced when `vista poses` runs again\n")
    return path


def _check_folders(source: Path, out_dir: Path) -> None:
    """Refuse an --out that would overwrite or sit inside the photos (a retry would read its own output)."""
    src, out = source.resolve(), out_dir.resolve()
    if src.is_dir() and (out == src or out.is_relative_to(src) or src.is_relative_to(out / "images")
                         or src.is_relative_to(out / "colmap") or src.is_relative_to(out / "photos")):
        raise VistaError(f"{out_dir}: --out must be outside the photo folder {source} (and not its parent's "
                         "images/ folder)")


def _collect_photos(source: Path, out_dir: Path) -> Path:
    """The folder of photos: `source` itself, or a zip extracted safely into out_dir/photos."""
    from scenes.safezip import extract_zip

    if not source.exists():
        raise VistaError(f"{source}: not found")
    if source.is_file():
        if source.suffix.lower() != ".zip":
            raise VistaError(f"{source}: expected a folder of photos or a .zip of them")
        target = _fresh_dir(out_dir / "photos")
        try:
            extract_zip(source, target)
        except VistaError:
            shutil.rmtree(target)  # a refused archive leaves nothing behind, not even our marker
            raise
        return target
    return source


def _why_not_registered(name: str, stats: MatchStats, registered: set[str]) -> str:
    n_features = stats.features.get(name, 0)
    if n_features < MIN_FEATURES:
        return f"too few features ({n_features}): textureless, dark or blurred"
    best = stats.best_inliers.get(name, 0)
    if best < MIN_INLIERS:
        return f"too few matches (best {best} with any photo): it does not overlap the others"
    with_model = max((c for other, c in stats.partners[name].items() if other in registered), default=0)
    if with_model < MIN_INLIERS:
        return (f"matches only photos outside the kept model (best {with_model} with it): "
                "a separate group that could not be joined")
    return f"matched (best {best}) but no consistent pose: too little parallax or repeated patterns"


def _suggestion(report: SfmReport, order: list[str], registered: set[str]) -> str:
    """One actionable sentence for a capture that failed or registered under 90% of its photos."""
    n = len(report.photos)
    excluded = [p for p in report.photos if p.status == "excluded"]
    blurred = sum(p.reason.startswith("blurred") for p in excluded)
    duplicates = sum("duplicate" in p.reason for p in excluded)
    unreadable = len(excluded) - blurred - duplicates
    if n < MIN_PHOTOS:
        return f"only {n} photo(s): take 20 or more, moving around the subject between shots"
    if report.considered < MIN_PHOTOS:
        worst = max((duplicates, "the photos are (near-)identical: move the camera between shots"),
                    (blurred, "the photos are too blurry: hold still or use more light"),
                    (unreadable, "most files are not usable photos: see the reasons per photo"))
        return worst[1]
    if report.registered_fraction >= 0.9:
        return ""
    if blurred > 0.2 * n:
        return "the photos are too blurry: hold still or use more light, then retry"
    if report.registered < MIN_PHOTOS:
        return ("no photos could be posed together: they need strong overlap (every part of the scene in 3+ "
                "photos, about 10-20 degrees apart) and a textured subject; try --matcher exhaustive")
    gap = _largest_gap(order, registered)
    if gap and report.matcher == "sequential":
        return (f"add photos between {gap[0]} and {gap[1]}, or retry with --matcher exhaustive if the names "
                "are not in capture order")
    if gap:
        return f"add photos between {gap[0]} and {gap[1]} (the photos in between did not connect)"
    return "add more overlapping photos of the parts that were not registered"


def _largest_gap(order: list[str], registered: set[str]) -> tuple[str, str] | None:
    """The longest run of unregistered photos (in name order) and the registered photos around it."""
    best, start = (0, None), None
    for i, name in enumerate(order + [None]):
        if name is not None and name not in registered:
            start = i if start is None else start
        elif start is not None:
            if i - start > best[0]:
                best = (i - start, (start, i))
            start = None
    if best[1] is None:
        return None
    lo, hi = best[1]
    before = order[lo - 1] if lo > 0 else order[lo]
    after = order[hi] if hi < len(order) else order[hi - 1]
    return before, after


def estimate_poses(source: Path, out_dir: Path, matcher: Matcher = "auto", max_size: int = DEFAULT_MAX_SIZE_PX,
                   seed: int = 0, progress: ProgressCallback | None = None) -> SfmReport:
    """Photos (folder or zip) -> `out_dir` with images/, transforms.json, sparse_pc.ply and sfm_report.json.

    A capture that cannot be posed still leaves its report (and the checked images) in `out_dir` and
    raises VistaError with the reason, so the run can be retried with other settings.
    Each phase is a note to `progress`: `ProgressEvent(stage=message)`, total 0 (logged when there is no
    callback); a `Cancelled` it raises stops the run between phases.
    """
    say = log.info if progress is None else (lambda message: progress(ProgressEvent(message)))
    source, out_dir = Path(source), Path(out_dir)
    if matcher not in ("auto", "sequential", "exhaustive"):
        raise VistaError(f"unknown matcher {matcher!r}: use auto, sequential or exhaustive")
    _check_folders(source, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # 1. pre-flight
    preflight, report = _preflight(source, out_dir, max_size, say)
    names = [v.working_name for v in preflight.used]
    if len(names) < MIN_PHOTOS:
        return _fail(report, preflight, out_dir, [], set(), f"{len(names)} usable photo(s); structure from motion "
                                                            f"needs at least {MIN_PHOTOS}")
    # 2. features and matches (a fresh database each run, so retries with other settings start clean)
    work = _fresh_dir(out_dir / "colmap")
    database = work / "database.db"
    report.matcher = choose_matcher(names, matcher)
    _features_and_matches(database, out_dir / "images", names, preflight, report, max_size, say)
    # 3. incremental mapping; keep the largest model
    say("incremental mapping")
    t0 = time.perf_counter()
    models = map_incrementally(database, out_dir / "images", work / "sparse", seed)
    report.seconds["mapping"] = time.perf_counter() - t0
    stats = match_stats(database)
    by_name = {p.working_name: p for p in report.photos if p.working_name}
    for name, photo in by_name.items():
        photo.features = stats.features.get(name, 0)
        photo.best_inliers = stats.best_inliers.get(name, 0)
    report.models = sorted((int(m.num_reg_images()) for m in models.values()), reverse=True)
    if not models:
        return _fail(report, preflight, out_dir, names, set(), "COLMAP could not initialise a reconstruction "
                                                               "from any pair of photos")
    model, registered = _keep_largest(models, work, report, by_name, stats)
    if len(registered) < MIN_PHOTOS:
        return _fail(report, preflight, out_dir, names, registered, f"only {len(registered)} photos registered")
    # 4. the dataset the trainer reads
    write_posed_dataset(model, out_dir)
    report.suggestion = _suggestion(report, names, registered)
    atomic_write_json(out_dir / REPORT_FILE, _report_json(report))
    return report


def _preflight(source: Path, out_dir: Path, max_size: int, say: Callable[[str], None]):
    """Check the photos into `out_dir/images` and start the report (every photo: excluded or not yet registered)."""
    from scenes.preflight import focal_prior

    t0 = time.perf_counter()
    photos_dir = _collect_photos(source, out_dir)
    image_dir = _fresh_dir(out_dir / "images")  # a retry replaces the working images of the previous run
    for stale in ("transforms.json", "sparse_pc.ply"):  # poses of an earlier run do not fit the new images
        (out_dir / stale).unlink(missing_ok=True)
    preflight = preflight_photos(photos_dir, image_dir, max_size=max_size)
    seconds = {"preflight": time.perf_counter() - t0}
    say(summarize_exclusions(preflight))
    report = SfmReport([PhotoResult(v.name, "excluded" if not v.used else "not registered", v.reason,
                                    v.working_name) for v in preflight.verdicts],
                       considered=len(preflight.used), seconds=seconds, working_size=preflight.working_size)
    report.focal_prior_px = focal_prior(preflight)
    return preflight, report


def _features_and_matches(database: Path, image_dir: Path, names: list[str], preflight, report: SfmReport,
                          max_size: int, say: Callable[[str], None]) -> None:
    say(f"extracting features from {len(names)} photos at {preflight.working_size[0]}x{preflight.working_size[1]}"
        + (f" (EXIF focal length prior {report.focal_prior_px:.0f} px)" if report.focal_prior_px else ""))
    t0 = time.perf_counter()
    extract_features(database, image_dir, names, preflight.working_size, report.focal_prior_px, max_size)
    report.seconds["features"] = time.perf_counter() - t0
    say(f"matching ({report.matcher})")
    t0 = time.perf_counter()
    match_pairs(database, report.matcher)
    report.seconds["matching"] = time.perf_counter() - t0


def _keep_largest(models: dict, work: Path, report: SfmReport, by_name: dict, stats):
    """Write the largest reconstruction to `work/model` and record per photo whether (and why not) it registered."""
    largest = max(models.values(), key=lambda m: (m.num_reg_images(), m.num_points3D()))
    (work / "model").mkdir(parents=True, exist_ok=True)
    largest.write(work / "model")  # `vista import DATA/colmap/model` reads it back
    model = sparse_model_from_reconstruction(largest, str(work / "model"))
    registered = {im.name for im in model.images}
    for image_id in largest.reg_image_ids():
        image = largest.image(image_id)
        by_name[image.name].points = int(image.num_points3D)
    for name, photo in by_name.items():
        photo.status = "registered" if name in registered else "not registered"
        photo.reason = "" if name in registered else _why_not_registered(name, stats, registered)
    report.registered = len(registered)
    report.registered_fraction = len(registered) / len(report.photos)
    report.mean_reprojection_error_px = float(largest.compute_mean_reprojection_error())
    report.points = int(largest.num_points3D())
    return model, registered


def _report_json(report: SfmReport) -> dict:
    data = asdict(report)
    data["working_size"] = list(report.working_size)
    return data


def _fail(report: SfmReport, preflight: Preflight, out_dir: Path, order: list[str], registered: set[str],
          what: str) -> SfmReport:
    report.suggestion = _suggestion(report, order, registered)
    atomic_write_json(out_dir / REPORT_FILE, _report_json(report))
    raise VistaError(f"{out_dir}: {what}; {report.suggestion} (per-photo reasons in {out_dir / REPORT_FILE})")


@dataclass
class PoseErrors:
    """Recovered poses against reference ones after a similarity alignment of the camera centres."""

    names: list[str]  # photos present in both
    rotation_deg: np.ndarray  # [M]
    position: np.ndarray  # [M] world units of the reference
    extent: float  # diagonal of the reference camera centres' bounding box
    scale: float  # of the alignment, reference units per recovered unit

    @property
    def median_rotation_deg(self) -> float:
        return float(np.median(self.rotation_deg))

    @property
    def median_position_fraction(self) -> float:
        return float(np.median(self.position)) / self.extent


def _camera_poses(transforms: dict) -> dict[str, np.ndarray]:
    return {Path(f["file_path"]).name: np.asarray(f["transform_matrix"], np.float64)[:3, :4]
            for f in transforms["frames"]}


def compare_poses(recovered: dict, reference: dict) -> PoseErrors:
    """Align recovered camera centres to the reference ones (Umeyama similarity, scikit-image) and measure
    per-photo rotation (degrees) and position errors. Frames are matched by file name."""
    from skimage.transform import SimilarityTransform

    ours, theirs = _camera_poses(recovered), _camera_poses(reference)
    names = sorted(set(ours) & set(theirs))
    if len(names) < 3:
        raise VistaError(f"only {len(names)} photos in common with the reference; cannot align")
    src = np.stack([ours[n][:, 3] for n in names])
    dst = np.stack([theirs[n][:, 3] for n in names])
    similarity = SimilarityTransform.from_estimate(src, dst)
    if not isinstance(similarity, SimilarityTransform):  # a FailedEstimation says why
        raise VistaError(f"camera centres are degenerate (collinear?); cannot align ({similarity})")
    matrix = similarity.params
    scale = float(np.cbrt(np.linalg.det(matrix[:3, :3])))
    rotation = matrix[:3, :3] / scale
    aligned = src @ matrix[:3, :3].T + matrix[:3, 3]
    angles = []
    for n in names:
        relative = theirs[n][:, :3].T @ (rotation @ ours[n][:, :3])
        angles.append(np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1, 1))))
    extent = float(np.linalg.norm(dst.max(0) - dst.min(0)))
    return PoseErrors(names, np.array(angles), np.linalg.norm(aligned - dst, axis=1), extent, scale)
