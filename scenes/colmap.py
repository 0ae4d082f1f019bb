"""COLMAP through pycolmap: the only module that imports pycolmap.

pycolmap bundles COLMAP, so feature extraction, matching of chosen pairs, incremental and global (GLOMAP)
mapping and reading model folders (cameras/images/points3D as .bin or .txt) run in-process. `scenes.sfm` orders these steps into
`vista poses`; `import_colmap` turns a COLMAP model folder into a dataset (`vista import`), written by
`scenes.imports` in nerfstudio's format.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenes.imports import SparseImage, SparseModel, colmap_camera_to_opencv, write_posed_dataset
from vista_core.errors import VistaError

log = logging.getLogger("vista.sfm")



def _pycolmap():
    try:
        import pycolmap
    except ImportError as error:  # pragma: no cover - pinned dependency
        raise VistaError("pycolmap is not installed; run setup.sh (it is a pinned dependency)") from error
    if not log.isEnabledFor(logging.DEBUG):
        pycolmap.logging.minloglevel = 1  # COLMAP's per-image INFO lines only with --verbose
    return pycolmap


@dataclass(frozen=True)
class CameraGroup:
    """Photos that share one COLMAP camera: the same working size and the same EXIF focal prior."""

    names: tuple[str, ...]
    size: tuple[int, int]  # (width, height)
    focal_prior_px: float | None


# COLMAP's default SIMPLE_RADIAL (one focal length, one distortion term) for every camera. OPENCV's four
# distortion terms and two focal lengths, refined from the first pair of photos, ran away on skull-66 (a 55 mm
# lens on APS-C: k2 = 85 after the first bundle adjustment) and 3 of 66 photos registered; SIMPLE_RADIAL gave
# 42 + 16 + 5 photos in three models (one model of 62 with the registration thresholds of `_mapper_options`).
# Lenses at working resolution are described well by one radial term, and a one-photo camera constrains no more.
CAMERA_MODEL = "SIMPLE_RADIAL"


def extract_features(database: Path, images: Path, groups: list[CameraGroup], max_size: int) -> None:
    """SIFT features (COLMAP) for every photo, one camera per group (`CameraMode.SINGLE` per call)."""
    pycolmap = _pycolmap()
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = max_size
    for group in groups:
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = CAMERA_MODEL
        if group.focal_prior_px:
            w, h = group.size
            # manual parameters mark the focal length as a prior for the mapper (as COLMAP's EXIF reader does)
            reader.camera_params = f"{group.focal_prior_px},{w / 2},{h / 2},0"
        pycolmap.extract_features(database, images, image_names=list(group.names),
                                  camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
                                  extraction_options=extraction)


def match_pairs(database: Path, pairs: list[tuple[str, str]], work: Path) -> None:
    """Match and geometrically verify the given photo pairs (COLMAP's imported-pairs matcher)."""
    pycolmap = _pycolmap()
    pair_file = work / "pairs.txt"
    pair_file.write_text("".join(f"{a} {b}\n" for a, b in pairs))
    pairing = pycolmap.ImportedPairingOptions()
    pairing.match_list_path = pair_file
    pycolmap.match_image_pairs(database, pairing_options=pairing)


def _mapper_options(pycolmap, seed: int):
    options = pycolmap.IncrementalPipelineOptions()
    options.random_seed = seed
    options.ba_refine_principal_point = False
    # COLMAP registers a photo from >= 30 2D-3D inliers and starts from a pair with >= 100; skull-66 (a smooth,
    # flash-lit subject, 1,000-3,000 SIFT features per photo) links its views with 30-70 matches, so it split
    # into three models (42 + 16 + 5 photos). Half the thresholds joined 62 of 64 photos into one model; wrong
    # registrations this lets through are what the view-graph checks after mapping are for.
    options.mapper.abs_pose_min_num_inliers = 15
    options.mapper.init_min_num_inliers = 50
    return options


def map_incrementally(database: Path, images: Path, sparse_dir: Path, seed: int) -> dict:
    pycolmap = _pycolmap()
    sparse_dir.mkdir(parents=True, exist_ok=True)
    return pycolmap.incremental_mapping(database, images, sparse_dir, options=_mapper_options(pycolmap, seed))


def map_globally(database: Path, images: Path, sparse_dir: Path, seed: int, intrinsics_from=None) -> dict:
    """COLMAP's global mapper (GLOMAP: rotation averaging, then global positioning, then bundle adjustment).

    GLOMAP needs focal-length priors ("Global mapping failed" on the symmetric can without EXIF): with
    `intrinsics_from` (a reconstruction of this database) its refined cameras become the priors."""
    pycolmap = _pycolmap()
    if intrinsics_from is not None:
        with pycolmap.Database.open(database) as db:
            for camera in intrinsics_from.cameras.values():
                camera.has_prior_focal_length = True
                db.update_camera(camera)
    options = pycolmap.GlobalPipelineOptions()
    options.random_seed = seed
    options.mapper.random_seed = seed
    options.mapper.global_positioning.use_gpu = False  # CPU-only build: say so instead of warning at run time
    options.mapper.bundle_adjustment.ceres.use_gpu = False
    sparse_dir.mkdir(parents=True, exist_ok=True)
    return pycolmap.global_mapping(database, images, sparse_dir, options=options)


def verified_pairs(database: Path) -> dict[tuple[str, str], object]:
    """Verified photo pairs (a, b) -> their pycolmap.TwoViewGeometry (inlier matches, configuration)."""
    pycolmap = _pycolmap()
    with pycolmap.Database.open(database) as db:
        names = {int(im.image_id): im.name for im in db.read_all_images()}
        pair_ids, geometries = db.read_two_view_geometries()
    out = {}
    for pair_id, geometry in zip(pair_ids, geometries):
        a, b = pycolmap.pair_id_to_image_pair(pair_id)
        if a in names and b in names and len(geometry.inlier_matches):
            out[(names[a], names[b])] = geometry
    return out


def forget_pairs(database: Path, pairs) -> None:
    """Delete pairs' verified geometry so the mapper does not use them (their raw matches stay)."""
    pycolmap = _pycolmap()
    with pycolmap.Database.open(database) as db:
        ids = {im.name: int(im.image_id) for im in db.read_all_images()}
        for a, b in pairs:
            db.delete_two_view_geometry(ids[a], ids[b])


def restore_pairs(database: Path, geometries: dict) -> None:
    """Write back verified geometries `forget_pairs` deleted (from `verified_pairs`)."""
    pycolmap = _pycolmap()
    with pycolmap.Database.open(database) as db:
        ids = {im.name: int(im.image_id) for im in db.read_all_images()}
        for (a, b), geometry in geometries.items():
            db.write_two_view_geometry(ids[a], ids[b], geometry)


def mapped_pair_agreement(reconstruction, database: Path, geometries: dict) -> dict[tuple[str, str], tuple[int, float]]:
    """For pairs whose photos are both registered: (inlier matches, fraction of them on the epipolar lines of
    the mapped relative pose), see `scenes.sfm_graph.epipolar_agreement`."""
    from scenes.sfm_graph import epipolar_agreement

    pycolmap = _pycolmap()
    views = {}
    for image_id in reconstruction.reg_image_ids():
        image = reconstruction.image(image_id)
        views[image.name] = (image_id, np.asarray(image.cam_from_world().matrix(), np.float64), image.camera)
    out = {}
    with pycolmap.Database.open(database) as db:
        ids = {im.name: int(im.image_id) for im in db.read_all_images()}
        keypoints: dict[str, np.ndarray] = {}
        for (a, b), geometry in geometries.items():
            if a not in views or b not in views:
                continue
            for name in (a, b):
                if name not in keypoints:
                    keypoints[name] = np.asarray(db.read_keypoints(ids[name])[:, :2], np.float64)
            matches = np.asarray(geometry.inlier_matches)
            (_, pose_a, camera_a), (_, pose_b, camera_b) = views[a], views[b]
            rays_a = camera_a.cam_from_img(keypoints[a][matches[:, 0]])
            rays_b = camera_b.cam_from_img(keypoints[b][matches[:, 1]])
            focal = 0.5 * (camera_a.mean_focal_length() + camera_b.mean_focal_length())
            out[(a, b)] = (len(matches), epipolar_agreement(pose_a, pose_b, rays_a, rays_b, focal))
    return out


def camera_centres(reconstruction) -> dict[str, np.ndarray]:
    """Registered photo -> camera centre [3] in the reconstruction's world."""
    out = {}
    for image_id in reconstruction.reg_image_ids():
        image = reconstruction.image(image_id)
        pose = np.asarray(image.cam_from_world().matrix(), np.float64)
        out[image.name] = -pose[:, :3].T @ pose[:, 3]
    return out


def sparse_model_from_reconstruction(reconstruction, where: str) -> SparseModel:
    """pycolmap.Reconstruction -> SparseModel (registered images only)."""
    cameras = {int(cid): colmap_camera_to_opencv(cam.model.name, list(cam.params), int(cam.width), int(cam.height),
                                                 where)
               for cid, cam in reconstruction.cameras.items()}
    images = []
    for image_id in reconstruction.reg_image_ids():
        image = reconstruction.image(image_id)
        images.append(SparseImage(image.name, int(image.camera_id), np.asarray(image.cam_from_world().matrix()),
                                  int(image_id)))
    points = [point for _, point in sorted(reconstruction.points3D.items())]  # in id order
    xyz = np.array([p.xyz for p in points], np.float64).reshape(-1, 3)
    rgb = np.array([p.color for p in points], np.uint8).reshape(-1, 3)
    error = np.array([p.error for p in points], np.float64)
    return SparseModel(cameras, images, xyz, rgb, error)


def read_colmap_model(model_dir: Path) -> SparseModel:
    """A COLMAP model folder (cameras/images/points3D as .bin or .txt) read by pycolmap.Reconstruction."""
    pycolmap = _pycolmap()
    model_dir = Path(model_dir)
    try:
        reconstruction = pycolmap.Reconstruction(model_dir)
    except Exception as error:  # noqa: BLE001 - pycolmap raises RuntimeError/ValueError for bad files
        raise VistaError(f"{model_dir}: not a readable COLMAP model ({error})") from error
    if reconstruction.num_reg_images() == 0:
        raise VistaError(f"{model_dir}: the COLMAP model has no registered images")
    return sparse_model_from_reconstruction(reconstruction, str(model_dir))


@dataclass
class MatchStats:
    features: dict[str, int]
    best_inliers: dict[str, int]
    partners: dict[str, dict[str, int]]  # name -> {other name: verified inliers}


def match_stats(database: Path) -> MatchStats:
    pycolmap = _pycolmap()
    with pycolmap.Database.open(database) as db:
        images = {int(im.image_id): im.name for im in db.read_all_images()}
        features = {name: int(db.num_keypoints_for_image(iid)) for iid, name in images.items()}
        pair_ids, inliers = db.read_two_view_geometry_num_inliers()
    partners: dict[str, dict[str, int]] = {name: {} for name in images.values()}
    for pair_id, count in zip(pair_ids, inliers):
        a, b = pycolmap.pair_id_to_image_pair(pair_id)
        if a in images and b in images:
            partners[images[a]][images[b]] = int(count)
            partners[images[b]][images[a]] = int(count)
    best = {name: max(p.values(), default=0) for name, p in partners.items()}
    return MatchStats(features, best, partners)


def find_image_folder(colmap_dir: Path) -> Path | None:
    """Where a COLMAP project keeps its images: images/ next to the model or up to two levels above it."""
    for base in (colmap_dir, colmap_dir.parent, colmap_dir.parent.parent):
        if (base / "images").is_dir():
            return base / "images"
    return None


def find_model_folder(colmap_dir: Path) -> Path:
    """The folder holding cameras/images/points3D (.bin or .txt): the given one, sparse/0, 0/ or colmap/model."""
    for candidate in (colmap_dir, colmap_dir / "sparse" / "0", colmap_dir / "sparse", colmap_dir / "0",
                      colmap_dir / "colmap" / "model"):  # the last: a `vista poses` output folder
        if all((candidate / f"{name}.bin").is_file() for name in ("cameras", "images")) or \
                all((candidate / f"{name}.txt").is_file() for name in ("cameras", "images")):
            return candidate
    raise VistaError(f"{colmap_dir}: no COLMAP model (cameras.bin/images.bin or cameras.txt/images.txt) found here "
                     "or in sparse/0")


def import_colmap(colmap_dir: Path, out_dir: Path, images: Path | None = None) -> Path:
    """COLMAP model folder -> dataset folder with transforms.json, images/ (copied) and sparse_pc.ply."""
    colmap_dir, out_dir = Path(colmap_dir), Path(out_dir)
    if not colmap_dir.is_dir():
        raise VistaError(f"{colmap_dir}: COLMAP folder not found")
    model_dir = find_model_folder(colmap_dir)
    model = read_colmap_model(model_dir)
    image_dir = Path(images) if images else find_image_folder(colmap_dir)
    if image_dir is None or not image_dir.is_dir():
        raise VistaError(f"{colmap_dir}: cannot find the images (no images/ folder next to the model); "
                         "pass --images DIR")
    missing = [im.name for im in model.images if not (image_dir / im.name).is_file()]
    if missing:
        raise VistaError(f"{image_dir}: {len(missing)} image(s) of the model are missing, e.g. {missing[0]}")
    target = out_dir / "images"
    if image_dir.resolve() != target.resolve():
        for image in model.images:
            destination = target / image.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image_dir / image.name, destination)
    return write_posed_dataset(model, out_dir)
