"""Damaged, foreign and future scene folders through `vista info` / `vista eval` / `vista train --resume`."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.bad_inputs.conftest import copy_lego, edit_json, refuses, run_vista


def _truncate_weights(scene):
    path = scene / "field.safetensors"
    path.write_bytes(path.read_bytes()[:1000])


def _bump(key, value):
    return lambda scene: edit_json(scene / "scene.json", lambda m: m.update({key: value}))


SCENE_CASES = {
    "scene-json-missing": (lambda s: (s / "scene.json").unlink(), ("scene.json", "not found")),
    "scene-json-malformed": (lambda s: (s / "scene.json").write_text("{\"format\": \"vista-sc"),
                             ("scene.json", "malformed")),
    "not-a-vista-scene": (lambda s: (s / "scene.json").write_text(json.dumps({"format": "nerfstudio"})),
                          ("scene.json", "not a vista scene")),
    "newer-schema": (_bump("schema_version", 99), ("scene.json", "99", "newer")),
    "schema-version-string": (_bump("schema_version", "2"), ("scene.json", "schema version")),
    "unknown-config-key": (lambda s: edit_json(s / "scene.json", lambda m: m["config"].update(learning_rat=0.1)),
                           ("scene.json", "learning_rat")),
    "config-wrong-type": (lambda s: edit_json(s / "scene.json", lambda m: m["config"].update(steps="many")),
                          ("scene.json", "steps")),
    "weights-missing": (lambda s: (s / "field.safetensors").unlink(), ("field.safetensors", "not found")),
    "weights-zero-byte": (lambda s: (s / "field.safetensors").write_bytes(b""), ("field.safetensors", "corrupt")),
    "weights-truncated": (_truncate_weights, ("field.safetensors", "corrupt")),
    "weights-are-text": (lambda s: (s / "field.safetensors").write_text("hello"), ("field.safetensors",)),
    "torn-pair": (_bump("step", 2), ("scene.json", "field.safetensors", "interrupted")),
    "capture-missing": (lambda s: edit_json(s / "scene.json", lambda m: m.pop("capture")), ("scene.json", "capture")),
    "scene-from-world-nan": (lambda s: (s / "scene.json").write_text(
        (s / "scene.json").read_text().replace('"scene_from_world": [', '"scene_from_world": [NaN, ', 1)),
        ("scene.json", "malformed")),
}


@pytest.mark.parametrize("case", sorted(SCENE_CASES))
def test_damaged_scene_folder_info(scene_copy, case):
    mutate, needles = SCENE_CASES[case]
    mutate(scene_copy)
    refuses("info", scene_copy, needles=needles, protect=(scene_copy,))


def test_scene_folder_missing(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    refuses("info", tmp_path / "nope", needles=("nope", "not found"), protect=(tmp_path,))


def test_a_file_given_as_scene_folder(tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff not really")
    refuses("eval", photo, needles=("photo.jpg",), protect=(tmp_path,))


def test_eval_when_the_training_data_moved(scene_copy, tmp_path):
    edit_json(scene_copy / "scene.json", lambda m: m.update(data_source=str(tmp_path / "moved-away")))
    refuses("eval", scene_copy, "--out", tmp_path / "eval", needles=("moved-away", "not found"),
            protect=(scene_copy,))


def test_eval_with_a_bad_data_flag(scene_copy, tmp_path):
    data = copy_lego(tmp_path / "other")
    (data / "transforms_test.json").write_text("{")
    refuses("eval", scene_copy, "--data", data, "--out", tmp_path / "eval",
            needles=("transforms_test.json", "malformed"), protect=(scene_copy, data))


def test_resume_skips_a_torn_newest_checkpoint(scene_copy, tmp_path):
    """SIGKILL while the newest checkpoint was written: --resume falls back to the one before it and
    ends exactly where a resume from that intact checkpoint ends."""
    import torch

    from scenes.config import preset_config
    from scenes.data import load_posed_images
    from scenes.scene import load_scene
    from scenes.train import train_scene

    reference = tmp_path / "reference"
    shutil.copytree(scene_copy, reference)
    shutil.rmtree(reference / "checkpoints" / "step-0000004")
    (reference / "checkpoints" / "LATEST").write_text("step-0000002\n")
    checkpoints = sorted((scene_copy / "checkpoints").glob("step-*"))
    assert [c.name for c in checkpoints] == ["step-0000002", "step-0000004"]
    _truncate_weights(checkpoints[-1])

    data = json.loads((scene_copy / "scene.json").read_text())["data_source"]
    result = run_vista("train", data, "--out", scene_copy, "--preset", "test", "--steps", "6", "--resume",
                       "--no-eval", real_process=True)
    assert result.returncode == 0 and "Traceback" not in result.output, result.stderr[-2000:]
    resumed = load_scene(scene_copy)
    expected = train_scene(load_posed_images(data), reference, preset_config("test", steps=6), resume=True,
                           show_progress=False)
    assert resumed.step == expected.step == 6
    for name, tensor in expected.field.state_dict().items():
        assert torch.equal(tensor, resumed.field.state_dict()[name]), f"{name}: not resumed from step 2"


def test_resume_with_every_checkpoint_broken(scene_copy):
    for folder in (scene_copy / "checkpoints").glob("step-*"):
        (folder / "train_state.safetensors").write_bytes(b"\x00" * 10)
    data = json.loads((scene_copy / "scene.json").read_text())["data_source"]
    refuses("train", data, "--out", scene_copy, "--preset", "test", "--steps", "6", "--resume", "--no-eval",
            needles=(str(scene_copy), "nothing to resume"), protect=(scene_copy,))


def test_resume_with_another_preset(scene_copy):
    data = json.loads((scene_copy / "scene.json").read_text())["data_source"]
    refuses("train", data, "--out", scene_copy, "--preset", "preview", "--steps", "6", "--resume", "--no-eval",
            needles=(str(scene_copy), "preset"), protect=(scene_copy,))
