"""`vista render --format prores|png|exr`: frames for compositing read back with alpha (and depth) matching the
in-memory render to each format's precision, the label in each format's metadata, `vista verify` on each, the frame
cache resumed, the recipe, and bad --format/--out combinations refused in one line.

The scene is test_video's painted sphere (radius 0.7 world units, white background) seen from 3.1 units away, so
the planar depth of the centre pixel is 3.1 - 0.7 = 2.4 units by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from render.cameras import image_rays
from render.compositing import EMPTY_DEPTH, linear_to_srgb, srgb_to_linear
from render.encode import probe_video, read_frames_rgba16
from render.exr import read_exr
from render.frames_out import output_sha256, resolve_format
from render.png16 import read_png
from render.provenance import SYNTHETIC_COMMENT, verify_video
from render.render import render_camera
from render.video import VideoConfig, VideoOutputs, render_video
from scenes.recipe import read_recipe, recipe_path_for
from tests.test_recipe import scene_dir, write_path  # noqa: F401 - a module-scoped fixture of a saved scene
from tests.test_video import orbit, sphere_renderable
from vista import main
from vista_core.errors import VistaError

SIZE = (64, 48)  # small frames for exact readback (the watermark needs >= 256x256: the verify test renders those)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def expected_layers(k: int, cameras) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(premultiplied sRGB colour, alpha, ray depth) of camera k rendered in memory; the background is white."""
    image = render_camera(sphere_renderable(), cameras, k)
    alpha = image.opacity.numpy()
    premultiplied = image.rgb.numpy() - (1 - alpha[..., None]) * 1.0
    return premultiplied, alpha, image.depth.numpy()


def hand_planar_depth(ray_depth: np.ndarray, cameras, k: int) -> np.ndarray:
    """Planar depth by another route: the hit points moved into camera axes (OpenGL: the camera looks along -z)."""
    rays = image_rays(cameras, k)
    points = rays.origins + rays.directions * torch.from_numpy(ray_depth).reshape(-1, 1)
    rotation, position = cameras.world_from_camera[k, :, :3], cameras.world_from_camera[k, :, 3]
    local = (points - position) @ rotation
    return (-local[:, 2]).reshape(ray_depth.shape).numpy()


def render(out: Path, output_format: str, cameras, watermark: bool = False, **outputs) -> object:
    return render_video(sphere_renderable(), cameras, out, VideoConfig(fps=12, watermark=watermark),
                        VideoOutputs(format=output_format, **outputs), cache_key="sphere", title="sphere",
                        show_progress=False)


def test_png_sequence_is_16_bit_straight_rgba_matching_the_render(tmp_path):
    cameras = orbit(2, *SIZE)
    result = render(tmp_path / "shot_png", "png", cameras)
    names = sorted(p.name for p in (tmp_path / "shot_png").iterdir())
    assert names == ["frame_00000.png", "frame_00001.png"]
    assert result.output_format == "png" and result.metadata["comment"] == SYNTHETIC_COMMENT
    for k in range(2):
        pixels, text = read_png(tmp_path / "shot_png" / names[k])
        assert pixels.dtype == np.uint16 and pixels.shape == (SIZE[1], SIZE[0], 4)
        premultiplied, alpha, _ = expected_layers(k, cameras)
        stored = pixels.astype(np.float64) / 65535
        assert np.abs(stored[..., 3] - alpha).max() < 2 / 65535 + 1e-5, "alpha to 16-bit precision"
        # straight alpha: colour x alpha is the render's premultiplied colour (to 16 bits, and float32 rendering)
        assert np.abs(stored[..., :3] * stored[..., 3:] - premultiplied).max() < 3e-4
        assert 0.1 < alpha.mean() < 0.9 and alpha.min() < 1e-3 and alpha.max() > 0.99, "edges, holes and solid"
        assert text["Comment"] == SYNTHETIC_COMMENT and text["Software"].startswith("Vista")


def test_exr_is_premultiplied_linear_half_rgba_with_planar_z_in_world_units(tmp_path):
    cameras = orbit(2, *SIZE)
    render(tmp_path / "shot_exr", "exr", cameras)
    channels, header = read_exr(tmp_path / "shot_exr" / "frame_00001.exr")
    assert {name: c.dtype for name, c in channels.items()} == {
        "R": np.float16, "G": np.float16, "B": np.float16, "A": np.float16, "Z": np.float32}
    premultiplied, alpha, ray_depth = expected_layers(1, cameras)
    assert np.allclose(channels["A"], alpha, rtol=1e-3, atol=1e-4), "alpha to half precision"
    straight = np.where(alpha[..., None] > 1e-6, premultiplied / np.maximum(alpha, 1e-6)[..., None], 0)
    linear = srgb_to_linear(np.clip(straight, 0, 1)) * alpha[..., None]
    rgb = np.stack([channels[c] for c in "RGB"], axis=-1).astype(np.float32)
    assert np.allclose(rgb, linear, rtol=2e-3, atol=2e-4), "premultiplied linear colour to half precision"
    hit = alpha > 0.5
    assert np.allclose(channels["Z"][hit], hand_planar_depth(ray_depth, cameras, 1)[hit], rtol=1e-5, atol=1e-5)
    assert abs(channels["Z"][SIZE[1] // 2, SIZE[0] // 2] - (math.hypot(3.0, 0.8) - 0.7)) < 0.02, "world units"
    assert (channels["Z"][alpha < 1e-6] == EMPTY_DEPTH).all()
    assert header["comment"] == SYNTHETIC_COMMENT and SYNTHETIC_COMMENT in header["comments"]
    assert list(header["framesPerSecond"]) == [12, 1]


def test_prores_4444_mov_keeps_alpha_and_colour(tmp_path):
    cameras = orbit(2, *SIZE)
    render(tmp_path / "shot.mov", "prores", cameras)
    info = probe_video(tmp_path / "shot.mov")
    assert (info.codec, info.frames, info.width, info.height) == ("prores", 2, *SIZE)
    assert info.pix_fmt.startswith("yuva444p") and info.metadata["comment"] == SYNTHETIC_COMMENT
    with av.open(str(tmp_path / "shot.mov")) as container:
        assert container.streams.video[0].codec_context.profile == "4444"
    decoded = read_frames_rgba16(tmp_path / "shot.mov")
    for k, frame in enumerate(decoded):
        premultiplied, alpha, _ = expected_layers(k, cameras)
        stored = frame.astype(np.float64) / 65535
        assert np.abs(stored[..., 3] - alpha).max() < 2 / 1023, "alpha to ProRes's 10 bits"
        solid = alpha > 0.99
        error = np.abs(stored[..., :3][solid] - premultiplied[solid]) * 255
        assert error.mean() < 0.5 and error.max() < 4, "colour of a lossy 10-bit 4:4:4 codec, in 8-bit levels"


def test_verify_reads_every_format_and_its_watermark(tmp_path):
    cameras = orbit(2, 256, 256)  # the smallest frame the watermark fits
    cache = tmp_path / "cache"  # one render, four writers reading the same cached frames
    for name, output_format in (("shot.mov", "prores"), ("shot_png", "png"), ("shot_exr", "exr")):
        result = render(tmp_path / name, output_format, cameras, watermark=True, cache_dir=cache, keep_frames=True)
        assert result.watermark_detected == result.watermark_checked == 2
        assert result.rendered == (2 if output_format == "prores" else 0), "frames come from the cache"
        for target in (tmp_path / name, *sorted((tmp_path / name).glob("frame_00001.*"))):
            report = verify_video(target)
            assert report.verdict == "watermarked", (target, report.text())
            assert report.metadata["comment"] == SYNTHETIC_COMMENT and report.metadata["title"] == "sphere"
    # the mark lives in the colour: the 16-bit PNG without it reads as tagged only
    render(tmp_path / "plain_png", "png", cameras, cache_dir=cache, keep_frames=True)
    assert verify_video(tmp_path / "plain_png").verdict == "tagged only"


def test_alpha_formats_resume_from_the_frame_cache(tmp_path):
    cameras = orbit(3, *SIZE)
    cache = tmp_path / "cache"
    render(tmp_path / "shot.mp4", "mp4", cameras, cache_dir=cache, keep_frames=True)
    first = render(tmp_path / "shot_exr", "exr", cameras, cache_dir=cache, keep_frames=True)
    assert first.rendered == 3, "MP4 frames keep 8 bits of colour only: the EXR renders them again"
    again = render(tmp_path / "again_exr", "exr", cameras, cache_dir=cache)
    assert again.rendered == 0 and again.frame_sha256 == first.frame_sha256
    assert output_sha256(tmp_path / "again_exr") == output_sha256(tmp_path / "shot_exr"), "deterministic files"
    assert not cache.exists(), "the cache goes after a successful write"


def test_a_sequence_replaces_only_a_former_sequence(tmp_path):
    cameras = orbit(2, *SIZE)
    out = tmp_path / "shot_png"
    render(out, "png", cameras)
    first = output_sha256(out)
    render(out, "png", orbit(2, *SIZE, arc_deg=80))
    assert output_sha256(out) != first and len(list(out.iterdir())) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp folders left"
    (out / "notes.txt").write_text("mine")
    with pytest.raises(VistaError, match="holds other files"):
        render(out, "png", cameras)
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("out", "output_format", "message"), [
    ("shot.mp4", "png", "writes a folder of frames"),
    ("shot.mp4", "prores", "writes a .mov file"),
    ("shot.mov", "mp4", "writes a .mp4 file"),
    ("shot.png", None, "written into a folder"),
    ("frames", None, "cannot tell the format"),
    ("shot.mp4", "gif", "expected one of mp4, prores, png, exr"),
])
def test_bad_format_and_out_combinations_are_one_line(tmp_path, capsys, out, output_format, message):
    with pytest.raises(VistaError, match=message):
        resolve_format(tmp_path / out, output_format)
    argv = ["render", str(tmp_path / "scene"), "--path", str(tmp_path / "p.json"), "--out", str(tmp_path / out)]
    assert main(argv + (["--format", output_format] if output_format else []) + ["--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_sequences_refuse_c2pa_signing(tmp_path):
    with pytest.raises(VistaError, match="applies to MP4 and MOV files"):
        VideoOutputs(format="exr", sign_cert=tmp_path / "c.pem", sign_key=tmp_path / "k.pem")


def test_recipe_records_format_and_label_and_rerenders_the_sequence(scene_dir, tmp_path, capsys):  # noqa: F811
    path = write_path(tmp_path / "path.json", n=3)
    out = tmp_path / "shot_exr"
    assert main(["render", str(scene_dir), "--path", str(path), "--out", str(out), "--format", "exr",
                 "--no-progress"]) == 0
    assert "OpenEXR frames" in capsys.readouterr().out
    recipe_file = recipe_path_for(out)
    raw = json.loads(recipe_file.read_text())
    assert raw["outputs"]["format"] == "exr" and raw["outputs"]["metadata"]["comment"] == SYNTHETIC_COMMENT
    assert read_recipe(recipe_file).output_format == "exr"
    assert main(["render", str(scene_dir), "--recipe", str(recipe_file), "--no-progress"]) == 0
    assert "bit-identical" in capsys.readouterr().out
    assert output_sha256(tmp_path / "shot_exr.rerender") == output_sha256(out)
    assert main(["render", str(scene_dir), "--recipe", str(recipe_file), "--out", str(tmp_path / "x.mp4"),
                 "--no-progress"]) == 2
    assert "writes a folder of frames" in capsys.readouterr().err


def test_srgb_curve_round_trips():
    values = np.linspace(0, 1, 1001, dtype=np.float32)
    assert np.allclose(linear_to_srgb(srgb_to_linear(values)), values, atol=1e-6)
    assert abs(srgb_to_linear(np.float32(0.5)) - 0.21404) < 1e-4  # IEC 61966-2-1


def test_prores_mov_is_c2pa_signed_as_quicktime(tmp_path):
    from tests.test_provenance import make_signing_credentials

    chain, key, ca = make_signing_credentials(tmp_path)
    render(tmp_path / "shot.mov", "prores", orbit(2, *SIZE), sign_cert=chain, sign_key=key)
    report = verify_video(tmp_path / "shot.mov", trust_anchors_pem=ca.read_bytes())
    assert report.verdict == "signed", report.text()
    assert probe_video(tmp_path / "shot.mov").codec == "prores", "signing kept the movie playable"


def test_visible_label_is_opaque_in_the_alpha_formats(tmp_path):
    cameras = orbit(1, 128, 96)
    render_video(sphere_renderable(), cameras, tmp_path / "shot_png", VideoConfig(watermark=False, label=True),
                 VideoOutputs(format="png"), show_progress=False)
    pixels, _ = read_png(tmp_path / "shot_png" / "frame_00000.png")
    _, alpha, _ = expected_layers(0, cameras)
    corner = (slice(90, 94), slice(100, 124))  # inside the label's box, where the sphere is not
    assert alpha[corner].max() < 1e-3 and (pixels[corner][..., 3] == 65535).all()
    assert pixels[corner][..., :3].mean() < 0.6 * 65535, "the label's dark box, not the white background"


def test_a_former_sequence_moved_aside_by_a_killed_run_is_restored(tmp_path):
    from render.frames_out import remove_sequence_orphans

    out = tmp_path / "shot_exr"
    aside = tmp_path / ".shot_exr.a1b2c3d4.old"
    aside.mkdir()
    (aside / "frame_00000.exr").write_bytes(b"former frame")
    partial = tmp_path / ".shot_exr.zzzz9999.partial"
    partial.mkdir()
    remove_sequence_orphans(out)
    assert (out / "frame_00000.exr").read_bytes() == b"former frame"
    assert not aside.exists() and not partial.exists()
