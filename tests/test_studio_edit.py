"""The studio's half of "Into the edit" (issue #26), through the real step functions (no server): a render in each
compositing format (a PNG/EXR sequence zipped into one download, its alpha read back against the in-memory render;
ProRes as a .mov), motion blur in the recipe, the path as a glTF camera (.glb) that reads back to the saved path and
imports again, and Build's anti-alias switch reaching the TrainRequest.

The scene is test_recipe's tiny saved ball (an untrained field inside a spherical occupancy grid), copied into the
workspace as a folder the user loads; the shots are 32 x 24 pixels, 4 frames.
"""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pygltflib
import pytest
import torch

from render.encode import probe_video
from render.exr import read_exr
from render.gltf_camera import GLTF_FROM_WORLD
from render.png16 import read_png
from render.render import render_camera
from scenes.scene import load_scene
from tests.test_recipe import scene_dir  # noqa: F401 -- the tiny saved scene, a module fixture
from vista_core.errors import VistaError
from vista_studio import build, limits, path, photos, session, views
from vista_studio import render as render_step
from vista_studio import workspace as wsp

SIZE, FPS, SECONDS = (32, 24), 4, 1.0  # 4 frames


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def workspace(tmp_path, scene_dir):  # noqa: F811
    """A session with the ball loaded from the workspace's library and a quarter orbit as its path."""
    root = wsp.workspace_root(tmp_path / "root")
    shutil.copytree(scene_dir, root / "library" / "ball")
    folder = wsp.new_workspace(root)
    photos.load_folder(root, folder, "library/ball")
    path.apply_preset(folder, "orbit", SECONDS, 1.0, None, 90)
    return folder


def render(workspace, output_format: str, shutter: float = 0.0, samples: int = 8) -> dict:
    render_step.start_final_render(workspace, *SIZE, FPS, "draft", output_format, shutter, samples)
    state = wsp.wait_job(workspace, timeout_s=300)
    assert state.status == "done", state.message
    return wsp.read_session(workspace)["video"]


def expected_alpha(workspace) -> np.ndarray:
    """The frames' opacity [F, H, W] rendered in memory along the saved path at the render's rate."""
    import dataclasses

    saved = path.read_path(workspace)
    cameras = dataclasses.replace(saved, fps=float(FPS)).sample(*SIZE)
    renderable = load_scene(wsp.read_session(workspace)["scene"]).renderable()
    return np.stack([render_camera(renderable, cameras, k).opacity.numpy() for k in range(len(cameras))])


@pytest.mark.parametrize("output_format", ["png", "exr"])
def test_a_sequence_render_is_one_zip_of_frames_with_the_renders_alpha(workspace, output_format):
    video = render(workspace, output_format)
    folder = workspace / "render" / f"shot_{output_format}"
    assert video["video"] == str(folder) and video["format"] == output_format
    names = [f"frame_{k:05d}.{output_format}" for k in range(4)]
    assert sorted(p.name for p in folder.iterdir()) == names
    shown, files, text = views.render_summary(wsp.read_session(workspace))
    assert shown is None and f"Written as {output_format}" in text  # the browser plays MP4 only
    # the download is the sequence as one zip inside the session's folder, then camera_path.json and the recipe
    assert [f.rsplit("/", 1)[-1] for f in files] == [f"shot_{output_format}.zip", "camera_path.json",
                                                     "shot_" + output_format + ".recipe.json"]
    archive = workspace / "render" / f"shot_{output_format}.zip"
    assert files[0] == str(archive) and archive.resolve().is_relative_to(workspace.resolve())
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.namelist() == [f"shot_{output_format}/{n}" for n in names]
        extracted = workspace / "unzipped"
        zipped.extractall(extracted)
    alpha = expected_alpha(workspace)
    assert alpha.min() < 0.01 and alpha.max() > 0.05, "the frames have empty and covered pixels"
    for k, name in enumerate(names):
        frame = extracted / f"shot_{output_format}" / name
        if output_format == "png":
            pixels, _ = read_png(frame)
            assert pixels.shape == (SIZE[1], SIZE[0], 4) and pixels.dtype == np.uint16
            stored = pixels[..., 3] / 65535
            tolerance = 2 / 65535 + 1e-5
        else:
            channels, _ = read_exr(frame)
            assert set(channels) == {"R", "G", "B", "A", "Z"}  # EXR carries depth
            stored = channels["A"].astype(np.float64)
            tolerance = 1e-3  # half floats
        assert np.abs(stored - alpha[k]).max() < tolerance


def test_prores_render_is_a_mov_with_the_motion_blur_in_its_recipe(workspace):
    video = render(workspace, "prores", shutter=0.5, samples=2)
    mov = workspace / "render" / "shot.mov"
    assert video["video"] == str(mov) == video["download"] and video["motion_blur"] == 0.5
    info = probe_video(mov)
    assert (info.frames, info.width, info.height, info.codec) == (4, *SIZE, "prores")
    recipe = json.loads((workspace / "render" / "shot.recipe.json").read_text())
    assert recipe["render"]["motion_blur"] == 0.5 and recipe["render"]["motion_blur_samples"] == 2
    shown, files, text = views.render_summary(wsp.read_session(workspace))
    assert shown is None and files[0] == str(mov) and "shutter 0.5" in text
    # the quick preview clip stays an MP4 without blur
    render_step.start_preview_clip(workspace, 64, 48, FPS)
    assert wsp.wait_job(workspace, timeout_s=300).status == "done"
    preview = workspace / "preview" / "preview.mp4"
    assert probe_video(preview).codec == "h264"
    preview_recipe = json.loads((workspace / "preview" / "preview.recipe.json").read_text())
    assert preview_recipe["render"].get("motion_blur", 0) == 0


def test_render_form_mistakes_are_one_line(workspace):
    for args, message in (((*SIZE, FPS, "draft", "gif", 0, 8), "unknown output format 'gif'"),
                          ((*SIZE, FPS, "draft", "mp4", 1.5, 8), "motion blur shutter must be between 0 and 1"),
                          ((*SIZE, FPS, "draft", "mp4", 0.5, 1), "motion blur samples must be between 2 and 64")):
        with pytest.raises(VistaError, match=message):
            render_step.start_final_render(workspace, *args)
    # a blurred frame costs its samples: the studio's pixel-frame cap counts them
    limits.check_render(1920, 1080, 600)
    with pytest.raises(VistaError, match="x 2 motion blur samples .*fewer motion blur samples"):
        limits.check_render(1920, 1080, 600, renders_per_frame=2)


def glb_positions(file) -> np.ndarray:
    """The camera's animated translations [F, 3] as the file stores them (glTF, Y-up), read with pygltflib."""
    gltf = pygltflib.GLTF2().load(str(file))
    channel = next(c for c in gltf.animations[0].channels if c.target.path == "translation")
    accessor = gltf.accessors[gltf.animations[0].samplers[channel.sampler].output]
    view = gltf.bufferViews[accessor.bufferView]
    start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    data = gltf.binary_blob()[start:start + accessor.count * 12]
    return np.frombuffer(data, dtype="<f4").reshape(accessor.count, 3).astype(np.float64)


def test_the_camera_download_is_the_saved_path_as_gltf_and_imports_back(workspace):
    saved = path.read_path(workspace)
    glb = path.export_camera(workspace, *SIZE)
    assert glb == str(workspace / path.PATH_DIR / "camera.glb")
    world_from_camera, _ = saved.evaluate(saved.frame_times())
    expected = world_from_camera[:, :, 3] @ GLTF_FROM_WORLD.T  # glTF's Y-up turn of Vista's world
    np.testing.assert_allclose(glb_positions(glb), expected, atol=1e-5)
    # the studio imports it back (a .glb upload) as the same keyframes
    path.clear_path(workspace)
    assert "(gltf)" in path.import_path(workspace, glb)
    assert path.read_path(workspace) == saved
    views_now = views.studio_view(workspace)
    assert views_now["camera_btn"] == views.Enabled(True)
    path.clear_path(workspace)
    with pytest.raises(VistaError, match="no path to export"):
        path.export_camera(workspace, *SIZE)


def test_anti_alias_reaches_the_train_request_and_a_switch_starts_over(tmp_path, monkeypatch):
    root = wsp.workspace_root(tmp_path / "root")
    workspace, key = session.restore_session(root, None, "a-page")
    wsp.update_session(workspace, data=str(workspace / "data"))
    started = []
    monkeypatch.setattr(build, "build_work", lambda job, w, request, may_resume: started.append((request, may_resume))
                        or {})
    for anti_alias in (True, True, False):
        build.start_build(workspace, "test", None, 0, anti_alias)
        assert wsp.wait_job(workspace, timeout_s=30).status == "done"
    # a checkpoint of the other field cannot be continued: switching starts over, the same setting may resume
    assert [(r.anti_alias, resume) for r, resume in started] == [(True, False), (True, True), (False, False)]
    assert started[0][0].config().field.grid.footprint_weighting
    assert not started[2][0].config().field.grid.footprint_weighting
    # a reload shows the setting the last build ran with
    assert views.load_view(root, key, "a-reload")["anti_alias"] is False
    build.start_build(workspace, "test", None, 0, True)
    wsp.wait_job(workspace, timeout_s=30)
    assert views.load_view(root, key, "another-reload")["anti_alias"] is True


def test_the_launched_studio_wires_format_blur_and_camera_download(tmp_path, scene_dir):  # noqa: F811
    """The new fields through gradio_client in the order app.py wires them; old callers (4 render inputs) still
    get an MP4."""
    gradio_client = pytest.importorskip("gradio_client")
    import app

    root = wsp.workspace_root(tmp_path / "root")
    shutil.copytree(scene_dir, root / "library" / "ball")
    demo = app.launch_app(root, block=False, quiet=True)
    try:
        client = gradio_client.Client(demo.local_url, verbose=False)
        client.predict("library/ball", api_name="/load_folder")
        client.predict("orbit", SECONDS, 1.0, None, 90, api_name="/apply_preset")
        [workspace] = [p for p in (root / wsp.SESSIONS).iterdir() if p.is_dir()]
        assert "Render (exr, motion blur 0.5)" in client.predict(*SIZE, 6, "draft", "exr", 0.5, 2,
                                                                 api_name="/render")[0]
        assert wsp.wait_job(workspace, timeout_s=300).status == "done"
        downloads = client.predict(api_name="/refresh")[-2]
        assert [p.rsplit("/", 1)[-1] for p in downloads] == ["shot_exr.zip", "camera_path.json",
                                                            "shot_exr.recipe.json"]
        recipe = json.loads((workspace / "render" / "shot_exr.recipe.json").read_text())
        assert recipe["render"]["motion_blur"] == 0.5 and recipe["render"]["motion_blur_samples"] == 2
        glb = client.predict(*SIZE, api_name="/export_camera")
        assert glb.endswith("camera.glb") and path.read_editable_path(glb)[0] == path.read_path(workspace)
        client.predict(*SIZE, 6, "draft", api_name="/render")
        assert wsp.wait_job(workspace, timeout_s=300).status == "done"
        assert wsp.read_session(workspace)["video"]["video"].endswith("shot.mp4")
    finally:
        demo.close()
        wsp.cancel_jobs(root)
