"""The capture order, the pairs matched, and the view-graph checks of `vista poses` on synthetic orbits (no COLMAP)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from scenes.sfm_graph import check_poses, contradicted_pairs, epipolar_agreement, is_loop_pair
from scenes.sfm_order import SEQUENTIAL_WINDOW, candidate_pairs, capture_order

N = 48


def _orbit(n: int = N) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Cameras on a circle looking at the origin: name -> (camera-from-world rotation, centre)."""
    poses = {}
    for i in range(n):
        angle = 2 * np.pi * i / n
        centre = np.array([4 * np.cos(angle), 4 * np.sin(angle), 1.0])
        forward = -centre / np.linalg.norm(centre)
        right = np.cross(forward, [0, 0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        poses[f"f{i:03d}.jpg"] = (np.stack([right, down, forward]), centre)  # OpenCV axes: x right, y down, z ahead
    return poses


POINTS = np.random.default_rng(0).uniform(-1, 1, (300, 3)) * [1, 1, 1.5]  # a subject around the origin


def _project(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Normalised image coordinates [P, 2] of world points in a camera-from-world pose [3, 4]."""
    cam = points @ pose[:, :3].T + pose[:, 3]
    return cam[:, :2] / cam[:, 2:]


def _pose(rotation: np.ndarray, centre: np.ndarray) -> np.ndarray:
    return np.concatenate([rotation, (-rotation @ centre)[:, None]], axis=1)


def _agreement(poses, true_poses, pairs, symmetric=()):
    """Each pair's matches are the subject's points seen by the true cameras; `symmetric` pairs matched the
    far side (points turned 180 deg about the axis), as a can with a repeating label would be matched."""
    flip = Rotation.from_euler("z", 180, degrees=True).as_matrix()
    out = {}
    for a, b in pairs:
        seen_b = POINTS @ flip.T if (a, b) in symmetric else POINTS
        rays_a, rays_b = _project(_pose(*true_poses[a]), POINTS), _project(_pose(*true_poses[b]), seen_b)
        out[(a, b)] = (300, epipolar_agreement(_pose(*poses[a]), _pose(*poses[b]), rays_a, rays_b, 500.0))
    return out


def test_capture_order_from_numbers_or_exif_times():
    order = capture_order(["IMG_10.jpg", "IMG_9.jpg", "IMG_100.jpg"], {})
    assert order.names == ["IMG_9.jpg", "IMG_10.jpg", "IMG_100.jpg"] and order.source == "file numbers"
    times = {"b.jpg": "Canon T3 @ 2024:01:01 10:00:01", "a.jpg": "Canon T3 @ 2024:01:01 10:00:02",
             "c.jpg": "Canon T3 @ 2024:01:01 09:59:59"}
    order = capture_order(["a.jpg", "b.jpg", "c.jpg"], times)
    assert order.names == ["c.jpg", "b.jpg", "a.jpg"] and order.source == "EXIF capture time"
    assert capture_order(["a.jpg", "b.jpg", "c.jpg"], {k: v[9:] for k, v in times.items()}).ordered  # no model tag
    # times from different cameras: photos of a landmark by different people, no capture order
    assert not capture_order(["a.jpg", "b.jpg", "c.jpg"], {**times, "c.jpg": "Apple iPhone 12 @ 2024:01:01"}).ordered
    # different stems, no times (internet photos): no order
    assert not capture_order(["louvre.jpg", "pyramid_2.jpg", "IMG_1.jpg"], {}).ordered
    # shared times (a burst within one second) are no order either
    assert not capture_order(["x.jpg", "y.jpg", "z.jpg"], {f"{n}.jpg": "Canon T3 @ 2024:01:01 10:00:00" for n in "xyz"}).ordered


def test_candidate_pairs_are_neighbours_plus_keyframe_loops():
    names = [f"{i:04d}.jpg" for i in range(300)]
    order = capture_order(names, {})
    pairs = candidate_pairs(order, "sequential")
    assert len(set(pairs)) == len(pairs) and all(names.index(a) < names.index(b) for a, b in pairs)
    gaps = np.array([names.index(b) - names.index(a) for a, b in pairs])
    assert (gaps <= SEQUENTIAL_WINDOW).sum() == sum(min(SEQUENTIAL_WINDOW, 299 - i) for i in range(300))
    assert 300 < (gaps > SEQUENTIAL_WINDOW).sum() < 800  # a sparse set of loop-closure candidates
    assert len(candidate_pairs(capture_order(names[:40], {}), "sequential")) == 40 * 39 // 2
    assert len(candidate_pairs(order, "exhaustive")) == 300 * 299 // 2


def test_wrong_side_loop_pairs_are_contradicted_and_true_loops_kept():
    poses = _orbit()
    names = sorted(poses)
    index = {name: i for i, name in enumerate(names)}
    loops = [(names[0], names[N - 1]), (names[2], names[N - 2]), (names[5], names[20])]
    wrong = [(names[i], names[i + N // 2]) for i in range(0, N // 2, 3)]
    agreement = _agreement(poses, poses, loops + wrong, symmetric=set(wrong))
    assert all(is_loop_pair(index, a, b) for a, b in loops + wrong)
    assert set(contradicted_pairs(agreement)) == set(wrong)
    assert min(agreement[p][1] for p in loops) > 0.99 and max(agreement[p][1] for p in wrong) < 0.2


def test_run_on_the_wrong_side_is_suspicious():
    poses = _orbit()
    names = sorted(poses)
    near = [(names[i], names[j]) for i in range(N) for j in range(i + 1, min(N, i + 4))]
    centres = {n: c for n, (_, c) in poses.items()}
    assert check_poses(centres, _agreement(poses, poses, near), names).suspicious == {}
    # photos 14-21 mapped half an orbit away (turned 180 deg about the can's axis), as exhaustive matching did
    flip = Rotation.from_euler("z", 180, degrees=True).as_matrix()
    wrong = dict(poses)
    for name in names[14:22]:
        rotation, centre = poses[name]
        wrong[name] = (rotation @ flip.T, flip @ centre)
    agreement = _agreement(wrong, poses, near)
    check = check_poses({n: c for n, (_, c) in wrong.items()}, agreement, names)
    assert set(check.suspicious) == set(names[14:22])
    assert check.jumps == [(names[13], names[14]), (names[21], names[22])]
    assert check.pairs_disagreeing == 2 * 6  # pairs across each boundary: 3 + 2 + 1 with a window of 3
    # folded exactly in half: the half with the first photo is kept, the other reported
    half = dict(poses)
    for name in names[12:36]:
        rotation, centre = poses[name]
        half[name] = (rotation @ flip.T, flip @ centre)
    folded = check_poses({n: c for n, (_, c) in half.items()}, _agreement(half, poses, near), names)
    assert set(folded.suspicious) == set(names[12:36])
    # without the capture order the run agrees with itself: at most the photos at its ends stand out
    unordered = check_poses({n: c for n, (_, c) in wrong.items()}, agreement, None)
    assert set(unordered.suspicious) <= set(names[11:25])


def test_epipolar_agreement_tolerates_pixel_noise_only():
    poses = _orbit()
    a, b = _pose(*poses["f000.jpg"]), _pose(*poses["f003.jpg"])
    rays_a, rays_b = _project(a, POINTS), _project(b, POINTS)
    noise = np.random.default_rng(1).normal(0, 1.0 / 500, rays_b.shape)  # 1 px at a 500 px focal length
    assert epipolar_agreement(a, b, rays_a, rays_b + noise, 500.0) > 0.95
    # tilted 5 deg about its own x axis: points move ~44 px across the (horizontal) epipolar lines
    tilted = Rotation.from_euler("x", 5, degrees=True).as_matrix() @ poses["f003.jpg"][0]
    assert epipolar_agreement(a, _pose(tilted, poses["f003.jpg"][1]), rays_a, rays_b, 500.0) < 0.2
    assert epipolar_agreement(a, a, rays_a, rays_a, 500.0) == 0.0  # no baseline: nothing to check against
