"""glTF 2.0 camera animations (render/gltf_camera.py): Vista -> .glb -> Vista is exact, the file is what other tools
read (checked with pygltflib), a Blender-style file with a parent transform imports to the right cameras, and a
broken file is one clear line."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pygltflib
import pytest
from scipy.spatial.transform import Rotation, Slerp

from render.gltf_camera import GLTF_FROM_WORLD, camera_glb, path_camera_glb, read_camera_gltf, write_camera_glb
from render.path_io import load_path_cameras, read_keyframes, read_path_file
from render.paths import CameraPath, Keyframe
from tests.test_recipe import scene_dir  # noqa: F401 -- the tiny saved scene, a module fixture
from vista_core.errors import VistaError

SUPPORT = Path(__file__).parent / "support"


def _path(seconds: float = 2.0, fps: float = 30.0, zoom: bool = True) -> CameraPath:
    # the same keys as the Blender fixture (tests/support/blender_parented_camera.glb) was made from
    keys = (Keyframe((4.0, 0.0, 1.0), look_at=(0, 0, 0), fov_y_deg=40.0),
            Keyframe((0.0, 4.0, 2.0), look_at=(0, 0, 0.5), fov_y_deg=55.0 if zoom else 40.0, roll_deg=5.0),
            Keyframe((-4.0, 0.5, 1.0), look_at=(0, 0, 0), fov_y_deg=40.0))
    return CameraPath(keys, seconds=seconds, fps=fps)


def _gltf_json(data: bytes) -> dict:
    length = struct.unpack("<I", data[12:16])[0]
    return json.loads(data[20:20 + length])


def test_round_trip_is_exact(tmp_path):
    path = _path()
    out = tmp_path / "shot.glb"
    write_camera_glb(out, path, 320, 180)
    loaded = read_path_file(out)
    world_from_camera, fov = path.evaluate(path.frame_times())
    assert loaded.source == "gltf" and len(loaded.fov_y_deg) == path.n_frames == 60
    assert loaded.fps == 30.0 and loaded.seconds == 2.0 and (loaded.width, loaded.height) == (320, 180)
    np.testing.assert_allclose(loaded.world_from_camera, world_from_camera, atol=1e-6)  # positions and rotations
    np.testing.assert_allclose(loaded.fov_y_deg, fov, atol=1e-5)  # float32 radians in the file
    cameras, fps = load_path_cameras(out)
    expected = path.sample(320, 180)
    np.testing.assert_allclose(cameras.fy.numpy(), expected.fy.numpy(), rtol=1e-6)  # focal length in pixels
    np.testing.assert_allclose(cameras.world_from_camera.numpy(), expected.world_from_camera.numpy(), atol=1e-6)
    assert fps == 30.0
    # the keyframes ride along in the extras, so the shot stays editable; and a camera read at its own rate keeps
    # an NTSC rate
    assert read_keyframes(out) == path
    ntsc = read_camera_gltf(_write(tmp_path / "ntsc.glb", camera_glb(world_from_camera[:10], fov[:10], 30000 / 1001,
                                                                       64, 36)))
    assert ntsc.fps == 30000 / 1001


def _write(file: Path, data: bytes) -> Path:
    file.write_bytes(data)
    return file


def test_file_is_a_camera_animation_other_readers_understand(tmp_path):
    path = _path()
    data = path_camera_glb(path, 640, 360)
    gltf = pygltflib.GLTF2.load_from_bytes(data)
    assert len(gltf.nodes) == 1 and gltf.nodes[0].camera == 0
    camera = gltf.cameras[0]
    assert camera.type == "perspective" and camera.perspective.aspectRatio == pytest.approx(16 / 9)
    assert camera.perspective.yfov == pytest.approx(np.radians(40.0)) and camera.perspective.znear > 0
    channels = gltf.animations[0].channels
    targets = [(c.target.node, c.target.path) for c in channels]
    assert targets[:2] == [(0, "translation"), (0, "rotation")]
    # the zoom is a KHR_animation_pointer channel on the camera's yfov, and the extension is used, not required
    assert channels[2].target.path == "pointer" and channels[2].target.node is None
    assert channels[2].target.extensions["KHR_animation_pointer"]["pointer"] == "/cameras/0/perspective/yfov"
    assert gltf.extensionsUsed == ["KHR_animation_pointer"] and not gltf.extensionsRequired
    samplers = gltf.animations[0].samplers
    assert {s.interpolation for s in samplers} == {"LINEAR"} and len({s.input for s in samplers}) == 1
    times = gltf.accessors[samplers[0].input]
    assert times.count == 60 and times.type == "SCALAR" and times.min == [0.0]
    assert times.max[0] == pytest.approx(59 / 30)  # key k at k / fps
    assert [gltf.accessors[s.output].type for s in samplers] == ["VEC3", "VEC4", "SCALAR"]
    assert all(gltf.accessors[s.output].count == 60 for s in samplers)
    # glTF is Y-up: the first camera's position is Vista's world position turned as Blender's exporter turns it
    world_from_camera, _ = path.evaluate([0.0])
    np.testing.assert_allclose(gltf.nodes[0].translation, GLTF_FROM_WORLD @ world_from_camera[0, :, 3], atol=1e-6)
    # a fixed focal length needs no extension
    fixed = pygltflib.GLTF2.load_from_bytes(path_camera_glb(_path(zoom=False), 640, 360))
    assert not fixed.extensionsUsed and len(fixed.animations[0].channels) == 2


def test_blender_exported_camera_with_a_parent_imports_where_vista_put_it():
    """tests/support/blender_parented_camera.glb: `_path()` written by Vista, imported into Blender 3.4.1 (Debian),
    parented to an empty at (1, 2, 3) rotated (0.3, 0.2, 0.1) rad keeping its world transform, and exported by
    Blender's glTF exporter (sampled, 30 fps). Blender showed the imported camera at Vista's world matrix to 2e-7."""
    loaded = read_path_file(SUPPORT / "blender_parented_camera.glb")
    gltf = pygltflib.GLTF2.load(SUPPORT / "blender_parented_camera.glb")
    assert any(n.children for n in gltf.nodes) and gltf.asset.generator.startswith("Khronos glTF Blender")
    path = _path()
    world_from_camera, _ = path.evaluate(path.frame_times())
    assert loaded.fps == 30.0 and len(loaded.fov_y_deg) == 60 and loaded.path is None
    np.testing.assert_allclose(loaded.world_from_camera, world_from_camera, atol=2e-6)  # float32 through a parent
    np.testing.assert_allclose(loaded.fov_y_deg, 40.0, atol=1e-4)  # Blender 3.4 exports no yfov animation


def _blender_like(tmp_path: Path, **overrides) -> tuple[Path, dict]:
    """A hand-built file shaped like Blender's exports: a scaled, moving parent "Rig" whose child is the camera,
    camera keys sampled at 24 fps from Blender's frame 1 (time 1/24 s), the parent keyed only at 3 times."""
    fps = 24.0
    cam_times = (np.arange(1, 26) / fps).astype(np.float32)
    cam_t = np.stack([np.linspace(0, 1, 25), np.zeros(25), 5 + np.linspace(0, 0.5, 25)], 1).astype(np.float32)
    cam_r = Rotation.from_euler("y", np.linspace(0, 30, 25)[:, None], degrees=True).as_quat().astype(np.float32)
    rig_times = np.array([1 / fps, 13 / fps, 25 / fps], np.float32)
    rig_r = Rotation.from_euler("zx", [[0, -90], [20, -90], [45, -80]], degrees=True).as_quat().astype(np.float32)
    arrays = [cam_times, cam_t, cam_r, rig_times, rig_r]
    blob, views, accessors = b"", [], []
    for a in arrays:
        data = a.tobytes()
        views.append(pygltflib.BufferView(buffer=0, byteOffset=len(blob), byteLength=len(data)))
        kind = {1: "SCALAR", 3: "VEC3", 4: "VEC4"}[a.shape[1] if a.ndim == 2 else 1]
        accessors.append(pygltflib.Accessor(bufferView=len(views) - 1, componentType=5126, count=len(a), type=kind,
                                            min=[float(a.min())] if kind == "SCALAR" else None,
                                            max=[float(a.max())] if kind == "SCALAR" else None))
        blob += data
    gltf = pygltflib.GLTF2(
        asset=pygltflib.Asset(version="2.0", generator="Khronos glTF Blender I/O (hand-built)"),
        scene=0, scenes=[pygltflib.Scene(nodes=[1, 2])],
        nodes=[pygltflib.Node(name="Camera", camera=0),
               pygltflib.Node(name="Rig", children=[0], translation=[1.0, 2.0, 3.0], scale=[2.0, 2.0, 2.0]),
               pygltflib.Node(name="Cube", mesh=None, translation=[0.0, 0.0, 0.0])],
        cameras=[pygltflib.Camera(type="perspective", perspective=pygltflib.Perspective(
            yfov=0.6, aspectRatio=1.5, znear=0.1, zfar=100.0))],
        animations=[pygltflib.Animation(name="CameraAction", samplers=[
            pygltflib.AnimationSampler(input=0, output=1), pygltflib.AnimationSampler(input=0, output=2)],
            channels=[pygltflib.AnimationChannel(sampler=0, target=pygltflib.AnimationChannelTarget(node=0, path="translation")),
                      pygltflib.AnimationChannel(sampler=1, target=pygltflib.AnimationChannelTarget(node=0, path="rotation"))]),
            pygltflib.Animation(name="RigAction", samplers=[pygltflib.AnimationSampler(input=3, output=4)],
                                channels=[pygltflib.AnimationChannel(
                                    sampler=0, target=pygltflib.AnimationChannelTarget(node=1, path="rotation"))])],
        accessors=accessors, bufferViews=views, buffers=[pygltflib.Buffer(byteLength=len(blob))])
    for key, value in overrides.items():
        setattr(gltf, key, value)
    gltf.set_binary_blob(blob)
    file = tmp_path / "blender_like.glb"
    file.write_bytes(b"".join(gltf.save_to_bytes()))
    return file, {"cam_times": cam_times, "cam_t": cam_t, "cam_r": cam_r, "rig_times": rig_times, "rig_r": rig_r}


def test_blender_like_file_with_an_animated_parent_composes_the_chain(tmp_path):
    file, k = _blender_like(tmp_path)
    loaded = read_path_file(file)
    assert loaded.fps == 24.0 and len(loaded.fov_y_deg) == 25  # frames 1..25, from time 1/24
    assert (loaded.width, loaded.height) == (540, 360) and np.allclose(loaded.fov_y_deg, np.degrees(0.6))
    times = k["cam_times"].astype(np.float64)
    rig = Slerp(k["rig_times"].astype(np.float64), Rotation.from_quat(k["rig_r"]))(times).as_matrix()
    cam = Rotation.from_quat(k["cam_r"]).as_matrix()
    # world = T_rig R_rig S_rig (T_cam R_cam), then Y-up glTF back to Vista's Z-up world
    position = np.einsum("fij,fj->fi", 2.0 * rig, k["cam_t"].astype(np.float64)) + [1.0, 2.0, 3.0]
    np.testing.assert_allclose(loaded.world_from_camera[:, :, 3], position @ GLTF_FROM_WORLD, atol=1e-5)
    np.testing.assert_allclose(loaded.world_from_camera[:, :, :3], GLTF_FROM_WORLD.T @ rig @ cam, atol=1e-6)


def test_broken_or_unusable_files_are_one_clear_line(tmp_path):
    import vista

    cases = {}
    cases["junk.glb"] = b"this is not a glb file at all"
    good = path_camera_glb(_path(), 64, 36)
    cases["truncated.glb"] = good[:len(good) - 200]
    no_camera = _gltf_json(good)
    no_camera["nodes"][0].pop("camera")
    cases["nocamera.gltf"] = json.dumps(no_camera).encode()
    old = {"asset": {"version": "1.0"}}
    cases["old.gltf"] = json.dumps(old).encode()
    ortho = _gltf_json(good)
    ortho["cameras"][0] = {"type": "orthographic", "orthographic": {"xmag": 1, "ymag": 1, "znear": 0.1, "zfar": 9}}
    cases["ortho.gltf"] = json.dumps(ortho).encode()
    outside = _gltf_json(good)
    outside["buffers"][0]["uri"] = "../secret.bin"
    cases["outside.gltf"] = json.dumps(outside).encode()
    expected = {"junk.glb": "not a readable glTF", "truncated.glb": "truncated file", "nocamera.gltf": "holds no camera",
                "old.gltf": "not a glTF 2.0", "ortho.gltf": "perspective", "outside.gltf": "outside the file's folder"}
    for name, data in cases.items():
        file = tmp_path / name
        file.write_bytes(data)
        with pytest.raises(VistaError, match=expected[name]) as error:
            read_path_file(file)
        assert str(file) in str(error.value) and "\n" not in str(error.value)
    # through the CLI: exit code 2 and one line, before any scene is loaded
    (tmp_path / "scene").mkdir()
    assert vista.main(["render", str(tmp_path / "scene"), "--path", str(tmp_path / "junk.glb"), "--out",
                       str(tmp_path / "x.mp4")]) == 2
    twice = pygltflib.GLTF2.load_from_bytes(good)
    twice.animations.append(twice.animations[0])
    with pytest.raises(VistaError, match="two animations move"):
        read_path_file(_write(tmp_path / "twice.glb", b"".join(twice.save_to_bytes())))


def test_gltf_without_binary_chunk_reads_data_uri_buffers(tmp_path):
    """A .gltf with its buffer inline (data: URI), as three.js and Blender's "glTF Embedded" write it."""
    import base64

    good = path_camera_glb(_path(), 64, 36)
    data = _gltf_json(good)
    blob = pygltflib.GLTF2.load_from_bytes(good).binary_blob()
    data["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    (tmp_path / "embedded.gltf").write_text(json.dumps(data))
    a, b = read_path_file(tmp_path / "embedded.gltf"), read_path_file(_write(tmp_path / "a.glb", good))
    np.testing.assert_array_equal(a.world_from_camera, b.world_from_camera)


# --- tools/blender_vista_camera.py: its maths without Blender ---------------------------------------------------

def _blender_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("blender_vista_camera",
                                                  Path(__file__).parents[1] / "tools" / "blender_vista_camera.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_blender_tool_field_of_view_and_rotations_match_blenders_rules():
    tool = _blender_tool()
    # Blender's default camera (50 mm lens, 36 mm sensor, fit AUTO) at 1920x1080: the width spans 36 mm
    assert tool.vertical_fov_deg(50, 36, 24, "AUTO", 1920, 1080) == pytest.approx(22.895, abs=1e-3)
    assert tool.vertical_fov_deg(50, 36, 24, "AUTO", 1080, 1920) == pytest.approx(39.598, abs=1e-3)  # portrait
    assert tool.vertical_fov_deg(50, 36, 24, "VERTICAL", 1920, 1080) == pytest.approx(26.991, abs=1e-3)
    rotations = Rotation.random(50, random_state=4)
    for r in [*rotations, Rotation.from_euler("x", 180, degrees=True), Rotation.from_euler("y", 180, degrees=True),
              Rotation.from_euler("z", 180, degrees=True)]:
        q = tool.quaternion_xyzw(r.as_matrix().tolist())
        assert abs(abs(np.dot(q, r.as_quat())) - 1) < 1e-12  # the same rotation (q and -q are one)
    scaled = np.eye(4)
    scaled[:3, :3] = rotations[0].as_matrix() * 3.0
    scaled[:3, 3] = [1, 2, 3]
    np.testing.assert_allclose(np.array(tool.world_from_camera(scaled.tolist()))[:3, :3], rotations[0].as_matrix())
    with pytest.raises(tool.ExportError, match="mirrored"):
        tool.world_from_camera(np.diag([-1.0, 1, 1, 1]).tolist())


def test_blender_tool_output_reads_back_as_the_same_frames_and_keys_land_on_their_frames(tmp_path):
    tool = _blender_tool()
    path = _path()
    world_from_camera, fov = path.evaluate(path.frame_times())
    matrices = [np.concatenate([m, [[0, 0, 0, 1]]]).tolist() for m in world_from_camera]
    (tmp_path / "frames.json").write_text(json.dumps(tool.frames_camera_path(matrices, list(fov), 320, 180, 30.0)))
    frames = read_path_file(tmp_path / "frames.json")
    np.testing.assert_allclose(frames.world_from_camera, world_from_camera, atol=1e-12)
    assert (frames.fps, frames.seconds, len(frames.fov_y_deg)) == (30.0, 2.0, 60)
    # keys at Blender frames 10, 30, 45, 50 and 69 (frame_start 10) where 50 repeats 45: a hold, dropped
    keyed = [0, 20, 35, 35, 59]
    data, warnings = tool.keyframes_path([10, 30, 45, 50, 69], [matrices[k] for k in keyed],
                                         [float(fov[k]) for k in keyed], 30.0)
    assert len(warnings) == 1 and "holds still" in warnings[0] and len(data["keyframes"]) == 4
    (tmp_path / "keys.json").write_text(json.dumps(data))
    keys = read_keyframes(tmp_path / "keys.json")
    assert keys.n_frames == 60 and keys.seconds == 2.0
    at_keys, key_fov = keys.evaluate(keys.frame_times()[[0, 20, 35, 59]])
    np.testing.assert_allclose(at_keys, world_from_camera[[0, 20, 35, 59]], atol=1e-9)
    np.testing.assert_allclose(key_fov, fov[[0, 20, 35, 59]], atol=1e-9)


def test_a_camera_from_blender_becomes_an_editable_path_through_its_frames(tmp_path):
    from vista_api.paths import read_editable_path
    from vista_studio.path import import_path

    file = SUPPORT / "blender_parented_camera.glb"
    frames = read_path_file(file)
    path, source = read_editable_path(file)
    assert source == "gltf" and len(path.keyframes) == 60 and path.n_frames == 60
    world_from_camera, fov = path.evaluate(path.frame_times())
    np.testing.assert_allclose(world_from_camera, frames.world_from_camera, atol=1e-9)
    np.testing.assert_allclose(fov, frames.fov_y_deg, atol=1e-9)
    # the studio's import takes it as keyframes too
    assert "Imported 60 keyframes (gltf)" in import_path(tmp_path, str(file))
    # a camera that holds still cannot be a Vista path: one line naming the frames, and the file still renders
    still = np.concatenate([frames.world_from_camera[:3], frames.world_from_camera[2:3]])
    held = tmp_path / "held.glb"
    held.write_bytes(camera_glb(still, np.full(4, 40.0), 30.0, 64, 36))
    with pytest.raises(VistaError, match="holds still at frames 2 and 3"):
        read_editable_path(held)


def test_vista_path_exports_the_camera_and_vista_render_reads_it(scene_dir, tmp_path, capsys):  # noqa: F811
    import vista

    out, glb = tmp_path / "path.json", tmp_path / "shot.glb"
    assert vista.main(["path", str(scene_dir), "--preset", "orbit", "--seconds", "1", "--fps", "6", "--width", "48",
                       "--height", "32", "--out", str(out), "--export-camera", str(glb)]) == 0
    assert "camera animation written to" in capsys.readouterr().out
    a, b = read_path_file(out), read_path_file(glb)
    np.testing.assert_allclose(b.world_from_camera, a.world_from_camera, atol=1e-6)
    assert (b.fps, b.width, b.height, len(b.fov_y_deg)) == (6.0, 48, 32, 6) and b.path == a.path
    assert vista.main(["render", str(scene_dir), "--path", str(glb), "--frames", "0:1", "--out",
                       str(tmp_path / "shot.mp4"), "--no-progress"]) == 0
    assert vista.main(["path", str(scene_dir), "--preset", "orbit", "--out", str(out), "--export-camera",
                       str(tmp_path / "shot.fbx")]) == 2


def test_frame_rate_comes_from_the_key_times_or_is_asked_for(tmp_path):
    path = _path()
    world_from_camera, fov = path.evaluate([0.0, 1.0, 2.0])
    sparse = pygltflib.GLTF2.load_from_bytes(camera_glb(world_from_camera, fov, 0.5, 64, 36))  # keys 2 s apart
    sparse.asset.extras = {}  # as another tool writes it: no Vista frame rate
    file = _write(tmp_path / "sparse.glb", b"".join(sparse.save_to_bytes()))
    with pytest.raises(VistaError, match="cannot tell the frame rate.*Always Sample Animations"):
        read_path_file(file)
    at_ten = read_path_file(file, fps=10.0)  # a caller that knows the rate samples the move at it
    assert at_ten.fps == 10.0 and len(at_ten.fov_y_deg) == 41
    np.testing.assert_allclose(at_ten.world_from_camera[[0, 20, 40]], world_from_camera, atol=1e-6)
