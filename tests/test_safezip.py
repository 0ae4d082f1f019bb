"""Zip extraction refuses path traversal, absolute paths, symlinks and bombs, and writes nothing outside the target."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from scenes.safezip import extract_zip
from vista_core.errors import VistaError


def _zip(path: Path, members: list[tuple[str, bytes]], symlink: tuple[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink[0])
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, symlink[1])
    return path


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_extracts_nested_photos(tmp_path):
    archive = _zip(tmp_path / "ok.zip", [("shoot/a.jpg", b"aa"), ("shoot/day2/b.jpg", b"bbb"), ("c.jpg", b"c")])
    files = extract_zip(archive, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in files] == ["c.jpg", "shoot/a.jpg", "shoot/day2/b.jpg"]
    assert (tmp_path / "out" / "shoot" / "day2" / "b.jpg").read_bytes() == b"bbb"


@pytest.mark.parametrize("name", ["../evil.jpg", "shoot/../../evil.jpg", "/tmp/evil.jpg", "..\\evil.jpg"])
def test_refuses_paths_outside_target(tmp_path, name):
    archive = _zip(tmp_path / "bad.zip", [("good.jpg", b"g"), (name, b"evil")])
    target = tmp_path / "box" / "out"
    with pytest.raises(VistaError, match="refusing"):
        extract_zip(archive, target)
    assert not (tmp_path / "evil.jpg").exists() and not (tmp_path / "box" / "evil.jpg").exists()
    assert _files(tmp_path / "box") == set()  # not even the good member was left behind


def test_refuses_symlinks(tmp_path):
    archive = _zip(tmp_path / "link.zip", [("a.jpg", b"a")], symlink=("passwd.jpg", "/etc/passwd"))
    with pytest.raises(VistaError, match="symbolic link"):
        extract_zip(archive, tmp_path / "out")
    assert _files(tmp_path / "out") == set()


def test_zip_bomb_is_bounded(tmp_path):
    archive = _zip(tmp_path / "bomb.zip", [("a.jpg", b"\0" * 5_000_000), ("b.jpg", b"\0" * 5_000_000)])
    assert archive.stat().st_size < 100_000  # highly compressible, as bombs are
    with pytest.raises(VistaError, match="zip bomb"):
        extract_zip(archive, tmp_path / "out", max_total_bytes=6_000_000)
    assert _files(tmp_path / "out") == set()


def test_too_many_files_and_not_a_zip(tmp_path):
    archive = _zip(tmp_path / "many.zip", [(f"{i}.jpg", b"x") for i in range(20)])
    with pytest.raises(VistaError, match="more than the limit"):
        extract_zip(archive, tmp_path / "out", max_files=10)
    fake = tmp_path / "fake.zip"
    fake.write_text("not a zip")
    with pytest.raises(VistaError, match="not a readable zip"):
        extract_zip(fake, tmp_path / "out2")


def test_existing_symlink_in_target_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "out"
    target.mkdir()
    (target / "shoot").symlink_to(outside, target_is_directory=True)
    archive = _zip(tmp_path / "ok.zip", [("shoot/a.jpg", b"a")])
    with pytest.raises(VistaError, match="link"):
        extract_zip(archive, target)
    assert list(outside.iterdir()) == []
