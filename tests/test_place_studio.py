"""The studio's step 3 on a place (issue #21): the top-down map shows what the photos saw around the subject and
the photo cameras, and two clicks on it make a path that frames the subject.

The scene is an untrained unbounded scene whose cameras photograph tests.support.procedural's place; its path
geometry is the place's exact depth, saved as the scene's cache (scenes.place), so the studio runs exactly as on a
trained scene without training one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from render.path_geometry import GeometryConfig, build_path_geometry
from render.path_preview import CAPTURE_COLOUR
from tests.support.procedural import hand_held_arc
from tests.test_path_geometry import SUBJECT, exact_views, inside_truth
from vista_core.files import read_json
from vista_studio import path, path_views, photos
from vista_studio import workspace as wsp


def _place_scene(folder):
    from scenes.config import preset_config
    from scenes.data import normalize_unbounded
    from scenes.place import cache_geometry
    from scenes.scene import new_scene, save_scene

    capture = hand_held_arc(16, 64, 48, seed=0, span_deg=140.0)
    scene = new_scene(preset_config("test", seed=0), "torch", "unbounded", normalize_unbounded(capture),
                      (0.0, 0.0, 0.0), capture, [f"arc_{i:02d}" for i in range(16)], "procedural")
    save_scene(scene, folder)
    assert cache_geometry(scene, build_path_geometry(capture, exact_views, GeometryConfig()))
    return capture


def map_points(workspace) -> np.ndarray:
    return path.path_scene(workspace).map_points()[0]


@pytest.mark.slow  # ~15 s alone, minutes on a busy machine: the scene is loaded for every click
def test_the_map_shows_the_place_and_two_clicks_frame_the_subject(tmp_path):
    root = wsp.workspace_root(tmp_path / "root")
    workspace = wsp.new_workspace(root)
    capture = _place_scene(workspace / "place")
    photos.load_folder(root, workspace, str(workspace / "place"))
    views = path_views.path_views(workspace)
    image = np.asarray(PILImage.open(views["map"]).convert("RGB")).astype(int)
    mapping = read_json(workspace / path.PATH_DIR / path.MAP_JSON, "map")
    _, top = path.map_pixel_to_world(workspace, 0, 0)
    # the subject's surfaces as the photos saw them are drawn (not the empty background), and every photo camera
    seen = map_points(workspace)
    subject = seen[np.linalg.norm(seen - SUBJECT, axis=1) < 0.8]
    assert len(subject) > 100
    sx, sy = top.world_to_pixel(subject).astype(int).T
    assert (np.abs(image[sy, sx] - (24, 24, 28)).sum(axis=1) > 30).mean() > 0.9
    assert (np.abs(image[:20, :20] - (24, 24, 28)).sum(axis=-1) == 0).all()  # a corner far from the place is empty
    cameras_px = top.world_to_pixel(capture.positions.double().numpy()).round().astype(int)
    for x, y in cameras_px:
        assert tuple(image[y, x]) == CAPTURE_COLOUR
    # the place fills the map: the subject is not a speck in a field of contracted space
    w, h = mapping["size"]
    assert np.ptp(cameras_px[:, 0]) > 0.3 * w or np.ptp(cameras_px[:, 1]) > 0.3 * h

    # two clicks where the first and the last photo were taken, at the photos' height
    first, last = cameras_px[0], cameras_px[-1]
    assert "First keyframe" in path.add_keyframe_at_pixel(workspace, *first, 0.0, 3.0)
    assert "Keyframe 2 added" in path.add_keyframe_at_pixel(workspace, *last, 0.0, 3.0)
    shot = path.read_path(workspace)
    cameras = shot.sample(64, 48)
    positions = cameras.positions.double().numpy()
    assert not inside_truth(positions, pad=0.05).any()
    heights = positions[:, 2]
    photo_heights = capture.positions[:, 2].double().numpy()
    assert photo_heights.min() - 0.3 < heights.min() and heights.max() < photo_heights.max() + 0.3
    seen = cameras.project(torch.as_tensor(SUBJECT[None], dtype=torch.float32))
    u, v = seen.pixels[:, 0, 0], seen.pixels[:, 0, 1]
    assert bool((seen.in_front[:, 0] & (u > 8) & (u < 56) & (v > 6) & (v < 42)).all())
    # the map with the path on it still draws
    assert path_views.path_views(workspace)["glb"] is not None


@pytest.mark.slow
def test_two_clicks_through_the_real_app_api_frame_the_place(tmp_path):
    """The same two clicks sent to the launched studio with gradio_client, as a browser would send them."""
    gradio_client = pytest.importorskip("gradio_client")
    import app

    root = wsp.workspace_root(tmp_path / "root")
    capture = _place_scene(root / "library" / "place")
    demo = app.launch_app(root, block=False, quiet=True)
    try:
        client = gradio_client.Client(demo.local_url, verbose=False)
        out = client.predict("library/place", api_name="/load_folder")
        assert "trained scene" in out[0] and out[5]  # the notice, and the map is drawn
        [workspace] = [p for p in (root / wsp.SESSIONS).iterdir() if p.is_dir()]
        _, top = path.map_pixel_to_world(workspace, 0, 0)
        first, last = top.world_to_pixel(capture.positions.double().numpy()[[0, -1]])
        client.predict(float(first[0]), float(first[1]), 0.0, 2.0, api_name="/add_keyframe_pixel")
        out = client.predict(float(last[0]), float(last[1]), 0.0, 2.0, api_name="/add_keyframe_pixel")
        assert "Keyframe 2 added" in out[0] and len(out[4]["data"]) == 2
    finally:
        demo.close()
        wsp.cancel_jobs(root)
    cameras = path.read_path(workspace).sample(64, 48)
    assert not inside_truth(cameras.positions.double().numpy(), pad=0.05).any()
    seen = cameras.project(torch.as_tensor(SUBJECT[None], dtype=torch.float32))
    u, v = seen.pixels[:, 0, 0], seen.pixels[:, 0, 1]
    assert bool((seen.in_front[:, 0] & (u > 8) & (u < 56) & (v > 6) & (v < 42)).all())
