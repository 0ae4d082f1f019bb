"""Bad transforms files (Blender and nerfstudio formats) through `vista train`."""

from __future__ import annotations

import json

import pytest

from tests.bad_inputs.conftest import copy_fox, copy_lego, edit_json, refuses, run_vista, train_args


def _blender_case(tmp_path, mutate):
    data = tmp_path / "lego"
    from tests.bad_inputs.conftest import copy_lego

    copy_lego(data)
    mutate(data / "transforms_train.json")
    return data


def _set_matrix(value):
    def change(meta):
        meta["frames"][1]["transform_matrix"] = value
    return change


BLENDER_CASES = {
    # id: (mutation of transforms_train.json, words the message must contain)
    "missing-file": (lambda p: p.unlink(), ("lego", "transforms_train.json")),
    "zero-byte": (lambda p: p.write_bytes(b""), ("transforms_train.json", "malformed")),
    "malformed-json": (lambda p: p.write_text('{"frames": [ {"file_path": '), ("transforms_train.json", "malformed")),
    "not-utf8": (lambda p: p.write_bytes(b"\xff\xfe{\x00\x00"), ("transforms_train.json", "utf-8")),
    "top-level-list": (lambda p: p.write_text("[1, 2, 3]"), ("transforms_train.json", "camera_angle_x")),
    "missing-camera-angle": (lambda p: edit_json(p, lambda m: m.pop("camera_angle_x")),
                             ("transforms_train.json", "camera_angle_x")),
    "camera-angle-string": (lambda p: edit_json(p, lambda m: m.update(camera_angle_x="wide")),
                            ("transforms_train.json", "camera_angle_x")),
    "camera-angle-negative": (lambda p: edit_json(p, lambda m: m.update(camera_angle_x=-0.5)),
                              ("transforms_train.json", "camera_angle_x")),
    "frames-is-object": (lambda p: edit_json(p, lambda m: m.update(frames={"a": 1})),
                         ("transforms_train.json", "frames")),
    "frames-empty": (lambda p: edit_json(p, lambda m: m.update(frames=[])), ("transforms_train.json", "frames")),
    "file-path-number": (lambda p: edit_json(p, lambda m: m["frames"][0].update(file_path=7)),
                         ("transforms_train.json", "frame 0", "file_path")),
    "matrix-missing": (lambda p: edit_json(p, lambda m: m["frames"][1].pop("transform_matrix")),
                       ("transforms_train.json", "frame 1", "transform_matrix")),
    "matrix-legacy-string": (lambda p: edit_json(p, _set_matrix("1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1")),
                             ("transforms_train.json", "frame 1", "string")),
    "matrix-wrong-shape": (lambda p: edit_json(p, _set_matrix([[1, 0, 0], [0, 1, 0], [0, 0, 1]])),
                           ("transforms_train.json", "frame 1", "shape")),
    "matrix-ragged": (lambda p: edit_json(p, _set_matrix([[1, 0, 0, 0], [0, 1], [0, 0, 1, 0], [0, 0, 0, 1]])),
                      ("transforms_train.json", "frame 1", "transform_matrix")),
    "matrix-of-strings": (lambda p: edit_json(p, _set_matrix([["a"] * 4] * 4)),
                          ("transforms_train.json", "frame 1", "transform_matrix")),
    # JSON has no NaN; Python writes it anyway and other tools read it: refused as malformed
    "matrix-nan-literal": (lambda p: p.write_text(p.read_text().replace("-0.9305422306060791", "NaN", 1)),
                           ("transforms_train.json", "malformed")),
    # 1e999 is valid JSON that parses to infinity
    "matrix-overflow-inf": (lambda p: _write_inf_matrix(p), ("transforms_train.json", "frame 1", "infinity")),
    "matrix-degenerate": (lambda p: edit_json(p, _set_matrix([[0.0] * 4] * 3 + [[0, 0, 0, 1]])),
                          ("transforms_train.json", "frame 1", "degenerate")),
    "matrix-huge-array": (lambda p: edit_json(p, _set_matrix([[0.5] * 4] * 200_000)),
                          ("transforms_train.json", "frame 1", "shape")),
    # 100k nested brackets: json's recursion limit must not escape as a traceback
    "deeply-nested": (lambda p: p.write_text('{"camera_angle_x": 0.7, "frames": ' + "[" * 100_000 + "]" * 100_000 + "}"),
                      ("transforms_train.json",)),
    # the size is checked before anything is read: a sparse file costs no disk
    "file-over-size-limit": (lambda p: (p.write_text("{"), _truncate(p, 80 * 1024 * 1024)),
                             ("transforms_train.json", "limit")),
}


def _write_inf_matrix(path):
    edit_json(path, _set_matrix("__INF__"))
    path.write_text(path.read_text().replace('"__INF__"', "[[1e999, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]"))


def _truncate(path, size):
    with open(path, "r+b") as handle:
        handle.truncate(size)


@pytest.mark.parametrize("case", sorted(BLENDER_CASES))
def test_bad_blender_transforms(tmp_path, case):
    mutate, needles = BLENDER_CASES[case]
    data = _blender_case(tmp_path, mutate)
    refuses(*train_args(data, tmp_path / "scene"), needles=needles, protect=(data,))
    assert not (tmp_path / "scene").exists(), "a failed load must not leave an output folder behind"


def test_missing_dataset_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("keep")
    refuses(*train_args(tmp_path / "nowhere", tmp_path / "scene"), needles=("nowhere", "not found"),
            protect=(tmp_path,), real_process=True)


def test_malformed_transforms_in_a_real_process(tmp_path):
    data = _blender_case(tmp_path, lambda p: p.write_text("{oops"))
    refuses(*train_args(data, tmp_path / "scene"), needles=("transforms_train.json", "malformed"),
            protect=(data,), real_process=True)


def _fox_case(tmp_path, change):
    data = copy_fox(tmp_path / "fox", n=3)
    edit_json(data / "transforms.json", change)
    return data


FOX_CASES = {
    "missing-focal": (lambda m: [m.pop("fl_x"), m.pop("fl_y")], ("transforms.json", "fl_x")),
    "focal-string": (lambda m: m.update(fl_x="343.88"), ("transforms.json", "fl_x")),
    "distortion-bool": (lambda m: m.update(k1=True), ("transforms.json", "k1")),
    "size-mismatch": (lambda m: m.update(w=640.0, h=480.0), ("0001.jpg", "270x480", "640x480")),
    "fisheye-model": (lambda m: m.update(camera_model="OPENCV_FISHEYE"), ("transforms.json", "camera_model")),
    "frames-missing": (lambda m: m.pop("frames"), ("transforms.json", "frames")),
    "frame-is-number": (lambda m: m.update(frames=[3, 4]), ("transforms.json", "frame 0")),
}


@pytest.mark.parametrize("case", sorted(FOX_CASES))
def test_bad_nerfstudio_transforms(tmp_path, case):
    change, needles = FOX_CASES[case]
    data = _fox_case(tmp_path, change)
    refuses(*train_args(data, tmp_path / "scene"), needles=needles, protect=(data,))


def test_nerfstudio_focal_infinity(tmp_path):
    data = copy_fox(tmp_path / "fox", n=3)
    text = json.dumps(json.loads((data / "transforms.json").read_text())).replace('"fl_x": 343.88', '"fl_x": 1e999')
    (data / "transforms.json").write_text(text)
    refuses(*train_args(data, tmp_path / "scene"), needles=("transforms.json", "fl_x"), protect=(data,))


# --- photos as users bring them: missing images, downscales, mixed sizes (issues 21 and 22) --------------------

def _fox_missing(tmp_path, n=4, missing=(1, 3)):
    """The first `n` fox-small photos with the images of frames `missing` deleted."""
    data = copy_fox(tmp_path / "fox", n=n)
    frames = json.loads((data / "transforms.json").read_text())["frames"]
    for i in missing:
        (data / frames[i]["file_path"]).unlink()
    return data


def test_missing_images_are_counted_and_named_in_one_line(tmp_path):
    data = _fox_missing(tmp_path)
    stderr = refuses(*train_args(data, tmp_path / "scene"), protect=(data,),
                     needles=("transforms.json", "2 of 4 images missing", "images/0002.jpg, images/0004.jpg",
                              "--skip-missing"))
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "scene").exists(), "a refused dataset must not leave an output folder behind"


def test_many_missing_images_are_named_up_to_five(tmp_path):
    data = _fox_missing(tmp_path, n=10, missing=range(1, 9))
    stderr = refuses(*train_args(data, tmp_path / "scene"), protect=(data,),
                     needles=("8 of 10 images missing", "images/0002.jpg, images/0003.jpg, images/0004.jpg, "
                              "images/0006.jpg, images/0007.jpg and 3 more"))
    assert "images/0008.jpg" not in stderr


def test_skip_missing_trains_on_the_rest_and_says_so(tmp_path):
    data = _fox_missing(tmp_path)
    result = run_vista(*train_args(data, tmp_path / "scene"), "--skip-missing")
    assert result.returncode == 0, result.output
    assert "skipping 2 of 4 images that are missing (--skip-missing): images/0002.jpg, images/0004.jpg" in \
        result.stdout
    assert "2 training / 0 held-out views" in result.stdout
    scene = json.loads((tmp_path / "scene" / "scene.json").read_text())
    assert scene["capture"]["names"] == ["images/0001.jpg", "images/0003.jpg"]


def test_all_images_missing_is_refused_even_with_skip_missing(tmp_path):
    data = _fox_missing(tmp_path, n=2, missing=(0, 1))
    refuses(*train_args(data, tmp_path / "scene"), "--skip-missing", protect=(data,),
            needles=("all 2 images are missing",))


@pytest.mark.parametrize("flags, needles", [
    (("--downscale", "2"), ("r_", "100x100", "by 2", "50x50", "fewer than 64 px", "--downscale")),
    (("--downscale", "0"), ("downscale", "[1, 64]")),
    (("--max-long-side", "20"), ("max_long_side", "64")),
])
def test_downscales_that_leave_too_few_pixels_are_refused(tmp_path, flags, needles):
    data = copy_lego(tmp_path / "lego")
    stderr = refuses(*train_args(data, tmp_path / "scene"), *flags, protect=(data,), needles=needles)
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "scene").exists()


@pytest.mark.slow  # two training steps and three evaluations through the CLI
def test_a_landscape_photo_among_portrait_ones_trains_and_evaluates_at_the_training_resolution(tmp_path):
    """Two fox photos turned to landscape (per-frame intrinsics and pose; one trained on, one held out), downscaled
    by 2 for training: `vista eval` compares at the training resolution by default and at another with
    --downscale; `vista info` counts the sizes trained on."""
    from PIL import Image

    from tests.support.mixed_photos import turned_clockwise

    data = copy_fox(tmp_path / "fox", n=16)
    meta = json.loads((data / "transforms.json").read_text())
    for i in (5, 8):  # a training view and a held-out one (every 8th from the first)
        frame = meta["frames"][i]
        image = Image.open(data / frame["file_path"]).transpose(Image.Transpose.ROTATE_270)
        image.save(data / frame["file_path"], quality=95)
        meta["frames"][i] = turned_clockwise(frame, meta)
    (data / "transforms.json").write_text(json.dumps(meta))
    scene = tmp_path / "scene"
    result = run_vista("train", data, "--out", scene, "--preset", "test", "--steps", "2", "--downscale", "2")
    assert result.returncode == 0, result.output
    assert "14 training / 2 held-out views, 2 sizes, most 135x240 (downscaled by 2)" in result.stdout
    assert json.loads((scene / "train.json").read_text())["downscale"] == 2
    result = run_vista("eval", scene, "--json")
    assert result.returncode == 0, result.output
    sizes = {p.name: Image.open(p).size for p in (scene / "eval").glob("*.png")}
    assert sizes == {"images_0001.png": (3 * 135, 240), "images_0012.png": (3 * 240, 135)}, sizes
    result = run_vista("eval", scene, "--downscale", "3", "--out", tmp_path / "third")
    assert result.returncode == 0, result.output
    assert Image.open(tmp_path / "third" / "images_0012.png").size == (3 * 160, 90)
    info = json.loads(run_vista("info", scene).stdout)
    assert info["capture_sizes"] == {"135x240": 13, "240x135": 1} and info["downscale"] == 2
