"""Render recipes are user files: the paths in them stay inside the recipe's folder (issue #23).

A recipe names a scene folder and its videos. `vista render --recipe` loads the scene, hashes and probes the
videos, and writes `<video>.rerender.mp4` beside the recorded video, so a recipe pointing elsewhere could make
Vista read, probe or write outside. Each such recipe is refused with one line that names the recorded text,
the same line whether or not something exists there.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from scenes.recipe import recipe_path_for
from tests.bad_inputs.conftest import assert_unchanged, snapshot
from tests.test_recipe import scene_dir, write_path  # noqa: F401 - the module's scene fixture
from vista import main


@pytest.fixture(scope="module")
def rendered(scene_dir, tmp_path_factory) -> Path:  # noqa: F811
    """A folder with a scene and a 2-frame shot rendered from it: the recipe records 'scene' and 'shot.mp4'."""
    folder = tmp_path_factory.mktemp("recipe") / "project"
    shutil.copytree(scene_dir, folder / "scene")
    out = folder / "shot.mp4"
    path = write_path(folder.parent / "p.json")
    assert main(["render", str(folder / "scene"), "--path", str(path), "--out", str(out), "--frames", "0:2",
                 "--no-progress", "--no-watermark"]) == 0
    return folder


@pytest.fixture
def shot(rendered, tmp_path) -> Path:
    """A fresh copy of the rendered folder (its recipe's relative paths make the copy whole); its shot.mp4."""
    shutil.copytree(rendered, tmp_path / "project")
    return tmp_path / "project" / "shot.mp4"


def _rerender(recipe: Path, capsys, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["render", *extra, "--recipe", str(recipe), "--no-progress"])
    return code, capsys.readouterr().err


def test_a_recipe_records_paths_relative_to_its_folder_and_a_moved_folder_renders_again(shot, tmp_path, capsys):
    raw = json.loads(recipe_path_for(shot).read_text())
    assert raw["scene"]["dir"] == "scene" and raw["outputs"]["video"] == "shot.mp4"
    moved = tmp_path / "moved"
    shot.parent.rename(moved)
    code, err = _rerender(moved / "shot.recipe.json", capsys)
    assert code == 0, err
    assert (moved / "shot.rerender.mp4").is_file()


@pytest.mark.parametrize("field", ["scene", "video", "depth_video"])
@pytest.mark.parametrize("form", ["absolute", "climbing", "symlink"])
def test_a_recipe_pointing_outside_is_refused_alike_whether_or_not_the_target_exists(
        shot, scene_dir, tmp_path, capsys, field, form):  # noqa: F811
    outside = tmp_path / "outside"
    shutil.copytree(scene_dir, outside / "real-scene")  # a loadable scene with the recipe's own content hash
    shutil.copy(shot, outside / "real-scene.mp4")
    recipe = recipe_path_for(shot)
    original = json.loads(recipe.read_text())
    messages = []
    for name in ("real-scene", "missing-thing"):  # exists / does not exist
        target = outside / (name if field == "scene" else name + ".mp4")
        if form == "absolute":
            recorded = str(target)
        elif form == "climbing":
            recorded = os.path.relpath(target, shot.parent)
        else:
            link = shot.parent / f"link-{name}"
            link.unlink(missing_ok=True)
            link.symlink_to(target)
            recorded = link.name
        raw = json.loads(json.dumps(original))
        if field == "scene":
            raw["scene"]["dir"] = recorded
        else:
            raw["outputs"][field] = recorded
        recipe.write_text(json.dumps(raw))
        before = snapshot(outside)
        code, err = _rerender(recipe, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert "is outside" in err and (field != "scene" or "vista render SCENE --recipe" in err), err
        assert_unchanged(before)
        assert not list(outside.glob("*.rerender.mp4")) and not (shot.parent / "shot.rerender.mp4").exists()
        messages.append(err.replace(recorded, "<recorded>"))
    assert messages[0] == messages[1]  # no oracle: an existing target and a missing one read the same


def test_an_explicit_scene_replaces_a_recorded_scene_outside(shot, scene_dir, tmp_path, capsys):  # noqa: F811
    recipe = recipe_path_for(shot)
    raw = json.loads(recipe.read_text())
    raw["scene"]["dir"] = str(scene_dir)  # outside the recipe's folder, but the user names it on the command line
    recipe.write_text(json.dumps(raw))
    assert _rerender(recipe, capsys)[0] == 2
    code, err = _rerender(recipe, capsys, str(scene_dir))
    assert code == 0, err
