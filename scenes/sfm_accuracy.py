"""Recovered camera poses against reference ones (benchmarks and tests of `vista poses`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vista_core.errors import VistaError


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

    def accurate(self, max_rotation_deg: float = 2.0, max_position_fraction: float = 0.02) -> list[str]:
        """The photos within both tolerances (the issue's acceptance: 2 deg and 2% of the extent)."""
        ok = (self.rotation_deg <= max_rotation_deg) & (self.position <= max_position_fraction * self.extent)
        return [n for n, good in zip(self.names, ok) if good]


def _camera_poses(transforms: dict) -> dict[str, np.ndarray]:
    return {Path(f["file_path"]).name: np.asarray(f["transform_matrix"], np.float64)[:3, :4]
            for f in transforms["frames"]}


def _consensus(ours: dict, theirs: dict, names: list[str], tolerance_deg: float = 5.0) -> list[str]:
    """The largest set of photos whose orientations one world rotation aligns (each photo's own alignment tried)."""
    best: list[str] = []
    for candidate in names:
        world = theirs[candidate][:, :3] @ ours[candidate][:, :3].T
        agree = [n for n in names if _angle_deg(theirs[n][:, :3].T @ world @ ours[n][:, :3]) < tolerance_deg]
        if len(agree) > len(best):
            best = agree
    return best if len(best) >= 3 else names


def _angle_deg(rotation: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))))


def compare_poses(recovered: dict, reference: dict, robust: bool = False) -> PoseErrors:
    """Align recovered camera centres to the reference ones (Umeyama similarity, scikit-image) and measure
    per-photo rotation (degrees) and position errors. Frames are matched by file name.

    `robust`: align on the largest set of photos whose orientations agree under one rotation, so a run of
    misplaced photos shows as such instead of spoiling the alignment of the others."""
    from skimage.transform import SimilarityTransform

    ours, theirs = _camera_poses(recovered), _camera_poses(reference)
    names = sorted(set(ours) & set(theirs))
    if len(names) < 3:
        raise VistaError(f"only {len(names)} photos in common with the reference; cannot align")
    fit = _consensus(ours, theirs, names) if robust else names
    src = np.stack([ours[n][:, 3] for n in names])
    dst = np.stack([theirs[n][:, 3] for n in names])
    similarity = SimilarityTransform.from_estimate(np.stack([ours[n][:, 3] for n in fit]),
                                                   np.stack([theirs[n][:, 3] for n in fit]))
    if not isinstance(similarity, SimilarityTransform):  # a FailedEstimation says why
        raise VistaError(f"camera centres are degenerate (collinear?); cannot align ({similarity})")
    matrix = similarity.params
    scale = float(np.cbrt(np.linalg.det(matrix[:3, :3])))
    rotation = matrix[:3, :3] / scale
    aligned = src @ matrix[:3, :3].T + matrix[:3, 3]
    angles = [_angle_deg(theirs[n][:, :3].T @ (rotation @ ours[n][:, :3])) for n in names]
    extent = float(np.linalg.norm(dst.max(0) - dst.min(0)))
    return PoseErrors(names, np.array(angles), np.linalg.norm(aligned - dst, axis=1), extent, scale)
