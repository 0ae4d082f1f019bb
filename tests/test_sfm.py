"""Structure from motion end to end on 15 real photos of fox-small (CI runs it), and captures that must fail clearly."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest
from PIL import Image, ImageFilter

import vista
from scenes.colmap import import_colmap
from scenes.data import load_posed_images
from scenes.sfm import REPORT_FILE, _largest_gap, choose_matcher, compare_poses, estimate_poses
from scenes.sfm_order import capture_order
from tests.conftest import shared_dataset
from vista_core.errors import VistaError
from vista_core.files import read_json

SUBSET = slice(0, 45, 3)  # 15 photos spread over the whole capture


@pytest.fixture(scope="module")
def fox_run(tmp_path_factory):
    """`vista poses` through the CLI on 15 fox photos plus three bad files, run once for the module."""
    fox = shared_dataset("fox-small")
    photos = tmp_path_factory.mktemp("fox-photos")
    chosen = sorted((fox / "images").iterdir())[SUBSET]
    for path in chosen:
        shutil.copy(path, photos / path.name)
    shutil.copy(chosen[4], photos / f"{chosen[4].stem}_copy.jpg")  # the same photo twice
    (photos / "notes.jpg").write_text("not a photo")
    with Image.open(chosen[7]) as image:
        image.filter(ImageFilter.GaussianBlur(6)).save(photos / f"{chosen[7].stem}_shaky.jpg", quality=95)
    out = tmp_path_factory.mktemp("fox-data")
    code = vista.main(["poses", str(photos), "--out", str(out)])
    return fox, [p.name for p in chosen], out, code


def test_poses_register_the_photos_accurately(fox_run, capsys):
    fox, names, out, code = fox_run
    assert code == 0
    report = read_json(out / REPORT_FILE)
    assert report["registered"] >= 14 and report["matcher"] == "sequential" and report["order"] == "file numbers"
    assert report["suspicious"] == 0 and report["pairs_checked"] > 20
    assert report["mean_reprojection_error_px"] < 1.0 and report["points"] > 500
    errors = compare_poses(read_json(out / "transforms.json"), read_json(fox / "transforms.json"))
    assert len(errors.names) == report["registered"]
    assert errors.median_rotation_deg < 2.0
    assert errors.median_position_fraction < 0.02
    # OPENCV intrinsics carried through: the focal length agrees with the reference COLMAP's
    transforms = read_json(out / "transforms.json")
    assert transforms["fl_x"] == pytest.approx(read_json(fox / "transforms.json")["fl_x"], rel=0.03)
    assert transforms["camera_model"] == "OPENCV" and "applied_transform" in transforms


def test_report_says_why_photos_were_excluded(fox_run):
    _, names, out, _ = fox_run
    photos = {p["name"]: p for p in read_json(out / REPORT_FILE)["photos"]}
    assert len(photos) == 18
    assert "same file" in photos[f"{names[4][:-4]}_copy.jpg"]["reason"]
    assert photos["notes.jpg"]["status"] == "excluded" and "not an image" in photos["notes.jpg"]["reason"]
    assert photos[f"{names[7][:-4]}_shaky.jpg"]["reason"].startswith("blurred")
    registered = [p for p in photos.values() if p["status"] == "registered"]
    assert all(p["points"] > 50 and p["features"] > 100 for p in registered)
    assert all(p["reason"] for p in photos.values() if p["status"] != "registered")


def test_trainer_reads_the_output_and_colmap_model_imports_identically(fox_run, tmp_path):
    _, _, out, _ = fox_run
    data = load_posed_images(out)
    assert data.kind == "unbounded" and (data.cameras.width, data.cameras.height) == (270, 480)
    assert data.cameras.distortion is not None
    import_colmap(out / "colmap" / "model", tmp_path / "imported", images=out / "images")
    ours, imported = read_json(out / "transforms.json"), read_json(tmp_path / "imported" / "transforms.json")
    assert [f["transform_matrix"] for f in ours["frames"]] == [f["transform_matrix"] for f in imported["frames"]]


def test_too_few_and_identical_photos_fail_clearly(tmp_path, capsys):
    fox = shared_dataset("fox-small")
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        for path in sorted((fox / "images").iterdir())[:2]:
            zf.write(path, f"shoot/{path.name}")
    assert vista.main(["poses", str(two), "--out", str(tmp_path / "a")]) == 2
    error = capsys.readouterr().err
    assert "2 usable photo(s)" in error and "at least 3" in error and "take 20 or more" in error
    assert (tmp_path / "a" / REPORT_FILE).is_file() and not (tmp_path / "a" / "transforms.json").exists()

    same = tmp_path / "same"
    same.mkdir()
    with Image.open(fox / "images" / "0001.jpg") as image:
        for i in range(5):
            image.save(same / f"{i}.jpg", quality=95 - i)  # re-encoded copies of one photo
    with pytest.raises(VistaError, match="identical: move the camera"):
        estimate_poses(same, tmp_path / "b")
    report = json.loads((tmp_path / "b" / REPORT_FILE).read_text())
    assert sum(p["status"] == "excluded" for p in report["photos"]) == 4


def test_matcher_choice_and_gap_suggestion():
    assert choose_matcher(capture_order([f"{i}.jpg" for i in range(50)], {}), "auto") == "sequential"
    assert choose_matcher(capture_order([f"{c}{d}.jpg" for c in "abcde" for d in "xyz"], {}), "auto") == "exhaustive"
    assert choose_matcher(capture_order([f"{c}{d}{e}.jpg" for c in "abcdefgh" for d in "abcdefgh" for e in "xy"], {}),
                          "auto") == "sequential"  # no order, but too many photos for all pairs
    assert choose_matcher(capture_order([f"{i}.jpg" for i in range(300)], {}), "exhaustive") == "exhaustive"
    order = [f"{i}.jpg" for i in range(10)]
    assert _largest_gap(order, {"0.jpg", "1.jpg", "2.jpg", "6.jpg", "7.jpg", "9.jpg"}) == ("2.jpg", "6.jpg")
    assert _largest_gap(order, set(order)) is None


def test_out_folder_never_destroys_user_files(tmp_path):
    fox = shared_dataset("fox-small")
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted((fox / "images").iterdir())[:2]:
        shutil.copy(path, photos / path.name)
    with pytest.raises(VistaError, match="outside the photo folder"):
        estimate_poses(photos, photos / "out")
    # a dataset folder whose images/ is someone else's is refused, not emptied
    theirs = tmp_path / "data" / "images"
    theirs.mkdir(parents=True)
    (theirs / "keep.jpg").write_bytes(b"precious")
    with pytest.raises(VistaError, match="not made by `vista poses`"):
        estimate_poses(photos, tmp_path / "data")
    assert (theirs / "keep.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in photos.iterdir()) == ["0001.jpg", "0002.jpg"]
    # our own folders are replaced on a retry
    for _ in range(2):
        with pytest.raises(VistaError, match="at least 3"):
            estimate_poses(photos, tmp_path / "ours")


@pytest.mark.slow
def test_mixed_orientations_and_crops_are_all_registered(tmp_path):
    """12 fox photos: 4 turned landscape (rotated 90 deg), 3 centre-cropped, 5 as taken: one camera per shape."""
    fox = shared_dataset("fox-small")
    photos = tmp_path / "photos"
    photos.mkdir()
    chosen = sorted((fox / "images").iterdir())[0:48:4]
    for i, path in enumerate(chosen):
        with Image.open(path) as image:
            if i % 3 == 1:
                image = image.transpose(Image.Transpose.ROTATE_90)  # 480x270 landscape
            elif i % 3 == 2 and i < 9:
                image = image.crop((15, 40, 255, 440))  # 240x400, still centred
            image.save(photos / path.name, quality=95)
    report = estimate_poses(photos, tmp_path / "out", progress=lambda event: None)
    # no photo is refused for its shape: every one is placed, or placed and reported suspicious (pycolmap's
    # threaded matching made one clean-clone CI run flag 1 of the 12 with 6 of 42 checked pairs disagreeing)
    assert report.registered + report.suspicious == 12 and report.registered >= 11 and report.cameras == 3
    transforms = read_json(tmp_path / "out" / "transforms.json")
    sizes = {f["file_path"].split("/")[-1]: (f["w"], f["h"]) for f in transforms["frames"]}
    assert sorted(set(sizes.values())) == [(240, 400), (270, 480), (480, 270)]
    focal = {size: [f["fl_x"] for f in transforms["frames"] if (f["w"], f["h"]) == size] for size in set(sizes.values())}
    reference = read_json(fox / "transforms.json")["fl_x"]
    for values in focal.values():  # one lens: every camera finds the reference focal length
        assert all(v == pytest.approx(reference, rel=0.05) for v in values)
    errors = compare_poses(transforms, read_json(fox / "transforms.json"), robust=False)
    assert errors.median_position_fraction < 0.02  # the camera centres do not care about the turn
    upright = [n for n in errors.names if sizes[n] == (270, 480)]
    assert max(r for n, r in zip(errors.names, errors.rotation_deg) if n in upright) < 2.0
