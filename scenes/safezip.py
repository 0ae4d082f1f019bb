"""Extract a user's zip of photos without trusting it.

Python's `zipfile` validates CRC and structure but will happily follow what an archive asks for. Here
every member is checked before anything is written: no absolute paths, no `..`, no symlinks or
other special files, no more than `max_files` members, and the bytes actually decompressed (not
the sizes the archive claims, which a zip bomb lies about) are capped at `max_total_bytes`.
Files are streamed to a temporary folder inside the target and moved into place only when the
whole archive passed, so a refused archive leaves the target as it was. A caller may keep only some
members (`keep`, e.g. photos): the others are skipped unread, whatever size they claim.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from vista_core.errors import VistaError

MAX_FILES = 5000
MAX_TOTAL_BYTES = 4 * 1024**3  # 4 GB of photos is far beyond 300 phone pictures
_CHUNK = 1 << 20


def _member_path(info: zipfile.ZipInfo, archive: Path) -> PurePosixPath | None:
    """The member's relative path, or None for a directory entry; refuses unsafe names."""
    name = info.filename.replace("\\", "/")
    if "\x00" in name:
        raise VistaError(f"{archive}: member {name!r} has a NUL byte in its name; refusing the archive")
    path = PurePosixPath(name)
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")) or name.startswith("/"):
        raise VistaError(f"{archive}: member {name!r} has an absolute path; refusing the archive")
    if ".." in path.parts:
        raise VistaError(f"{archive}: member {name!r} points outside the folder ('..'); refusing the archive")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise VistaError(f"{archive}: member {name!r} is a symbolic link; refusing the archive")
    if info.is_dir():
        return None
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):  # some zippers store permission bits only
        raise VistaError(f"{archive}: member {name!r} is not a regular file; refusing the archive")
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts:
        return None
    return PurePosixPath(*parts)


def extract_zip(archive: Path, target: Path, max_files: int = MAX_FILES,
                max_total_bytes: int = MAX_TOTAL_BYTES,
                keep: Callable[[PurePosixPath], bool] | None = None) -> list[Path]:
    """Extract `archive` into `target` (created if needed) and return the extracted files, sorted.

    Only members for which `keep(relative path)` is true are extracted (all when `keep` is None); the
    others are still checked for unsafe names but never decompressed.

    Raises VistaError for an unreadable archive or any unsafe member; nothing is written outside
    `target`, and on refusal nothing new is left inside it either.
    """
    archive, target = Path(archive), Path(target)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise VistaError(f"{archive}: not a readable zip archive ({error})") from error
    with zf:
        infos = zf.infolist()
        if len(infos) > max_files:
            raise VistaError(f"{archive}: holds {len(infos)} entries, more than the limit of {max_files}")
        members = [(info, _member_path(info, archive)) for info in infos]
        members = [(info, rel) for info, rel in members if rel is not None and (keep is None or keep(rel))]
        seen: set[str] = set()
        for _, rel in members:
            key = rel.as_posix().lower()
            if key in seen:
                raise VistaError(f"{archive}: member {rel} appears twice; refusing the archive")
            seen.add(key)
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unzip-", dir=target))
        try:
            total = 0
            for info, rel in members:
                destination = staging.joinpath(*rel.parts)
                # belt and braces: resolved destination must stay under the staging folder
                if not destination.resolve().is_relative_to(staging.resolve()):
                    raise VistaError(f"{archive}: member {rel} resolves outside the folder; refusing the archive")
                destination.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zf.open(info) as source, open(destination, "wb") as sink:
                        while chunk := source.read(_CHUNK):
                            total += len(chunk)
                            if total > max_total_bytes:
                                raise VistaError(f"{archive}: decompresses to more than "
                                                 f"{max_total_bytes / 1e6:,.0f} MB; refusing it (zip bomb?)")
                            sink.write(chunk)
                except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError,
                        NotImplementedError, RuntimeError) as error:
                    raise VistaError(f"{archive}: member {rel} cannot be extracted ({error})") from error
            finals = [target.joinpath(*rel.parts) for _, rel in members]
            for final in finals:
                # an existing link on the way could redirect the move outside the target
                for parent in [final, *final.parents]:
                    if parent == target:
                        break
                    if parent.is_symlink() or (parent == final and parent.is_dir()):
                        raise VistaError(f"{parent}: already exists as a link or folder; "
                                         "extract into an empty folder")
            for (_, rel), final in zip(members, finals):
                final.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(staging.joinpath(*rel.parts)), final)
            extracted = finals
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return sorted(extracted)
