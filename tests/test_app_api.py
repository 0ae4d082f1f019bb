"""The studio through its real API: the app launched in-process, driven with gradio_client.

The flow test picks the sample scene, builds it with the `test` preset, draws a path (a preset plus a
keyframe added by a map click) and renders it; the MP4 it downloads must decode. A second session
running at the same time must not see or reach the first one's files.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import shared_dataset
from vista_core.errors import VistaError
from vista_studio import path, photos, refine, session, views
from vista_studio import workspace as wsp

gradio_client = pytest.importorskip("gradio_client")


# --- workspaces: confinement and limits (no server needed) -------------------------------------------

def test_confine_path_keeps_users_inside_their_workspace(tmp_path):
    root = wsp.workspace_root(tmp_path / "root")
    mine, theirs = wsp.new_workspace(root), wsp.new_workspace(root)
    (mine / "scene").mkdir()
    (root / "library" / "lego").mkdir(parents=True)
    assert wsp.confine_path(root, mine, "library/lego") == (root / "library" / "lego").resolve()
    assert wsp.confine_path(root, mine, str(root / "library" / "lego")) == (root / "library" / "lego").resolve()
    assert wsp.confine_path(root, mine, str(mine / "scene")) == (mine / "scene").resolve()
    refused = {
        "/etc": "outside the workspace",
        "..": "outside the workspace",
        "library/../../x": "outside the workspace",
        str(theirs): "another session",
        f"sessions/{theirs.name}/scene": "another session",
        f"{mine}/../{theirs.name}": "another session",
        "": "empty",
        "a\x00b": "not a valid path",
    }
    for text, reason in refused.items():
        with pytest.raises(VistaError, match=reason):
            wsp.confine_path(root, mine, text)
    # a symlink inside the session that points out of the workspace is resolved, then refused
    (mine / "escape").symlink_to("/etc")
    with pytest.raises(VistaError, match="outside the workspace"):
        wsp.confine_path(root, mine, str(mine / "escape" / "passwd"))


def test_uploads_are_bounded_and_renamed_safely(tmp_path):
    files = []
    for i in range(4):
        files.append(tmp_path / f"p{i}.jpg")
        files[-1].write_bytes(b"x" * 1000)
    wsp.check_upload(files, max_files=4, max_bytes=4000)
    with pytest.raises(VistaError, match="5 files, more than the 4"):
        wsp.check_upload(files + [files[0]], max_files=4)
    with pytest.raises(VistaError, match="4 MB|0 MB in total"):
        wsp.check_upload(files, max_bytes=3999)
    with pytest.raises(VistaError, match="no files"):
        wsp.check_upload([])
    assert wsp.safe_name("../../etc/passwd") == "passwd"
    assert wsp.safe_name("..\\..\\x y.jpg") == "x_y.jpg"
    assert wsp.safe_name(".hidden") == "hidden"
    assert wsp.open_workspace(tmp_path, "../../etc") is None
    assert wsp.open_workspace(tmp_path, "0" * 32) is None  # well-formed but never created


def test_job_state_survives_in_the_folder_and_reports_errors(tmp_path):
    folder = wsp.new_workspace(tmp_path)

    def work(job):
        for step in range(1, 4):
            job.update(step=step, total=3, stage="counting")
        return {"answer": 42}

    wsp.start_job(folder, "count", work)
    state = wsp.wait_job(folder, timeout_s=30)
    assert state.status == "done" and state.result == {"answer": 42} and state.step == 3
    on_disk = wsp.read_json(folder / wsp.JOB_FILE, "job")
    assert on_disk["status"] == "done" and on_disk["result"] == {"answer": 42}

    def bad_input(job):
        raise VistaError("photos.zip: not a readable zip archive")

    wsp.start_job(folder, "build", bad_input)
    state = wsp.wait_job(folder, timeout_s=30)
    assert state.status == "failed" and state.message == "photos.zip: not a readable zip archive"

    def slow(job):
        while True:
            job.check_cancelled()
            time.sleep(0.01)

    wsp.start_job(folder, "render", slow)
    with pytest.raises(VistaError, match="already running"):
        wsp.start_job(folder, "render", slow)
    assert wsp.cancel_job(folder)
    assert wsp.wait_job(folder, timeout_s=30).status == "cancelled"


def test_another_sessions_folder_name_or_key_is_refused(tmp_path):
    """Only the opaque key a browser was given finds its folder again; the folder's name (it shows in recipes and
    job results), its path or a key derived from it opens a new, empty session."""
    import hashlib

    root = wsp.workspace_root(tmp_path / "root")
    theirs, their_key = session.restore_session(root, None, "their-page")
    (theirs / "secret.txt").write_text("theirs")
    assert session.restore_session(root, their_key, "their-reload") == (theirs, their_key)  # a reload
    assert session.session_folder(root, "their-reload") == theirs
    for forged in (theirs.name, str(theirs), f"sessions/{theirs.name}", hashlib.sha256(their_key.encode()).hexdigest(),
                   their_key[:-1] + ("A" if their_key[-1] != "A" else "B")):
        mine, key = session.restore_session(root, forged, "my-page")
        assert mine != theirs and not (mine / "secret.txt").exists() and key != their_key
        assert session.session_folder(root, "my-page") == mine  # my events reach my folder only
    assert session.session_folder(root, "a-new-client") not in (theirs, mine)
    with pytest.raises(VistaError, match="studio's own folder"):
        wsp.confine_path(root, mine, ".studio/keys", "folder")


def test_the_workspace_root_is_never_an_allowed_path(tmp_path, monkeypatch):
    """Not even when it lies outside the cwd and the temp dir: the files a view shows are published one by one."""
    app = pytest.importorskip("app")
    import gradio as gr

    from vista_studio import published

    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs))
    monkeypatch.setattr(published, "servable_without_help", lambda root: False)
    root = tmp_path / "root"
    demo = app.launch_app(root, block=False, quiet=True, session_ttl_hours=1)
    assert launched["allowed_paths"] == []
    demo.close()
    workspace = wsp.new_workspace(root)
    (workspace / "shot.mp4").write_bytes(b"video")
    publisher = published.Publisher(root, tmp_path / "out")
    shown = publisher.values(workspace, {"video": str(workspace / "shot.mp4"), "notice": str(workspace / "shot.mp4"),
                                         "gallery": [(str(workspace / "shot.mp4"), "caption")]})
    assert Path(shown["video"]).read_bytes() == b"video" and not Path(shown["video"]).is_relative_to(root)
    assert shown["gallery"][0] == (shown["video"], "caption")
    assert shown["notice"] == str(workspace / "shot.mp4")  # not a file component: left as it is


def test_idle_sessions_are_deleted_with_their_keys(tmp_path):
    import os

    root = wsp.workspace_root(tmp_path / "root")
    old, old_key = session.restore_session(root, None, "old-page")
    fresh, fresh_key = session.restore_session(root, None, "fresh-page")
    long_ago = time.time() - 73 * 3600
    os.utime(old, (long_ago, long_ago))
    deleted = session.clean_idle_sessions(root, ttl_hours=72)
    assert deleted == [old.name] and not old.exists() and fresh.is_dir()
    assert session.known_folder("old-page") is None
    assert session.restore_session(root, old_key, "old-again")[0] != old  # its key found nothing
    assert session.restore_session(root, fresh_key, "fresh-again")[0] == fresh


def test_vista_app_listens_locally_unless_told_and_warns_when_shared(tmp_path, monkeypatch, caplog):
    import app
    import vista

    calls = []
    monkeypatch.setattr(app, "launch_app", lambda root, host, port, **kw: calls.append((Path(root), host, port)))
    assert vista.main(["app", "--workspace", str(tmp_path)]) == 0
    assert calls[-1] == (tmp_path, "127.0.0.1", 7860)
    assert "warning" not in caplog.text
    assert vista.main(["app", "--share-lan", "--port", "8000", "--workspace", str(tmp_path)]) == 0
    assert calls[-1] == (tmp_path, "0.0.0.0", 8000)
    assert "anyone who can reach this machine" in caplog.text
    assert vista.main(["app", "--port", "70000"]) == 2  # a readable error, not a traceback
    assert vista.main(["app", "--session-ttl-hours", "0", "--workspace", str(tmp_path)]) == 2


# --- the app through gradio_client ----------------------------------------------------------------

@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    import app

    shared_dataset("lego-100")
    root = tmp_path_factory.mktemp("studio")
    demo = app.launch_app(root, block=False, quiet=True)
    yield demo.local_url, root
    demo.close()
    wsp.cancel_jobs(root)  # a failed test must not leave its build running into the next test


def wait_for_job(client, timeout_s: float = 1800) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = client.predict(api_name="/job_status")
        if state["status"] not in ("queued", "running"):
            return state
        time.sleep(1.0)
    raise AssertionError(f"job still running after {timeout_s} s: {state}")


OUT = {"notice": 0, "gallery": 3, "keys": 4, "map": 5, "notes": 6, "glb": 7, "downloads": -2, "provenance": -1}
"""Where an action's outputs are in the tuple gradio_client returns (states and buttons are not in it)."""


def session_dirs(root: Path) -> set[Path]:
    folder = root / wsp.SESSIONS
    return {p for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()


def test_uploaded_photos_get_a_verdict_each_and_bad_zips_a_message(studio, tmp_path):
    import zipfile

    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, _ = studio
    photos = sorted(shared_dataset("fox-small").joinpath("images").glob("*.jpg"))[:5]
    archive = tmp_path / "capture.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for photo in photos[:4]:
            zf.write(photo, f"capture/{photo.name}")
    not_a_photo = tmp_path / "notes.jpg"
    not_a_photo.write_text("not an image")
    client = Client(url, verbose=False)
    out = client.predict([handle_file(str(archive)), handle_file(str(photos[4])), handle_file(str(not_a_photo))],
                         api_name="/add_photos")
    assert "1 of 6 photos excluded" in out[OUT["notice"]]
    captions = sorted(item["caption"] for item in out[OUT["gallery"]])
    assert len(captions) == 6 and sum(c.startswith("✓") for c in captions) == 5
    assert any(c.startswith("✗ notes.jpg: not an image") for c in captions)

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../outside.jpg", b"x")
    with pytest.raises(AppError, match="points outside the folder"):
        client.predict([handle_file(str(evil))], api_name="/add_photos")
    # the refused upload left the previous one in place
    out = client.predict(api_name="/refresh")
    assert len(out[OUT["gallery"]]) == 6


@pytest.mark.slow
def test_whole_flow_ends_in_a_video_that_decodes_and_sessions_stay_apart(studio):
    import av
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url, root = studio
    timings = {}
    a = Client(url, verbose=False)
    b = Client(url, verbose=False)

    t0 = time.perf_counter()
    before = session_dirs(root)
    a.predict(api_name="/use_sample")
    a.predict("test", None, 0, api_name="/build")
    [workspace_a] = session_dirs(root) - before

    # while A builds, B works in its own folder and cannot reach A's
    assert b.predict(api_name="/job_status") == {"status": "none"}
    with pytest.raises(AppError, match="another session"):
        b.predict(str(workspace_a / "scene"), api_name="/load_folder")
    with pytest.raises(AppError, match="another session"):
        b.predict(f"sessions/{workspace_a.name}/scene", api_name="/load_folder")
    with pytest.raises(AppError, match="outside the workspace"):
        b.predict("/etc", api_name="/load_folder")
    [workspace_b] = session_dirs(root) - before - {workspace_a}

    state = wait_for_job(a)
    timings["build"] = time.perf_counter() - t0
    assert state["status"] == "done", state
    assert state["result"]["step"] == 300
    assert state["result"]["heldout_psnr"] > 17.0  # the test preset reaches ~20 dB on lego-100

    # B still has nothing: no scene, no job, none of A's files
    assert b.predict(api_name="/job_status") == {"status": "none"}
    with pytest.raises(AppError, match="no scene yet"):
        b.predict("orbit", 2, 1.0, None, 360, api_name="/apply_preset")
    assert not any(p.name in ("scene", "job.json") for p in workspace_b.iterdir())

    # path: a preset, then one more keyframe from a click on the top-down map
    t0 = time.perf_counter()
    out = a.predict("orbit", 2, 1.0, None, 180, api_name="/apply_preset")
    assert "Preset **orbit**" in out[OUT["notice"]]
    n_keys = len(out[OUT["keys"]]["data"])
    assert n_keys >= 2
    assert Path(out[OUT["map"]]).stat().st_size > 0 and Path(out[OUT["glb"]]).stat().st_size > 0
    out = a.predict(200, 120, 1.0, 2, api_name="/add_keyframe_pixel")
    assert f"Keyframe {n_keys + 1} added" in out[OUT["notice"]]
    assert len(out[OUT["keys"]]["data"]) == n_keys + 1
    timings["path"] = time.perf_counter() - t0

    # bad input is a readable message, not a traceback
    with pytest.raises(AppError, match="resolution 0 x 180"):
        a.predict(0, 180, 12, "draft", api_name="/render")

    t0 = time.perf_counter()
    a.predict(128, 96, 12, "draft", api_name="/render")
    state = wait_for_job(a)
    timings["render"] = time.perf_counter() - t0
    assert state["status"] == "done", state
    frames = state["result"]["frames"]
    assert frames == 24  # 2 s at 12 fps

    out = a.predict(api_name="/refresh")
    downloads = out[OUT["downloads"]]
    names = sorted(Path(f).name for f in downloads)
    assert names == ["camera_path.json", "shot.mp4", "shot.recipe.json"]
    mp4 = next(Path(f) for f in downloads if f.endswith(".mp4"))
    with av.open(str(mp4)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == frames
    assert decoded[0].shape == (96, 128, 3)
    assert decoded[0].std() > 5  # a picture of the lego, not a blank frame
    # the provenance verdict is shown; 128x96 is too small for the watermark, so only the tags remain
    assert "verdict: tagged only" in out[OUT["provenance"]]

    # B's outputs are still empty
    assert b.predict(api_name="/refresh")[OUT["downloads"]] is None
    print("\napp flow timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))


def test_refine_can_be_cancelled_and_leaves_no_refined_scene(tmp_path):
    """Cancel during the patch prior's training: the job ends as cancelled, nothing is written, the scene stays."""
    from scenes.config import preset_config
    from scenes.data import load_posed_images
    from scenes.train import train_scene

    root = wsp.workspace_root(tmp_path / "root")
    workspace = wsp.new_workspace(root)
    scene_dir = workspace / "scene-in"
    train_scene(load_posed_images(shared_dataset("lego-100")), scene_dir, preset_config("test", steps=5, seed=0),
                show_progress=False)
    photos.load_folder(root, workspace, str(scene_dir))
    path.apply_preset(workspace, "orbit", 2, 1.0, None, 90)
    refine.start_refine(root, workspace, "prior", "", 600, 3000)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = wsp.read_job(workspace)
        if state.stage.startswith("patch prior") and state.step >= 1:
            break
        assert state.active, state
        time.sleep(0.05)
    assert session.cancel_current(workspace) == "Cancelling…"
    state = wsp.wait_job(workspace, timeout_s=60)
    assert state.status == "cancelled" and state.total == 3000 and state.step < 3000
    assert not any(p.name.startswith("refined") for p in workspace.iterdir())
    assert wsp.read_session(workspace).get("refined") is None
    assert "step" in views.progress_html(state, ("refine",))
