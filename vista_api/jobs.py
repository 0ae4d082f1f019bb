"""Jobs (poses, train, refine, render) as rows of an embedded SQLite database in the workspace, run by local worker
processes; `vista jobs` and the studio's jobs table read and cancel them.

A job is a request (the vista_api dataclass of its kind, stored as JSON) and a row: state, progress, owner session,
log tail, result path, worker pid, timestamps. The database (stdlib sqlite3, WAL so readers never wait for the
worker writing progress) lives at WORKSPACE/.vista/jobs.sqlite, so it survives whatever process made the job:
- `submit` refuses more than `max_active` queued or running jobs in the workspace (a bounded queue) and more than
  `per_owner` for one owner (a studio session), with one line; the numbers default to vista_studio.limits';
- `start_worker` runs a job in its own process (`vista jobs run ID`); the worker records its pid and polls the
  row's cancel flag with every progress event, so `cancel` stops it the way a Cancelled progress callback stops
  any vista_api action (a checkpoint kept, cached frames kept);
- `recover` (run whenever a store is opened) marks rows left "running" by a pid that no longer exists as
  interrupted; `resume` queues such a job again: training continues from its checkpoint (resume=True), a render
  from its frame cache, and poses and refinement start over.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vista_core.errors import VistaError
from vista_core.progress import Cancelled, ProgressEvent

DB_NAME = Path(".vista") / "jobs.sqlite"
STATES = ("queued", "running", "done", "failed", "interrupted", "cancelled")
ACTIVE = ("queued", "running")
KINDS = ("poses", "train", "refine", "render")
LOG_LINES = 20
"""Lines of a job's log kept in its row (the newest)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    owner TEXT NOT NULL DEFAULT '',
    request TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT '',
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    eta_s REAL,
    log_tail TEXT NOT NULL DEFAULT '',
    result TEXT,
    message TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    host TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    updated_at REAL NOT NULL,
    finished_at REAL
)"""


@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
    state: str
    owner: str
    request: dict
    stage: str
    done: int
    total: int
    eta_s: float | None
    log_tail: str
    result: str | None
    message: str
    pid: int | None
    host: str | None
    cancel_requested: bool
    created_at: float
    started_at: float | None
    updated_at: float
    finished_at: float | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def progress_text(self) -> str:
        count = f" {self.done}/{self.total}" if self.total else ""
        eta = f", {self.eta_s:.0f} s left" if self.eta_s and self.state == "running" else ""
        return f"{self.stage}{count}{eta}".strip()


def jobs_db(workspace: Path) -> Path:
    return Path(workspace) / DB_NAME


def _pid_alive(pid: int | None, host: str | None) -> bool:
    """Whether a worker process still runs (a reused pid passes; a row of another machine is trusted)."""
    if host != socket.gethostname():
        return True
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobStore:
    """The workspace's jobs table. Each call is its own short transaction, so processes share it safely.

    `max_waiting` bounds the queue (jobs queued beyond the one running; None: no bound, as the CLI has none) and
    `per_owner` the active jobs of one owner; the studio passes vista_studio.limits' numbers."""

    def __init__(self, workspace: Path, max_waiting: int | None = None, per_owner: int | None = None):
        self.workspace = Path(workspace)
        self.path = jobs_db(workspace)
        self.max_waiting = max_waiting
        self.per_owner = per_owner
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._db() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise VistaError(f"{self.path}: cannot open the jobs database ({error})") from error
        self.recover()

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)  # autocommit; BEGIN where it matters
        db.row_factory = sqlite3.Row
        return _Closing(db)

    # --- rows ---------------------------------------------------------------------------------------------

    def submit(self, kind: str, request: Any, owner: str = "cli") -> int:
        """Queue a job of `kind` for `request` (its vista_api dataclass); refused in one line when the queue or
        the owner's share of it is full."""
        if kind not in KINDS:
            raise VistaError(f"unknown job kind {kind!r}: use {', '.join(KINDS)}")
        payload = json.dumps(request_to_dict(request))
        now = time.time()
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")  # count and insert in one transaction: two submits cannot both fit
            active = db.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')").fetchone()[0]
            mine = db.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running') AND owner = ?",
                              (owner,)).fetchone()[0]
            if self.per_owner is not None and mine >= self.per_owner:
                db.execute("ROLLBACK")
                raise VistaError(f"a job of this session is already queued or running ({mine} of {self.per_owner} "
                                 "allowed); wait for it or cancel it")
            if self.max_waiting is not None and active > self.max_waiting:
                db.execute("ROLLBACK")
                raise VistaError(f"the job queue is full: {active} jobs are running or waiting (at most "
                                 f"{self.max_waiting} may wait); try again in a few minutes")
            cursor = db.execute("INSERT INTO jobs (kind, owner, request, created_at, updated_at) VALUES (?,?,?,?,?)",
                                (kind, owner, payload, now, now))
            db.execute("COMMIT")
            return int(cursor.lastrowid)

    def record(self, kind: str, owner: str) -> int:  # kind: the studio's step (build, render, preview, ...)
        """A row for a job another process runs itself (the studio's step threads): running, with that process's
        pid, so a restart marks it interrupted; `mirror` keeps it current. No request: it cannot be resumed here."""
        now = time.time()
        with self._db() as db:
            cursor = db.execute("INSERT INTO jobs (kind, state, owner, request, pid, host, created_at, started_at, "
                                "updated_at) VALUES (?, 'running', ?, '{}', ?, ?, ?, ?, ?)",
                                (kind, owner, os.getpid(), socket.gethostname(), now, now, now))
            return int(cursor.lastrowid)

    def mirror(self, job_id: int, state: str, stage: str, done: int, total: int, eta_s: float | None,
               message: str = "", result: str | None = None) -> bool:
        """Update a recorded job's row; True when someone asked it to stop."""
        if state not in STATES:
            state = "failed"
        finished = time.time() if state not in ACTIVE else None
        self._set(job_id, state=state, stage=stage, done=done, total=total, eta_s=eta_s, message=message,
                  result=result, finished_at=finished)
        return self.get(job_id).cancel_requested

    def get(self, job_id: int) -> JobRow:
        with self._db() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise VistaError(f"{self.path}: no job {job_id}")
        return _row(row)

    def rows(self, owner: str | None = None) -> list[JobRow]:
        """Newest first; only `owner`'s when given."""
        query, args = "SELECT * FROM jobs ORDER BY id DESC", ()
        if owner is not None:
            query, args = "SELECT * FROM jobs WHERE owner = ? ORDER BY id DESC", (owner,)
        with self._db() as db:
            return [_row(r) for r in db.execute(query, args).fetchall()]

    def _set(self, job_id: int, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        names = ", ".join(f"{name} = ?" for name in fields)
        with self._db() as db:
            db.execute(f"UPDATE jobs SET {names} WHERE id = ?", (*fields.values(), job_id))

    def cancel(self, job_id: int) -> str:
        """Cancel a queued job now, or ask a running one to stop (its worker notices at its next progress event);
        returns what happened, in words."""
        row = self.get(job_id)
        if row.state == "interrupted" or (row.state == "queued" and row.pid is None):  # no process holds it
            self._set(job_id, state="cancelled", stage="cancelled", message="cancelled", finished_at=time.time())
            return f"job {job_id} cancelled"
        if row.active:  # running, or queued inside a process that runs it (the studio's)
            self._set(job_id, cancel_requested=1)
            return f"job {job_id}: asked to stop; it keeps what it made (checkpoints, cached frames)"
        raise VistaError(f"job {job_id} is {row.state}: nothing to cancel")

    def recover(self) -> list[int]:
        """Rows left running (or queued in the studio) by a process that no longer exists -> interrupted."""
        lost = [row.id for row in self.rows()
                if row.active and row.pid is not None and not _pid_alive(row.pid, row.host)]
        for job_id in lost:
            self._set(job_id, state="interrupted", stage="interrupted", finished_at=time.time(),
                      message="its worker process stopped (killed, or the server restarted); `vista jobs resume` "
                              "continues it")
        return lost

    def resume(self, job_id: int) -> None:
        """Queue an interrupted (or failed) job again; a render continues from its frame cache, training from its
        checkpoint."""
        row = self.get(job_id)
        if row.state not in ("interrupted", "failed"):
            raise VistaError(f"job {job_id} is {row.state}: only interrupted or failed jobs are resumed")
        if not row.request:
            raise VistaError(f"job {job_id} ran inside the studio: start its step there again (training resumes "
                             "from its checkpoint, a render from its cached frames)")
        request = dict(row.request)
        if row.kind == "train":
            request.update(resume=True, overwrite=False)
        self._set(job_id, state="queued", stage="queued again", message="", cancel_requested=0, pid=None,
                  request=json.dumps(request), finished_at=None)

    # --- running ------------------------------------------------------------------------------------------

    def run(self, job_id: int) -> JobRow:
        """Run a queued job in this process (a worker's whole life); its final row."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["state"] != "queued":
                db.execute("ROLLBACK")
                raise VistaError(f"job {job_id} is {row['state'] if row else 'missing'}: only a queued job runs")
            now = time.time()
            db.execute("UPDATE jobs SET state='running', pid=?, host=?, started_at=?, updated_at=? WHERE id=?",
                       (os.getpid(), socket.gethostname(), now, now, job_id))
            db.execute("COMMIT")
        job = _row(row)
        try:
            result = ACTIONS[job.kind](job.request, self._reporter(job_id))
        except Cancelled:
            self._set(job_id, state="cancelled", stage="cancelled", message="cancelled; what it made is kept",
                      finished_at=time.time())
        except VistaError as error:
            self._set(job_id, state="failed", message=str(error), finished_at=time.time())
        except Exception as error:  # a bug: the row says so in one line, the worker's stderr has the traceback
            self._set(job_id, state="failed", message=f"internal error ({type(error).__name__}: {error})",
                      finished_at=time.time())
            raise
        else:
            self._set(job_id, state="done", stage="done", result=str(result), eta_s=0.0, finished_at=time.time())
        return self.get(job_id)

    def _reporter(self, job_id: int, every_s: float = 0.5) -> Callable[[ProgressEvent], None]:
        """The progress callback a job runs with: writes progress (at most every `every_s`, and every note to the
        log tail) and raises Cancelled once the row asks it to stop."""
        last = [0.0]
        lines: list[str] = []

        def on_event(event: ProgressEvent) -> None:
            now = time.monotonic()
            if event.total <= 0:
                lines[:] = (lines + [event.stage])[-LOG_LINES:]
            elif now - last[0] < every_s and event.done < event.total:
                return
            last[0] = now
            self._set(job_id, stage=event.stage, done=event.done, total=event.total, eta_s=event.eta_s,
                      log_tail="\n".join(lines))
            if self.get(job_id).cancel_requested:
                raise Cancelled

        return on_event


class _Closing:
    """sqlite3's connection as a context manager that also closes it (sqlite3's own only ends the transaction)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc) -> None:
        self.db.close()


def _row(row: sqlite3.Row) -> JobRow:
    data = dict(row)
    data["request"] = json.loads(data["request"])
    data["cancel_requested"] = bool(data["cancel_requested"])
    return JobRow(**data)


def start_worker(workspace: Path, job_id: int, log_file: Path | None = None) -> subprocess.Popen:
    """Run job `job_id` in a new worker process (`vista jobs run`), detached from this one's session so a
    studio or shell that stops does not take it along."""
    log_file = log_file or jobs_db(workspace).parent / f"job-{job_id}.log"
    with open(log_file, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "vista", "jobs", "run", str(job_id), "--workspace",
                                 str(workspace)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


# --- requests as JSON, and what each kind runs --------------------------------------------------------------

def request_to_dict(request: Any) -> dict:
    """A vista_api request as JSON values: paths as text, nested option dataclasses (Quality, Labels, RayFarm) as
    objects naming their class; anything else (a CameraPath object, a tensor) is refused."""
    if not dataclasses.is_dataclass(request) or not type(request).__module__.startswith("vista_api."):
        raise VistaError(f"a job's request must be a vista_api request, not {type(request).__name__}")
    out: dict[str, Any] = {"__class__": f"{type(request).__module__}:{type(request).__qualname__}"}
    for f in dataclasses.fields(request):
        value = getattr(request, f.name)
        if dataclasses.is_dataclass(value):
            value = request_to_dict(value)
        elif isinstance(value, Path):
            value = str(value.absolute())  # the worker, or a later `vista jobs resume`, may run from another folder
        elif not isinstance(value, (str, int, float, bool, type(None))):
            raise VistaError(f"a job cannot carry {f.name}={value!r}: only options, paths and vista_api options")
        out[f.name] = value
    return out


def request_from_dict(data: dict) -> Any:
    """request_to_dict's inverse; only vista_api classes are made (a row names its class, the table is a file)."""
    import importlib

    module, _, name = str(data.get("__class__", "")).partition(":")
    cls = getattr(importlib.import_module(module), name, None) if module.startswith("vista_api.") else None
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise VistaError(f"a job's request names {data.get('__class__')!r}, not a vista_api request")
    paths = {f.name for f in dataclasses.fields(cls) if "Path" in str(f.type)}
    values = {}
    for key, value in data.items():
        if key == "__class__":
            continue
        if isinstance(value, dict):
            value = request_from_dict(value)
        elif key in paths and isinstance(value, str):
            value = Path(value)
        values[key] = value
    return cls(**values)


def _render(request: dict, progress) -> Path:
    from vista_api.render import render_shot

    return render_shot(request_from_dict(request), progress).video


def _train(request: dict, progress) -> Path:
    from vista_api.train import train

    req = request_from_dict(request)
    train(req, progress)
    return req.out_dir


def _poses(request: dict, progress) -> Path:
    from vista_api.poses import estimate_poses

    req = request_from_dict(request)
    estimate_poses(req, progress)
    return req.out_dir


def _refine(request: dict, progress) -> Path:
    from vista_api.refine import refine

    req = request_from_dict(request)
    refine(req, progress)
    return req.out_dir


ACTIONS: dict[str, Callable[[dict, Callable[[ProgressEvent], None]], Path]] = {
    "render": _render, "train": _train, "poses": _poses, "refine": _refine}
"""Each kind's vista_api action; it takes the stored request and the progress callback, returns the result path."""
