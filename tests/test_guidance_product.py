"""What a user sees of a refine: `vista refine` prints its check along the path before -> after, and the studio's
Refine step shows before | after frames side by side with the same numbers. The `inpaint` tier keeps both fast
(no patch prior to train)."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from tests.conftest import shared_dataset
from tests.support.guidance import digest


@pytest.fixture(scope="module")
def lego_scene(tmp_path_factory):
    """lego-100 trained for a few steps with the `test` preset, through the CLI."""
    import vista

    folder = tmp_path_factory.mktemp("product") / "scene"
    assert vista.main(["train", str(shared_dataset("lego-100")), "--out", str(folder), "--preset", "test",
                       "--steps", "8", "--no-eval"]) == 0
    return folder


def test_vista_refine_prints_and_writes_its_check_before_and_after(lego_scene, tmp_path, capsys):
    import vista
    from vista_core.files import read_json

    before = digest(lego_scene)
    out = tmp_path / "refined"
    code = vista.main(["refine", str(lego_scene), "--out", str(out), "--tier", "inpaint", "--steps", "3",
                       "--rounds", "1", "--keyframes", "1"])
    text = capsys.readouterr().out
    assert code == 0, text
    line = next(line for line in text.splitlines() if line.startswith("along the path"))
    assert "coverage" in line and "floaters" in line and line.count("->") == 2
    check = read_json(out / "path_check.json", "path check")
    for when in ("before", "after"):
        assert 0.0 <= check[when]["coverage"] <= 1.0 and 0.0 <= check[when]["floaters"] <= 1.0
        assert check[when]["frames"] >= 1
    # the numbers printed are the ones written
    assert f"coverage {check['before']['coverage']:.2f} -> {check['after']['coverage']:.2f}" in line
    assert digest(lego_scene) == before
    # --no-check skips it
    assert vista.main(["refine", str(lego_scene), "--out", str(tmp_path / "unchecked"), "--steps", "1", "--rounds",
                       "1", "--keyframes", "1", "--no-check"]) == 0  # the default tier (geometric: no fixer)
    assert "along the path" not in capsys.readouterr().out
    assert not (tmp_path / "unchecked" / "path_check.json").exists()


def test_the_studio_refine_step_shows_before_and_after_side_by_side_with_the_check(lego_scene, tmp_path):
    from vista_core.files import read_json
    from vista_studio import path, photos, refine
    from vista_studio import workspace as wsp

    root = wsp.workspace_root(tmp_path / "root")
    workspace = wsp.new_workspace(root)
    shutil.copytree(lego_scene, workspace / "scene-in")
    photos.load_folder(root, workspace, str(workspace / "scene-in"))
    path.apply_preset(workspace, "orbit", 2, 1.0, None, 90)
    refine.start_refine(root, workspace, "inpaint", "", 3, 10)
    state = wsp.wait_job(workspace, timeout_s=600)
    assert state.status == "done", state
    session = wsp.read_session(workspace)
    pairs = session["refine_pairs"]
    assert len(pairs) == 3  # first, middle and last path frames
    check = read_json(wsp.confine_path(root, workspace, session["refined"]) / "path_check.json", "path check")
    numbers = f"coverage {check['before']['coverage']:.2f} → {check['after']['coverage']:.2f}"
    for file, caption in pairs:
        assert "before | after" in caption and numbers in caption and "floaters" in caption
        with Image.open(file) as image:
            width, height = image.size
        assert width > 2 * height * 0.9  # two square lego frames and a seam, side by side
    assert session["refine_check"].startswith("along the path")
