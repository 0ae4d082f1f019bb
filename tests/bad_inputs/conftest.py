"""Helpers for the bad-input suite: run the real CLI, snapshot folders, assert nothing was lost.

Every case feeds Vista one mistake a user can make and checks the four promises of issue 9:
exit code != 0 (or a VistaError in-process), one message naming the file and the problem, no
traceback, and no file that existed before the command modified or deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_dataset

VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))
CLI_TIMEOUT_S = 240
ALWAYS_SUBPROCESS = os.environ.get("VISTA_BAD_INPUTS_SUBPROCESS") == "1"

Snapshot = dict[str, tuple[int, str]]


def snapshot(*folders: Path) -> Snapshot:
    """path -> (mtime_ns, sha256) of every file (and symlink target text) under `folders`."""
    state: Snapshot = {}
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            state[str(folder)] = _fingerprint(folder)
            continue
        for root, _, files in os.walk(folder):
            for name in files:
                path = Path(root) / name
                state[str(path)] = _fingerprint(path)
    return state


def _fingerprint(path: Path) -> tuple[int, str]:
    if path.is_symlink():
        return path.lstat().st_mtime_ns, "link:" + os.readlink(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return path.stat().st_mtime_ns, digest.hexdigest()


def assert_unchanged(before: Snapshot) -> None:
    """Every file in `before` still exists with the same bytes and modification time (new files are allowed)."""
    problems = []
    for path, (mtime, digest) in before.items():
        p = Path(path)
        if not p.exists() and not p.is_symlink():
            problems.append(f"deleted: {path}")
            continue
        now_mtime, now_digest = _fingerprint(p)
        if now_digest != digest:
            problems.append(f"modified: {path}")
        elif now_mtime != mtime:
            problems.append(f"touched (mtime changed): {path}")
    assert not problems, "existing files were lost or changed:\n" + "\n".join(problems)


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_vista(*args: str | Path, real_process: bool = False, timeout: float = CLI_TIMEOUT_S) -> CliResult:
    """Run `vista ARGS` and capture what the user would see.

    `real_process=True` (or VISTA_BAD_INPUTS_SUBPROCESS=1 for every case) runs `python -m vista` in a
    fresh process; otherwise `vista.main` runs in this process with stdout/stderr captured, and an
    exception escaping it is printed as the traceback Python would print. Starting torch costs
    seconds per process on 2 cores, so most cases use the in-process path and a few per file the real one.
    """
    argv = [str(a) for a in args]
    if real_process or ALWAYS_SUBPROCESS:
        command = [PYTHON, "-m", "vista", *argv]
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        return CliResult(command, done.returncode, done.stdout, done.stderr)
    import vista

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = vista.main(argv)
        except SystemExit as exit_:  # argparse's own usage errors
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except Exception:  # noqa: BLE001 - exactly what a user would see as a crash
            traceback.print_exc()
            code = 1
    return CliResult(["vista", *argv], int(code), out.getvalue(), err.getvalue())


def assert_user_error(result: CliResult, *needles: str) -> str:
    """Exit code != 0, no traceback, and every needle (file names, the problem) in stderr; returns stderr."""
    shown = f"\n$ {' '.join(result.args)}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.output, "a user error printed a traceback:" + shown
    assert result.returncode > 0, f"expected a failing exit code, got {result.returncode}:" + shown
    lowered = result.stderr.lower()
    for needle in needles:
        assert str(needle).lower() in lowered, f"stderr does not mention {needle!r}:" + shown
    return result.stderr


def refuses(*args: str | Path, needles: tuple[str | Path, ...], protect: tuple[Path, ...],
            real_process: bool = False) -> str:
    """Run the CLI on a bad input and check every promise: failing exit code, message, no traceback, nothing lost."""
    before = snapshot(*protect)
    assert before, f"nothing to protect under {protect}; the case is set up wrong"
    stderr = assert_user_error(run_vista(*args, real_process=real_process), *map(str, needles))
    assert_unchanged(before)
    return stderr


def copy_lego(destination: Path, n_train: int = 3, n_test: int = 1) -> Path:
    """A small Blender-format dataset: the first lego-100 views of each split (100x100 RGBA)."""
    source = shared_dataset("lego-100")
    destination.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        if n == 0:
            continue
        meta = json.loads((source / f"transforms_{split}.json").read_text())
        meta["frames"] = meta["frames"][:n]
        (destination / split).mkdir(exist_ok=True)
        for frame in meta["frames"]:
            name = frame["file_path"] + ".png"
            shutil.copy(source / name, destination / name)
        (destination / f"transforms_{split}.json").write_text(json.dumps(meta, indent=1))
    return destination


def edit_json(path: Path, change) -> None:
    """Load JSON at `path`, let `change(data)` mutate it in place (its return value is ignored), write it back."""
    data = json.loads(Path(path).read_text())
    change(data)
    Path(path).write_text(json.dumps(data))


@pytest.fixture
def lego_copy(tmp_path) -> Path:
    return copy_lego(tmp_path / "lego")


def copy_fox(destination: Path, n: int = 4) -> Path:
    """A small nerfstudio-format dataset: the first fox-small photos (270x480 JPEG, OPENCV intrinsics)."""
    source = shared_dataset("fox-small")
    meta = json.loads((source / "transforms.json").read_text())
    meta["frames"] = meta["frames"][:n]
    (destination / "images").mkdir(parents=True, exist_ok=True)
    for frame in meta["frames"]:
        shutil.copy(source / frame["file_path"], destination / frame["file_path"])
    (destination / "transforms.json").write_text(json.dumps(meta, indent=1))
    return destination


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`x`height` (a decompression bomb's calling card) with almost no data."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        chunk(b"IEND", b"")


def train_args(data: Path, out: Path) -> list[str | Path]:
    """The cheapest `vista train` that reaches data loading."""
    return ["train", data, "--out", out, "--preset", "test", "--steps", "1", "--no-eval"]


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory) -> Path:
    """A real scene folder (4 test-preset steps on 3 lego views, checkpoints at steps 2 and 4), made once."""
    from scenes.config import preset_config
    from scenes.data import load_posed_images
    from scenes.train import train_scene

    root = tmp_path_factory.mktemp("bad-inputs-scene")
    data = copy_lego(root / "lego")
    train_scene(load_posed_images(data), root / "scene", preset_config("test", steps=4, checkpoint_every=2),
                show_progress=False)
    return root / "scene"


@pytest.fixture
def scene_copy(tiny_scene, tmp_path) -> Path:
    """A private copy of `tiny_scene` that a test may damage."""
    destination = tmp_path / "scene"
    shutil.copytree(tiny_scene, destination)
    return destination
