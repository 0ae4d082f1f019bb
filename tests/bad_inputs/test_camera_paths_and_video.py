"""Camera path files (nerfstudio camera_path.json, instant-ngp base_cam.json, Vista keyframes), render
recipes and video settings: through `render.path_io` and `vista render`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bad_inputs.conftest import assert_unchanged, refuses, snapshot
from vista_core.errors import VistaError

EYE = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 4, 0, 0, 0, 1]  # at z=4 looking down -z at the origin


def _nerfstudio(**changes) -> dict:
    path = {"camera_type": "perspective", "render_width": 64, "render_height": 48, "seconds": 1.0,
            "camera_path": [{"camera_to_world": EYE, "fov": 50}, {"camera_to_world": EYE, "fov": 50}]}
    path.update(changes)
    return path


def _frame(matrix=EYE, fov=50):
    return {"camera_path": [{"camera_to_world": matrix, "fov": fov}]}


def _ngp(*entries) -> dict:
    default = [{"R": [0, 0, 0, 1], "T": [0.5, 0.5, 0.5]}, {"R": [0, 0, 0, 1], "T": [0.6, 0.5, 0.5]}]
    return {"path": list(entries) or default, "time": 0.0}


PATH_CASES = {
    # id: (file content (dict or raw text), words the message must contain)
    "malformed": ('{"camera_path": [', ("malformed",)),
    "top-level-list": ([1, 2], ("json object",)),
    "unknown-format": ({"frames": []}, ("not a camera path",)),
    "no-frames": (_nerfstudio(camera_path=[]), ("camera_path", "non-empty")),
    "frames-not-a-list": (_nerfstudio(camera_path={"0": EYE}), ("camera_path", "non-empty")),
    "frame-missing-matrix": (_nerfstudio(camera_path=[{"fov": 50}]), ("camera_path[0]", "camera_to_world")),
    "legacy-string-matrix": (_nerfstudio(**_frame(" ".join(map(str, EYE)))), ("camera_to_world", "string")),
    "matrix-12-numbers": (_nerfstudio(**_frame(EYE[:12])), ("camera_to_world", "16 numbers")),
    "matrix-nan": (json.dumps(_nerfstudio(**_frame([float("nan")] + EYE[1:]))), ("malformed",)),
    "matrix-overflow": (json.dumps(_nerfstudio(**_frame(EYE))).replace("[1, 0, 0, 0,", "[1e999, 0, 0, 0,", 1),
                        ("camera_to_world", "nan or infinity")),
    "matrix-scaled": (_nerfstudio(**_frame([2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 4, 0, 0, 0, 1])),
                      ("camera_to_world", "not a rotation")),
    "matrix-column-major": (_nerfstudio(**_frame([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 4, 1])),
                            ("camera_to_world", "column-major")),
    "fov-zero": (_nerfstudio(**_frame(fov=0)), ("fov", "outside")),
    "fov-180": (_nerfstudio(**_frame(fov=180)), ("fov", "outside")),
    "fov-string": (_nerfstudio(**_frame(fov="wide")), ("fov", "number")),
    "width-string": (_nerfstudio(render_width="64"), ("render_width", "number")),
    "size-negative": (_nerfstudio(render_width=-64), ("render size", "not positive")),
    "no-seconds": ({k: v for k, v in _nerfstudio().items() if k != "seconds"}, ("seconds",)),
    "seconds-zero": (_nerfstudio(seconds=0), ("seconds", "positive")),
    "fisheye": (_nerfstudio(camera_type="fisheye"), ("camera_type", "fisheye")),
    "ngp-one-keyframe": (_ngp({"R": [0, 0, 0, 1], "T": [0.5, 0.5, 0.5]}), ("1 keyframe", "at least 2")),
    "ngp-missing-T": (_ngp({"R": [0, 0, 0, 1]}, {"R": [0, 0, 0, 1], "T": [0.6, 0.5, 0.5]}), ("path[0]", "'T'")),
    "ngp-zero-quaternion": (_ngp({"R": [0, 0, 0, 0], "T": [0.5, 0.5, 0.5]}, {"R": [0, 0, 0, 1], "T": [0.6, 0.5, 0.5]}),
                            ("path[0]", "zero quaternion")),
    "ngp-T-object": (_ngp({"R": [0, 0, 0, 1], "T": {"x": 1}}, {"R": [0, 0, 0, 1], "T": [0.6, 0.5, 0.5]}),
                     ("path[0]", "3 numbers")),
    "ngp-fov-zero": (_ngp({"R": [0, 0, 0, 1], "T": [0.5, 0.5, 0.5], "fov": 0}, {"R": [0, 0, 0, 1], "T": [0.6, 0.5, 0.5]}),
                     ("fov",)),
    "ngp-same-camera-twice": (_ngp({"R": [0, 0, 0, 1], "T": [0.5, 0.5, 0.5]}, {"R": [0, 0, 0, 1], "T": [0.5, 0.5, 0.5]}),
                              ("same camera",)),
    "keyframes-only-one": ({"keyframes": [{"position": [0, 0, 4]}]}, ("at least 2 keyframes",)),
    "keyframe-position-string": ({"keyframes": [{"position": "here"}, {"position": [0, 0, 3]}]}, ("position",)),
    "keyframes-unknown-key": ({"keyframes": [{"position": [0, 0, 4]}, {"position": [0, 0, 3]}], "sped": 2},
                              ("sped",)),
}


@pytest.mark.parametrize("case", sorted(PATH_CASES))
def test_bad_camera_path_file(tmp_path, case):
    from render.path_io import load_path_cameras

    content, needles = PATH_CASES[case]
    path_file = tmp_path / "camera_path.json"
    path_file.write_text(content if isinstance(content, str) else json.dumps(content))
    before = snapshot(tmp_path)
    with pytest.raises(VistaError) as raised:
        load_path_cameras(path_file)
    message = str(raised.value)
    assert "camera_path.json" in message, message
    for needle in needles:
        assert needle.lower() in message.lower(), message
    assert_unchanged(before)


def test_missing_camera_path_file(tmp_path):
    from render.path_io import load_path_cameras

    with pytest.raises(VistaError, match="camera_path.json.*not found"):
        load_path_cameras(tmp_path / "camera_path.json")


def test_dataparser_transforms_with_nan(tmp_path):
    from render.path_io import load_path_cameras

    (tmp_path / "camera_path.json").write_text(json.dumps(_nerfstudio()))
    (tmp_path / "dataparser_transforms.json").write_text('{"transform": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], '
                                                         '"scale": 1e999}')
    with pytest.raises(VistaError, match="dataparser_transforms.json"):
        load_path_cameras(tmp_path / "camera_path.json", dataparser_transforms=tmp_path / "dataparser_transforms.json")


# ---- through `vista render` -----------------------------------------------------------------------------

@pytest.fixture
def render_setup(tiny_scene, tmp_path):
    """A scene, a folder with an earlier video in it, and a writer for path files."""
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "earlier.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom an earlier render")

    def path_file(content: dict, name: str = "camera_path.json") -> Path:
        target = tmp_path / name
        target.write_text(json.dumps(content))
        return target

    return tiny_scene, videos, path_file


def test_render_with_a_bad_path_in_a_real_process(render_setup):
    scene, videos, path_file = render_setup
    bad = path_file(_nerfstudio(**_frame(fov=0)))
    refuses("render", scene, "--path", bad, "--out", videos / "shot.mp4", "--no-progress",
            needles=("camera_path.json", "fov"), protect=(scene, videos, bad), real_process=True)
    assert not (videos / "shot.mp4").exists()


@pytest.mark.parametrize("content, flags, needles", [
    (_nerfstudio(render_width=10_000_000, render_height=10_000_000), [], ("camera_path.json", "10000000x10000000")),
    (_nerfstudio(render_width=65), [], ("camera_path.json", "even")),
    (_nerfstudio(seconds=1e-300), [], ("camera_path.json", "fps", "--fps")),
    (_nerfstudio(), ["--width", "65", "--height", "48"], ("even",)),
    (_nerfstudio(), ["--width", "0"], ("--width",)),
    (_nerfstudio(), ["--frames", "5:9"], ("selects no frames",)),
    (_nerfstudio(), ["--frames", "one:two"], ("--frames",)),
    (_nerfstudio(), ["--fps", "-24"], ("fps",)),
    (_nerfstudio(), ["--crf", "99"], ("crf",)),
    (_nerfstudio(), ["--sign-cert", "cert.pem"], ("--sign-key",)),
], ids=["absurd-resolution", "odd-width-from-file", "absurd-fps-from-seconds", "odd-width", "zero-width", "frames-out-of-range",
        "frames-not-numbers", "negative-fps", "crf-out-of-range", "cert-without-key"])
def test_render_refuses_bad_video_settings(render_setup, content, flags, needles):
    scene, videos, path_file = render_setup
    good_path = path_file(content)
    refuses("render", scene, "--path", good_path, "--out", videos / "shot.mp4", "--no-progress", *flags,
            needles=needles, protect=(scene, videos, good_path))
    assert not (videos / "shot.mp4").exists()


def test_render_a_folder_that_is_not_a_scene(render_setup, tmp_path):
    _, videos, path_file = render_setup
    not_a_scene = tmp_path / "photos"
    not_a_scene.mkdir()
    (not_a_scene / "IMG_1.jpg").write_bytes(b"\xff\xd8\xff")
    refuses("render", not_a_scene, "--path", path_file(_nerfstudio()), "--out", videos / "shot.mp4",
            "--no-progress", needles=("photos", "scene"), protect=(not_a_scene, videos))


RECIPE_CASES = {
    "malformed": ("{", ("malformed",)),
    "not-a-recipe": (json.dumps({"format": "something-else"}), ("not a vista render recipe",)),
    "newer-schema": (None, ("schema version", "newer")),
    "frames-out-of-range": (None, ("frames", "indices")),
    "missing-path": (None, ("malformed",)),
}


def _recipe_variant(case: str) -> dict:
    import torch

    from render.cameras import Cameras
    from scenes.recipe import RECIPE_FORMAT, RECIPE_VERSION

    cameras = Cameras.from_fov(torch.tensor(EYE, dtype=torch.float32).reshape(4, 4)[None, :3], 50.0, 64, 48)
    recipe = {"format": RECIPE_FORMAT, "schema_version": RECIPE_VERSION, "frames": [0],
              "scene": {"dir": "x", "content_hash": "0"}, "outputs": {"video": "v.mp4"}, "seed": 0,
              "render": {}, "path": {"source": "", "cameras": cameras.to_dict()}}
    if case == "newer-schema":
        recipe["schema_version"] = RECIPE_VERSION + 1
    elif case == "frames-out-of-range":
        recipe["frames"] = [10**9]
    elif case == "missing-path":
        del recipe["path"]
    return recipe


@pytest.mark.parametrize("case", sorted(RECIPE_CASES))
def test_render_from_a_bad_recipe(render_setup, tmp_path, case):
    scene, videos, _ = render_setup
    text, needles = RECIPE_CASES[case]
    recipe = tmp_path / "shot.recipe.json"
    recipe.write_text(text if text is not None else json.dumps(_recipe_variant(case)))
    refuses("render", scene, "--recipe", recipe, "--out", videos / "again.mp4", "--no-progress",
            needles=("shot.recipe.json", *needles), protect=(scene, videos, recipe))
