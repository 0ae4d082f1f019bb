"""The studio's functions (vista_studio) with bad input, called in-process as its event handlers call them.

Each must raise a VistaError naming the file and the problem (the app shows it as one line), leave
the session's earlier files as they were, and never reach outside the session's workspace.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from tests.bad_inputs.conftest import assert_unchanged, snapshot
from tests.conftest import shared_dataset
from vista_core.errors import VistaError
from vista_studio import build, fields, limits, path, photos, refine
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
    for forged in ("../../etc", "sessions/../..", "0" * 32, str(workspace.parent.parent), "not-a-token", None):
        folder, key = studio_session.restore_session(root, forged, "page-1")
        assert folder != workspace and folder.parent == workspace.parent and not any(folder.iterdir())
        assert key != forged


def test_a_10000_minute_build_is_refused(session):
    _, workspace = session
    with pytest.raises(VistaError, match=r"10,000 minutes is more than the studio allows per build \(120 minutes\)"):
        build.start_build(workspace, "test", 10_000, 0)
    assert wsp.read_job(workspace) is None


def test_a_billion_refine_steps_are_refused(session):
    root, workspace = session
    wsp.update_session(workspace, scene=str(workspace / "scene"))
    with pytest.raises(VistaError, match="guided training steps: 1,000,000,000 is more than the studio's limit"):
        refine.start_refine(root, workspace, "prior", "", 10**9, 100)
    with pytest.raises(VistaError, match="prior training steps: 1,000,000,000"):
        refine.start_refine(root, workspace, "prior", "", 100, 10**9)


def test_an_8k_100000_frame_render_is_refused(session, monkeypatch):
    from dataclasses import dataclass

    from vista_studio import render as render_step

    @dataclass
    class LongPath:
        seconds: float
        fps: float = 24.0

        @property
        def n_frames(self) -> int:
            return round(self.seconds * self.fps)

    _, workspace = session
    wsp.update_session(workspace, scene=str(workspace / "scene"))
    monkeypatch.setattr(render_step, "read_path", lambda w: LongPath(100_000 / 24))
    with pytest.raises(VistaError, match="7680 x 4320 x 100,000 frames is more than the studio allows"):
        render_step.start_final_render(workspace, 7680, 4320, 24, "standard")
    assert wsp.read_job(workspace) is None


def _zip_claiming_a_huge_member(archive: Path, photos_in: list[Path], claimed: int = 0xFFFFFFF0) -> None:
    """A zip of photos plus `junk.bin`, whose headers claim `claimed` bytes (about 4 GB); its data is 5 bytes."""
    import struct

    with zipfile.ZipFile(archive, "w") as zf:
        for photo in photos_in:
            zf.write(photo, photo.name)
        zf.writestr("junk.bin", b"junk!")
    data = bytearray(archive.read_bytes())
    central = data.rfind(b"PK\x01\x02")  # junk.bin was written last: its entry is the last one
    struct.pack_into("<I", data, central + 24, claimed)  # uncompressed size in the central directory
    local = struct.unpack_from("<I", data, central + 42)[0]
    struct.pack_into("<I", data, local + 22, claimed)  # and in the local header
    archive.write_bytes(bytes(data))
    assert zipfile.ZipFile(archive).getinfo("junk.bin").file_size == claimed


def test_a_zip_with_a_4gb_junk_member_keeps_its_photos_and_skips_the_junk_unread(session, tmp_path, monkeypatch):
    _, workspace = session
    archive = tmp_path / "capture.zip"
    _zip_claiming_a_huge_member(archive, _photos(tmp_path / "src", 3))
    opened, open_member = [], zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, member, *a, **k: opened.append(
        getattr(member, "filename", member)) or open_member(self, member, *a, **k))
    message = photos.add_photos(workspace, [str(archive)])
    assert "junk.bin" not in opened and len(opened) == 3  # never decompressed
    assert "3 photos" in message or "of 3" in message, message
    kept = sorted(p.name for p in (workspace / "photos").rglob("*") if p.is_file())
    assert kept == ["IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg"]


def test_zips_keep_only_photos_and_pose_files(session, tmp_path):
    _, workspace = session
    archive = tmp_path / "capture.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for photo in _photos(tmp_path / "src", 3):
            zf.write(photo, f"capture/{photo.name}")
        zf.writestr("capture/transforms.json", "{}")
        for junk in ("capture/run.sh", "capture/notes.txt", "__MACOSX/capture/._IMG_0001.jpg", "capture/.hidden.jpg"):
            zf.writestr(junk, b"junk")
    photos.add_photos(workspace, [str(archive)])
    kept = sorted(p.relative_to(workspace / "photos").as_posix() for p in (workspace / "photos").rglob("*")
                  if p.is_file())
    assert kept == [f"capture/capture/{n}" for n in ("IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg",
                                                     "transforms.json")]


def test_zip_caps_hold_over_the_whole_upload_not_per_zip(session, tmp_path, monkeypatch):
    _, workspace = session
    sources = _photos(tmp_path / "src", 4)
    zips = []
    for k in range(2):
        zips.append(tmp_path / f"part{k}.zip")
        with zipfile.ZipFile(zips[-1], "w") as zf:
            for photo in sources[2 * k:2 * k + 2]:
                zf.write(photo, photo.name)
    one_zip = sum(p.stat().st_size for p in sources[:2])
    monkeypatch.setattr(limits, "LIMITS", replace(limits.LIMITS, max_unpacked_bytes=int(one_zip * 1.5)))
    photos.add_photos(workspace, [str(zips[0])])  # each zip alone fits
    before = snapshot(workspace / "photos")
    with pytest.raises(VistaError, match="part1.zip: decompresses to more than"):
        photos.add_photos(workspace, [str(z) for z in zips])
    assert_unchanged(before)


def test_the_disk_quota_is_checked_before_uploads_and_jobs(session, tmp_path, monkeypatch):
    _, workspace = session
    (workspace / "old.bin").write_bytes(b"x" * 4000)
    monkeypatch.setattr(limits, "LIMITS", replace(limits.LIMITS, session_quota_bytes=3000))
    with pytest.raises(VistaError, match="disk quota is 0.0 GB"):
        photos.add_photos(workspace, [str(p) for p in _photos(tmp_path / "src", 2)])
    assert not (workspace / "photos").exists()
    with pytest.raises(VistaError, match="disk quota"):
        wsp.start_job(workspace, "render", lambda job: {})
    assert wsp.read_job(workspace) is None


def test_the_job_queue_is_bounded_across_sessions(session, monkeypatch):
    import threading

    root, _ = session
    monkeypatch.setattr(limits, "LIMITS", replace(limits.LIMITS, max_waiting_jobs=1))
    release = threading.Event()
    running = [wsp.new_workspace(root) for _ in range(2)]
    for folder in running:  # one runs, one waits
        wsp.start_job(folder, "render", lambda job: release.wait(30) and {})
    try:
        with pytest.raises(VistaError, match="the studio is busy: 2 jobs"):
            wsp.start_job(wsp.new_workspace(root), "render", lambda job: {})
    finally:
        release.set()
        for folder in running:
            assert wsp.wait_job(folder, timeout_s=30).status == "done"


def test_gradio_upload_cache_is_deleted_once_the_photos_are_copied(session, tmp_path, monkeypatch):
    app = pytest.importorskip("app")
    import gradio as gr

    _, workspace = session
    cache = tmp_path / "gradio-cache"
    uploads = []
    for i, photo in enumerate(_photos(tmp_path / "src", 3)):
        (cache / f"hash{i}").mkdir(parents=True)
        uploads.append(shutil.copy(photo, cache / f"hash{i}" / photo.name))
    elsewhere = _photos(tmp_path / "mine", 1)[0]
    monkeypatch.setattr(gr.utils, "get_upload_folder", lambda: str(cache))
    app.uploaded(photos.add_photos)(workspace, [*uploads, str(elsewhere)])
    assert len(list((workspace / "photos").iterdir())) == 4
    assert cache.is_dir() and not any(cache.iterdir()) and elsewhere.is_file()
    with pytest.raises(VistaError):  # a refused upload is deleted too
        app.uploaded(photos.add_photos)(workspace, [shutil.copy(elsewhere, cache / "again.zip")])
    assert not any(cache.iterdir())


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
