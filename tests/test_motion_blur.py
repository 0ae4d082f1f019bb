"""Motion blur (render/motion_blur.py, `vista render --motion-blur`): a blurred frame is the mean in linear light of
its sub-frames rendered one by one, centred on the frame's time; deterministic; the shutter is part of the cache key
and the recipe, and a recipe re-renders a blurred shot bit-identically."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from render.bands import render_frame
from render.config import VideoConfig
from render.frame_cache import frame_cache_key
from render.motion_blur import render_video_frame, subframe_cameras, subframe_offsets
from scenes.recipe import read_recipe, recipe_path_for
from tests.test_recipe import scene_dir, write_path  # noqa: F401 -- the tiny saved scene, a module fixture
from tests.test_video import orbit, sphere_renderable
from vista import main
from vista_core.errors import VistaError


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:  # IEC 61966-2-1, written out again so the test checks the module
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def test_blurred_frame_is_the_mean_of_its_subframes_rendered_one_by_one():
    scene, cameras = sphere_renderable(), orbit(5, 32, 24, arc_deg=60.0)
    config = VideoConfig(motion_blur=0.5, motion_blur_samples=4)
    blurred = render_video_frame(scene, cameras, 2, config)
    subframes = subframe_cameras(cameras, 2, 0.5, 4)
    renders = [render_frame(scene, subframes, k) for k in range(4)]
    mean = _linear_to_srgb(np.mean([_srgb_to_linear(r.rgb.double().numpy()) for r in renders], axis=0))
    np.testing.assert_allclose(blurred.rgb.numpy(), mean, atol=1e-5)
    np.testing.assert_allclose(blurred.opacity.numpy(), np.mean([r.opacity.numpy() for r in renders], 0), atol=1e-6)
    # the blur is real (the sphere's texture smears) and repeatable to the bit
    sharp = render_frame(scene, cameras, 2)
    assert (blurred.rgb - sharp.rgb).abs().mean() > 1e-3
    assert torch.equal(render_video_frame(scene, cameras, 2, config).rgb, blurred.rgb)
    # no blur is exactly the plain frame
    assert torch.equal(render_video_frame(scene, cameras, 2, VideoConfig()).rgb, sharp.rgb)


def test_subframes_are_centred_on_the_frame_and_span_the_shutter():
    np.testing.assert_allclose(subframe_offsets(0.5, 4), [-0.1875, -0.0625, 0.0625, 0.1875])
    cameras = orbit(5, 32, 24, arc_deg=60.0)
    sub = subframe_cameras(cameras, 2, 1.0, 2)  # a 360-degree shutter: a quarter frame either side
    mid = 0.5 * (sub.world_from_camera[0, :, 3] + sub.world_from_camera[1, :, 3])
    radius = cameras.world_from_camera[2, :2, 3].norm()
    # on the arc, the mean of two symmetric points lies just inside it, on the frame's bearing
    direction = cameras.world_from_camera[2, :2, 3] / radius
    assert torch.allclose(mid[:2] / mid[:2].norm(), direction, atol=1e-5) and mid[:2].norm() < radius
    step = (cameras.world_from_camera[3, :, 3] - cameras.world_from_camera[2, :, 3]).norm()
    spread = (sub.world_from_camera[1, :, 3] - sub.world_from_camera[0, :, 3]).norm()
    assert abs(spread / step - 0.5) < 0.01  # sub-frames at -1/4 and +1/4 of a frame


def test_shutter_changes_the_cache_key_and_is_checked():
    cameras = orbit(3, 32, 24)
    keys = {frame_cache_key("s", cameras, VideoConfig(motion_blur=m, motion_blur_samples=n))
            for m, n in ((0.0, 8), (0.5, 8), (0.25, 8), (0.5, 4))}
    assert len(keys) == 4
    assert frame_cache_key("s", cameras, VideoConfig()) == frame_cache_key("s", cameras, VideoConfig(
        motion_blur_samples=4)), "without blur the sample count changes no pixel"
    for bad in ({"motion_blur": 1.5}, {"motion_blur": -0.1}, {"motion_blur_samples": 1}):
        with pytest.raises(VistaError, match="motion_blur"):
            VideoConfig(**bad)


def test_recipe_records_the_shutter_and_rerenders_a_blurred_shot_identically(scene_dir, tmp_path, capsys):  # noqa: F811
    path = write_path(tmp_path / "path.json")
    out = tmp_path / "shot.mp4"
    args = ["render", str(scene_dir), "--path", str(path), "--out", str(out), "--frames", "1:3", "--no-progress"]
    assert main(args + ["--motion-blur", "0.5", "--motion-blur-samples", "3"]) == 0
    raw = json.loads(recipe_path_for(out).read_text())
    assert raw["render"]["motion_blur"] == 0.5 and raw["render"]["motion_blur_samples"] == 3
    blurred = read_recipe(recipe_path_for(out)).frame_sha256
    assert main(["render", str(scene_dir), "--recipe", str(recipe_path_for(out)), "--out", str(tmp_path / "again.mp4"),
                 "--no-progress"]) == 0
    assert "bit-identical" in capsys.readouterr().out
    assert main(args[:-1] + ["--out", str(tmp_path / "sharp.mp4"), "--no-progress"]) == 0
    assert read_recipe(recipe_path_for(tmp_path / "sharp.mp4")).frame_sha256 != blurred
    capsys.readouterr()
    assert main(args + ["--motion-blur", "2"]) == 2
    err = capsys.readouterr().err
    assert "motion_blur" in err and len(err.strip().splitlines()) == 1
