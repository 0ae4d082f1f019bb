"""Which session folder an event belongs to, how long idle sessions are kept, and the guards every step shares.

Sessions are mapped on the server, never from a folder name a client sends:
- each Gradio session (one page view, or one gradio_client) is mapped to its folder here, by the session hash
  Gradio gives the event (`session_folder`); its first action without a folder gets a new one;
- a browser keeps an opaque random key in localStorage (app.py's BrowserState). On page load the server looks
  the key up in `ROOT/.studio/keys/` (files named by the key's SHA-256, holding the folder's name) and maps the
  page's session hash to that folder (`restore_session`); an unknown key, a forged one or a folder name gets a
  new session and a new key. The key appears in no path, file or message, so knowing a folder's name (it shows in
  recipes and job results) opens nothing.
Sessions idle longer than the TTL are deleted (`clean_idle_sessions`), and with them whatever was registered
with `on_session_deleted` (the copies published for the session's views: vista_studio.published). Plain Python: app.py passes in the stored
key and the session hash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from vista_core.errors import VistaError
from vista_core.files import atomic_write_text
from vista_studio import workspace as wsp

log = logging.getLogger(__name__)

KEYS = "keys"
_KEY = re.compile(r"^[A-Za-z0-9_-]{43}$")
_BY_HASH: dict[str, Path] = {}
"""Gradio session hash -> the session's folder (this process only; a page load maps it again)."""
_LOCK = threading.Lock()
_ON_DELETE: list[weakref.WeakMethod] = []
"""Bound methods called with each session folder idle cleaning deletes (weakly held: a closed studio's go)."""


def request_hash(request) -> str | None:
    """The Gradio session hash of an event's request (a gr.Request; None outside an event)."""
    return getattr(request, "session_hash", None)


def on_session_deleted(callback: Callable[[Path], None]) -> None:
    """Have idle cleaning call `callback(folder)` (a bound method) for each session folder it deletes."""
    with _LOCK:
        _ON_DELETE[:] = [ref for ref in _ON_DELETE if ref() is not None]
        _ON_DELETE.append(weakref.WeakMethod(callback))


def _deleted(folder: Path) -> None:
    with _LOCK:
        callbacks = [ref() for ref in _ON_DELETE]
    for callback in callbacks:
        if callback is None:
            continue
        try:
            callback(folder)
        except Exception:  # one failed clean-up must not keep the others from running
            log.exception("cleaning up after session %s failed", folder.name)


def _keys_dir(root: Path) -> Path:
    return wsp.workspace_root(root) / wsp.STUDIO / KEYS


def _key_file(root: Path, key: str) -> Path:
    return _keys_dir(root) / hashlib.sha256(key.encode()).hexdigest()


def touch(folder: Path) -> Path:
    """Mark the session as used now (its folder's time is what the idle cleaning reads)."""
    try:
        os.utime(folder)
    except OSError:
        pass
    return folder


def session_folder(root: Path, session_hash: str | None) -> Path:
    """The folder of this Gradio session, or a new one (its first action)."""
    with _LOCK:
        folder = known_folder(session_hash)
        if folder is None:
            folder = wsp.new_workspace(root)
            if session_hash:
                _BY_HASH[session_hash] = folder
    return touch(folder)


def known_folder(session_hash: str | None) -> Path | None:
    """The folder this Gradio session has, None if it has none yet (or it was cleaned)."""
    folder = _BY_HASH.get(session_hash or "")
    return folder if folder is not None and folder.is_dir() else None


def restore_session(root: Path, key: str | None, session_hash: str | None) -> tuple[Path, str]:
    """On page load: the folder the browser's key was given, or a new folder and key; the page's session hash is
    mapped to it. Returns (folder, the key the browser keeps)."""
    folder = None
    if isinstance(key, str) and _KEY.match(key) and _key_file(root, key).is_file():
        folder = wsp.open_workspace(root, _key_file(root, key).read_text().strip())
    if folder is None:
        folder, key = wsp.new_workspace(root), secrets.token_urlsafe(32)
        atomic_write_text(_key_file(root, key), folder.name)
    if session_hash:
        with _LOCK:
            _BY_HASH[session_hash] = folder
    return touch(folder), key


def browser_secret(root: Path) -> str:
    """The key BrowserState encrypts the stored value with, made once per workspace root so that a reload after
    a restart still finds its session. Gradio sends it to every browser: it protects nothing (the stored value is
    an opaque key the server looks up, see above)."""
    secret_file = root / ".browser-secret"
    if not secret_file.is_file():
        atomic_write_text(secret_file, secrets.token_urlsafe(24))
    return secret_file.read_text().strip()


def clean_idle_sessions(root: Path, ttl_hours: float, now: float | None = None) -> list[str]:
    """Delete the session folders not used for `ttl_hours` (a running job keeps its folder), their browsers'
    keys and their mappings; returns the deleted folders' names."""
    root = wsp.workspace_root(root)
    now = time.time() if now is None else now
    sessions = root / wsp.SESSIONS
    deleted = []
    for folder in sorted(sessions.iterdir()) if sessions.is_dir() else []:
        state = wsp.read_job(folder) if wsp.open_workspace(root, folder.name) is not None else None
        try:
            idle_s = now - folder.stat().st_mtime
        except OSError:
            continue
        if folder.name.startswith(".") or idle_s <= ttl_hours * 3600 or (state is not None and state.active):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        _deleted(folder)
        deleted.append(folder.name)
    if deleted:
        _forget(root, set(deleted))
        log.info("deleted %d session folders idle for more than %g hours", len(deleted), ttl_hours)
    return deleted


def _forget(root: Path, names: set[str]) -> None:
    keys = _keys_dir(root)
    for key_file in keys.iterdir() if keys.is_dir() else []:
        try:
            if key_file.read_text().strip() in names:
                key_file.unlink()
        except OSError:
            continue
    with _LOCK:
        for session_hash, folder in list(_BY_HASH.items()):
            if folder.name in names:
                del _BY_HASH[session_hash]


def start_cleaner(root: Path, ttl_hours: float, every_s: float = 3600.0) -> threading.Event:
    """Clean idle sessions now and then every `every_s` seconds in a daemon thread; set the event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                clean_idle_sessions(root, ttl_hours)
            except Exception:  # a cleaning that failed must not stop the next one
                log.exception("cleaning idle sessions failed")
            if stop.wait(every_s):
                return

    threading.Thread(target=loop, name="vista-session-cleaner", daemon=True).start()
    return stop


def session_line(workspace: Path) -> str:
    return "<small>Session workspace (kept across page reloads in this browser)</small>"


def require_idle(workspace: Path, action: str) -> None:
    """Refuse to change a session's photos or scene under a running job."""
    state = wsp.read_job(workspace)
    if state is not None and state.active:
        raise VistaError(f"a {state.kind} job is running in this session: wait for it or cancel it before you "
                         f"{action}")


def require(session: dict, key: str, what: str) -> Path:
    """A folder the session must already have (`what` says what to do first when it has not)."""
    value = session.get(key)
    if not value:
        raise VistaError(what)
    return Path(value)


def cancel_current(workspace: Path) -> str:
    return "Cancelling…" if wsp.cancel_job(workspace) else "Nothing is running."
