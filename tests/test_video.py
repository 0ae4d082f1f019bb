"""render.video: MP4s a real decoder reads, bounded-memory frames, resumable renders, flicker, bad input.

The scene is an analytic radiance field (a painted sphere) so the tests are about video, not training;
`sphere_renderable` and `orbit` are shared with test_provenance.py and the kill-and-resume subprocess.
"""

from __future__ import annotations

import errno
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from render.bands import render_frame, to_uint8
from render.cameras import Cameras
from render.config import SamplingConfig
from render.encode import probe_video, read_frames
from render.flicker import measure_flicker
from render.frame_cache import FrameCache, frame_cache_dir
from render.occupancy import OccupancyGrid
from render.render import Renderable, render_camera
from render.video import VideoConfig, VideoOutputs, preview_size, render_video, resize_cameras
from vista_core.errors import VistaError
from vista_core.progress import Cancelled, ProgressEvent

REPO = Path(__file__).resolve().parents[1]


class PaintedSphere:
    """A hard sphere (radius 0.35 of the unit cube, i.e. 0.7 scene units) with a smooth colour pattern on it."""

    def density_and_features(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = (u - 0.5).norm(dim=-1)
        sigma = 400.0 * torch.sigmoid((0.35 - r) * 400.0)
        p = u * 2 * math.pi * 3
        features = torch.stack([0.5 + 0.4 * torch.sin(p[:, 0]) * torch.cos(p[:, 1]),
                                0.5 + 0.4 * torch.sin(p[:, 1] + p[:, 2]),
                                0.5 + 0.4 * torch.cos(p[:, 2] * 1.5)], dim=-1)
        return sigma, features

    def color(self, features: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        return features


def sphere_renderable() -> Renderable:
    grid = OccupancyGrid(32)
    centers = grid.cell_centers(torch.arange(32**3), torch.full((32**3, 3), 0.5))
    grid.occupied = (centers - 0.5).norm(dim=-1) < 0.4
    return Renderable(PaintedSphere(), grid, "object", torch.eye(4), torch.ones(3),
                      SamplingConfig(max_samples_per_ray=64))


def orbit(n: int, width: int, height: int, radius: float = 3.0, fov_deg: float = 35.0,
          arc_deg: float = 40.0) -> Cameras:
    """n cameras on an arc around the origin, looking at it (OpenGL axes: the camera looks along -z)."""
    matrices = []
    for k in range(n):
        angle = math.radians(arc_deg) * k / max(n - 1, 1)
        position = torch.tensor([radius * math.cos(angle), radius * math.sin(angle), 0.8])
        z = position / position.norm()
        x = torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0]), z)
        x = x / x.norm()
        y = torch.linalg.cross(z, x)
        matrices.append(torch.stack([x, y, z, position], dim=-1))
    return Cameras.from_fov(torch.stack(matrices), fov_deg, width, height)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255**2 / max(mse, 1e-12))


@pytest.fixture(autouse=True)
def _one_thread():
    # one thread: faster than two on a shared 2-core box, and the subprocess below renders with the same count
    torch.set_num_threads(1)
    yield


def test_mp4_decodes_with_right_count_size_fps_codec_and_matches_renders(tmp_path):
    # 256x256: at lower sizes yuv420p's half-resolution chroma alone costs more than 35 dB on this saturated pattern
    scene, cameras = sphere_renderable(), orbit(4, 256, 256)
    out = tmp_path / "shot.mp4"
    result = render_video(scene, cameras, out, VideoConfig(fps=12, watermark=False), show_progress=False)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == 12
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 4 and decoded[0].shape == (256, 256, 3)
    for k, frame in enumerate(decoded):
        expected = to_uint8(render_camera(scene, cameras, k).rgb)
        assert psnr(frame, expected) >= 35.0, f"frame {k}: {psnr(frame, expected):.1f} dB"
    assert result.frames == [0, 1, 2, 3] and len(result.frame_sha256) == 4
    assert not frame_cache_dir(out).exists(), "the frame cache is removed after a successful encode"
    # constant frame rate: presentation times step by exactly 1/12 s
    with av.open(str(out)) as container:
        pts = [float(f.time) for f in container.decode(video=0)]
    assert np.allclose(np.diff(pts), 1 / 12)


def test_banded_render_equals_whole_frame_render():
    scene, cameras = sphere_renderable(), orbit(2, 64, 48)
    whole = render_camera(scene, cameras, 1)
    banded = render_frame(scene, cameras, 1, band_pixels=64 * 7)  # 7 rows at a time, last band shorter
    assert torch.allclose(whole.rgb, banded.rgb, atol=1e-5)
    assert torch.allclose(whole.depth, banded.depth, atol=1e-4)


def test_supersampled_frame_is_the_box_filtered_fine_render_in_bands():
    scene, cameras = sphere_renderable(), orbit(2, 32, 24)
    fine = render_camera(scene, cameras.scaled(2), 1)  # 64 x 48, one ray per fine pixel
    banded = render_frame(scene, cameras, 1, band_pixels=64 * 5, supersample=2)  # 4 fine rows per band
    assert banded.rgb.shape == (24, 32, 3) and banded.depth.shape == (24, 32)
    box = torch.nn.functional.avg_pool2d(fine.rgb.permute(2, 0, 1)[None], 2)[0].permute(1, 2, 0)
    assert torch.allclose(banded.rgb, box, atol=1e-5)
    assert torch.allclose(banded.opacity, torch.nn.functional.avg_pool2d(fine.opacity[None, None], 2)[0, 0], atol=1e-5)
    # a pixel half on the sphere: partly transparent, and its depth is the sphere's, not half of it
    edge = (banded.opacity > 0.2) & (banded.opacity < 0.8)
    assert edge.any()
    inside = banded.opacity > 0.99
    assert (banded.depth[edge] > 0.8 * banded.depth[inside].min()).all()
    # the anti-aliased frame differs from one ray per pixel only at the silhouette and in fine texture
    plain = render_frame(scene, cameras, 1)
    assert 0 < (banded.rgb - plain.rgb).abs().mean() < 0.05


def test_supersample_is_cached_apart_and_checked(tmp_path):
    scene = sphere_renderable()
    render_video(scene, orbit(2, 32, 32), tmp_path / "a.mp4", VideoConfig(watermark=False),
                 VideoOutputs(keep_frames=True), cache_key="one", show_progress=False)
    result = render_video(scene, orbit(2, 32, 32), tmp_path / "a.mp4", VideoConfig(watermark=False, supersample=2),
                          cache_key="one", show_progress=False)
    assert result.rendered == 2, "frames rendered with another number of rays per pixel must not be reused"
    for bad in (0, 5, 1.5):
        with pytest.raises(VistaError, match="supersample"):
            VideoConfig(supersample=bad)


def test_extra_outputs_png_depth_and_opacity_videos(tmp_path):
    scene, cameras = sphere_renderable(), orbit(3, 96, 64)
    outputs = VideoOutputs(png_dir=tmp_path / "png", depth_video=tmp_path / "depth.mp4",
                           opacity_video=tmp_path / "alpha.mp4")
    result = render_video(scene, cameras, tmp_path / "shot.mp4", VideoConfig(fps=24, watermark=False), outputs,
                          show_progress=False)
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [f"frame_{k:05d}.png" for k in range(3)]
    depth = read_frames(tmp_path / "depth.mp4")
    alpha = read_frames(tmp_path / "alpha.mp4")
    assert len(depth) == len(alpha) == 3
    image = render_camera(scene, cameras, 0)
    expected_alpha = np.repeat((image.opacity.numpy() * 255).round().astype(np.uint8)[..., None], 3, -1)
    assert psnr(alpha[0], expected_alpha) > 30
    # turbo: the nearest part of the sphere is red-ish, the far rim blue-ish; the background black
    fg = image.opacity.numpy() > 0.9
    d = image.depth.numpy()
    near = fg & (d <= np.percentile(d[fg], 5))
    far = fg & (d >= np.percentile(d[fg], 95))
    assert depth[0][near][:, 0].mean() > depth[0][near][:, 2].mean() + 40
    assert depth[0][far][:, 2].mean() > depth[0][far][:, 0].mean() + 40
    assert depth[0][image.opacity.numpy() < 0.01].mean() < 20
    assert set(result.extra_outputs) == {"png_dir", "depth_video", "opacity_video"}


def test_interrupted_render_resumes_to_identical_output(tmp_path):
    scene, cameras = sphere_renderable(), orbit(5, 64, 48)
    config = VideoConfig(fps=10, watermark=False)
    reference = render_video(scene, cameras, tmp_path / "reference.mp4", config, cache_key="sphere", show_progress=False)

    def stop_after_two(event: ProgressEvent):
        if event.done == 2:
            raise Cancelled

    out = tmp_path / "shot.mp4"
    with pytest.raises(Cancelled):
        render_video(scene, cameras, out, config, cache_key="sphere", show_progress=False, progress=stop_after_two)
    assert not out.exists()
    assert len(list(frame_cache_dir(out).glob("*.png"))) == 2
    events = []
    resumed = render_video(scene, cameras, out, config, cache_key="sphere", show_progress=False,
                           progress=events.append)
    assert [(e.stage, e.done, e.total) for e in events] == [("rendering frames", done, 5) for done in (3, 4, 5)]
    assert events[-1].eta_s == 0 and all(e.eta_s >= 0 for e in events)
    assert resumed.rendered == 3
    assert resumed.frame_sha256 == reference.frame_sha256
    assert out.read_bytes() == (tmp_path / "reference.mp4").read_bytes()


_KILLABLE = """
import sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from tests.test_video import sphere_renderable, orbit
from render.video import VideoConfig, render_video
render_video(sphere_renderable(), orbit(6, 64, 48), Path(sys.argv[1]), VideoConfig(fps=10, watermark=False),
             cache_key="sphere", show_progress=False, progress=lambda event: time.sleep(0.4))
"""


def test_render_killed_with_sigkill_resumes_to_identical_output(tmp_path):
    scene, cameras = sphere_renderable(), orbit(6, 64, 48)
    config = VideoConfig(fps=10, watermark=False)
    render_video(scene, cameras, tmp_path / "reference.mp4", config, cache_key="sphere", show_progress=False)
    out = tmp_path / "shot.mp4"
    process = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(out)], cwd=REPO)
    cache = frame_cache_dir(out)
    deadline = time.monotonic() + 300
    try:
        while len(list(cache.glob("*.png"))) < 2:
            assert process.poll() is None, "the render finished or failed before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    cached = len(list(cache.glob("*.png")))
    assert 2 <= cached < 6 and not out.exists()
    resumed = render_video(scene, cameras, out, config, cache_key="sphere", show_progress=False)
    assert resumed.rendered == 6 - cached
    assert out.read_bytes() == (tmp_path / "reference.mp4").read_bytes()


def test_cache_of_another_scene_or_path_is_not_reused(tmp_path):
    scene = sphere_renderable()
    config = VideoConfig(watermark=False)
    render_video(scene, orbit(3, 32, 32), tmp_path / "a.mp4", config, VideoOutputs(keep_frames=True), cache_key="one",
                 show_progress=False)
    rendered = render_video(scene, orbit(3, 32, 32, arc_deg=80), tmp_path / "a.mp4", config, cache_key="one",
                            show_progress=False).rendered
    assert rendered == 3, "a different path must not reuse cached frames"


def test_flicker_is_small_for_consistent_frames_and_grows_with_noise_or_wrong_geometry():
    scene, cameras = sphere_renderable(), orbit(4, 96, 96, arc_deg=15)
    images = [render_camera(scene, cameras, k) for k in range(4)]
    clean = {k: (to_uint8(im.rgb), im.depth.numpy(), im.opacity.numpy()) for k, im in enumerate(images)}
    report = measure_flicker(cameras, list(range(4)), clean.__getitem__)
    assert len(report.per_pair) == 3
    assert report.mean * 255 < 3.0, report.summary()
    assert report.mean < 0.3 * report.unwarped_mean, "warping by depth must explain the camera motion"
    assert min(report.valid_fraction) > 0.2

    rng = np.random.default_rng(0)
    noisy = {k: (np.clip(v[0] + rng.normal(0, 12, v[0].shape), 0, 255).astype(np.uint8), v[1], v[2])
             for k, v in clean.items()}
    assert measure_flicker(cameras, list(range(4)), noisy.__getitem__).mean > 3 * report.mean
    wrong_depth = {k: (v[0], v[1] * 1.15, v[2]) for k, v in clean.items()}
    wrong = measure_flicker(cameras, list(range(4)), wrong_depth.__getitem__)
    assert wrong.mean > 1.5 * report.mean or min(wrong.valid_fraction) < 0.5 * min(report.valid_fraction)


def test_preview_is_quarter_resolution_and_even():
    assert preview_size(1280, 720) == (320, 180)
    assert all(v % 2 == 0 for v in preview_size(1000, 562))
    cameras = resize_cameras(orbit(2, 1280, 720), *preview_size(1280, 720))
    assert (cameras.width, cameras.height) == (320, 180)
    assert torch.allclose(cameras.fov_y_deg, orbit(2, 1280, 720).fov_y_deg)


def test_bad_sizes_and_paths_are_refused_clearly(tmp_path):
    scene = sphere_renderable()
    with pytest.raises(VistaError, match="no frames"):
        render_video(scene, orbit(3, 32, 32), tmp_path / "a.mp4", frames=[], show_progress=False)
    with pytest.raises(VistaError, match="even"):
        render_video(scene, orbit(2, 33, 32), tmp_path / "a.mp4", show_progress=False)
    with pytest.raises(VistaError, match=r"100000x100000 would need about [\d,.]+ GB"):
        render_video(scene, orbit(2, 100000, 100000), tmp_path / "a.mp4", show_progress=False)
    with pytest.raises(VistaError, match="image size must be positive"):
        orbit(2, 0, 32)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(VistaError, match="not writable"):
        render_video(scene, orbit(2, 32, 32), blocker / "a.mp4", show_progress=False)
    with pytest.raises(VistaError, match="outside the path"):
        render_video(scene, orbit(2, 32, 32), tmp_path / "a.mp4", frames=[5], show_progress=False)


def test_full_disk_mid_render_keeps_rendered_frames(tmp_path, monkeypatch):
    scene, cameras = sphere_renderable(), orbit(4, 32, 32)
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync_until_full(fd):
        calls["n"] += 1
        if calls["n"] > 5:  # key.json, then 2 files per frame: the disk fills during frame 3
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_until_full)
    out = tmp_path / "shot.mp4"
    with pytest.raises(VistaError, match="disk is full.*2 frames rendered so far are kept"):
        render_video(scene, cameras, out, VideoConfig(watermark=False), show_progress=False)
    monkeypatch.setattr(os, "fsync", real_fsync)
    cache = FrameCache(frame_cache_dir(out), "")
    assert [cache.has(i) for i in range(4)] == [True, True, False, False]
    assert render_video(scene, cameras, out, VideoConfig(watermark=False), show_progress=False).rendered == 2
    assert probe_video(out).frames == 4
