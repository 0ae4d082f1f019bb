"""Output folders that exist, cannot be written, or fill up; and flags out of range."""

from __future__ import annotations

import errno
import os

import pytest

from tests.bad_inputs.conftest import assert_unchanged, copy_lego, refuses, run_vista, snapshot, train_args
from vista_core.errors import VistaError
from vista_core.files import atomic_write_json


@pytest.fixture
def lego(tmp_path):
    return copy_lego(tmp_path / "lego")


def test_existing_output_without_resume_or_overwrite(lego, tmp_path):
    out = tmp_path / "scene"
    out.mkdir()
    (out / "my-notes.txt").write_text("three weeks of work")
    refuses(*train_args(lego, out), needles=(str(out), "--resume", "--overwrite"), protect=(out, lego))


def test_output_is_a_file(lego, tmp_path):
    out = tmp_path / "scene.mp4"
    out.write_bytes(b"an older render")
    refuses(*train_args(lego, out), needles=("scene.mp4", "not a folder"), protect=(out, lego))


def test_output_under_a_regular_file(lego, tmp_path):
    """An unwritable place even for root: a folder path whose parent is a file."""
    blocker = tmp_path / "report.pdf"
    blocker.write_bytes(b"%PDF-1.4 precious")
    refuses(*train_args(lego, blocker / "scene"), needles=("report.pdf",), protect=(blocker, lego))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_output_folder(lego, tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    (parent / "old.txt").write_text("old")
    parent.chmod(0o500)
    try:
        refuses(*train_args(lego, parent / "scene"), needles=("locked",), protect=(parent, lego))
    finally:
        parent.chmod(0o700)


@pytest.mark.parametrize("flags, needle", [
    (["--steps", "0"], "steps"),
    (["--steps", "-5"], "steps"),
    (["--steps", "many"], "--steps"),
    (["--preset", "ultra"], "--preset"),
    (["--backend", "cuda"], "--backend"),
])
def test_out_of_range_flags(lego, tmp_path, flags, needle):
    args = ["train", lego, "--out", tmp_path / "scene", "--preset", "test", "--steps", "1", "--no-eval", *flags]
    refuses(*args, needles=(needle,), protect=(lego,))
    assert not (tmp_path / "scene").exists()


def _failing_replace(code):
    def replace(src, dst):
        raise OSError(code, os.strerror(code), str(dst))
    return replace


@pytest.mark.parametrize("code, message", [(errno.ENOSPC, "disk is full"), (errno.EACCES, "not writable"),
                                           (errno.EROFS, "not writable")])
def test_atomic_write_keeps_the_old_file_when_the_disk_refuses(tmp_path, monkeypatch, code, message):
    target = tmp_path / "scene.json"
    atomic_write_json(target, {"step": 100})
    before = snapshot(tmp_path)
    monkeypatch.setattr(os, "replace", _failing_replace(code))
    with pytest.raises(VistaError, match=message) as raised:
        atomic_write_json(target, {"step": 200})
    assert "scene.json" in str(raised.value)
    assert_unchanged(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.json"], "a temp file was left behind"


def test_full_disk_during_training_keeps_the_last_checkpoint(tiny_scene, tmp_path, monkeypatch):
    """ENOSPC while a resumed run checkpoints: a VistaError, and the scene folder still loads as before."""
    import shutil

    from scenes.config import preset_config
    from scenes.data import load_posed_images
    from scenes.scene import load_scene
    from scenes.train import train_scene

    scene_dir = tmp_path / "scene"
    shutil.copytree(tiny_scene, scene_dir)
    # the run rewrites train.json (its settings) before training; the checkpoints and scene files must survive
    before = snapshot(scene_dir / "checkpoints", scene_dir / "scene.json", scene_dir / "field.safetensors")
    data = load_posed_images(load_scene(scene_dir).data_source)
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            if len(data) > 10_000:  # the disk fills up when the weights are written
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: FullDisk(real_fdopen(fd, mode, *a, **k)))
    with pytest.raises(VistaError, match="disk is full"):
        train_scene(data, scene_dir, preset_config("test", steps=6, checkpoint_every=2), resume=True,
                    show_progress=False)
    monkeypatch.undo()
    assert_unchanged(before)
    assert load_scene(scene_dir).step == 4
    assert not [p for p in scene_dir.rglob("*.tmp")], "temp files were left behind"


def test_resume_into_a_folder_that_is_not_a_scene(lego, tmp_path):
    """--resume on a folder of someone's files: nothing there may be touched."""
    out = tmp_path / "holiday"
    out.mkdir()
    (out / "IMG_0001.jpg").write_bytes(b"\xff\xd8\xff\xe0 a photo")
    before = snapshot(out, lego)
    result = run_vista(*train_args(lego, out), "--resume")
    assert "Traceback" not in result.output
    assert_unchanged(before)
