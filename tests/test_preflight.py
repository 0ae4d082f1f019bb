"""Pre-flight checks on generated photos: blurred, duplicate, corrupt, truncated, non-image, 16-bit, EXIF, sizes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from scenes.preflight import focal_prior, laplacian_variance, preflight_photos
from vista_core.errors import VistaError


def _texture(seed: int, size=(160, 120)) -> Image.Image:
    """A sharp random 'photo': blocks of colour plus fine noise, different per seed."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    image = np.kron(blocks, np.ones((8, 8, 1), np.uint8)).astype(np.int16)
    image += rng.integers(-20, 20, image.shape, dtype=np.int16)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def _save(image: Image.Image, path, **kwargs) -> None:
    image.save(path, quality=95, **kwargs)


def _verdicts(tmp_path, **kwargs):
    result = preflight_photos(tmp_path / "photos", tmp_path / "work", **kwargs)
    return result, {v.name: v for v in result.verdicts}


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        _save(_texture(i), folder / f"{i:02d}.jpg")
    return folder


def test_good_photos_are_used_and_written(tmp_path, photos):
    result, verdicts = _verdicts(tmp_path)
    assert all(v.used for v in verdicts.values())
    assert result.working_size == (160, 120)
    for v in verdicts.values():
        with Image.open(tmp_path / "work" / v.working_name) as written:
            assert written.size == (160, 120) and written.mode == "RGB"


def test_blurred_photo_is_excluded(tmp_path, photos):
    _texture(10).filter(ImageFilter.GaussianBlur(4)).save(photos / "blurry.jpg", quality=95)
    _, verdicts = _verdicts(tmp_path)
    assert not verdicts["blurry.jpg"].used and verdicts["blurry.jpg"].reason.startswith("blurred")
    assert sum(v.used for v in verdicts.values()) == 6
    sharp, blurred = verdicts["00.jpg"].sharpness, verdicts["blurry.jpg"].sharpness
    assert blurred < 0.3 * sharp


def test_duplicates_are_excluded(tmp_path, photos):
    (photos / "copy.jpg").write_bytes((photos / "01.jpg").read_bytes())  # the same file
    _save(_texture(2), photos / "resaved.jpg", subsampling=0)  # the same photo, re-encoded
    _, verdicts = _verdicts(tmp_path)
    assert "same file as 01.jpg" in verdicts["copy.jpg"].reason
    assert "near-duplicate of 02.jpg" in verdicts["resaved.jpg"].reason
    assert verdicts["01.jpg"].used and verdicts["02.jpg"].used


def test_corrupt_truncated_and_fake_photos_are_excluded(tmp_path, photos):
    data = (photos / "03.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (photos / "notes.jpg").write_text("this is not a photo")
    (photos / "phone.heic").write_bytes(b"\0\0\0\x18ftypheic" + b"\0" * 100)
    _, verdicts = _verdicts(tmp_path)
    assert "truncated" in verdicts["truncated.jpg"].reason
    assert "not an image" in verdicts["notes.jpg"].reason
    assert "HEIC" in verdicts["phone.heic"].reason and "JPEG" in verdicts["phone.heic"].reason
    assert sum(v.used for v in verdicts.values()) == 6


def test_16_bit_png_is_converted(tmp_path, photos):
    gray = (np.asarray(_texture(20).convert("L"), np.uint16) * 257)
    Image.fromarray(gray).save(photos / "deep.png")
    with Image.open(photos / "deep.png") as check:
        assert check.mode.startswith("I")
    _, verdicts = _verdicts(tmp_path)
    v = verdicts["deep.png"]
    assert v.used and any("8-bit" in note for note in v.notes)
    written = np.asarray(Image.open(tmp_path / "work" / v.working_name).convert("L"), np.float64)
    expected = np.asarray(_texture(20).convert("L"), np.float64)
    assert np.abs(written - expected).mean() < 3  # same picture, not clipped or darkened


def test_exif_orientation_and_focal_length(tmp_path, photos):
    # a landscape sensor image stored sideways with orientation 6 (rotate 90 CW to view) -> upright 160x120
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0xA405] = 28  # 28 mm equivalent
    sideways = _texture(30).transpose(Image.Transpose.ROTATE_90)  # stored 120x160
    sideways.save(photos / "rotated.jpg", quality=95, subsampling=0, exif=exif.tobytes())
    result, verdicts = _verdicts(tmp_path)
    v = verdicts["rotated.jpg"]
    assert v.used and (v.width, v.height) == (160, 120)
    written = np.asarray(Image.open(tmp_path / "work" / v.working_name), np.float64)
    upright = np.asarray(_texture(30), np.float64)
    assert np.abs(written - upright).mean() < 8  # JPEG noise only; the wrong way up differs by ~80
    assert np.abs(written - upright[::-1, ::-1]).mean() > 40
    assert v.focal_px_prior == pytest.approx(28 / 36 * 160)
    assert focal_prior(result) == pytest.approx(28 / 36 * 160)


def test_mixed_orientations_and_sizes_are_all_kept(tmp_path, photos):
    _save(_texture(40, size=(120, 160)), photos / "portrait.jpg")
    _save(_texture(41, size=(200, 104)), photos / "wide.jpg")
    result, verdicts = _verdicts(tmp_path)
    assert all(v.used for v in verdicts.values()) and result.working_size == (160, 120)
    for name, size in (("portrait.jpg", (120, 160)), ("wide.jpg", (200, 104)), ("00.jpg", (160, 120))):
        assert (verdicts[name].working_width, verdicts[name].working_height) == size
        with Image.open(tmp_path / "work" / verdicts[name].working_name) as written:
            assert written.size == size


def test_dslr_focal_length_and_capture_time(tmp_path, photos):
    # a DSLR writes no 35 mm equivalent: 55 mm on a 22.9 mm-wide sensor (4272 px at 4720 px/inch), EXIF time
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    ifd[0x920A], ifd[0xA20E], ifd[0xA210], ifd[0xA002], ifd[0xA003] = 55.0, 4720.44, 2, 4272, 2848
    ifd[0x9003], ifd[0x9291] = "2018:05:26 23:30:59", "22"
    _texture(31).save(photos / "dslr.jpg", quality=95, exif=exif.tobytes())
    _, verdicts = _verdicts(tmp_path)
    v = verdicts["dslr.jpg"]
    sensor_mm = 4272 / 4720.44 * 25.4
    assert v.focal_px_prior == pytest.approx(55 / sensor_mm * 160, rel=1e-3)  # ~2.4x the image width
    assert v.taken_at == "@ 2018:05:26 23:30:59.22" and verdicts["00.jpg"].taken_at == ""  # no camera tags here


def test_resize_to_working_resolution_and_small_photos(tmp_path, photos):
    _save(_texture(50, size=(320, 240)), photos / "big.jpg")
    _save(_texture(51, size=(40, 30)), photos / "tiny.jpg")
    result, verdicts = _verdicts(tmp_path, max_size=100)
    assert result.working_size == (100, 75)
    assert verdicts["big.jpg"].used and "too small" in verdicts["tiny.jpg"].reason
    with Image.open(tmp_path / "work" / verdicts["big.jpg"].working_name) as written:
        assert written.size == (100, 75)


def test_empty_folder_and_laplacian(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "readme.txt").write_text("hi")
    with pytest.raises(VistaError, match="no photo files"):
        preflight_photos(tmp_path / "photos", tmp_path / "work")
    with pytest.raises(VistaError, match="not found"):
        preflight_photos(tmp_path / "missing", tmp_path / "work")
    flat = np.full((32, 32), 128.0)
    assert laplacian_variance(flat) == 0.0
    assert laplacian_variance(flat + np.indices((32, 32)).sum(0) % 2 * 50) > 1000
