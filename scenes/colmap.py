"""COLMAP through pycolmap: the only module that imports pycolmap.

pycolmap bundles COLMAP, so feature extraction, matching, incremental mapping and reading model folders
(cameras/images/points3D as .bin or .txt) run in-process. `scenes.sfm` orders these steps into
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

SEQUENTIAL_OVERLAP = 20  # neighbours matched on each side in sequential mode (COLMAP's default is 10)


def _pycolmap():
    try:
        import pycolmap
    except ImportError as error:  # pragma: no cover - pinned dependency
        raise VistaError("pycolmap is not installed; run setup.sh (it is a pinned dependency)") from error
    if not log.isEnabledFor(logging.DEBUG):
        pycolmap.logging.minloglevel = 1  # COLMAP's per-image INFO lines only with --verbose
    return pycolmap


def extract_features(database: Path, images: Path, names: list[str], size: tuple[int, int],
                      focal_prior_px: float | None, max_size: int) -> None:
    pycolmap = _pycolmap()
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "OPENCV"
    if focal_prior_px:
        w, h = size
        # manual parameters mark the focal length as a prior for the mapper (as COLMAP's EXIF reader does)
        reader.camera_params = f"{focal_prior_px},{focal_prior_px},{w / 2},{h / 2},0,0,0,0"
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = max_size
    pycolmap.extract_features(database, images, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
                              reader_options=reader, extraction_options=extraction)


def match_pairs(database: Path, kind: str) -> None:
    pycolmap = _pycolmap()
    if kind == "exhaustive":
        pycolmap.match_exhaustive(database)
    elif kind == "sequential":
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = SEQUENTIAL_OVERLAP
        pairing.quadratic_overlap = True
        pycolmap.match_sequential(database, pairing_options=pairing)
    else:
        raise VistaError(f"unknown matcher {kind!r}: use auto, sequential or exhaustive")


def map_incrementally(database: Path, images: Path, sparse_dir: Path, seed: int) -> dict:
    pycolmap = _pycolmap()
    options = pycolmap.IncrementalPipelineOptions()
    options.random_seed = seed
    options.ba_refine_principal_point = False
    sparse_dir.mkdir(parents=True, exist_ok=True)
    return pycolmap.incremental_mapping(database, images, sparse_dir, options=options)


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
