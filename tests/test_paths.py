"""Camera paths: geometry of keyframe interpolation, constant speed, easing, loops, presets, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from render.keyframes import ease
from render.path_presets import PRESETS, SceneFrame, fit_scene_frame, orbit, preset_path
from render.paths import CameraPath, Keyframe
from vista_core.errors import VistaError


def _keys(points, **kw):
    return tuple(Keyframe(position=tuple(map(float, p)), look_at=(0.0, 0.0, 0.0), **kw) for p in points)


# uneven spacing on purpose: a spline that is not reparametrised by arc length races on the long segments
UNEVEN = [(4, 0, 1), (3.5, 1, 1.2), (0, 4, 2), (-4, 1, 1), (-3, -3, 0.5)]


def _speeds(path: CameraPath) -> np.ndarray:
    positions = path.positions_at(path.frame_times())
    return np.linalg.norm(np.diff(positions, axis=0), axis=1)


@pytest.mark.parametrize("options", [
    {},
    {"loop": True},
    {"tension": 0.5},
    {"constant_speed": False},
    {"ease": "ease-in-out"},
    {"segment_ease": "ease-in"},
])
def test_path_passes_through_every_keyframe_at_its_time(options):
    keys = list(_keys(UNEVEN, fov_y_deg=40.0))
    keys[1] = Keyframe(position=keys[1].position, look_at=(0.5, 0.2, 0.1), fov_y_deg=60.0, roll_deg=10.0,
                       duration_s=1.5, ease="ease-out")
    path = CameraPath(tuple(keys), seconds=9.0, fps=24, **options)
    times = path.keyframe_times()
    assert times[0] == 0 and np.all(np.diff(times) > 0)
    world_from_camera, fov = path.evaluate(times)
    for kf, m, f in zip(path.keyframes, world_from_camera, fov):
        np.testing.assert_allclose(m[:, 3], kf.position, atol=1e-5)
        forward = -m[:, 2]
        expected = np.subtract(kf.look_at, kf.position)
        np.testing.assert_allclose(forward, expected / np.linalg.norm(expected), atol=1e-5)
        assert abs(f - kf.fov_y_deg) < 1e-5
    if options.get("ease", "linear") == "linear":
        assert abs((times[2] - times[1]) - 1.5) < 1e-9  # the explicit duration is honoured


def test_orientation_keyframes_are_hit_exactly():
    from scipy.spatial.transform import Rotation

    rotations = Rotation.from_euler("xyz", [[80, 0, 10], [70, 5, 60], [85, -5, 140], [75, 0, 200]], degrees=True)
    keys = tuple(Keyframe(position=tuple(map(float, p)), orientation=tuple(map(float, q)))
                 for p, q in zip(UNEVEN[:4], rotations.as_quat()))
    path = CameraPath(keys, seconds=6.0)
    world_from_camera, _ = path.evaluate(path.keyframe_times())
    np.testing.assert_allclose(world_from_camera[:, :, :3], rotations.as_matrix(), atol=1e-5)
    # rotations stay orthonormal between keyframes
    frames, _ = path.evaluate(path.frame_times())
    np.testing.assert_allclose(np.einsum("fij,fik->fjk", frames[:, :, :3], frames[:, :, :3]),
                               np.broadcast_to(np.eye(3), (len(frames), 3, 3)), atol=1e-6)


def test_constant_speed_per_frame_displacement_varies_at_most_2_percent():
    path = CameraPath(_keys(UNEVEN), seconds=10.0, fps=30)
    speeds = _speeds(path)
    assert speeds.max() / speeds.min() - 1 <= 0.02, (speeds.min(), speeds.max())
    # the plain spline parameter (nerfstudio's behaviour, issue #553) does not: the test can fail
    plain = _speeds(CameraPath(_keys(UNEVEN), seconds=10.0, fps=30, constant_speed=False))
    assert plain.max() / plain.min() > 1.5


def test_constant_speed_within_segments_with_explicit_durations():
    keys = list(_keys(UNEVEN))
    keys[0] = Keyframe(position=keys[0].position, look_at=(0, 0, 0), duration_s=1.0)
    path = CameraPath(tuple(keys), seconds=10.0, fps=60)
    times = path.frame_times()
    key_times = path.keyframe_times()
    speeds = _speeds(path)
    for a, b in zip(key_times[:-1], key_times[1:]):
        inside = (times[:-1] >= a) & (times[1:] <= b)  # frame pairs inside this segment
        s = speeds[inside]
        assert s.max() / s.min() - 1 <= 0.02, (a, b, s.min(), s.max())


@pytest.mark.parametrize("kind,zero_ends", [("ease-in", [0]), ("ease-out", [1]), ("ease-in-out", [0, 1]),
                                            ("linear", [])])
def test_easing_curves_have_zero_velocity_at_their_eased_ends(kind, zero_ends):
    h = 1e-6
    for end in (0, 1):
        slope = float((ease(kind, min(end + h, 1)) - ease(kind, max(end - h, 0))) / h)
        if end in zero_ends:
            assert abs(slope) < 1e-5, (kind, end, slope)
        else:
            assert slope > 0.9, (kind, end, slope)
    u = np.linspace(0, 1, 101)
    assert float(ease(kind, 0.0)) == 0 and float(ease(kind, 1.0)) == 1 and np.all(np.diff(ease(kind, u)) >= 0)


def test_eased_path_starts_and_stops_at_rest_and_is_constant_speed_in_the_middle():
    path = CameraPath(_keys(UNEVEN), seconds=10.0, fps=30, ease="ease-in-out")
    h = 1e-4
    start = np.linalg.norm(path.positions_at([h]) - path.positions_at([0.0])) / h
    end = np.linalg.norm(path.positions_at([10.0]) - path.positions_at([10.0 - h])) / h
    middle = np.linalg.norm(path.positions_at([5.0 + h]) - path.positions_at([5.0])) / h
    assert start < 1e-2 * middle and end < 1e-2 * middle


def test_loop_closes_with_continuous_velocity():
    path = CameraPath(_keys(UNEVEN), seconds=8.0, fps=30, loop=True, tension=0.2)
    h = 1e-3
    p0, p_end = path.positions_at([0.0]), path.positions_at([8.0])
    np.testing.assert_allclose(p0, p_end, atol=1e-9)
    v_start = (path.positions_at([h]) - p0) / h
    v_end = (p_end - path.positions_at([8.0 - h])) / h
    assert np.linalg.norm(v_start - v_end) < 0.01 * np.linalg.norm(v_start)
    # frames of a loop do not repeat the first one at the end
    times = path.frame_times()
    assert len(times) == 240 and times[-1] < 8.0


def test_keyframe_json_round_trip_is_exact():
    keys = list(_keys(UNEVEN, fov_y_deg=35.5))
    keys[2] = Keyframe(position=(0.1, 4.2, 2.0), orientation=(0.5, 0.5, 0.5, 0.5), duration_s=2.25)
    path = CameraPath(tuple(keys), seconds=7.0, fps=25, tension=-0.3, ease="ease-out", up=(0.0, 0.0, 1.0))
    import json

    again = CameraPath.from_dict(json.loads(json.dumps(path.to_dict())))
    assert again == path
    np.testing.assert_array_equal(again.evaluate(again.frame_times())[0], path.evaluate(path.frame_times())[0])


@pytest.mark.parametrize("make,message", [
    (lambda: CameraPath(_keys(UNEVEN[:1])), "at least 2 keyframes"),
    (lambda: CameraPath(_keys([UNEVEN[0], UNEVEN[0], UNEVEN[1]])), "same camera"),
    (lambda: CameraPath((Keyframe((1.0, 2.0, 3.0), look_at=(1.0, 2.0, 3.0)), *_keys(UNEVEN[:1]))), "equals 'position'"),
    (lambda: CameraPath(_keys([UNEVEN[0], (math.nan, 0, 0)])), "NaN"),
    (lambda: CameraPath(_keys(UNEVEN[:2], fov_y_deg=179.5)), "fov_y_deg"),
    (lambda: CameraPath(_keys(UNEVEN[:2], fov_y_deg=0.5)), "fov_y_deg"),
    (lambda: CameraPath((Keyframe((1.0, 0, 0)), *_keys(UNEVEN[:1]))), "exactly one of"),
    (lambda: CameraPath(_keys(UNEVEN[:3], duration_s=5.0), seconds=8.0), "durations"),
    (lambda: CameraPath(_keys(UNEVEN[:2]), seconds=0.0), "seconds"),
    (lambda: CameraPath((Keyframe((0.0, 0.0, 5.0), look_at=(0.0, 0.0, 0.0)), *_keys(UNEVEN[:1]))),
     "straight along 'up'"),
    (lambda: CameraPath.from_dict({"keyframes": [{"position": [0, 0, 1], "look_at": [0, 0, 0], "fov": 40}] * 2}),
     "unknown key"),
    (lambda: CameraPath.from_dict({"seconds": 5}), "missing 'keyframes'"),
])
def test_bad_paths_are_clear_errors(make, message):
    with pytest.raises(VistaError, match=message):
        make()


def test_pan_in_place_keeps_the_camera_still():
    keys = (Keyframe((4.0, 0.0, 1.0), look_at=(0.0, 0.0, 0.0)), Keyframe((4.0, 0.0, 1.0), look_at=(0.0, 3.0, 0.0)),
            Keyframe((0.0, 4.0, 1.0), look_at=(0.0, 0.0, 0.0)))
    path = CameraPath(keys, seconds=6.0)
    times = np.linspace(0, path.keyframe_times()[1], 20)
    np.testing.assert_allclose(path.positions_at(times), np.tile([4.0, 0.0, 1.0], (20, 1)), atol=1e-12)


# ---------------------------------------------------------------------------------------------
# presets


def _lego_frame() -> tuple[SceneFrame, object]:
    from scenes.data import load_posed_images
    from tests.conftest import shared_dataset

    data = load_posed_images(shared_dataset("lego-100"))
    capture = data.cameras[data.train_indices]
    return fit_scene_frame(capture, data.scene_from_world), capture


def _project(cameras, i, point) -> np.ndarray:
    m = cameras.world_from_camera[i].double().numpy()
    local = m[:, :3].T @ (point - m[:, 3])
    return np.array([cameras.fx[i].item() * local[0] / -local[2] + cameras.cx[i].item(),
                     -cameras.fy[i].item() * local[1] / -local[2] + cameras.cy[i].item()])


def test_orbit_keeps_the_subject_centred_at_a_constant_distance():
    frame, _ = _lego_frame()
    assert 3.5 < frame.distance < 4.5 and frame.up[2] > 0.9  # lego photos: ~4 units away, z up
    path = orbit(frame, seconds=8.0, fps=30)
    cameras = path.sample(320, 180)
    assert len(cameras) == 240 and path.loop
    for i in range(len(cameras)):
        u, v = _project(cameras, i, frame.centre)
        assert abs(u - 160) <= 1.0 and abs(v - 90) <= 1.0, (i, u, v)
    distances = np.linalg.norm(cameras.positions.double().numpy() - frame.centre, axis=1)
    assert distances.max() / distances.min() - 1 < 1e-3
    np.testing.assert_allclose(distances.mean(), frame.distance, rtol=1e-3)
    heights = (cameras.positions.double().numpy() - frame.centre) @ frame.up
    np.testing.assert_allclose(heights, heights.mean(), atol=1e-3 * frame.distance)


def _sphere_occupancy(centre: np.ndarray, radius: float):
    return lambda points: np.linalg.norm(np.asarray(points) - centre, axis=1) < radius


@pytest.mark.parametrize("name", PRESETS)
def test_presets_look_at_the_subject_and_stay_out_of_occupied_space(name):
    frame, capture = _lego_frame()
    # an obstacle bigger than the photos' distance: every preset has to step back from it
    occupied = _sphere_occupancy(frame.centre, 0.7 * frame.distance)
    path = preset_path(name, frame, capture=capture, seconds=4.0, fps=15, occupied=occupied)
    positions = path.positions_at(np.linspace(0, path.seconds, 400))
    assert not occupied(positions).any()
    cameras = path.sample(64, 36)
    forward = -cameras.world_from_camera[:, :, 2].double().numpy()
    to_centre = frame.centre - cameras.positions.double().numpy()
    cosine = np.einsum("fd,fd->f", forward, to_centre) / np.linalg.norm(to_centre, axis=1)
    assert cosine.min() > 0.3, name  # the subject is always ahead of the camera
    assert len(path.keyframes) >= 2


def test_a_preset_that_cannot_escape_occupied_space_is_an_error():
    frame, capture = _lego_frame()
    with pytest.raises(VistaError, match="occupied"):
        preset_path("orbit", frame, seconds=2.0, occupied=lambda p: np.ones(len(p), dtype=bool))


def test_dolly_in_moves_towards_the_subject_and_eases():
    frame, _ = _lego_frame()
    path = preset_path("dolly-in", frame, seconds=4.0, end_factor=0.5)
    d = np.linalg.norm(path.positions_at(path.frame_times()) - frame.centre, axis=1)
    assert np.all(np.diff(d) < 1e-9) and d[-1] < 0.55 * d[0]
    steps = np.abs(np.diff(d))
    assert steps[0] < 0.05 * steps.max() and steps[-1] < 0.05 * steps.max()


def test_fit_scene_frame_uses_occupancy_for_the_subject():
    frame, capture = _lego_frame()
    offset = frame.centre + np.array([0.3, -0.2, 0.1])
    from scenes.data import load_posed_images
    from tests.conftest import shared_dataset

    data = load_posed_images(shared_dataset("lego-100"))
    fitted = fit_scene_frame(capture, data.scene_from_world, _sphere_occupancy(offset, 0.4))
    np.testing.assert_allclose(fitted.centre, offset, atol=0.1)
    assert 0.3 < fitted.radius < 0.45
    assert torch.is_tensor(capture.world_from_camera)


def test_top_down_map_turns_clicks_into_world_points_and_back():
    from render.path_preview import top_down_map

    frame, capture = _lego_frame()
    path = orbit(frame, seconds=2.0, fps=10)
    frames, _ = path.evaluate(path.frame_times())
    keys = path.keyframe_matrices()
    result = top_down_map(frames, frame.up, centre=frame.centre, keyframe_positions=keys[:, :, 3], capture=capture,
                          coverage=np.linspace(0, 1, len(frames)), width=400, height=300)
    assert result.image.size == (400, 300) and result.png()[:4] == b"\x89PNG"
    pixels = result.world_to_pixel(keys[:, :, 3])
    assert np.all((pixels >= 0) & (pixels < [400, 300]))
    for x, y in [(10.5, 20.5), (200.0, 150.0), (399.0, 1.0)]:
        world = result.pixel_to_world(x, y, height=0.7)
        np.testing.assert_allclose(result.world_to_pixel(world[None])[0], [x, y], atol=1e-9)
        assert result.height_of(world) == pytest.approx(0.7)
    # the subject centre is drawn at the orbit's centre
    np.testing.assert_allclose(result.world_to_pixel(frame.centre[None])[0], pixels.mean(axis=0), atol=1.0)


def test_glb_preview_holds_points_path_and_frusta():
    import io

    import trimesh

    from render.path_preview import path_glb

    frame, capture = _lego_frame()
    path = orbit(frame, seconds=2.0, fps=10)
    frames, _ = path.evaluate(path.frame_times())
    points = np.random.default_rng(0).normal(size=(50, 3))
    data = path_glb(frames, path.keyframe_matrices(), np.array([k.fov_y_deg for k in path.keyframes]), 16 / 9,
                    points=points, colours=np.full((50, 3), 200, np.uint8), capture=capture)
    scene = trimesh.load(io.BytesIO(data), file_type="glb")
    kinds = {type(g).__name__ for g in scene.geometry.values()}
    assert {"PointCloud", "Path3D"} <= kinds, kinds
    assert len(scene.geometry) == 4  # points, path, keyframe frusta, capture frusta


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_take_the_photos_field_of_view_unless_given_and_refuse_a_zero_one(name):
    frame, capture = _lego_frame()
    assert preset_path(name, frame, capture=capture).keyframes[0].fov_y_deg == pytest.approx(frame.fov_y_deg)
    assert preset_path(name, frame, capture=capture, fov_y_deg=30.0).keyframes[0].fov_y_deg == 30.0
    for bad in (0.0, -5.0, 180.0, float("nan")):
        with pytest.raises(VistaError, match="field of view"):
            preset_path(name, frame, capture=capture, fov_y_deg=bad)
