"""`vista render --fps F` on a path written at another rate keeps the shot's length in seconds (render.path_io's
retime_path_file, render.camera_motion), and says so; the studio's render call does the same."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from render.camera_motion import interpolate_frames, retime_path_file
from render.path_io import camera_path_json, read_path_file, write_keyframes
from render.paths import CameraPath, Keyframe
from scenes.recipe import read_recipe, recipe_path_for
from tests.test_recipe import scene_dir  # noqa: F401 -- the tiny saved scene, a module fixture
from vista import main


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def _path() -> CameraPath:
    keys = (Keyframe((3.0, 0.0, 0.5), look_at=(0, 0, 0), fov_y_deg=40.0),
            Keyframe((0.0, 3.0, 1.0), look_at=(0, 0, 0), fov_y_deg=50.0),
            Keyframe((-3.0, 0.0, 0.5), look_at=(0, 0, 0), fov_y_deg=40.0))
    return CameraPath(keys, seconds=2.0, fps=30.0)


def _frames_only(path: CameraPath, file) -> None:
    """nerfstudio's camera_path.json without Vista's keyframes: frames are all a reader gets."""
    data = camera_path_json(path, 48, 32)
    del data["vista"], data["keyframes"]
    file.write_text(json.dumps(data))


@pytest.mark.parametrize("kind", ["keyframes", "frames"])
def test_render_at_another_fps_keeps_the_shot_length(scene_dir, tmp_path, capsys, kind):  # noqa: F811
    path = _path()
    file = tmp_path / "path.json"
    write_keyframes(file, path) if kind == "keyframes" else _frames_only(path, file)
    out = tmp_path / "shot.mp4"
    assert main(["render", str(scene_dir), "--path", str(file), "--fps", "24", "--width", "48", "--height", "32",
                 "--frames", "0:1", "--out", str(out), "--no-progress"]) == 0
    assert "from 60 frames at 30 fps to 48 frames at 24 fps, so the shot keeps its length (2 s)" in \
        capsys.readouterr().out
    cameras = read_recipe(recipe_path_for(out)).cameras
    assert len(cameras) == 48  # 2 s at 24 fps, not 60 frames = 2.5 s
    expected, _ = path.evaluate([0.0, path.seconds])
    np.testing.assert_allclose(cameras.world_from_camera[[0, -1]].numpy(), expected, atol=1e-6)
    # the frames between follow the path (keyframes: sampled again; frames: interpolated between the 30 fps frames)
    truth, fov = path.evaluate(np.linspace(0, path.seconds, 48))
    tolerance = 1e-6 if kind == "keyframes" else 1e-3
    np.testing.assert_allclose(cameras.world_from_camera.numpy(), truth, atol=tolerance)
    np.testing.assert_allclose(np.degrees(2 * np.arctan(16 / cameras.fy.numpy())), fov, atol=100 * tolerance)


def test_same_rate_is_untouched_and_retiming_back_is_close(tmp_path):
    path = _path()
    _frames_only(path, tmp_path / "p.json")
    loaded = read_path_file(tmp_path / "p.json")
    there = retime_path_file(loaded, 24.0)
    back = retime_path_file(there, 30.0)
    assert (len(there.fov_y_deg), there.seconds, len(back.fov_y_deg)) == (48, 2.0, 60)
    np.testing.assert_allclose(back.world_from_camera, loaded.world_from_camera, atol=2e-3)
    # interpolation passes through every frame exactly
    w, f = interpolate_frames(loaded.world_from_camera, loaded.fov_y_deg[:, None], np.arange(60.0))
    np.testing.assert_allclose(w, loaded.world_from_camera, atol=1e-12)
    np.testing.assert_allclose(f[:, 0], loaded.fov_y_deg, atol=1e-12)


def test_studio_render_call_retimes_a_saved_path_and_says_so(scene_dir, tmp_path):  # noqa: F811
    from vista_api.render import ShotRequest, render_shot

    path = _path()
    shot = render_shot(ShotRequest(scene_dir, path, tmp_path / "shot.mp4", 48, 32, fps=24.0, frames="0:1"))
    assert shot.retimed and "48 frames at 24 fps" in shot.retimed and len(read_recipe(shot.recipe_file).cameras) == 48
    same = render_shot(ShotRequest(scene_dir, path, tmp_path / "same.mp4", 48, 32, fps=30.0, frames="0:1"))
    assert same.retimed is None


def test_studio_render_step_keeps_the_saved_paths_length_and_shows_the_line(scene_dir, tmp_path):  # noqa: F811
    from vista_studio import workspace as wsp
    from vista_studio.path import save_path
    from vista_studio.render import PREVIEW_CHOICE, render_work
    from vista_studio.views import render_summary

    workspace = tmp_path / "ws"
    workspace.mkdir()
    wsp.update_session(workspace, scene=str(scene_dir))
    save_path(workspace, CameraPath(_path().keyframes, seconds=0.5, fps=30.0))  # 15 frames at 30 fps
    outputs = render_work(wsp.Job(workspace, "preview"), workspace, 48, 32, 8.0, PREVIEW_CHOICE, True)
    assert outputs["frames"] == 4 and "15 frames at 30 fps to 4 frames at 8 fps" in outputs["retimed"]
    wsp.update_session(workspace, video={**outputs, "provenance": ""})
    assert "keeps its length (0.5 s)" in render_summary(wsp.read_session(workspace))[2]
