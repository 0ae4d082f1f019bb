"""scenes.recipe and `vista render`: a recipe beside every video re-renders bit-identical frames; bad input.

The scene is a real scene folder (scene.json + field.safetensors, the `test` preset's hash-grid field) with
untrained weights and an occupancy grid limited to a ball: reproducibility does not need a good picture,
and it keeps the test fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from render.encode import probe_video, read_frames
from render.path_io import load_path_cameras
from scenes.config import preset_config
from scenes.recipe import read_recipe, recipe_path_for, scene_content_hash
from scenes.scene import SCENE_FILE, new_scene, save_scene
from tests.test_video import orbit
from vista import main


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scene") / "ball"
    capture = orbit(4, 32, 32)
    scene = new_scene(preset_config("test", seed=3), "torch", "object", torch.eye(4), (1.0, 1.0, 1.0), capture,
                      [f"v{i}" for i in range(4)], "analytic")
    r = scene.grid.resolution
    centers = scene.grid.cell_centers(torch.arange(r**3), torch.full((r**3, 3), 0.5))
    density = ((centers - 0.5).norm(dim=-1) < 0.3).float()
    scene.grid.restore(density, 0.5)
    save_scene(scene, folder)
    return folder


def write_path(path: Path, n: int = 5, width: int = 48, height: int = 32, fps: float = 10.0) -> Path:
    """A nerfstudio camera_path.json of an arc around the origin."""
    cameras = orbit(n, width, height)
    frames = []
    for k in range(n):
        matrix = torch.cat([cameras.world_from_camera[k], torch.tensor([[0.0, 0.0, 0.0, 1.0]])])
        frames.append({"camera_to_world": matrix.reshape(-1).tolist(), "fov": 35.0})
    path.write_text(json.dumps({"camera_type": "perspective", "render_width": width, "render_height": height,
                                "seconds": n / fps, "camera_path": frames}))
    return path


def test_render_writes_video_and_recipe_and_the_recipe_rerenders_bit_identical_frames(scene_dir, tmp_path, capsys):
    path = write_path(tmp_path / "path.json")
    out = tmp_path / "shot.mp4"
    assert main(["render", str(scene_dir), "--path", str(path), "--out", str(out), "--frames", "1:4",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "flicker" in printed and "recipe:" in printed
    info = probe_video(out)
    assert (info.frames, info.width, info.height, info.fps, info.codec) == (3, 48, 32, 10.0, "h264")

    recipe_file = recipe_path_for(out)
    assert recipe_file == tmp_path / "shot.recipe.json"
    recipe = read_recipe(recipe_file)
    raw = json.loads(recipe_file.read_text())
    assert recipe.scene_hash == scene_content_hash(scene_dir)
    assert recipe.frames == [1, 2, 3] and len(recipe.frame_sha256) == 3
    cameras, _ = load_path_cameras(path)
    assert torch.equal(recipe.cameras.world_from_camera, cameras.world_from_camera)
    assert torch.equal(recipe.cameras.fy, cameras.fy)
    assert raw["render"]["fps"] == 10.0 and raw["seed"] == 0
    assert {"torch", "numpy", "av", "vista", "python"} <= set(raw["versions"])

    again = tmp_path / "again.mp4"
    # the scene folder lies outside the recipe's folder: the recipe alone may not point there, the command line may
    assert main(["render", "--recipe", str(recipe_file), "--out", str(again), "--no-progress"]) == 2
    assert "outside" in capsys.readouterr().err and not again.exists()
    assert main(["render", str(scene_dir), "--recipe", str(recipe_file), "--out", str(again),
                 "--no-progress"]) == 0
    assert "all 3 frames are bit-identical" in capsys.readouterr().out
    assert read_recipe(recipe_path_for(again)).frame_sha256 == recipe.frame_sha256
    assert all(np.array_equal(a, b) for a, b in zip(read_frames(out), read_frames(again)))
    assert again.read_bytes() == out.read_bytes()


def test_recipe_refuses_a_scene_that_changed(scene_dir, tmp_path, capsys):
    import shutil

    scene_copy = tmp_path / "scene"
    shutil.copytree(scene_dir, scene_copy)
    path = write_path(tmp_path / "path.json", n=2)
    out = tmp_path / "shot.mp4"
    assert main(["render", str(scene_copy), "--path", str(path), "--out", str(out), "--no-progress",
                 "--no-watermark"]) == 0
    meta = json.loads((scene_copy / SCENE_FILE).read_text())
    meta["metrics"] = {"edited": True}
    (scene_copy / SCENE_FILE).write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["render", "--recipe", str(recipe_path_for(out)), "--no-progress"]) == 2
    assert "changed since the recipe was written" in capsys.readouterr().err
    assert main(["render", "--recipe", str(recipe_path_for(out)), "--out", str(out), "--no-progress"]) == 2
    assert "original is kept" in capsys.readouterr().err


def test_preview_renders_quarter_resolution(scene_dir, tmp_path):
    path = write_path(tmp_path / "path.json", n=2, width=96, height=64)
    out = tmp_path / "preview.mp4"
    assert main(["render", str(scene_dir), "--path", str(path), "--out", str(out), "--preview", "--no-progress"]) == 0
    info = probe_video(out)
    assert (info.width, info.height) == (24, 16)


@pytest.mark.parametrize("extra, message", [
    (["--frames", "3:3"], "selects no frames"),
    (["--frames", "x"], "expected a:b"),
    (["--width", "0"], "at least 2 pixels"),
    (["--width", "47", "--height", "32"], "even width and height"),
    (["--width", "100000", "--height", "100000"], r"would need about [\d,.]+ GB"),
    (["--fps", "0"], "fps must be in"),
])
def test_bad_render_options_are_one_line_errors(scene_dir, tmp_path, capsys, extra, message):
    import re

    path = write_path(tmp_path / "path.json", n=3)
    code = main(["render", str(scene_dir), "--path", str(path), "--out", str(tmp_path / "a.mp4"), "--no-progress",
                 *extra])
    err = capsys.readouterr().err
    assert code == 2 and re.search(message, err), err
    assert "Traceback" not in err and not (tmp_path / "a.mp4").exists()


def test_bad_scene_path_and_output_are_one_line_errors(scene_dir, tmp_path, capsys):
    path = write_path(tmp_path / "path.json", n=2)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"camera_type": "perspective", "render_width": 48, "render_height": 32,
                                 "seconds": 1.0, "camera_path": []}))
    assert main(["render", str(scene_dir), "--path", str(empty), "--out", str(tmp_path / "a.mp4")]) == 2
    assert "frame" in capsys.readouterr().err

    newer = tmp_path / "newer"
    newer.mkdir()
    for name in ("scene.json", "field.safetensors"):
        (newer / name).write_bytes((scene_dir / name).read_bytes())
    meta = json.loads((newer / "scene.json").read_text())
    meta["schema_version"] = 99
    (newer / "scene.json").write_text(json.dumps(meta))
    assert main(["render", str(newer), "--path", str(path), "--out", str(tmp_path / "a.mp4")]) == 2
    assert "newer than this Vista understands" in capsys.readouterr().err

    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["render", str(scene_dir), "--path", str(path), "--out", str(blocker / "a.mp4")]) == 2
    assert "not writable" in capsys.readouterr().err
    assert main(["render", str(scene_dir), "--path", str(path)]) == 2
    assert "missing --out" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "nothing.mp4")]) == 2
    assert "video not found" in capsys.readouterr().err

