"""Unposed photos and zips of them through `vista poses` (and `scenes.safezip` for limits the CLI fixes).

Every case here fails before COLMAP runs (too few usable photos, a refused archive), so it is fast.
The photos themselves must never be touched, and a refused zip must write nothing anywhere.
"""

from __future__ import annotations

import io
import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from tests.bad_inputs.conftest import refuses
from tests.conftest import shared_dataset
from vista_core.errors import VistaError


def _fox_photos(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        shutil.copy(shared_dataset("fox-small") / "images" / f"{i:04d}.jpg", folder / f"IMG_{i:04d}.jpg")
    return folder


def _report(out: Path) -> dict[str, str]:
    data = json.loads((out / "sfm_report.json").read_text())
    return {photo["name"]: photo["reason"] for photo in data["photos"]}


def test_empty_photo_folder(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "notes.txt").write_text("no pictures here")
    refuses("poses", photos, "--out", tmp_path / "data", needles=("photos", "no photo files"), protect=(photos,),
            real_process=True)


@pytest.mark.parametrize("n", [1, 2])
def test_too_few_photos(tmp_path, n):
    photos = _fox_photos(tmp_path / "photos", n)
    out = tmp_path / "data"
    refuses("poses", photos, "--out", out, needles=(str(out), f"{n} usable photo", "at least 3", "sfm_report.json"),
            protect=(photos,))
    assert len(_report(out)) == n


def test_duplicates_count_once(tmp_path):
    photos = _fox_photos(tmp_path / "photos", 1)
    for copy in ("IMG_0001 copy.jpg", "IMG_0001 (2).jpg"):
        shutil.copy(photos / "IMG_0001.jpg", photos / copy)
    out = tmp_path / "data"
    refuses("poses", photos, "--out", out, needles=("1 usable photo",), protect=(photos,))
    reasons = _report(out)
    assert sum("duplicate" in r for r in reasons.values()) == 2, reasons


def test_unreadable_photos_are_excluded_with_their_reason(tmp_path):
    photos = _fox_photos(tmp_path / "photos", 2)
    data = (photos / "IMG_0002.jpg").read_bytes()
    (photos / "IMG_0002.jpg").write_bytes(data[: len(data) // 3])  # an interrupted copy
    (photos / "notes.jpg").write_text("shopping list: milk, eggs")  # text named .jpg
    (photos / "IMG_0003.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 300)
    (photos / "empty.jpg").write_bytes(b"")
    out = tmp_path / "data"
    refuses("poses", photos, "--out", out, needles=("1 usable photo",), protect=(photos,))
    reasons = _report(out)
    assert "truncated" in reasons["IMG_0002.jpg"], reasons
    assert "not an image" in reasons["notes.jpg"], reasons
    assert "HEIC" in reasons["IMG_0003.heic"] or "heic" in reasons["IMG_0003.heic"].lower(), reasons
    assert reasons["empty.jpg"], reasons


def test_photos_folder_missing(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    refuses("poses", tmp_path / "holiday", "--out", tmp_path / "data", needles=("holiday", "not found"),
            protect=(tmp_path,))


def test_a_single_photo_instead_of_a_folder(tmp_path):
    photo = _fox_photos(tmp_path / "photos", 1) / "IMG_0001.jpg"
    refuses("poses", photo, "--out", tmp_path / "data", needles=("IMG_0001.jpg", "folder of photos"),
            protect=(photo,))


def test_out_folder_holding_the_photos_loses_nothing(tmp_path):
    capture = tmp_path / "capture"
    _fox_photos(capture / "images", 2)
    refuses("poses", capture, "--out", capture, needles=("capture", "outside the photo folder"),
            protect=(capture / "images",))


# ---- zips ---------------------------------------------------------------------------------------------

def _zip_with(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in members:
            archive.writestr(info, data)
    return path


def _photo_bytes() -> bytes:
    return (shared_dataset("fox-small") / "images" / "0001.jpg").read_bytes()


def _symlink_member(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


ZIP_CASES = {
    "dot-dot": ([("photos/IMG_1.jpg", b"x"), ("../../escaped.jpg", b"gotcha")], ("../../escaped.jpg", "outside")),
    "absolute": ([("/tmp/vista-absolute-escape.jpg", b"gotcha")], ("absolute path",)),
    "windows-drive": ([("C:/Windows/evil.jpg", b"gotcha")], ("absolute path",)),
    "symlink": ([_symlink_member("IMG_2.jpg", "/etc/passwd")], ("symbolic link",)),
    "duplicate-names": ([("a/IMG_1.jpg", b"1"), ("a/img_1.JPG", b"2")], ("appears twice",)),
}


@pytest.mark.parametrize("case", sorted(ZIP_CASES))
def test_unsafe_zip_is_refused_and_writes_nothing(tmp_path, case):
    members, needles = ZIP_CASES[case]
    archive = _zip_with(tmp_path / "upload.zip", [("IMG_0.jpg", _photo_bytes()), *members])
    out = tmp_path / "deep" / "data"
    refuses("poses", archive, "--out", out, needles=("upload.zip", *needles), protect=(archive,))
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != archive]
    assert written == [], f"a refused archive left files behind: {written}"
    assert not Path("/tmp/vista-absolute-escape.jpg").exists()


def test_not_a_zip(tmp_path):
    archive = tmp_path / "photos.zip"
    archive.write_bytes(b"PK\x03\x04 but then nothing sensible" + bytes(100))
    refuses("poses", archive, "--out", tmp_path / "data", needles=("photos.zip", "not a readable zip"),
            protect=(archive,))


def test_zip_with_too_many_members(tmp_path):
    from scenes.safezip import MAX_FILES

    archive = _zip_with(tmp_path / "many.zip", [(f"f{i}.jpg", b"") for i in range(MAX_FILES + 1)])
    refuses("poses", archive, "--out", tmp_path / "data", needles=("many.zip", f"{MAX_FILES + 1} entries"),
            protect=(archive,))


def test_zip_bomb_stops_at_the_real_decompressed_size(tmp_path):
    """Sizes in the archive's directory lie; the bytes actually inflated are counted."""
    from scenes.safezip import extract_zip

    archive = _zip_with(tmp_path / "bomb.zip", [("IMG_1.jpg", bytes(50 * 1024 * 1024))])
    with zipfile.ZipFile(archive) as zf:
        assert zf.infolist()[0].compress_size < 200_000  # ~50 MB of zeros deflate to ~50 kB
    _lie_about_size(archive, claimed=1000)
    target = tmp_path / "target"
    target.mkdir()
    (target / "already-here.jpg").write_bytes(b"keep")
    with pytest.raises(VistaError, match="zip bomb|cannot be extracted") as raised:
        extract_zip(archive, target, max_total_bytes=5 * 1024 * 1024)
    assert "bomb.zip" in str(raised.value)
    assert sorted(p.name for p in target.rglob("*")) == ["already-here.jpg"]
    assert (target / "already-here.jpg").read_bytes() == b"keep"


def _lie_about_size(archive: Path, claimed: int) -> None:
    """Patch the central directory's uncompressed size of the single member to `claimed` bytes."""
    data = bytearray(archive.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    data[central + 24: central + 28] = claimed.to_bytes(4, "little")
    local = data.find(b"PK\x03\x04")
    data[local + 22: local + 26] = claimed.to_bytes(4, "little")
    archive.write_bytes(bytes(data))


def test_nested_zip_is_not_expanded(tmp_path):
    """A zip inside the zip stays a file: only one level is ever extracted."""
    from scenes.safezip import extract_zip

    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("../../inner-escape.jpg", b"x")
    archive = _zip_with(tmp_path / "outer.zip", [("inner.zip", inner.getvalue()), ("IMG_1.jpg", b"y")])
    files = extract_zip(archive, tmp_path / "target")
    assert sorted(p.name for p in files) == ["IMG_1.jpg", "inner.zip"]
    assert not list(tmp_path.rglob("inner-escape.jpg"))


def test_nonsense_exif_and_a_turned_photo_are_used_not_refused(tmp_path):
    """Garbage focal-length and time tags cost only the prior; a portrait among landscapes is a photo like any
    other (one camera per shape). Two photos still fail, before COLMAP, counting both as usable."""
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    with Image.open(shared_dataset("fox-small") / "images" / "0001.jpg") as image:
        exif = Image.Exif()
        ifd = exif.get_ifd(0x8769)
        ifd[0x920A], ifd[0xA20E], ifd[0xA210], ifd[0x9003] = -5.0, 0.0, 99, "not a time"
        image.save(photos / "IMG_0001.jpg", exif=exif.tobytes())
        image.transpose(Image.Transpose.ROTATE_90).save(photos / "IMG_0002.jpg")
    refuses("poses", photos, "--out", tmp_path / "data", needles=("2 usable photo(s)", "at least 3"),
            protect=(photos,))
    assert _report(tmp_path / "data") == {"IMG_0001.jpg": "", "IMG_0002.jpg": ""}
