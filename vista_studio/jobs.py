"""The studio's jobs tab: the session's rows of the job service (vista_api.jobs) and its Cancel, plus submitting a
job to run in its own worker process. Plain Python; app.py only wires these to a table and two buttons.

The studio's jobs table is the server root's (ROOT/.vista/jobs.sqlite), so the bounded queue is the server's; a
session sees and cancels only its own jobs (the owner is the session folder's name, which the server mapped, never
a name the client sent). The limits are vista_studio.limits': at most `max_waiting_jobs` waiting, one a session.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from vista_api.jobs import JobRow, JobStore, start_worker
from vista_core.errors import VistaError
from vista_studio import limits
from vista_studio import workspace as wsp

COLUMNS = ["job", "kind", "state", "progress", "result", "started"]
log = logging.getLogger(__name__)
_ROWS: dict[tuple[str, float], int] = {}
"""This process's studio jobs (workspace, start time) -> their row."""
_STORES: dict[Path, JobStore] = {}
_LOCK = threading.Lock()


def studio_store(root: Path) -> JobStore:
    """The server's jobs table, with the studio's limits (read when called, as limits.LIMITS may be replaced)."""
    return JobStore(wsp.workspace_root(root), max_waiting=limits.LIMITS.max_waiting_jobs, per_owner=1)


def _owner(workspace: Path) -> str:
    return Path(workspace).name


def _line(row: JobRow, workspace: Path) -> list[Any]:
    result = row.result or ""
    if result and Path(result).is_relative_to(Path(workspace).resolve()):
        result = str(Path(result).relative_to(Path(workspace).resolve()))  # the session's own names, not the server's
    detail = result if row.state == "done" else (row.message or row.progress_text())
    started = time.strftime("%H:%M:%S", time.localtime(row.started_at)) if row.started_at else ""
    return [row.id, row.kind, row.state, row.progress_text() if row.active else "", detail, started]


def jobs_table(root: Path, workspace: Path) -> list[list[Any]]:
    """This session's jobs, newest first, as rows of COLUMNS (opening the table marks dead workers' jobs
    interrupted, so a restarted server shows them so)."""
    return [_line(row, workspace) for row in studio_store(root).rows(owner=_owner(workspace))]


def _own_job(root: Path, workspace: Path, job_id: int | str | None):
    """(the store, the job's number) for one of this session's jobs; another session's number is unknown here."""
    try:
        number = int(job_id)
    except (TypeError, ValueError) as error:
        raise VistaError("choose a job: type its number from the jobs table") from error
    store = studio_store(root)
    if not any(row.id == number for row in store.rows(owner=_owner(workspace))):
        raise VistaError(f"no job {number} in this session")
    return store, number


def cancel(root: Path, workspace: Path, job_id: int | str | None) -> str:
    """Cancel one of this session's jobs."""
    store, number = _own_job(root, workspace, job_id)
    return store.cancel(number)


def resume(root: Path, workspace: Path, job_id: int | str | None) -> str:
    """Run one of this session's interrupted (or failed) jobs again, in a new worker process."""
    store, number = _own_job(root, workspace, job_id)
    store.resume(number)
    start_worker(store.workspace, number)
    return f"job {number} resumed"


def submit(root: Path, workspace: Path, kind: str, request: Any) -> int:
    """Queue a job of this session (limits checked: the session's disk quota, the queue bound, one a session) and
    start its worker process."""
    limits.check_quota(workspace)
    store = studio_store(root)
    job_id = store.submit(kind, request, owner=_owner(workspace))
    start_worker(store.workspace, job_id)
    return job_id


def _result_path(result: dict) -> str | None:
    """The file or folder a studio job made (its result's first path), for the table."""
    for value in result.values():
        if isinstance(value, str) and "/" in value:
            return value
    return None


def mirror(workspace: Path, state: wsp.JobState) -> bool:
    """workspace.JOB_HOOKS' hook: the studio's step jobs (threads writing job.json) as rows of the server's table, so
    the jobs panel lists them, a restart marks them interrupted, and Cancel there stops them (returns True)."""
    workspace = Path(workspace)
    if workspace.parent.name != wsp.SESSIONS:  # not a studio session folder: nothing to mirror into
        return False
    root = workspace.parent.parent
    try:
        with _LOCK:
            store = _STORES.get(root) or _STORES.setdefault(root, JobStore(root))
            key = (str(workspace), state.started_at)
            if key not in _ROWS:
                _ROWS[key] = store.record(state.kind, workspace.name)
            row = _ROWS[key]
        return store.mirror(row, state.status, state.stage, state.step, state.total, state.eta_s, state.message,
                            _result_path(state.result))
    except (VistaError, sqlite3.Error) as error:  # the table is a view: it must never stop the job
        log.warning("could not record the job in the jobs table: %s", error)
        return False


wsp.JOB_HOOKS.append(mirror)
