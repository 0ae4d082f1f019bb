"""Photos as users bring them: of several sizes and orientations, downscaled on load, capped on the long side,
kept as uint8 of each photo's own size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from scenes.data import LoadOptions, load_posed_images
from scenes.photos import DEFAULT_MAX_LONG_SIDE, Photos
from scenes.step import TrainingPixels
from tests.conftest import shared_dataset
from vista_core.errors import VistaError

POINT = np.array([0.21, -0.13, -2.0])  # in the camera's OpenGL frame: in front of it, off-centre


def _dot_photo(width: int, height: int, fx: float, fy: float, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    """A black photo with a soft white dot where the pinhole camera sees POINT, and that spot (x, y)."""
    spot = np.array([fx * POINT[0] / -POINT[2] + cx, -fy * POINT[1] / -POINT[2] + cy])
    ys, xs = np.mgrid[0:height, 0:width] + 0.5  # pixel centres
    dot = np.exp(-((xs - spot[0]) ** 2 + (ys - spot[1]) ** 2) / (2 * 6.0 ** 2))
    return np.repeat((dot * 255).round().astype(np.uint8)[..., None], 3, axis=-1), spot


def _centroid(image: torch.Tensor) -> np.ndarray:
    weight = image[..., 0].double().numpy()
    ys, xs = np.mgrid[0:weight.shape[0], 0:weight.shape[1]] + 0.5
    return np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()


def _write_dataset(folder, photos: list[tuple[np.ndarray, dict]]) -> None:
    (folder / "images").mkdir(parents=True)
    frames = []
    for i, (pixels, intrinsics) in enumerate(photos):
        Image.fromarray(pixels).save(folder / "images" / f"{i}.png")
        frames.append({"file_path": f"images/{i}.png", "transform_matrix": np.eye(4).tolist(), **intrinsics})
    (folder / "transforms.json").write_text(json.dumps({"camera_model": "PINHOLE", "frames": frames}))


@pytest.mark.parametrize("downscale", [2, 3, 4])
def test_downscaled_photos_show_a_point_where_their_cameras_project_it(tmp_path, downscale):
    """Load a portrait and a landscape photo of a dot at full size and downscaled: in the loaded (area-averaged)
    photos the dot's centre is where the loaded cameras project the 3D point, to a hundredth of a pixel (sizes
    not divisible by the factor included)."""
    shapes = [(300, 451, 320.0, 318.0, 140.3, 230.9), (451, 300, 400.0, 401.0, 231.2, 152.6)]
    _write_dataset(tmp_path / "d", [(_dot_photo(*s)[0], dict(zip(("w", "h", "fl_x", "fl_y", "cx", "cy"), s)))
                                    for s in shapes])
    for options in (LoadOptions(), LoadOptions(downscale=downscale)):
        data = load_posed_images(tmp_path / "d", options=options)
        assert data.downscale == options.downscale
        for i, (w, h, *_) in enumerate(shapes):
            assert data.size_of(i) == (w // options.downscale, h // options.downscale)
            seen = data.cameras.project(torch.tensor(POINT, dtype=torch.float32)[None], i).pixels[0].double().numpy()
            assert np.abs(_centroid(data.images[i]) - seen).max() < 0.01, (options, i)


def test_mixed_sizes_and_orientations_load_and_sample_every_photo(tmp_path):
    """fox-small with a third of its photos turned to landscape and a third cropped: every photo keeps its own
    size and camera, and training draws pixels from all of them in proportion to their pixel counts."""
    from tests.support.mixed_photos import make_mixed_capture

    data = load_posed_images(make_mixed_capture(shared_dataset("fox-small"), tmp_path / "mixed"))
    sizes = [data.size_of(i) for i in range(len(data.names))]
    assert set(sizes) == {(270, 480), (480, 270), (234, 400)} and data.cameras.mixed_sizes
    assert [data.cameras.size_of(i) for i in range(len(sizes))] == sizes
    assert {sizes[i] for i in data.heldout_indices} == set(sizes), "held-out views of every kind"
    assert data.images.pixels.dtype == torch.uint8 and data.images.nbytes == sum(w * h * 3 for w, h in sizes)
    pixels = TrainingPixels(data)
    image, xy, colour = pixels.sample(200_000, torch.Generator().manual_seed(0), jitter=True)
    counts = torch.bincount(image, minlength=len(sizes)).double()
    expected = torch.tensor([w * h if i in data.train_indices else 0 for i, (w, h) in enumerate(sizes)]).double()
    expected = expected / expected.sum() * len(image)
    assert float(((counts - expected).abs() / expected.clamp(min=1)).max()) < 0.1
    widths, heights = data.cameras.image_sizes()
    assert bool((xy[:, 0] < widths[image]).all() and (xy[:, 1] < heights[image]).all() and (xy >= 0).all())
    for k in range(0, 200_000, 40_000):  # each draw's colour is that photo's pixel
        i, x, y = int(image[k]), int(xy[k, 0]), int(xy[k, 1])
        assert torch.equal(colour[k] * 255, data.images[i][y, x].float())


def test_long_photos_are_capped_and_memory_stays_uint8(tmp_path):
    """12-megapixel photos load at most 1600 px on the long side by default (downscaled by 3 to 1333 x 1000; one
    note says so), as uint8: even 150 photos of 1600 x 1200 take 150 x 1600 x 1200 x 3 bytes = 0.86 GB (float32
    would take 3.5 GB)."""
    rng = np.random.default_rng(0)
    shapes = [(4000, 3000), (3000, 4000)]
    _write_dataset(tmp_path / "d", [(rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
                                     {"w": w, "h": h, "fl_x": 3000.0}) for w, h in shapes])
    data = load_posed_images(tmp_path / "d")
    assert [data.size_of(i) for i in range(2)] == [(1333, 1000), (1000, 1333)] and data.downscale == 3
    assert len(data.notes) == 1 and "1600 px" in data.notes[0] and "--max-long-side 0" in data.notes[0]
    assert data.images.pixels.dtype == torch.uint8 and data.images.nbytes == 2 * 1333 * 1000 * 3
    assert float(data.cameras.fx[0]) == pytest.approx(1000.0)
    bytes_per_pixel = data.images.nbytes / sum(w * h for w, h in (data.size_of(0), data.size_of(1)))
    assert bytes_per_pixel == 3 and 150 * 1600 * 1200 * bytes_per_pixel <= 0.9e9, "well inside 4 GB"
    full = load_posed_images(tmp_path / "d", options=LoadOptions(max_long_side=0))
    assert full.size_of(0) == (4000, 3000) and full.downscale == 1 and not full.notes
    assert DEFAULT_MAX_LONG_SIDE == 1600


def test_photos_pack_any_sizes_and_refuse_stacking_them():
    photos = Photos.empty([(3, 2), (2, 3)], 4)
    photos.put(0, np.full((2, 3, 3), 7, np.uint8))
    photos.put(1, np.full((3, 2, 4), 9, np.uint8))
    assert photos[0].shape == (2, 3, 4) and int(photos[0][0, 0, 3]) == 255, "RGB photos get an opaque alpha"
    assert photos[1].shape == (3, 2, 4) and int(photos[1, 0, 0, 0]) == 9
    with pytest.raises(VistaError, match="differ in size"):
        photos[[0, 1]]
    assert photos[[1]].shape == (1, 3, 2, 4)


@pytest.mark.parametrize("options, message", [
    (lambda: LoadOptions(downscale=0), "downscale"),
    (lambda: LoadOptions(downscale=1.5), "downscale"),
    (lambda: LoadOptions(max_long_side=10), "max_long_side"),
])
def test_load_options_are_checked(options, message):
    with pytest.raises(VistaError, match=message):
        options()


MIXED_STEPS = 150
MIXED_DOWNSCALE = 3  # fox 90x160, turned 160x90, cropped 78x133: the CPU is shared


def _train_and_evaluate(data, out):
    import dataclasses

    from scenes.config import preset_config
    from scenes.evaluate import evaluate_scene
    from scenes.train import train_scene

    config = dataclasses.replace(preset_config("test", steps=MIXED_STEPS, seed=0), rays_per_step=512,
                                 checkpoint_every=10**6)
    return evaluate_scene(train_scene(data, out, config, show_progress=False), data)


@pytest.mark.slow
def test_a_capture_of_mixed_sizes_and_orientations_trains_as_well_as_the_plain_one(tmp_path):
    """Issue 22's acceptance: fox-small with a third of the photos turned to landscape and a third cropped trains
    to a held-out PSNR within 1.5 dB of fox-small as taken (same steps, seed and downscale), and its turned and
    cropped held-out views are rendered as well as its untouched ones. Measured (torch CPU, seed 0): plain 18.83 dB,
    mixed 18.61 dB; by size 90x160 19.20, cropped 78x133 18.57, turned 160x90 17.76 dB."""
    from tests.support.mixed_photos import make_mixed_capture

    options = LoadOptions(downscale=MIXED_DOWNSCALE)
    plain = load_posed_images(shared_dataset("fox-small"), options=options)
    mixed = load_posed_images(make_mixed_capture(shared_dataset("fox-small"), tmp_path / "mixed"), options=options)
    plain_metrics = _train_and_evaluate(plain, tmp_path / "plain-scene")
    mixed_metrics = _train_and_evaluate(mixed, tmp_path / "mixed-scene")
    by_kind: dict[tuple[int, int], list[float]] = {}
    for view, index in zip(mixed_metrics.views, mixed.heldout_indices):
        by_kind.setdefault(mixed.size_of(index), []).append(view.psnr)
    means = {size: float(np.mean(values)) for size, values in by_kind.items()}
    print(f"held-out PSNR: plain {plain_metrics.mean_psnr:.2f} dB, mixed {mixed_metrics.mean_psnr:.2f} dB, "
          f"by size {means}")
    assert len(means) == 3, "held-out views of every size were rendered at their own size"
    assert mixed_metrics.mean_psnr >= plain_metrics.mean_psnr - 1.5
    assert min(means.values()) >= means[(90, 160)] - 2.0, "turned or cropped views came out worse than the rest"
