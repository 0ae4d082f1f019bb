"""Bad images inside an otherwise good dataset, through `vista train` (and one in-process check)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.bad_inputs.conftest import copy_lego, png_header_only, refuses, train_args

TARGET = "train/r_1.png"  # the second training image of the copied lego


def _truncate_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


IMAGE_CASES = {
    "missing": (lambda p: p.unlink(), ("r_1.png", "missing")),
    "zero-byte": (lambda p: p.write_bytes(b""), ("r_1.png", "not a readable image")),
    "truncated": (_truncate_half, ("r_1.png", "not a readable image")),
    "text-named-png": (lambda p: p.write_text("these are my notes, not a picture\n"),
                       ("r_1.png", "not a readable image")),
    "a-folder": (lambda p: (p.unlink(), p.mkdir()), ("r_1.png",)),
    "heic-bytes": (lambda p: p.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200),
                   ("r_1.png", "not a readable image")),
    # 100000 x 100000 in the header: refused from the header, never decoded
    "huge-dimensions": (lambda p: p.write_bytes(png_header_only(100_000, 100_000)), ("r_1.png", "larger than")),
    # above Vista's 40 MP limit but below Pillow's own bomb threshold
    "over-pixel-limit": (lambda p: p.write_bytes(png_header_only(8000, 6000)), ("r_1.png", "8000x6000", "larger than")),
    # a photo of another size is no longer an error: each photo has its own camera (tests/test_photo_sizes.py)
}


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_bad_image_in_dataset(tmp_path, case):
    mutate, needles = IMAGE_CASES[case]
    data = copy_lego(tmp_path / "lego")
    mutate(data / TARGET)
    refuses(*train_args(data, tmp_path / "scene"), needles=needles, protect=(data,),
            real_process=case == "huge-dimensions")


def test_sixteen_bit_images_keep_their_brightness(tmp_path):
    """16-bit PNGs are accepted and scaled by their bit depth, not by each image's own maximum
    (which would make a dim photo as bright as a bright one and corrupt the training colours)."""
    from scenes.data import load_posed_images

    data = copy_lego(tmp_path / "lego", n_train=2, n_test=0)
    gray8 = {}
    for i, path in enumerate(sorted((data / "train").glob("*.png"))):
        rgba = np.asarray(Image.open(path).convert("RGBA"), dtype=np.float64)
        gray = (rgba[..., :3].mean(-1) * rgba[..., 3] / 255.0) * (0.3 if i == 0 else 1.0)  # image 0 is dim
        gray8[f"train/{path.name}"] = gray
        Image.fromarray((gray * 257).round().astype(np.uint16)).save(path)
        assert Image.open(path).mode.startswith("I"), "the test must really write a 16-bit image"
    loaded = load_posed_images(data)
    assert sorted(loaded.names) == sorted(gray8)
    for i, name in enumerate(loaded.names):
        got = loaded.composited(i)[..., 0].numpy() * 255.0
        assert np.abs(got - gray8[name]).max() <= 1.0, f"16-bit {name} changed brightness"
