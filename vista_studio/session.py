"""Which session folder an event belongs to, and the guards every step shares.

A browser keeps its folder's token (vista_studio.workspace) in localStorage and sends the folder back as the
`gr.State` value; API clients (gradio_client) never run the page-load event, so their Gradio session hash is
mapped to a folder here instead. Plain Python: app.py passes in the state value and the session hash.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from vista_core.errors import VistaError
from vista_core.files import atomic_write_text
from vista_studio import workspace as wsp

_SESSION_WORKSPACES: dict[str, str] = {}
"""Gradio session hash -> workspace token, for clients that never ran the page-load event (API clients):
their first action's state update may be lost to an error, and they must not get a new folder each time."""


def session_folder(root: Path, ws: str | None, session_hash: str | None = None) -> Path:
    """The session's workspace named by the state value, or the one this Gradio session already has, or a
    new one (first action of a session)."""
    if ws:
        folder = wsp.open_workspace(root, Path(ws).name)
        if folder is not None and Path(ws).resolve() == folder:
            return folder
    folder = wsp.open_workspace(root, _SESSION_WORKSPACES.get(session_hash or ""))
    if folder is None:
        folder = wsp.new_workspace(root)
        if session_hash:
            _SESSION_WORKSPACES[session_hash] = folder.name
    return folder


def restore_session(root: Path, token: str | None) -> Path:
    """On page load: the folder named by the browser's stored token, or a new one."""
    return wsp.open_workspace(root, token) or wsp.new_workspace(root)


def browser_secret(root: Path) -> str:
    """The key that signs the token kept in the browser, made once per workspace root (it survives restarts,
    so a reload after a restart still finds its session)."""
    secret_file = root / ".browser-secret"
    if not secret_file.is_file():
        atomic_write_text(secret_file, secrets.token_urlsafe(24))
    return secret_file.read_text().strip()


def session_line(workspace: Path) -> str:
    return f"<small>Session workspace `{workspace.name[:8]}…` (kept across page reloads in this browser)</small>"


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
