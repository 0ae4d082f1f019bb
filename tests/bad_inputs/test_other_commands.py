"""`vista path`, `vista import`, `vista export`, `vista verify`, `vista eval` with bad input."""

from __future__ import annotations

import json

import pytest

from tests.bad_inputs.conftest import refuses


@pytest.fixture
def blocker(tmp_path):
    """A regular file where a folder is expected: unwritable for every user, root included."""
    path = tmp_path / "render.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypisom an earlier render")
    return path


def test_path_out_under_a_file(tiny_scene, blocker):
    refuses("path", tiny_scene, "--preset", "orbit", "--out", blocker / "camera_path.json",
            needles=("render.mp4",), protect=(blocker, tiny_scene), real_process=True)


def test_eval_out_under_a_file(tiny_scene, blocker):
    refuses("eval", tiny_scene, "--out", blocker / "eval", needles=("render.mp4",), protect=(blocker, tiny_scene))


@pytest.mark.parametrize("flags, needles", [
    (["--seconds", "0"], ("seconds", "positive")),
    (["--fps", "1e9"], ("fps",)),
    (["--width", "-5"], ("--width",)),
], ids=["zero-seconds", "absurd-fps", "negative-width"])
def test_path_preset_with_bad_numbers(tiny_scene, tmp_path, flags, needles):
    refuses("path", tiny_scene, "--preset", "orbit", "--out", tmp_path / "p.json", *flags, needles=needles,
            protect=(tiny_scene,))
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("content, needles", [
    ("{", ("keys.json", "malformed")),
    (json.dumps({"keyframes": [{"position": [0, 0, 4]}, {"position": [0, 1, 4]}]}), ("keys.json", "look_at")),
    (None, ("keys.json", "not found")),
], ids=["malformed", "keyframe-without-view", "missing"])
def test_path_with_bad_keyframes(tiny_scene, tmp_path, content, needles):
    keys = tmp_path / "keys.json"
    if content is not None:
        keys.write_text(content)
    (tmp_path / "keep.txt").write_text("x")
    refuses("path", tiny_scene, "--keyframes", keys, "--out", tmp_path / "p.json", needles=needles,
            protect=(tiny_scene, tmp_path / "keep.txt"))


def test_path_for_a_missing_scene(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    refuses("path", tmp_path / "nowhere", "--preset", "orbit", "--out", tmp_path / "p.json",
            needles=("nowhere", "not found"), protect=(tmp_path,))


def _colmap_text(folder):
    folder.mkdir()
    (folder / "cameras.txt").write_text("# a camera\n1 PINHOLE width-missing\n")
    (folder / "images.txt").write_text("")
    (folder / "points3D.txt").write_text("")
    return folder


def _colmap_binary(folder):
    folder.mkdir()
    (folder / "cameras.bin").write_bytes(b"\xff" * 7)
    (folder / "images.bin").write_bytes(b"\x00" * 3)
    (folder / "points3D.bin").write_bytes(b"")
    return folder


@pytest.mark.parametrize("make, needles", [
    (_colmap_text, ("colmap", "not a readable colmap model")),
    (_colmap_binary, ("colmap", "not a readable colmap model")),
    (lambda folder: folder, ("colmap", "not found")),
], ids=["garbage-text-model", "garbage-binary-model", "missing"])
def test_import_a_bad_colmap_model(tmp_path, make, needles):
    model = make(tmp_path / "colmap")
    (tmp_path / "keep.txt").write_text("x")
    refuses("import", model, "--out", tmp_path / "data", needles=needles, protect=(tmp_path,))


def test_export_mesh_with_bad_resolution(tiny_scene, tmp_path):
    refuses("export", tiny_scene, "--mesh", tmp_path / "m.glb", "--resolution", "0", needles=("resolution",),
            protect=(tiny_scene,))


def test_export_points_where_there_are_none(tiny_scene, tmp_path):
    refuses("export", tiny_scene, "--points", tmp_path / "p.ply", needles=("sparse_pc.ply",), protect=(tiny_scene,))


@pytest.mark.parametrize("content, needles", [
    (b"\x00\x00\x00\x18ftypisom" + bytes(100), ("clip.mp4", "not a readable video")),
    (b"", ("clip.mp4", "not a readable video")),
    (None, ("clip.mp4", "not found")),
], ids=["junk", "zero-byte", "missing"])
def test_verify_a_bad_video(tmp_path, content, needles):
    video = tmp_path / "clip.mp4"
    if content is not None:
        video.write_bytes(content)
    (tmp_path / "keep.txt").write_text("x")
    refuses("verify", video, needles=needles, protect=(tmp_path,))
