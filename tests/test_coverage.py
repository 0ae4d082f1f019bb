"""Coverage: frames that look where the photos never looked score low; frames near the photos score high."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from render.cameras import Cameras
from render.coverage import (
    CaptureDepth,
    CoverageConfig,
    count_similar_views,
    frame_coverage,
    path_coverage,
    render_capture_depth,
)
from render.keyframes import look_at_rotation
from render.path_presets import fit_scene_frame, orbit
from tests.conftest import shared_dataset
from vista_core.progress import Cancelled, ProgressEvent


def _camera(position, target=(0.0, 0.0, 0.0), width=320, height=180, fov=40.0) -> Cameras:
    rotation = look_at_rotation(position, target, (0.0, 0.0, 1.0))
    matrix = np.concatenate([rotation, np.asarray(position, float)[:, None]], axis=1)
    return Cameras.from_fov(torch.tensor(matrix[None], dtype=torch.float32), fov, width, height)


def _stack(cameras: list[Cameras]) -> Cameras:
    return Cameras(torch.cat([c.world_from_camera for c in cameras]), torch.cat([c.fx for c in cameras]),
                   torch.cat([c.fy for c in cameras]), torch.cat([c.cx for c in cameras]),
                   torch.cat([c.cy for c in cameras]), cameras[0].width, cameras[0].height)


def test_similar_views_by_hand():
    """A point at the origin; two photos in front of it, one behind; the viewer in front."""
    photos = _stack([_camera((4.0, 0.3, 1.0), width=16, height=16), _camera((4.0, -0.3, 1.2), width=16, height=16),
                     _camera((-4.0, 0.0, 1.0), width=16, height=16)])
    free = torch.full((3, 16, 16), math.inf)
    point = torch.zeros(1, 3)
    front, back = torch.tensor([4.0, 0.0, 1.1]), torch.tensor([-4.0, 0.2, 1.0])
    assert count_similar_views(point, front, CaptureDepth(photos, free)).item() == 2
    assert count_similar_views(point, back, CaptureDepth(photos, free)).item() == 1
    # something in front of the point in the first photo hides it there
    occluded = free.clone()
    occluded[0] = 2.0
    assert count_similar_views(point, front, CaptureDepth(photos, occluded)).item() == 1
    # a viewer 10x farther away does not count as a similar view
    assert count_similar_views(point, front * 10, CaptureDepth(photos, free)).item() == 0


@pytest.fixture(scope="module")
def front_only_scene(tmp_path_factory):
    """The test preset trained on the lego's front photos only (azimuth within 60 degrees of +x)."""
    from scenes.config import preset_config
    from scenes.data import load_posed_images
    from scenes.train import train_scene

    data = load_posed_images(shared_dataset("lego-100"))
    positions = data.cameras.positions.numpy()
    azimuth = np.degrees(np.arctan2(positions[:, 1], positions[:, 0]))
    front = [i for i in data.train_indices if abs(azimuth[i]) < 60]
    assert 15 <= len(front) <= 40
    out = tmp_path_factory.mktemp("lego-front")
    scene = train_scene(dataclasses.replace(data, train_indices=front), out, preset_config("test"),
                        show_progress=False)
    return scene


def test_back_of_the_object_scores_low_and_a_view_near_a_photo_scores_high(front_only_scene):
    scene = front_only_scene
    renderable = scene.renderable()
    config = CoverageConfig()
    photo_events = []
    depth = render_capture_depth(renderable, scene.capture, config, progress=photo_events.append)
    assert [(e.stage, e.done, e.total) for e in photo_events] == \
        [("coverage: rendering the photos", i + 1, len(scene.capture)) for i in range(len(scene.capture))]
    back, back_surface = frame_coverage(renderable, _camera((-3.5, 0.4, 1.8)), 0, depth, config)
    photo = scene.capture.world_from_camera[0].double().numpy()
    near = photo.copy()
    near[:, 3] += 0.15 * photo[:, 0]  # a small step sideways from the first training photo
    near_camera = Cameras.from_fov(torch.tensor(near[None], dtype=torch.float32), 40.0, 320, 180)
    near_score, near_surface = frame_coverage(renderable, near_camera, 0, depth, config)
    assert back_surface > 0.05 and near_surface > 0.05  # both frames do show the object
    assert back < 0.2, back
    assert near_score > 0.7, near_score

    # along an orbit that starts on the photographed side, the far side is reported
    frame = fit_scene_frame(scene.capture, scene.scene_from_world)
    path = orbit(frame, seconds=4.0, fps=6)
    frame_events = []
    report = path_coverage(renderable, scene.capture, path.sample(96, 54), path.frame_times(), config, frame_step=3,
                           progress=frame_events.append, depth=depth)
    assert {e.stage for e in frame_events} == {"coverage: scoring frames"}
    assert [e.done for e in frame_events] == list(range(1, frame_events[-1].total + 1))
    assert report.scores[0] > 0.7 and report.scores[len(report.scores) // 2] < 0.2, report.scores
    assert report.warnings and "look at regions no photo covered" in report.warnings[0]
    assert not any(w.startswith("frames 0") for w in report.warnings)


def test_a_cancelled_coverage_check_stops(front_only_scene):
    scene = front_only_scene
    depth = render_capture_depth(scene.renderable(), scene.capture[[0, 1, 2]], CoverageConfig())
    frames = orbit(fit_scene_frame(scene.capture, scene.scene_from_world), seconds=2.0, fps=3).sample(32, 18)
    seen = []

    def cancel(event: ProgressEvent) -> None:
        seen.append(event.done)
        raise Cancelled

    with pytest.raises(Cancelled):
        path_coverage(scene.renderable(), scene.capture, frames, progress=cancel, depth=depth)
    assert seen == [1]


def test_vista_path_command_writes_the_path_previews_and_coverage(front_only_scene, tmp_path, capsys):
    import json

    import vista
    from render.path_io import load_path_cameras

    scene_dir = tmp_path / "scene"
    from scenes.scene import save_scene

    save_scene(front_only_scene, scene_dir)
    out = tmp_path / "path.json"
    code = vista.main(["path", str(scene_dir), "--preset", "orbit", "--seconds", "2", "--fps", "6", "--width", "96",
                       "--height", "54", "--out", str(out), "--top-down", str(tmp_path / "map.png"),
                       "--glb", str(tmp_path / "p.glb"), "--coverage-json", str(tmp_path / "cov.json"),
                       "--coverage-frames", "4", "--save-keyframes", str(tmp_path / "keys.json")])
    assert code == 0
    cameras, fps = load_path_cameras(out)
    assert len(cameras) == 12 and fps == 6 and (cameras.width, cameras.height) == (96, 54)
    report = json.loads((tmp_path / "cov.json").read_text())
    assert len(report["scores"]) == 12 and report["warnings"]
    assert (tmp_path / "map.png").stat().st_size > 1000 and (tmp_path / "p.glb").stat().st_size > 1000
    assert "look at regions no photo covered" in capsys.readouterr().out
    # the saved keyframes come back through --keyframes; a preset flag with --keyframes is refused
    assert vista.main(["path", str(scene_dir), "--keyframes", str(tmp_path / "keys.json"), "--out",
                       str(tmp_path / "again.json")]) == 0
    again, _ = load_path_cameras(tmp_path / "again.json", 96, 54)
    np.testing.assert_allclose(again.world_from_camera.numpy(), cameras.world_from_camera.numpy(), atol=1e-6)
    assert vista.main(["path", str(scene_dir), "--keyframes", str(tmp_path / "keys.json"), "--degrees", "90",
                       "--out", str(tmp_path / "x.json")]) == 2
    assert vista.main(["path", str(scene_dir), "--preset", "dolly-in", "--degrees", "90",
                       "--out", str(tmp_path / "x.json")]) == 2
    assert "does not apply" in capsys.readouterr().err
