"""Camera path files: nerfstudio camera_path.json (checked with nerfstudio's own reader), instant-ngp
base_cam.json, Vista keyframes; exact round trips and clear errors for other tools' malformed files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from render.path_io import (
    DataparserTransform,
    camera_path_json,
    load_path_cameras,
    read_keyframes,
    read_path_file,
    write_camera_path,
    write_keyframes,
)
from render.paths import CameraPath, Keyframe
from vista_core.errors import VistaError

DATAPARSER = DataparserTransform(np.array([[0.0, 1.0, 0.0, 0.1], [-1.0, 0.0, 0.0, -0.2], [0.0, 0.0, 1.0, 0.3]]), 0.25)


def _path(**options) -> CameraPath:
    keys = (Keyframe((4.0, 0.0, 1.0), look_at=(0.0, 0.0, 0.0), fov_y_deg=40.0),
            Keyframe((0.0, 4.0, 2.0), look_at=(0.0, 0.0, 0.5), fov_y_deg=55.0, roll_deg=5.0, duration_s=2.0),
            Keyframe((-4.0, 0.5, 1.0), look_at=(0.0, 0.0, 0.0), fov_y_deg=40.0))
    return CameraPath(keys, seconds=5.0, fps=24, **options)


def _ns_cameras(data: dict):
    camera_paths = pytest.importorskip("nerfstudio.cameras.camera_paths")
    return camera_paths.get_path_from_json(data)


@pytest.mark.parametrize("dataparser", [None, DATAPARSER])
def test_nerfstudio_reads_vistas_camera_path_as_the_same_cameras(tmp_path, dataparser):
    path = _path()
    write_camera_path(tmp_path / "camera_path.json", path, 320, 180, dataparser)
    data = json.loads((tmp_path / "camera_path.json").read_text())
    ns = _ns_cameras(data)
    world_from_camera, fov = path.evaluate(path.frame_times())
    expected = world_from_camera if dataparser is None else dataparser.ns_from_world(world_from_camera)
    np.testing.assert_allclose(ns.camera_to_worlds.numpy(), expected, atol=1e-6)
    vista, fps = load_path_cameras(tmp_path / "camera_path.json")
    np.testing.assert_allclose(ns.fy.reshape(-1).numpy(), vista.fy.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ns.fx.reshape(-1).numpy(), vista.fx.numpy(), rtol=1e-6)
    assert float(ns.cx.reshape(-1)[0]) == 160 and float(ns.cy.reshape(-1)[0]) == 90
    assert int(ns.width.reshape(-1)[0]) == 320 and int(ns.height.reshape(-1)[0]) == 180
    assert len(ns) == path.n_frames and abs(len(ns) / data["seconds"] - fps) < 1e-9  # ns-render's fps rule
    np.testing.assert_allclose(vista.world_from_camera.numpy(), world_from_camera, atol=1e-6)


@pytest.mark.parametrize("dataparser", [None, DATAPARSER])
def test_camera_path_round_trip_is_exact(tmp_path, dataparser):
    path = _path(loop=True, tension=0.25, ease="ease-in-out")
    write_camera_path(tmp_path / "p.json", path, 640, 360, dataparser)
    loaded = read_path_file(tmp_path / "p.json")
    assert loaded.source == "vista" and loaded.path == path
    assert (loaded.width, loaded.height, loaded.seconds) == (640, 360, 5.0)
    world_from_camera, fov = path.evaluate(path.frame_times())
    if dataparser is None:
        np.testing.assert_array_equal(loaded.world_from_camera, world_from_camera)
    else:
        np.testing.assert_allclose(loaded.world_from_camera, world_from_camera, atol=1e-12)
    np.testing.assert_array_equal(loaded.fov_y_deg, fov)
    # the keyframes written for nerfstudio's viewer are the keyframe cameras
    data = json.loads((tmp_path / "p.json").read_text())
    matrices = np.array([k["matrix"] for k in data["keyframes"]]).reshape(-1, 4, 4)[:, :3]
    expected = path.keyframe_matrices() if dataparser is None else dataparser.ns_from_world(path.keyframe_matrices())
    np.testing.assert_allclose(matrices, expected, atol=1e-12)
    write_keyframes(tmp_path / "keys.json", path)
    assert read_keyframes(tmp_path / "keys.json") == path


def test_resizing_keeps_the_vertical_field_of_view(tmp_path):
    path = _path()
    write_camera_path(tmp_path / "p.json", path, 320, 180)
    full, _ = load_path_cameras(tmp_path / "p.json")
    wide, _ = load_path_cameras(tmp_path / "p.json", 1280, 720)
    tall, _ = load_path_cameras(tmp_path / "p.json", height=360)
    np.testing.assert_allclose(wide.fov_y_deg.numpy(), full.fov_y_deg.numpy(), rtol=1e-5)
    assert (tall.width, tall.height) == (640, 360)


def _viewer_file(legacy: bool) -> tuple[dict, np.ndarray]:
    """A camera_path.json as nerfstudio's viewers write it (render_panel.py; legacy: CameraPanel.jsx)."""
    path = _path()
    frames, fov = path.evaluate(path.frame_times())
    keys = path.keyframe_matrices()
    four = lambda m: np.concatenate([m, [[0, 0, 0, 1]]])  # noqa: E731
    keyframes = []
    for m, kf in zip(keys, path.keyframes):
        matrix = json.dumps(four(m).T.reshape(-1).tolist()) if legacy else four(m).reshape(-1).tolist()
        keyframes.append({"matrix": matrix, "fov": kf.fov_y_deg, "aspect": 16 / 9})
    data = {"keyframes": keyframes, "render_height": 180, "render_width": 320, "fps": 24, "seconds": 5,
            "smoothness_value": 0.5, "is_cycle": False,
            "camera_path": [{"camera_to_world": four(m).reshape(-1).tolist(), "fov": float(f), "aspect": 16 / 9}
                            for m, f in zip(frames, fov)]}
    if not legacy:
        data["camera_type"] = "perspective"
    return data, keys


@pytest.mark.parametrize("legacy", [False, True])
def test_reads_nerfstudio_viewer_files_and_their_keyframes(tmp_path, legacy):
    data, keys = _viewer_file(legacy)
    (tmp_path / "camera_path.json").write_text(json.dumps(data))
    loaded = read_path_file(tmp_path / "camera_path.json")
    assert loaded.source == ("nerfstudio-legacy" if legacy else "nerfstudio")
    assert len(loaded.world_from_camera) == len(data["camera_path"]) and loaded.fps == len(data["camera_path"]) / 5
    np.testing.assert_allclose(loaded.path.keyframe_matrices(), keys, atol=1e-9)  # three.js column-major decoded
    ns = _ns_cameras(data)
    np.testing.assert_allclose(ns.camera_to_worlds.numpy(), loaded.world_from_camera, atol=1e-6)


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.pop("render_height"), "render_height"),
    (lambda d: d.pop("seconds") and d.pop("fps"), "seconds"),
    (lambda d: d.update(camera_path=[]), "non-empty"),
    (lambda d: d["camera_path"][3].update(camera_to_world=json.dumps(d["camera_path"][3]["camera_to_world"])),
     "is a string"),
    (lambda d: d["camera_path"][2].pop("fov"), "missing 'fov'"),
    (lambda d: d["camera_path"][2].update(fov=0.2), "outside"),
    (lambda d: d["camera_path"][1].update(camera_to_world=[1.0] * 16), "last row"),
    (lambda d: d["camera_path"][1].update(camera_to_world=[2.0, 0, 0, 0, 0, 2.0, 0, 0, 0, 0, 2.0, 0, 0, 0, 0, 1]),
     "not a rotation"),
    (lambda d: d.update(camera_type="fisheye"), "fisheye"),
    (lambda d: d.pop("camera_path"), "not a camera path"),
])
def test_malformed_files_from_other_tools_are_clear_errors(tmp_path, edit, message):
    data, _ = _viewer_file(legacy=False)
    edit(data)
    (tmp_path / "camera_path.json").write_text(json.dumps(data))
    with pytest.raises(VistaError, match=message) as error:
        load_path_cameras(tmp_path / "camera_path.json")
    assert "camera_path.json" in str(error.value)


def test_nan_in_a_file_is_refused(tmp_path):
    data, _ = _viewer_file(legacy=False)
    text = json.dumps(data).replace(str(data["camera_path"][0]["fov"]), "NaN", 1)
    (tmp_path / "p.json").write_text(text)
    with pytest.raises(VistaError, match="NaN"):
        load_path_cameras(tmp_path / "p.json")


def test_instant_ngp_base_cam_is_read_into_world_coordinates(tmp_path):
    from scipy.spatial.transform import Rotation

    # Worked by hand from instant-ngp's nerf_matrix_to_ngp (scale 0.33, offset 0.5): a transforms.json
    # camera at (1, 2, 3) with identity rotation has y/z columns negated, then rows cycled xyz <- yzx:
    # rotation rows [0,-1,0], [0,0,-1], [1,0,0]; position (2, 3, 1) * 0.33 + 0.5.
    rotation_ngp = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    first = {"R": Rotation.from_matrix(rotation_ngp).as_quat().tolist(), "T": [1.16, 1.49, 0.83], "fov": 45.0,
             "scale": 1.0, "slice": 0.0, "aperture_size": 0.0}
    second = dict(first, T=[1.16 + 0.33, 1.49, 0.83], fov=50.0)  # moved +1 along world y
    (tmp_path / "base_cam.json").write_text(json.dumps({"path": [first, second], "time": 0.0}))
    loaded = read_path_file(tmp_path / "base_cam.json")
    assert loaded.source == "instant-ngp"
    np.testing.assert_allclose(loaded.world_from_camera[0], np.concatenate([np.eye(3), [[1], [2], [3]]], 1), atol=1e-6)
    np.testing.assert_allclose(loaded.world_from_camera[-1, :, 3], [1, 3, 3], atol=1e-6)
    assert loaded.fov_y_deg[0] == pytest.approx(45.0) and loaded.fov_y_deg[-1] == pytest.approx(50.0)
    cameras, fps = load_path_cameras(tmp_path / "base_cam.json")
    assert fps == 30.0 and (cameras.width, cameras.height) == (640, 360)


def test_camera_path_json_refuses_a_bad_size():
    with pytest.raises(VistaError, match="size"):
        camera_path_json(_path(), 0, 10)
