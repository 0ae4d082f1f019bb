"""vista_api.farm and `vista render --ray`: frames rendered on a local Ray instance are bit-identical to a local
render, survive a killed worker and an interrupted driver, and a worker with other code or another scene is refused.

One Ray instance (2 CPUs, ~10 s to start) serves the whole module. The scene is test_recipe's: an untrained `test`
preset field inside a ball of occupancy, which renders fast and deterministically.
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import ray  # noqa: E402  (the farm extra; CI installs it: setup.sh)
import torch

from render.encode import probe_video
from render.frame_cache import frame_cache_dir
from render.video import VideoConfig
from scenes.recipe import read_recipe, recipe_path_for
from tests.test_recipe import scene_dir, write_path  # noqa: F401  (scene_dir is a module fixture)
from vista import main
from vista_api.farm import (
    ChunkSpec,
    RayFarm,
    WorkerRefused,
    _check_reachable,
    check_worker,
    chunk_size,
    code_identity,
    contiguous_chunks,
    render_chunk,
    scene_files,
)
from vista_api.render import ShotRequest, render_shot
from vista_core.errors import VistaError
from vista_core.progress import Cancelled

FRAMES, WIDTH, HEIGHT = 24, 64, 48


@pytest.fixture(scope="module")
def local_ray():
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as error:  # Ray gives its raylet a fixed 30 s to start; a box busy with other work may need more
        if "timed out during startup" not in str(error):
            raise
        ray.shutdown()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def shot_path(tmp_path_factory) -> Path:
    return write_path(tmp_path_factory.mktemp("path") / "path.json", n=FRAMES, width=WIDTH, height=HEIGHT)


@pytest.fixture(scope="module")
def local_hashes(scene_dir, shot_path, tmp_path_factory) -> list[str]:  # noqa: F811
    """Every frame's SHA-256 from a plain local render with 2 torch threads (the farm's workers use 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        shot = render_shot(ShotRequest(scene_dir, shot_path, tmp_path_factory.mktemp("local") / "shot.mp4"))
    finally:
        torch.set_num_threads(threads)
    assert shot.render.rendered == FRAMES
    return shot.render.frame_sha256


def farm_request(scene: Path, path: Path, out: Path) -> ShotRequest:
    return ShotRequest(scene, path, out, farm=RayFarm("auto"))


@pytest.mark.slow  # Ray starts in ~10 s (more on a loaded box), its workers import torch
def test_ray_render_is_bit_identical_frame_by_frame_to_a_local_render(local_ray, scene_dir, shot_path,  # noqa: F811
                                                                       local_hashes, tmp_path, capsys):
    out = tmp_path / "shot.mp4"
    code = main(["render", str(scene_dir), "--path", str(shot_path), "--out", str(out), "--ray", "auto",
                 "--no-progress"])
    assert code == 0
    assert f"rendered {FRAMES} frames" in capsys.readouterr().out
    recipe = read_recipe(recipe_path_for(out))
    assert recipe.frame_sha256 == local_hashes
    assert probe_video(out).frames == FRAMES
    assert not frame_cache_dir(out).exists()  # encoded, recorded, cache removed as after a local render


def kill_once(flag: Path):
    """A task that kills its own worker process the first time it runs a chunk past the first frames (the flag
    file says it happened), then renders as usual: Ray must run the lost chunk again."""

    def task(spec: ChunkSpec, files: dict, cameras):
        if spec.frames[0] > 2:
            try:
                os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return render_chunk(spec, files, cameras)

    return task


@pytest.mark.slow
def test_a_killed_worker_loses_only_its_chunk_and_the_mp4_holds_every_frame(local_ray, scene_dir, shot_path,  # noqa: F811
                                                                             local_hashes, tmp_path, monkeypatch):
    import vista_api.farm as farm

    flag = tmp_path / "killed"
    original = farm.render_frames_on_ray
    monkeypatch.setattr(farm, "render_frames_on_ray",
                        lambda *args, **kwargs: original(*args, **kwargs, task=kill_once(flag)))
    out = tmp_path / "shot.mp4"
    shot = render_shot(farm_request(scene_dir, shot_path, out))
    assert flag.exists()  # a worker really died
    assert shot.render.frame_sha256 == local_hashes
    assert probe_video(out).frames == FRAMES


@pytest.mark.slow
def test_a_rerun_after_the_driver_was_interrupted_renders_only_the_missing_frames(local_ray, scene_dir,  # noqa: F811
                                                                                   shot_path, local_hashes, tmp_path):
    out = tmp_path / "shot.mp4"

    def stop_after_first_chunks(event):
        if event.done >= 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        render_shot(farm_request(scene_dir, shot_path, out), stop_after_first_chunks)
    cached = len(list(frame_cache_dir(out).glob("[0-9]*.png")))
    assert 3 <= cached < FRAMES
    shot = render_shot(farm_request(scene_dir, shot_path, out))
    assert shot.render.rendered == FRAMES - cached
    assert shot.render.frame_sha256 == local_hashes


@pytest.mark.slow
def test_a_worker_with_other_code_is_refused_in_one_line(local_ray, scene_dir, shot_path, tmp_path,  # noqa: F811
                                                          monkeypatch, capsys):
    import vista_api.farm as farm

    def older_worker(spec: ChunkSpec, files: dict, cameras):  # as if the worker ran another Vista
        return render_chunk(replace(spec, identity={**spec.identity, "code": "0123456789abcdef"}), files, cameras)

    original = farm.render_frames_on_ray
    monkeypatch.setattr(farm, "render_frames_on_ray",
                        lambda *args, **kwargs: original(*args, **kwargs, task=older_worker))
    code = main(["render", str(scene_dir), "--path", str(shot_path), "--out", str(tmp_path / "s.mp4"),
                 "--ray", "auto", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "refused the shot" in err and "0123456789abcdef" in err


def test_a_worker_given_another_scene_is_refused(scene_dir):  # noqa: F811
    files = scene_files(scene_dir)
    spec = ChunkSpec((0,), "sha256:" + "0" * 64, code_identity(), VideoConfig(), 1)
    with pytest.raises(WorkerRefused, match="hashes to sha256:"):
        check_worker(spec, files)


def test_chunks_are_contiguous_about_the_target_time_and_at_least_two_per_slot():
    assert contiguous_chunks([3, 4, 5, 6, 7], 2) == [(3, 4), (5, 6), (7,)]
    assert chunk_size(frame_s=2.0, remaining=1000, slots=4, target_chunk_s=20.0) == 10  # by time
    assert chunk_size(frame_s=0.01, remaining=40, slots=4, target_chunk_s=20.0) == 5  # 2 chunks a slot
    assert chunk_size(frame_s=60.0, remaining=40, slots=4, target_chunk_s=20.0) == 1


def test_bad_farm_options_are_one_line_errors():
    with pytest.raises(VistaError, match="--ray-threads 0"):
        RayFarm("auto", threads=0)
    with pytest.raises(VistaError, match="--ray: give a cluster address"):
        RayFarm(" ")
    with pytest.raises(VistaError, match="no Ray cluster answers there"):  # Ray alone would retry for minutes
        _check_reachable("127.0.0.1:1")
    with pytest.raises(VistaError, match="expected HOST:PORT"):
        _check_reachable("head-node")
