"""Issue 23, items 1 and 2: nothing outside the dataset is read through a transforms file or a scene's
`data_source`, and `vista eval` never scores a training view as held-out or stale photos silently."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.bad_inputs.conftest import (
    assert_unchanged,
    assert_user_error,
    copy_fox,
    copy_lego,
    edit_json,
    run_vista,
    snapshot,
    train_args,
)
from tests.conftest import shared_dataset


def refused(*args, needles, protect, real_process=False) -> str:
    """Exit code 2, one line naming the problem, no traceback, nothing under `protect` changed; returns the line."""
    before = snapshot(*protect)
    result = run_vista(*args, real_process=real_process)
    stderr = assert_user_error(result, *map(str, needles))
    assert result.returncode == 2, result.output[-2000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    assert_unchanged(before)
    return lines[0]


# 1. file_path values that leave the dataset folder ------------------------------------------------------------


def _outside_image(tmp_path: Path, exists: bool) -> Path:
    """A real photo beside (not inside) the dataset, or the same name with nothing there."""
    secret = tmp_path / "private" / "secret.png"
    if exists:
        secret.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_dataset("lego-100") / "test" / "r_0.png", secret)
    return secret


FILE_PATHS = {
    "absolute": lambda data, secret: str(secret),
    "climbing": lambda data, secret: "../private/secret.png",
    "climbing-after-a-folder": lambda data, secret: "./train/../../private/secret.png",
}


@pytest.mark.parametrize("how", sorted(FILE_PATHS))
def test_blender_file_path_outside_the_dataset(tmp_path, how):
    messages = []
    for exists in (True, False):  # the message must not tell whether the outside file exists
        case = tmp_path / str(exists)
        secret = _outside_image(case, exists)
        data = copy_lego(case / "lego")
        file_path = FILE_PATHS[how](data, secret)
        edit_json(data / "transforms_train.json", lambda m, f=file_path: m["frames"][1].update(file_path=f))
        line = refused(*train_args(data, case / "scene"), needles=("transforms_train.json", "frame 1",
                                                                    "not inside the dataset folder"),
                       protect=(data, case / "private") if exists else (data,), real_process=how == "absolute")
        assert not (case / "scene").exists()
        messages.append(line.replace(str(case), "CASE"))
    assert messages[0] == messages[1], "the message tells whether the outside file exists"


@pytest.mark.parametrize("how", sorted(FILE_PATHS))
def test_nerfstudio_file_path_outside_the_dataset(tmp_path, how):
    messages = []
    for exists in (True, False):
        case = tmp_path / str(exists)
        secret = _outside_image(case, exists)
        data = copy_fox(case / "fox", n=3)
        file_path = FILE_PATHS[how](data, secret)
        edit_json(data / "transforms.json", lambda m, f=file_path: m["frames"][2].update(file_path=f))
        line = refused(*train_args(data, case / "scene"), needles=("transforms.json", "frame 2",
                                                                    "not inside the dataset folder"),
                       protect=(data,), real_process=how == "climbing")
        assert not (case / "scene").exists()
        messages.append(line.replace(str(case), "CASE"))
    assert messages[0] == messages[1], "the message tells whether the outside file exists"


def test_a_symlink_inside_the_dataset_still_works_and_a_dangling_one_reveals_nothing(tmp_path):
    from scenes.data import load_posed_images
    from vista_core.errors import VistaError

    secret = _outside_image(tmp_path, exists=True)
    data = copy_lego(tmp_path / "lego")
    (data / "train" / "linked.png").symlink_to(secret)
    edit_json(data / "transforms_train.json", lambda m: m["frames"][1].update(file_path="./train/linked"))
    assert load_posed_images(data).names[1] == "train/linked.png"  # the user's own link out of the folder works
    secret.unlink()
    with pytest.raises(VistaError, match="cannot be read") as error:
        load_posed_images(data)
    assert "missing" in str(error.value) and "not an image" in str(error.value)  # one message for every failure


# 1. a scene's data_source ----------------------------------------------------------------------------------------


DATA_SOURCES = {
    "missing": lambda tmp_path: tmp_path / "moved-away",
    "not-a-dataset": lambda tmp_path: Path("/etc"),
    "a-file": lambda tmp_path: Path("/etc/hostname") if Path("/etc/hostname").is_file() else Path(__file__),
}


@pytest.mark.parametrize("case", sorted(DATA_SOURCES))
def test_eval_refuses_a_data_source_that_is_no_dataset(scene_copy, tmp_path, case):
    source = DATA_SOURCES[case](tmp_path)
    edit_json(scene_copy / "scene.json", lambda m: m.update(data_source=str(source)))
    line = refused("eval", scene_copy, "--out", tmp_path / "eval",
                   needles=("scene.json", str(source), "not found or is not a dataset folder", "--data"),
                   protect=(scene_copy,), real_process=case == "not-a-dataset")
    assert not (tmp_path / "eval").exists()
    assert line.replace(str(source), "SOURCE").endswith(
        "the dataset it records ('data_source' 'SOURCE') is not found or is not a dataset folder; "
        "pass the dataset with --data")


# 2. training views scored as held-out; stale photos ------------------------------------------------------------


def test_eval_with_other_data_whose_heldout_views_were_training_views(scene_copy, tmp_path):
    other = copy_lego(tmp_path / "other")
    shutil.copy(other / "transforms_train.json", other / "transforms_test.json")  # "held-out" = the training views
    refused("eval", scene_copy, "--data", other, "--out", tmp_path / "eval",
            needles=("other", "3 of its 3 held-out views were training views", "train/r_1.png"),
            protect=(scene_copy, other), real_process=True)
    assert not (tmp_path / "eval").exists()


def test_eval_of_a_reordered_dataset(scene_copy, tmp_path):
    """The dataset the scene records, with train and test swapped since training."""
    recorded = Path(json.loads((scene_copy / "scene.json").read_text())["data_source"])
    data = tmp_path / "lego"
    shutil.copytree(recorded, data)
    edit_json(scene_copy / "scene.json", lambda m: m.update(data_source=str(data)))
    train, test = (data / "transforms_train.json").read_bytes(), (data / "transforms_test.json").read_bytes()
    (data / "transforms_train.json").write_bytes(test)
    (data / "transforms_test.json").write_bytes(train)
    refused("eval", scene_copy, "--out", tmp_path / "eval", needles=("lego", "were training views", "train/r_"),
            protect=(scene_copy, data))
    assert not (tmp_path / "eval").exists()


def test_a_long_list_of_training_views_is_cut_short():
    from scenes.evaluate import refuse_training_views
    from vista_core.errors import VistaError

    names = [f"images/{i:04d}.jpg" for i in range(10)]
    scene = SimpleNamespace(capture_names=names[:8])
    data = SimpleNamespace(names=["./" + n for n in names], source="fox")
    with pytest.raises(VistaError) as error:
        refuse_training_views(scene, data, list(range(10)))
    message = str(error.value)
    assert "8 of its 10 held-out views" in message and "and 5 more" in message and "0003.jpg" not in message
    assert "\n" not in message


def test_eval_warns_in_one_line_when_the_photos_changed_since_training(scene_copy, tmp_path):
    from PIL import Image

    recorded = Path(json.loads((scene_copy / "scene.json").read_text())["data_source"])
    data = tmp_path / "lego"
    shutil.copytree(recorded, data)  # a copy has the same content hash: no warning
    edit_json(scene_copy / "scene.json", lambda m: m.update(data_source=str(data)))
    same = run_vista("eval", scene_copy, "--out", tmp_path / "eval-same", "--json")
    assert same.returncode == 0 and "warning" not in same.stderr, same.output[-2000:]
    photo = data / "test" / "r_0.png"
    with Image.open(photo) as image:
        changed = image.copy()
    changed.putpixel((50, 50), (0, 0, 0, 255))
    changed.save(photo)
    result = run_vista("eval", scene_copy, "--out", tmp_path / "eval", "--json")
    assert result.returncode == 0, result.output[-2000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "changed since this scene was trained" in warnings[0], result.stderr
    json.loads(result.stdout)  # stdout stays pure JSON


def test_an_old_scene_json_without_the_new_keys_still_loads_and_evaluates(scene_copy, tmp_path):
    from scenes.scene import load_scene

    meta = json.loads((scene_copy / "scene.json").read_text())
    assert len(meta["data_hash"]) == 64 and meta["heldout_names"] == ["test/r_0.png"]
    new = run_vista("eval", scene_copy, "--out", tmp_path / "eval-new", "--json")
    edit_json(scene_copy / "scene.json", lambda m: [m.pop("data_hash"), m.pop("heldout_names")])
    old_scene = load_scene(scene_copy)
    assert old_scene.data_hash is None and old_scene.heldout_names is None
    old = run_vista("eval", scene_copy, "--out", tmp_path / "eval-old", "--json")
    assert new.returncode == old.returncode == 0 and "warning" not in old.stderr, old.output[-2000:]
    assert json.loads(old.stdout) == json.loads(new.stdout)  # the same numbers, view by view


def test_a_malformed_recorded_hash_is_named(scene_copy, tmp_path):
    edit_json(scene_copy / "scene.json", lambda m: m.update(data_hash="not-a-hash"))
    refused("eval", scene_copy, "--out", tmp_path / "eval", needles=("scene.json", "data_hash"),
            protect=(scene_copy,))
