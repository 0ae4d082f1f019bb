"""Dataset loading: formats, splits, normalisation, and clear errors for bad input."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from scenes.data import load_posed_images
from tests.conftest import shared_dataset
from vista_core.errors import VistaError


def test_blender_split_intrinsics_and_box():
    data = load_posed_images(shared_dataset("lego-100"))
    assert len(data.train_indices) == 87 and len(data.heldout_indices) == 13
    assert len(data.images) == 100 and data.images[0].shape == (100, 100, 4) and data.kind == "object"
    assert data.images.pixels.dtype == torch.uint8 and data.downscale == 1.0 and not data.cameras.mixed_sizes
    # camera_angle_x 0.6911 rad at 100 px wide -> focal 138.9 px
    assert abs(float(data.cameras.fx[0]) - 138.89) < 0.05
    scene_positions = data.cameras.positions * data.scene_from_world[0, 0]
    assert float(scene_positions.norm(dim=-1).min()) > 1.0  # cameras outside the object box


def test_nerfstudio_transforms_with_opencv_distortion():
    data = load_posed_images(shared_dataset("fox-small"))
    assert data.kind == "unbounded" and data.images[0].shape == (480, 270, 3)
    assert data.cameras.distortion is not None and abs(float(data.cameras.distortion[0, 0]) - 0.0578421) < 1e-6
    positions = data.cameras.positions @ data.scene_from_world[:3, :3].T + data.scene_from_world[:3, 3]
    assert float(positions.abs().max()) <= 1.0 + 1e-5  # all cameras inside the contraction's unit cube
    assert len(data.heldout_indices) > 0 and not set(data.heldout_indices) & set(data.train_indices)


def _copy_lego(tmp_path, n=3):
    src = shared_dataset("lego-100")
    dst = tmp_path / "lego"
    (dst / "train").mkdir(parents=True)
    meta = json.loads((src / "transforms_train.json").read_text())
    meta["frames"] = meta["frames"][:n]
    for frame in meta["frames"]:
        shutil.copy(src / (frame["file_path"] + ".png"), dst / (frame["file_path"] + ".png"))
    (dst / "transforms_train.json").write_text(json.dumps(meta))
    return dst, meta


@pytest.mark.parametrize("mutate, message", [
    (lambda d, m: (d / "transforms_train.json").write_text("{not json"), "malformed"),
    (lambda d, m: (d / "transforms_train.json").write_text(json.dumps({**m, "frames": []})), "'frames' is empty"),
    (lambda d, m: (d / "train" / "r_1.png").unlink(), "1 of 3 images missing: train/r_1.png"),
    (lambda d, m: (d / "train" / "r_1.png").write_bytes(b"not an image"), "not a readable image"),
    (lambda d, m: (d / "transforms_train.json").write_text(json.dumps(
        {**m, "frames": [{**m["frames"][0], "transform_matrix": [[float("nan")] * 4] * 4}]}).replace("NaN", "NaN")),
     "NaN"),
    (lambda d, m: (d / "transforms_train.json").write_text(json.dumps(
        {**m, "frames": [{**m["frames"][0], "transform_matrix": [[0.0] * 4] * 4}]})), "degenerate"),
    (lambda d, m: (d / "transforms_train.json").unlink(), "no transforms_train.json"),
])
def test_bad_datasets_are_named_errors(tmp_path, mutate, message):
    folder, meta = _copy_lego(tmp_path)
    mutate(folder, meta)
    with pytest.raises(VistaError, match=message):
        load_posed_images(folder)


def test_blender_images_of_another_size_get_their_own_focal_length(tmp_path):
    """camera_angle_x is the horizontal field of view: a photo half as wide has half the focal length."""
    from PIL import Image

    folder, _ = _copy_lego(tmp_path)
    Image.open(folder / "train" / "r_2.png").resize((50, 80)).save(folder / "train" / "r_2.png")
    data = load_posed_images(folder)
    i, other = data.names.index("train/r_2.png"), data.names.index("train/r_1.png")
    assert data.size_of(i) == (50, 80) and data.cameras.size_of(i) == (50, 80) and data.images[i].shape == (80, 50, 4)
    assert (data.cameras.width, data.cameras.height) == (100, 100)  # the most common size
    torch.testing.assert_close(data.cameras.fx[i] * 2, data.cameras.fx[other])
    assert float(data.cameras.cx[i]) == 25.0 and float(data.cameras.cy[i]) == 40.0


def test_existing_output_folder_is_refused_and_kept(tmp_path):
    import vista

    out = tmp_path / "scene"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code = vista.main(["train", str(shared_dataset("lego-100")), "--out", str(out), "--preset", "test", "--steps", "1"])
    assert code == 2
    assert (out / "precious.txt").read_text() == "keep me"
    assert torch.tensor(1)  # no exception escaped


def test_pixel_jitter_is_off_unless_asked_for_and_the_scene_remembers_it(tmp_path):
    import vista
    from scenes.scene import load_scene

    data = shared_dataset("lego-100")
    for flags, expected in (([], False), (["--pixel-jitter"], True)):
        out = tmp_path / f"scene-{expected}"
        assert vista.main(["train", str(data), "--out", str(out), "--preset", "test", "--steps", "2", "--no-eval",
                           *flags]) == 0
        assert load_scene(out).config.pixel_jitter is expected
