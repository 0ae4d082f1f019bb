"""Checks that structure from motion gave the right answer, not just an answer (numpy only).

A registration count and a low reprojection error do not reveal a photo placed on the wrong side of a
symmetric subject: it reprojects its (wrongly matched) points perfectly. What reveals it is the view
graph, the photo pairs COLMAP verified: a pair's inlier matches must lie on the epipolar lines of the
two mapped poses (Hartley & Zisserman, "Multiple View Geometry", 11.4: the Sampson distance to the
essential matrix E = [t]x R of the relative pose). A pair whose matches do not is a pair the poses
contradict. (Comparing two-view relative rotations instead fails: on a smooth subject seen over a short
baseline COLMAP's two-view geometry is a homography, whose rotation is off by 15-30 degrees.)

- Before the final mapping of an ordered capture, the loop-closure pairs (photos far apart in capture
  order) are checked against a model mapped from neighbouring pairs only, which cannot confuse the two
  sides of a symmetric subject; the pairs it contradicts are dropped (the idea of Zach, Klopschitz &
  Pollefeys, "Disambiguating visual relations using loop constraints", CVPR 2010: a wrong match breaks
  consistency around the loops it closes).
- After mapping, every strongly matched pair is checked against the mapped poses; a photo most of whose
  pairs disagree is suspicious.
- For an ordered capture, a step in the camera path between neighbours in capture order much longer than
  usual, where the neighbours' own matches disagree with it, is a jump. Runs between jumps alternate
  between two placements; the runs of the smaller placement are suspicious.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scenes.sfm_order import SEQUENTIAL_WINDOW

Agreement = dict[tuple[str, str], tuple[int, float]]  # pair -> (inlier matches, fraction on the epipolar lines)

EPIPOLAR_MAX_ERROR_PX = 4.0  # COLMAP's own RANSAC threshold for two-view geometry
AGREE_FRACTION = 0.5  # a pair agrees with the poses when at least this share of its matches fits them
STRONG_INLIERS = 30  # pairs with fewer verified matches are not trusted to judge a pose
JUMP_FACTOR = 4.0  # a step between capture-order neighbours this many times the median step is a jump


def epipolar_agreement(pose_a: np.ndarray, pose_b: np.ndarray, rays_a: np.ndarray, rays_b: np.ndarray,
                       focal_px: float) -> float:
    """Fraction of matches (normalised image coordinates [M, 2] in each photo) within EPIPOLAR_MAX_ERROR_PX
    (Sampson distance, scaled to pixels by `focal_px`) of the epipolar geometry of two camera-from-world
    poses [3, 4]."""
    rotation = pose_b[:, :3] @ pose_a[:, :3].T
    translation = pose_b[:, 3] - rotation @ pose_a[:, 3]
    norm = np.linalg.norm(translation)
    if norm < 1e-12 or len(rays_a) == 0:
        return 0.0
    t = translation / norm
    essential = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]]) @ rotation
    x1 = np.concatenate([rays_a, np.ones((len(rays_a), 1))], axis=1)
    x2 = np.concatenate([rays_b, np.ones((len(rays_b), 1))], axis=1)
    ex1 = x1 @ essential.T
    etx2 = x2 @ essential
    numerator = np.einsum("ij,ij->i", x2, ex1) ** 2
    denominator = ex1[:, 0] ** 2 + ex1[:, 1] ** 2 + etx2[:, 0] ** 2 + etx2[:, 1] ** 2
    sampson_px = np.sqrt(numerator / np.maximum(denominator, 1e-18)) * focal_px
    return float(np.mean(sampson_px < EPIPOLAR_MAX_ERROR_PX))


def is_loop_pair(index: dict[str, int], a: str, b: str) -> bool:
    """Photos further apart in capture order than the sequential window: a loop-closure candidate."""
    return abs(index[a] - index[b]) > SEQUENTIAL_WINDOW


def contradicted_pairs(agreement: Agreement) -> list[tuple[str, str]]:
    """Pairs whose matches mostly do not fit the mapped poses."""
    return [pair for pair, (_, fraction) in agreement.items() if fraction < AGREE_FRACTION]


@dataclass
class PoseCheck:
    """Per-photo verdicts of the checks after mapping, and what was checked."""

    suspicious: dict[str, str] = field(default_factory=dict)  # photo -> why
    pairs_checked: int = 0
    pairs_disagreeing: int = 0
    jumps: list[tuple[str, str]] = field(default_factory=list)  # capture-order neighbours placed far apart


def check_poses(centres: dict[str, np.ndarray], agreement: Agreement, order_names: list[str] | None) -> PoseCheck:
    """Compare the mapped poses with their strongly matched pairs (and, for an ordered capture, the path)."""
    check = PoseCheck()
    strong = {pair: fraction for pair, (inliers, fraction) in agreement.items() if inliers >= STRONG_INLIERS}
    check.pairs_checked = len(strong)
    check.pairs_disagreeing = sum(f < AGREE_FRACTION for f in strong.values())
    per_photo: dict[str, list[float]] = {}
    for (a, b), fraction in strong.items():
        per_photo.setdefault(a, []).append(fraction)
        per_photo.setdefault(b, []).append(fraction)
    for name, values in per_photo.items():
        bad = sum(f < AGREE_FRACTION for f in values)
        if bad >= 2 and bad > len(values) / 2:
            check.suspicious[name] = (f"its pose contradicts the matches with {bad} of its {len(values)} strongly "
                                      "matched photos: likely misplaced")
    if order_names:
        _check_trajectory(centres, strong, [n for n in order_names if n in centres], check)
    return check


def _check_trajectory(centres: dict[str, np.ndarray], strong: dict[tuple[str, str], float], names: list[str],
                      check: PoseCheck) -> None:
    """Runs between trajectory jumps alternate between two placements; the smaller placement is suspicious."""
    if len(names) < 4:
        return
    path = np.stack([centres[n] for n in names])
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    typical = float(np.median(steps))
    side, sides = 0, [0]
    for i, step in enumerate(steps):
        a, b = names[i], names[i + 1]
        fraction = strong.get((a, b), strong.get((b, a)))
        if step > JUMP_FACTOR * typical and fraction is not None and fraction < AGREE_FRACTION:
            check.jumps.append((a, b))
            side = 1 - side
        sides.append(side)
    counts = np.bincount(sides, minlength=2)
    if not check.jumps:
        return
    # a tie (an orbit folded exactly in half) keeps the placement of the first photo: each half is consistent
    # in itself, so either is a correct model of its part of the capture; the other is reported
    minority = 1 if counts[1] <= counts[0] else 0
    for name, s in zip(names, sides):
        if s == minority:
            check.suspicious.setdefault(name, "placed apart from its neighbours in capture order (a jump in the "
                                              "camera path their matches contradict): likely the wrong side of a "
                                              "symmetric or repetitive subject")
