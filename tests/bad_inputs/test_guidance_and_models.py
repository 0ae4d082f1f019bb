"""`vista refine` and model folders: missing, wrong type, incomplete, corrupt; outputs that would overwrite."""

from __future__ import annotations

import json

import pytest

from tests.bad_inputs.conftest import refuses
from vista_core.errors import VistaError


def _refine(scene, out, *flags):
    return ("refine", scene, "--out", out, "--steps", "3", "--prior-steps", "1", *flags)


def _diffusers_folder(folder, index: dict | str, components=()):
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text(index if isinstance(index, str) else json.dumps(index))
    for name in components:
        (folder / name).mkdir()
        (folder / name / "config.json").write_text("{}")
    return folder


SD_INDEX = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
            "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
            "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
            "scheduler": ["diffusers", "PNDMScheduler"], "safety_checker": [None, None]}

def _single_file(root):
    path = root / "model.safetensors"
    path.write_bytes(b"\x00" * 64)
    return path


def _checkpoint_folder(root):
    """What many downloads look like: one .ckpt file, no model_index.json."""
    (root / "ckpt").mkdir()
    (root / "ckpt" / "v1-5.ckpt").write_bytes(b"PK")
    return root / "ckpt"


MODEL_CASES = {
    "missing": (lambda root: root / "sd-models", ("sd-models", "not found")),
    "a-file": (_single_file, ("model.safetensors", "diffusers pipeline folder")),
    "checkpoint-folder": (_checkpoint_folder, ("ckpt", "model_index.json")),
    "index-malformed": (lambda root: _diffusers_folder(root / "sd", '{"_class_name": '),
                        ("model_index.json", "malformed")),
    "index-without-class": (lambda root: _diffusers_folder(root / "sd", {"unet": ["diffusers", "UNet"]}),
                            ("model_index.json", "_class_name")),
    "components-missing": (lambda root: _diffusers_folder(root / "sd", SD_INDEX, components=("unet", "vae")),
                           ("sd", "text_encoder", "scheduler", "tokenizer")),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_wrong_model_folder(tiny_scene, tmp_path, case):
    make, needles = MODEL_CASES[case]
    models = tmp_path / "models"
    models.mkdir()
    folder = make(models)
    (models / "README.txt").write_text("my models")
    refuses(*_refine(tiny_scene, tmp_path / "refined", "--tier", "pipeline", "--model-dir", folder),
            needles=needles, protect=(tiny_scene, models), real_process=case == "missing")
    refined = tmp_path / "refined"
    assert not refined.exists() or not any(refined.iterdir()), "a refused refine left files behind"


def test_pipeline_tier_without_a_model_folder(tiny_scene, tmp_path):
    refuses(*_refine(tiny_scene, tmp_path / "refined", "--tier", "pipeline"), needles=("--model-dir",),
            protect=(tiny_scene,))


def test_corrupt_component_weights_are_a_clear_error(tmp_path):
    """A complete-looking folder whose weights are junk: diffusers' own error becomes one line naming the folder."""
    from guidance.pipeline import load_img2img_pipeline

    folder = _diffusers_folder(tmp_path / "sd", {"_class_name": "StableDiffusionImg2ImgPipeline",
                                                 "unet": ["diffusers", "UNet2DConditionModel"]}, components=("unet",))
    (folder / "unet" / "config.json").write_text('{"_class_name": "UNet2DConditionModel", "sample_size": 8}')
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(VistaError, match="sd"):
        load_img2img_pipeline(folder, device="cpu")


def test_refine_into_the_scene_itself(tiny_scene):
    refuses(*_refine(tiny_scene, tiny_scene), needles=(str(tiny_scene), "new folder"), protect=(tiny_scene,))


def test_refine_into_a_folder_with_files(tiny_scene, tmp_path):
    out = tmp_path / "refined"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    refuses(*_refine(tiny_scene, out), needles=("refined", "already holds"), protect=(tiny_scene, out))


def test_refine_with_a_missing_path_file(tiny_scene, tmp_path):
    refuses(*_refine(tiny_scene, tmp_path / "refined", "--path", tmp_path / "shot.json"),
            needles=("shot.json", "not found"), protect=(tiny_scene,))


def test_refine_with_too_few_steps(tiny_scene, tmp_path):
    refuses("refine", tiny_scene, "--out", tmp_path / "refined", "--steps", "1", needles=("--steps",),
            protect=(tiny_scene,))


PRIOR_CASES = {
    "missing-file": (lambda f: None, ("patch_prior", "not found")),
    "wrong-format": (lambda f: (f / "prior.json").write_text('{"format": "something"}'), ("not a vista patch prior",)),
    "unknown-config-key": (lambda f: (f / "prior.json").write_text(
        '{"format": "vista-patch-prior", "config": {"chanels": 3}}'), ("chanels",)),
}


@pytest.mark.parametrize("case", sorted(PRIOR_CASES))
def test_wrong_patch_prior_folder(tmp_path, case):
    from guidance.patch_prior import PRIOR_FILE, load_patch_prior

    folder = tmp_path / "patch_prior"
    folder.mkdir()
    make, needles = PRIOR_CASES[case]
    if PRIOR_FILE != "prior.json":  # keep the cases honest if the file is renamed
        pytest.fail(f"patch prior metadata is now {PRIOR_FILE}; update the cases")
    make(folder)
    with pytest.raises(VistaError) as raised:
        load_patch_prior(folder)
    for needle in needles:
        assert needle.lower() in str(raised.value).lower(), raised.value
