"""Files the studio shows, made returnable without opening the workspace root to the web server.

Gradio returns a file only from the cwd, the temp dir or its `allowed_paths`, and serves every allowed path to
anyone who asks for a file by name. The root is never an allowed path: when it lies elsewhere, each file a view
shows is linked (or copied) into a private temporary folder first, per session, and Gradio copies it from there
into its cache as usual. The views name them in FILE_VIEWS; nothing here imports gradio.

A published copy is a hard link when it can be, which keeps the file's bytes alive after the session folder is
gone: so a session's copies are deleted when idle cleaning deletes the session (vista_studio.session), and a
publisher's own temporary folder when the server exits.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vista_studio import session as studio_session

FILE_VIEWS = ("gallery", "map_img", "model3d", "preview_video", "refine_gallery", "video", "downloads",
              "preview_img", "export_file", "camera_file")
"""The components whose values are files (or lists of files, or (file, caption) pairs)."""


def servable_without_help(root: Path) -> bool:
    """Whether Gradio returns files under `root` as they are (it lies in the cwd or the temp dir)."""
    return any(Path(root).resolve().is_relative_to(Path(p).resolve()) for p in (os.getcwd(), tempfile.gettempdir()))


class Publisher:
    """Links each session's shown files into `out/<hash of the session folder>/`; returns the new values."""

    def __init__(self, root: Path, out: Path | None = None):
        self.root = Path(root).resolve()
        self.out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="vista-studio-"))
        self.out.mkdir(mode=0o700, parents=True, exist_ok=True)
        if out is None:  # our own temp folder: nothing in it outlives the server
            atexit.register(shutil.rmtree, self.out, ignore_errors=True)
        studio_session.on_session_deleted(self.forget)

    def values(self, workspace: Path, values: dict[str, Any]) -> dict[str, Any]:
        return {name: self.value(workspace, value) if name in FILE_VIEWS else value for name, value in values.items()}

    def value(self, workspace: Path, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(workspace, v) for v in value)
        if isinstance(value, (str, Path)) and value:
            return self.file(workspace, Path(value))
        return value

    def file(self, workspace: Path, path: Path) -> Any:
        """The published copy of a file under the root (other values, e.g. captions, as they are)."""
        try:
            source = path.resolve()
            if not (source.is_relative_to(self.root) and source.is_file()):
                return str(path) if isinstance(path, Path) else path
            info = source.stat()
        except (OSError, ValueError):
            return str(path)
        session = hashlib.sha256(str(Path(workspace).resolve()).encode()).hexdigest()[:24]
        folder = self.out / session / hashlib.sha256(str(source).encode()).hexdigest()[:16]
        target = folder / source.name
        try:
            if target.is_file() and (target.stat().st_size, target.stat().st_mtime_ns) == (info.st_size,
                                                                                          info.st_mtime_ns):
                return str(target)
            folder.mkdir(parents=True, exist_ok=True)
            partial = folder / f".{source.name}.partial"
            try:
                os.link(source, partial)
            except OSError:
                shutil.copy2(source, partial)
            os.replace(partial, target)
        except OSError:
            return str(path)
        return str(target)

    def forget(self, workspace: Path) -> None:
        """Delete every copy published for the session `workspace`."""
        session = hashlib.sha256(str(Path(workspace).resolve()).encode()).hexdigest()[:24]
        shutil.rmtree(self.out / session, ignore_errors=True)
