"""Crash-safe file writing and strict JSON reading, shared by every package.

Every file Vista writes goes through `atomic_write_bytes` (temp file, fsync, rename): a crash, a kill
or a full disk leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from vista_core.errors import VistaError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file + rename, so a crash never leaves half a file.

    On a full disk (ENOSPC) the previous file at `path` is left untouched and a VistaError says so.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:  # a parent is a file, or the folder cannot be created or written
        raise _write_error(path, error) or VistaError(
            f"{path}: cannot create a file in {path.parent} ({error.strerror or error})") from error
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except OSError as error:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        user_error = _write_error(path, error)
        if user_error is not None:
            raise user_error from error
        raise


def _write_error(path: Path, error: OSError) -> VistaError | None:
    """The user-facing error for a failed write the user can fix (full disk, read-only folder), else None."""
    if error.errno == 28:  # ENOSPC
        return VistaError(f"{path}: the disk is full; nothing was overwritten, free space and retry")
    if error.errno in (13, 30):  # EACCES, EROFS
        return VistaError(f"{path}: the folder is not writable ({error.strerror})")
    return None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def read_json(path: Path, what: str = "JSON file", max_bytes: int = 64 * 1024 * 1024) -> Any:
    """Read a JSON file written by a user or another tool; NaN/Infinity and huge files are refused."""
    path = Path(path)
    if not path.is_file():
        raise VistaError(f"{path}: {what} not found")
    size = path.stat().st_size
    if size > max_bytes:
        raise VistaError(f"{path}: {what} is {size / 1e6:.0f} MB, larger than the {max_bytes / 1e6:.0f} MB limit")
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as error:
        raise VistaError(f"{path}: {what} is not UTF-8 text") from error
    except (json.JSONDecodeError, ValueError) as error:
        raise VistaError(f"{path}: {what} is malformed: {error}") from error
    except RecursionError as error:  # adversarial nesting ([[[[...) exhausts json's recursive decoder
        raise VistaError(f"{path}: {what} is malformed: nested too deeply") from error
