"""Camera paths on a real place (issue #21): presets and the studio map fitted to what the photos saw.

The place is tests.support.procedural's outdoor scene (a ground plane, boxes and spheres) photographed on a
hand-held arc; its exact depth stands in for a trained scene's rendered depth, so the checks against the true
geometry (no camera inside an object or under the ground, the subject in every frame) can fail for real.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from render.path_geometry import GeometryConfig, PathGeometry, build_path_geometry
from render.path_presets import PRESETS, frame_around, preset_path
from render.representation import Image
from tests.support.procedural import BOXES, LOOK_AT, SPHERES, hand_held_arc, render_truth

SUBJECT = np.array(BOXES[0].center)  # the big box the arc looks at


def exact_views(cameras, index: int) -> Image:
    """The procedural scene's exact colour and depth, as a trained scene's render would give them."""
    hit = render_truth(cameras, index, supersample=1)
    surface = torch.isfinite(hit.depth)
    return Image(hit.rgb, torch.where(surface, hit.depth, torch.zeros_like(hit.depth)), surface.float())


def inside_truth(points: np.ndarray, pad: float = 0.0) -> np.ndarray:
    """[N] bool: under the ground or inside a box or a sphere grown by `pad` (shrunk if negative): the truth."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    inside = points[:, 2] < pad
    for box in BOXES:
        c, s = math.cos(math.radians(box.yaw_deg)), math.sin(math.radians(box.yaw_deg))
        local = (points - np.array(box.center)) @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        inside |= np.all(np.abs(local) < np.array(box.half_size) + pad, axis=1)
    for sphere in SPHERES:
        inside |= np.linalg.norm(points - np.array(sphere.center), axis=1) < sphere.radius + pad
    return inside


@pytest.fixture(scope="module")
def place():
    capture = hand_held_arc(16, 64, 48, seed=0, span_deg=140.0)
    config = GeometryConfig(depth_width=40, max_views=16)
    return capture, build_path_geometry(capture, exact_views, config)


def test_the_subject_is_what_the_photos_centred_on(place):
    capture, geometry = place
    assert np.linalg.norm(geometry.centre - SUBJECT) < 0.5, geometry.centre
    assert 0.3 < geometry.radius < 1.5, geometry.radius
    distances = np.linalg.norm(capture.positions.double().numpy() - geometry.centre, axis=1)
    assert abs(geometry.focus_distance - np.median(distances)) < 1e-6
    # the focus region holds the subject's surface, coloured, and nothing far beyond the photos
    points, colours = geometry.focus_points()
    assert len(points) > 200 and colours.dtype == np.uint8 and colours.std() > 10
    assert inside_truth(points, pad=0.05).mean() > 0.95  # back-projected points lie on true surfaces
    assert np.linalg.norm(points - SUBJECT, axis=1).min() < 0.6


def test_free_space_is_where_the_photos_saw_through(place):
    capture, geometry = place
    cameras = capture.positions.double().numpy()
    assert not geometry.occupied(cameras).any()  # the photographers stood in free space
    halfway = 0.5 * (cameras + np.asarray(LOOK_AT, dtype=np.float64))
    assert not geometry.occupied(halfway).any()
    solid = np.array([BOXES[0].center, BOXES[1].center, SPHERES[0].center, [0.0, 0.0, -0.3], [0.3, -0.2, 0.1]])
    assert geometry.occupied(solid).all()
    # a grid through the scene: nothing more than 5 cm inside the true geometry is called free, and the space
    # around the subject is not all called occupied (the unbounded occupancy grid's failure)
    axis = np.linspace(-3, 3, 25)
    grid = np.stack(np.meshgrid(axis, axis, np.linspace(0.05, 2.0, 8), indexing="ij"), -1).reshape(-1, 3)
    occupied = geometry.occupied(grid)
    assert inside_truth(grid, pad=-0.05).sum() > 50
    assert not (inside_truth(grid, pad=-0.05) & ~occupied).any()
    assert 0.05 < occupied.mean() < 0.8, occupied.mean()


def _subject_in_frame(cameras) -> np.ndarray:
    seen = cameras.project(torch.as_tensor(SUBJECT[None], dtype=torch.float32))
    u, v = seen.pixels[:, 0, 0], seen.pixels[:, 0, 1]
    return (seen.in_front[:, 0] & (u >= 0) & (u < cameras.width) & (v >= 0) & (v < cameras.height)).numpy()


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_frames_the_subject_and_keeps_out_of_the_place(place, name):
    capture, geometry = place
    frame = frame_around(capture, geometry.centre, geometry.radius)
    path = preset_path(name, frame, capture=capture, seconds=4.0, fps=15, occupied=geometry.occupied)
    cameras = path.sample(64, 48)
    positions = cameras.positions.double().numpy()
    assert not inside_truth(positions, pad=0.05).any(), name
    in_frame = _subject_in_frame(cameras)
    if name == "fly-over":
        # it flies over the subject looking ahead and down: the subject is in frame on the approach and leaves
        # it as it passes below (never looking straight down, which has no defined roll)
        assert in_frame[: int(0.35 * len(in_frame))].all() and not in_frame[-1], name
    else:
        assert in_frame.all(), (name, np.flatnonzero(~in_frame))


def test_geometry_survives_its_cache_arrays(place):
    capture, geometry = place
    again = PathGeometry.from_arrays(geometry.arrays(), capture, geometry.config)
    np.testing.assert_array_equal(again.centre, geometry.centre)
    assert again.radius == geometry.radius
    probe = np.random.default_rng(0).uniform(-3, 3, (500, 3))
    np.testing.assert_array_equal(again.occupied(probe), geometry.occupied(probe))
    with pytest.raises(ValueError, match="does not fit"):
        PathGeometry.from_arrays(geometry.arrays(), capture[list(range(8))], geometry.config)
