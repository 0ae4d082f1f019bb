"""Crash windows of `vista render`: a render that fails or is killed at any step leaves the previous video and
recipe as they were, never an unsigned video at the final name, never a new video beside a recipe that claims to
describe it, and no temp files that pile up.

Order under test (render.video.render_video): encode to `.NAME.XXXXXXXX.partial.mp4` beside the output, sign
that temp file, fsync, rename over the final name, fsync the folder, write the recipe, delete the frame cache.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import render.video
import scenes.recipe
from render.encode import probe_video, remove_orphans
from render.frame_cache import FrameCache, frame_cache_dir
from render.video import VideoConfig, VideoOutputs, render_video
from scenes.recipe import check_recipe_describes_videos, read_recipe, recipe_path_for, render_shot
from scenes.scene import load_scene
from tests.test_recipe import scene_dir, write_path  # noqa: F401 - scene_dir is a fixture
from tests.test_video import orbit, sphere_renderable
from vista import main
from vista_core.errors import VistaError

CONFIG = VideoConfig(fps=10, watermark=False)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.is_file())


def _shot(scene_folder: Path, out: Path, width: int = 32, outputs: VideoOutputs = VideoOutputs()):
    """3 frames of the test ball (a ball looks the same from every side: another width makes another video)."""
    return render_shot(load_scene(scene_folder), orbit(3, width, 32), out, CONFIG, outputs, show_progress=False)


def test_failing_rename_between_encode_and_rename_keeps_the_old_video_and_recipe(scene_dir, tmp_path, monkeypatch):  # noqa: F811
    out = tmp_path / "shot.mp4"
    _shot(scene_dir, out)
    recipe_file = recipe_path_for(out)
    old_video, old_recipe = out.read_bytes(), recipe_file.read_bytes()
    real_replace = os.replace

    def replace_fails_for_videos(src, dst, **kwargs):
        if str(src).endswith(".partial.mp4"):
            raise OSError(5, "Input/output error")
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace_fails_for_videos)
    with pytest.raises(VistaError, match="cannot write the video"):
        _shot(scene_dir, out, width=48)
    assert out.read_bytes() == old_video and recipe_file.read_bytes() == old_recipe
    assert _temp_files(tmp_path) == [], "the encoded temp file is deleted"
    assert len(list(frame_cache_dir(out).glob("*.png"))) == 3, "the rendered frames stay cached for a rerun"

    # a kill (no cleanup runs) at the same moment: the old pair is still consistent, the next render cleans up
    def replace_is_killed(src, dst, **kwargs):
        if str(src).endswith(".partial.mp4"):
            raise KeyboardInterrupt
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace_is_killed)
    monkeypatch.setattr(render.video, "discard", lambda path: None)  # as if killed: no cleanup of the temp file
    with pytest.raises(KeyboardInterrupt):
        _shot(scene_dir, out, width=48)
    assert out.read_bytes() == old_video and recipe_file.read_bytes() == old_recipe
    check_recipe_describes_videos(read_recipe(recipe_file), recipe_file)
    assert len(_temp_files(tmp_path)) == 1
    monkeypatch.undo()
    _shot(scene_dir, out, width=48)
    assert _temp_files(tmp_path) == [] and out.read_bytes() != old_video
    check_recipe_describes_videos(read_recipe(recipe_file), recipe_file)


def test_signing_signs_the_temp_file_and_a_failed_signing_leaves_no_unsigned_file_at_the_final_name(
        tmp_path, monkeypatch):
    signed = []

    def failing_sign(video, cert, key, title):
        signed.append((Path(video), out.exists()))
        raise VistaError(f"C2PA signing of {video} with {cert} failed: test")

    monkeypatch.setattr(render.video, "sign_c2pa", failing_sign)
    out = tmp_path / "shot.mp4"
    outputs = VideoOutputs(sign_cert=tmp_path / "chain.pem", sign_key=tmp_path / "key.pem")
    with pytest.raises(VistaError, match="C2PA signing"):
        render_video(sphere_renderable(), orbit(2, 32, 32), out, CONFIG, outputs, show_progress=False)
    [(signed_path, final_existed)] = signed
    assert signed_path.parent == tmp_path and signed_path.name.startswith(".shot.mp4.")
    assert signed_path.name.endswith(".partial.mp4") and not final_existed
    assert not out.exists(), "no unsigned video at the final name"
    assert _temp_files(tmp_path) == []

    # an earlier video at that name stays as it was
    monkeypatch.undo()
    render_video(sphere_renderable(), orbit(2, 32, 32), out, CONFIG, show_progress=False)
    before = out.read_bytes()
    monkeypatch.setattr(render.video, "sign_c2pa", failing_sign)
    with pytest.raises(VistaError, match="C2PA signing"):
        render_video(sphere_renderable(), orbit(3, 32, 32), out, CONFIG, outputs, show_progress=False)
    assert out.read_bytes() == before and _temp_files(tmp_path) == []


def test_orphan_temp_files_of_an_earlier_run_are_removed_and_no_others(scene_dir, tmp_path):  # noqa: F811
    out, depth = tmp_path / "shot.mp4", tmp_path / "shot_depth.mp4"
    orphans = [".shot.mp4.a1b2c3d4.partial.mp4", "..shot.mp4.a1b2c3d4.partial.mp4.x_9y8z7w.signing.mp4",
               ".shot.mp4.qwertyui.signing.mp4", ".shot_depth.mp4.zzzz9999.partial.mp4",
               ".shot.recipe.json.abcdefgh.tmp"]
    others = [".shot.mp4.foo.mp4.a1b2c3d4.partial.mp4", ".other.mp4.a1b2c3d4.partial.mp4", "shot.partial.mp4",
              ".shot.mp4.toolong99.partial.mp4.bak", ".shot.mp4.notes"]
    for name in orphans + others:
        (tmp_path / name).write_bytes(b"half a video")
    cache = frame_cache_dir(out)
    cache.mkdir()
    (cache / ".000000.png.a1b2c3d4.tmp").write_bytes(b"half a frame")

    _shot(scene_dir, out, outputs=VideoOutputs(depth_video=depth, keep_frames=True))
    assert not [name for name in orphans if (tmp_path / name).exists()]
    assert all((tmp_path / name).read_bytes() == b"half a video" for name in others), "not ours: kept"
    assert not list(cache.glob(".*")), "half-written frames of the killed run are gone"
    assert probe_video(out).frames == 3 and probe_video(depth).frames == 3
    assert remove_orphans(out) == []


def test_the_recipe_is_written_before_the_frame_cache_is_deleted(scene_dir, tmp_path, monkeypatch):  # noqa: F811
    out = tmp_path / "shot.mp4"
    _shot(scene_dir, out)
    recipe_file = recipe_path_for(out)
    old_recipe = recipe_file.read_bytes()
    seen = {}
    real_write = scenes.recipe.write_recipe

    def write_and_look(path, recipe):
        seen["cache_then"] = len(list(frame_cache_dir(out).glob("*.png")))
        seen["video_then"] = out.read_bytes()
        real_write(path, recipe)

    def killed(self):
        raise KeyboardInterrupt  # killed right after the recipe was written

    monkeypatch.setattr(scenes.recipe, "write_recipe", write_and_look)
    monkeypatch.setattr(FrameCache, "remove", killed)
    with pytest.raises(KeyboardInterrupt):
        _shot(scene_dir, out, width=48)
    assert seen["cache_then"] == 3, "the frame cache is still there when the recipe is written"
    assert seen["video_then"] == out.read_bytes(), "the new video is in place before its recipe"
    assert recipe_file.read_bytes() != old_recipe
    recipe = read_recipe(recipe_file)
    check_recipe_describes_videos(recipe, recipe_file)
    assert recipe.video_sha256["video"] == render.video.file_sha256(out)
    assert len(list(frame_cache_dir(out).glob("*.png"))) == 3


def test_a_recipe_beside_a_newer_video_is_refused_by_render_recipe(scene_dir, tmp_path, monkeypatch, capsys):  # noqa: F811
    out = tmp_path / "shot.mp4"
    _shot(scene_dir, out)
    recipe_file = recipe_path_for(out)

    def killed_before_recipe(path, recipe):
        raise KeyboardInterrupt

    # killed after the new video's rename, before its recipe: same frame count, another video
    monkeypatch.setattr(scenes.recipe, "write_recipe", killed_before_recipe)
    with pytest.raises(KeyboardInterrupt):
        _shot(scene_dir, out, width=48)
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["render", "--recipe", str(recipe_file), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "does not describe" in err and "SHA-256 differs" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.with_name("shot.rerender.mp4").exists()

    # an older recipe (no recorded hashes) is still checked by its frame count
    raw = json.loads(recipe_file.read_text())
    del raw["outputs"]["sha256"]
    raw["frames"] = [0, 1]
    recipe_file.write_text(json.dumps(raw))
    assert main(["render", "--recipe", str(recipe_file), "--no-progress"]) == 2
    assert "it has 3 frames, the recipe 2" in capsys.readouterr().err

    # the video moved away: the recipe can still render its shot again
    raw["frames"] = [0, 1, 2]
    recipe_file.write_text(json.dumps(raw))
    out.rename(tmp_path / "moved.mp4")
    # (the scene folder is outside the recipe's folder, so it is named on the command line: scenes/recipe.py confines paths)
    assert main(["render", str(scene_dir), "--recipe", str(recipe_file), "--no-progress"]) == 0
    assert "all 3 frames are bit-identical" in capsys.readouterr().out


def test_a_second_render_of_the_same_output_at_the_same_time_is_refused(tmp_path):
    import fcntl

    out = tmp_path / "shot.mp4"
    render_video(sphere_renderable(), orbit(2, 32, 32), out, CONFIG, show_progress=False)
    before = out.read_bytes()
    cache = frame_cache_dir(out)
    cache.mkdir()
    (tmp_path / ".shot.mp4.a1b2c3d4.partial.mp4").write_bytes(b"the running render's video")
    fd = os.open(cache, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the running render holds its frame cache
        with pytest.raises(VistaError, match="another render is writing this video now"):
            render_video(sphere_renderable(), orbit(3, 32, 32), out, CONFIG, show_progress=False)
    finally:
        os.close(fd)
    assert out.read_bytes() == before
    assert (tmp_path / ".shot.mp4.a1b2c3d4.partial.mp4").exists(), "the running render's temp file is not touched"
