"""Photos -> camera poses with structure from motion in-process (COLMAP through pycolmap, `scenes.colmap`).

`estimate_poses` is, step by step:

1. the photos (a folder, or a zip extracted with `scenes.safezip`) pass the pre-flight check
   (`scenes.preflight`): upright, 8-bit, at most `max_size` pixels, blurred and duplicate photos excluded;
   photos of other sizes, orientations and cameras are kept;
2. the capture order, if the photos have one (numbered frames, EXIF capture times: `scenes.sfm_order`);
3. COLMAP extracts SIFT features, one camera per group of photos with the same size and EXIF focal length
   (the focal length is the camera's prior), then matches pairs: for an ordered capture its neighbours plus
   loop-closure candidates, whose relative rotations must agree with the chain of neighbours around every
   cycle (`scenes.sfm_graph`); without an order, all pairs;
4. incremental mapping (the largest model is kept), then the checks of `scenes.sfm_graph`: every strongly
   matched pair's two-view rotation against the mapped poses and, for ordered captures, jumps in the
   trajectory. When photos look misplaced or under 90% registered, COLMAP's global mapper (GLOMAP) runs too
   and the result with more trusted photos is kept. Suspicious photos are reported and left out;
5. the model becomes `transforms.json` (per-photo intrinsics when photos differ, as nerfstudio writes them) +
   `sparse_pc.ply` (`scenes.imports`) and `sfm_report.json` (`scenes.sfm_report`): for every photo whether it
   was used and, if not, why; for the capture the registered fraction, the checks and one suggestion.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from scenes.colmap import (
    CameraGroup,
    camera_centres,
    extract_features,
    forget_pairs,
    map_globally,
    map_incrementally,
    mapped_pair_agreement,
    match_pairs,
    match_stats,
    restore_pairs,
    sparse_model_from_reconstruction,
    verified_pairs,
)
from scenes.imports import write_posed_dataset
from scenes.preflight import DEFAULT_MAX_SIZE_PX, Preflight, preflight_photos, summarize_exclusions
from scenes.sfm_accuracy import PoseErrors, compare_poses
from scenes.sfm_graph import PoseCheck, check_poses, contradicted_pairs, is_loop_pair
from scenes.sfm_order import ALL_PAIRS_MAX_PHOTOS, CaptureOrder, candidate_pairs, capture_order
from scenes.sfm_report import (
    MIN_PHOTOS,
    REPORT_FILE,
    PhotoResult,
    SfmReport,
    _largest_gap,
    _report_json,
    _suggestion,
    _why_not_registered,
)
from vista_core.errors import VistaError
from vista_core.files import atomic_write_json
from vista_core.progress import ProgressCallback, ProgressEvent

__all__ = ["REPORT_FILE", "PhotoResult", "PoseErrors", "SfmReport", "_largest_gap", "choose_matcher",
           "compare_poses", "estimate_poses"]

log = logging.getLogger(__name__)

Matcher = Literal["auto", "sequential", "exhaustive"]
GLOBAL_MAPPER_BELOW = 0.9  # run the global mapper too when fewer of the considered photos are trusted


def choose_matcher(order: CaptureOrder, matcher: Matcher) -> str:
    """'auto': sequential (neighbours + checked loop closures) for an ordered capture; else exhaustive up to
    ALL_PAIRS_MAX_PHOTOS photos, and sequential in name order beyond (no vocabulary tree offline)."""
    if matcher != "auto":
        return matcher
    if order.ordered or len(order.names) > ALL_PAIRS_MAX_PHOTOS:
        return "sequential"
    return "exhaustive"


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
        return _fail(report, out_dir, [], set(), f"{len(names)} usable photo(s); structure from motion "
                                                 f"needs at least {MIN_PHOTOS}")
    # 2. capture order; 3. features and matches (a fresh database each run, so retries start clean)
    order = capture_order(names, {v.working_name: v.taken_at for v in preflight.used})
    report.order = order.source
    report.matcher = choose_matcher(order, matcher)
    work = _fresh_dir(out_dir / "colmap")
    database = work / "database.db"
    _features_and_matches(database, out_dir / "images", order, preflight, report, max_size, say)
    pairs = _checked_pairs(database, out_dir / "images", work, order, report, seed, say)
    # 4. mapping and checks
    stats = match_stats(database)
    by_name = {p.working_name: p for p in report.photos if p.working_name}
    for name, photo in by_name.items():
        photo.features = stats.features.get(name, 0)
        photo.best_inliers = stats.best_inliers.get(name, 0)
    result = _map_and_check(database, out_dir / "images", work, order, pairs, report, seed, say)
    if result is None:
        return _fail(report, out_dir, order.names, set(), "COLMAP could not initialise a reconstruction "
                                                          "from any pair of photos")
    reconstruction, check = result
    model, registered = _keep(reconstruction, check, work, report, by_name, stats)
    if len(registered) < MIN_PHOTOS:
        return _fail(report, out_dir, order.names, registered, f"only {len(registered)} photos registered")
    # 5. the dataset the trainer reads
    write_posed_dataset(model, out_dir)
    report.suggestion = _suggestion(report, order.names, registered)
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
                                    v.working_name, width=v.working_width, height=v.working_height)
                        for v in preflight.verdicts],
                       considered=len(preflight.used), seconds=seconds, working_size=preflight.working_size)
    report.focal_prior_px = focal_prior(preflight)
    return preflight, report


def camera_groups(preflight: Preflight) -> list[CameraGroup]:
    """Photos with the same working size and EXIF focal length share a COLMAP camera; the rest get their own."""
    groups: dict[tuple, list[str]] = {}
    for v in preflight.used:
        focal = round(v.focal_px_prior, 1) if v.focal_px_prior else None
        groups.setdefault((v.working_width, v.working_height, focal), []).append(v.working_name)
    return [CameraGroup(tuple(names), (w, h), focal) for (w, h, focal), names in groups.items()]


def _features_and_matches(database: Path, image_dir: Path, order: CaptureOrder, preflight: Preflight,
                          report: SfmReport, max_size: int, say: Callable[[str], None]) -> None:
    groups = camera_groups(preflight)
    report.cameras = len(groups)
    sizes = Counter(g.size for g in groups for _ in g.names)
    say(f"extracting features from {len(order.names)} photos ({len(groups)} camera(s), mostly "
        f"{sizes.most_common(1)[0][0][0]}x{sizes.most_common(1)[0][0][1]})"
        + (f", EXIF focal length prior {report.focal_prior_px:.0f} px" if report.focal_prior_px else ""))
    t0 = time.perf_counter()
    extract_features(database, image_dir, groups, max_size)
    report.seconds["features"] = time.perf_counter() - t0
    pairs = candidate_pairs(order, report.matcher)
    say(f"matching {len(pairs)} pairs ({report.matcher}"
        + (f", capture order from {order.source})" if order.ordered and report.matcher == "sequential" else ")"))
    t0 = time.perf_counter()
    match_pairs(database, pairs, database.parent)
    report.seconds["matching"] = time.perf_counter() - t0


def _checked_pairs(database: Path, images: Path, work: Path, order: CaptureOrder, report: SfmReport, seed: int,
                   say: Callable[[str], None]) -> dict:
    """Verified pairs; in sequential mode, loop-closure pairs that a model mapped from neighbouring pairs only
    contradicts (`scenes.sfm_graph`) are dropped from the database before the final mapping."""
    pairs = verified_pairs(database)
    index = {name: i for i, name in enumerate(order.names)}
    loops = {pair: g for pair, g in pairs.items() if is_loop_pair(index, *pair)}
    if report.matcher == "sequential" and loops:
        say(f"checking {len(loops)} loop-closure pairs against a model mapped from neighbouring photos")
        t0 = time.perf_counter()
        forget_pairs(database, loops)
        models = map_incrementally(database, images, work / "sparse-neighbours", seed)
        rejected = []
        if models:
            chain = max(models.values(), key=lambda m: (m.num_reg_images(), m.num_points3D()))
            rejected = contradicted_pairs(mapped_pair_agreement(chain, database, loops))
        restore_pairs(database, {pair: g for pair, g in loops.items() if pair not in set(rejected)})
        for pair in rejected:
            del pairs[pair]
        report.loop_pairs_rejected = len(rejected)
        report.seconds["loop check"] = time.perf_counter() - t0
    report.pairs_matched = len(pairs)
    return pairs


@dataclass
class _Candidate:
    mapper: str
    reconstruction: object  # pycolmap.Reconstruction
    check: PoseCheck

    @property
    def trusted(self) -> int:
        return int(self.reconstruction.num_reg_images()) - len(self.check.suspicious)


def _map_and_check(database: Path, images: Path, work: Path, order: CaptureOrder, pairs, report: SfmReport,
                   seed: int, say: Callable[[str], None]):
    """Incremental mapping, checked; the global mapper too when the result looks wrong or incomplete."""
    candidates = []
    for mapper in ("incremental", "global"):
        if candidates and candidates[0].trusted >= GLOBAL_MAPPER_BELOW * report.considered:
            break
        say(f"{mapper} mapping")
        t0 = time.perf_counter()
        try:
            models = (map_incrementally(database, images, work / "sparse-incremental", seed) if mapper == "incremental"
                      else map_globally(database, images, work / "sparse-global", seed,
                                        candidates[0].reconstruction if candidates else None))
        except Exception as error:  # noqa: BLE001 - a failing second mapper must not lose the first's result
            if mapper == "incremental":
                raise
            log.warning("the global mapper failed (%s); keeping the incremental result", error)
            models = {}
        report.seconds[f"mapping ({mapper})"] = time.perf_counter() - t0
        if mapper == "incremental":
            report.models = sorted((int(m.num_reg_images()) for m in models.values()), reverse=True)
        if not models:
            continue
        largest = max(models.values(), key=lambda m: (m.num_reg_images(), m.num_points3D()))
        agreement = mapped_pair_agreement(largest, database, pairs)
        check = check_poses(camera_centres(largest), agreement, order.names if order.ordered else None)
        candidates.append(_Candidate(mapper, largest, check))
        report.mappers[mapper] = [int(largest.num_reg_images()), len(check.suspicious)]
    if not candidates:
        return None
    best = max(candidates, key=lambda c: (c.trusted, -len(c.check.suspicious)))
    report.mapper = best.mapper
    return best.reconstruction, best.check


def _keep(reconstruction, check: PoseCheck, work: Path, report: SfmReport, by_name: dict, stats):
    """Leave the suspicious photos out, write the model to `work/model` and record every photo's outcome."""
    for image_id in list(reconstruction.reg_image_ids()):
        image = reconstruction.image(image_id)
        if image.name in check.suspicious:
            reconstruction.deregister_frame(image.frame_id)
    (work / "model").mkdir(parents=True, exist_ok=True)
    reconstruction.write(work / "model")  # `vista import DATA/colmap/model` reads it back
    model = sparse_model_from_reconstruction(reconstruction, str(work / "model"))
    registered = {im.name for im in model.images}
    for image_id in reconstruction.reg_image_ids():
        image = reconstruction.image(image_id)
        by_name[image.name].points = int(image.num_points3D)
    for name, photo in by_name.items():
        photo.status = "registered" if name in registered else "not registered"
        photo.reason = "" if name in registered else _why_not_registered(name, stats, registered)
        if name in check.suspicious:
            photo.status, photo.reason = "suspicious", check.suspicious[name]
    report.registered = len(registered)
    report.registered_fraction = len(registered) / len(report.photos)
    report.mean_reprojection_error_px = float(reconstruction.compute_mean_reprojection_error())
    report.points = int(reconstruction.num_points3D())
    report.pairs_checked, report.pairs_disagreeing = check.pairs_checked, check.pairs_disagreeing
    report.suspicious = len(check.suspicious)
    return model, registered


def _fail(report: SfmReport, out_dir: Path, order: list[str], registered: set[str], what: str) -> SfmReport:
    report.suggestion = _suggestion(report, order, registered)
    atomic_write_json(out_dir / REPORT_FILE, _report_json(report))
    raise VistaError(f"{out_dir}: {what}; {report.suggestion} (per-photo reasons in {out_dir / REPORT_FILE})")
