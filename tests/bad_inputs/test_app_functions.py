"""The studio's functions (vista_studio) with bad input, called in-process as its event handlers call them.

Each must raise a VistaError naming the file and the problem (the app shows it as one line), leave
the session's earlier files as they were, and never reach outside the session's workspace.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from tests.bad_inputs.conftest import assert_unchanged, snapshot
from tests.conftest import shared_dataset
from vista_core.errors import VistaError
from vista_studio import fields, path, photos, refine
from vista_studio import session as studio_session
from vista_studio import workspace as wsp


@pytest.fixture
def session(tmp_path):
    root = wsp.workspace_root(tmp_path / "root")
    return root, wsp.new_workspace(root)


def _photos(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(1, n + 1):
        target = folder / f"IMG_{i:04d}.jpg"
        shutil.copy(shared_dataset("fox-small") / "images" / f"{i:04d}.jpg", target)
        files.append(target)
    return files


def test_upload_of_too_many_files_is_refused_before_copying(session, tmp_path):
    _, workspace = session
    files = [tmp_path / "up" / f"IMG_{i}.jpg" for i in range(wsp.MAX_PHOTOS + 1)]
    files[0].parent.mkdir()
    for f in files:
        f.write_bytes(b"\xff\xd8\xff")
    with pytest.raises(VistaError, match=f"{wsp.MAX_PHOTOS + 1} files"):
        photos.add_photos(workspace, [str(f) for f in files])
    assert not (workspace / "photos").exists()


def test_zip_holding_too_many_photos_is_refused(session, tmp_path):
    _, workspace = session
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(wsp.MAX_PHOTOS + 1):
            zf.writestr(f"IMG_{i}.jpg", b"\xff\xd8\xff")
    with pytest.raises(VistaError, match="more than"):
        photos.add_photos(workspace, [str(archive)])


def test_upload_with_no_files(session):
    _, workspace = session
    with pytest.raises(VistaError, match="no files"):
        photos.add_photos(workspace, [])


def test_a_refused_zip_keeps_the_previous_upload(session, tmp_path):
    _, workspace = session
    photos.add_photos(workspace, [str(p) for p in _photos(tmp_path / "first", 3)])
    before = snapshot(workspace / "photos")
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escape.jpg", b"gotcha")
    with pytest.raises(VistaError, match="evil.zip"):
        photos.add_photos(workspace, [str(archive)])
    assert_unchanged(before)


def test_zip_slip_through_the_app_writes_nothing_outside(session, tmp_path):
    root, workspace = session
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("IMG_1.jpg", b"x")
        zf.writestr("../../../escape.jpg", b"gotcha")
    with pytest.raises(VistaError, match="evil.zip.*outside"):
        photos.add_photos(workspace, [str(archive)])
    assert not list(tmp_path.rglob("escape.jpg"))


@pytest.mark.parametrize("text, message", [
    ("../../..", "outside the workspace"),
    ("/etc", "outside the workspace"),
    ("", "empty"),
    ("nothing-here", "not found"),
])
def test_load_folder_refuses_paths_outside_or_missing(session, text, message):
    root, workspace = session
    with pytest.raises(VistaError, match=message):
        photos.load_folder(root, workspace, text)


def test_load_folder_through_a_symlink_that_points_outside(session, tmp_path):
    root, workspace = session
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "transforms.json").write_text("{}")
    (root / "shortcut").symlink_to(outside)
    with pytest.raises(VistaError, match="outside the workspace"):
        photos.load_folder(root, workspace, "shortcut")


def test_load_folder_with_a_damaged_scene(session, tiny_scene):
    root, workspace = session
    scene = root / "library" / "scene"
    shutil.copytree(tiny_scene, scene)
    (scene / "field.safetensors").write_bytes(b"\x00" * 40)
    before = snapshot(scene)
    with pytest.raises(VistaError, match="field.safetensors"):
        photos.load_folder(root, workspace, "library/scene")
    assert_unchanged(before)


def test_forged_session_token_gets_a_new_workspace(session):
    root, workspace = session
    for forged in ("../../etc", "sessions/../..", "0" * 32, str(workspace.parent.parent), "not-a-token"):
        folder = studio_session.session_folder(root, forged)
        assert folder != workspace and folder.parent == workspace.parent and not any(folder.iterdir())


@pytest.mark.parametrize("content, needles", [
    ("{", ("shot.json", "malformed")),
    (json.dumps({"camera_path": [{"camera_to_world": "1 0 0 0", "fov": 50}], "render_width": 64,
                 "render_height": 48, "seconds": 1}), ("shot.json", "string")),
    (json.dumps({"keyframes": [{"position": [0, 0, 1e999]}, {"position": [0, 0, 2]}]}), ("shot.json",)),
])
def test_import_bad_camera_path(session, tmp_path, content, needles):
    _, workspace = session
    upload = tmp_path / "shot.json"
    upload.write_text(content)
    with pytest.raises(VistaError) as raised:
        path.import_path(workspace, str(upload))
    for needle in needles:
        assert needle in str(raised.value)


def test_import_oversized_camera_path(session, tmp_path):
    _, workspace = session
    upload = tmp_path / "huge.json"
    with open(upload, "wb") as handle:
        handle.truncate(65 * 1024 * 1024)  # sparse: no disk used
    with pytest.raises(VistaError, match="MB"):
        path.import_path(workspace, str(upload))


@pytest.mark.parametrize("width, height, message", [
    (100000, 100000, "outside"), ("wide", 480, "whole numbers"), (0, 0, "outside"), (None, 480, "whole numbers"),
])
def test_absurd_render_resolution(width, height, message):
    with pytest.raises(VistaError, match=message):
        fields.check_size(width, height)


def test_refine_model_folder_outside_the_workspace(session):
    root, workspace = session
    with pytest.raises(VistaError, match="model folder.*outside the workspace"):
        refine.start_refine(root, workspace, "pipeline", "/usr/share", 10, 10)


def test_user_errors_become_one_line_and_bugs_do_not_leak_a_traceback():
    app = pytest.importorskip("app")  # imports gradio
    import gradio as gr

    @app.user_errors
    def bad_input():
        raise VistaError("shot.json: 'fov' 0 is outside (1, 179) degrees")

    @app.user_errors
    def bug():
        raise KeyError("oops")

    with pytest.raises(gr.Error) as shown:
        bad_input()
    assert "shot.json" in str(shown.value) and "Traceback" not in str(shown.value)
    with pytest.raises(gr.Error) as shown:
        bug()
    assert "internal error" in str(shown.value) and "Traceback" not in str(shown.value)
