"""Per-session workspaces for the app: folders, path confinement, upload limits and background jobs.

The app (app.py) gives every browser session a folder `ROOT/sessions/<token>/` named by an
unguessable token. Everything a session makes (uploaded photos, posed data, the scene, paths,
videos) lives there, and every path a user types is resolved and confined to the workspace root
and, inside `sessions/`, to the session's own folder, so sessions never see each other's files.

Long jobs (poses, training, refinement, rendering) run in a background thread per workspace. Their
state is written to `job.json` in the folder, so reopening the page (or another process reading the
folder) shows where the job is; a process-wide semaphore runs one heavy job at a time, because the
2 CPU cores (or one GPU) are shared by all sessions. Nothing here imports gradio.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vista_core.errors import VistaError
from vista_core.files import atomic_write_json, read_json
from vista_core.progress import Cancelled
from vista_studio import limits

SESSIONS = "sessions"
JOB_FILE = "job.json"
SESSION_FILE = "session.json"
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
STUDIO = ".studio"
"""The server's own files under the root (the browsers' session keys); no typed path reaches them."""
MAX_PHOTOS = limits.LIMITS.max_upload_photos
MAX_UPLOAD_BYTES = limits.LIMITS.max_upload_bytes
HISTORY_POINTS = 600
"""Most (step, loss, PSNR) points kept in job.json for the plot; older ones are thinned out."""

log = logging.getLogger(__name__)


# --- workspaces -----------------------------------------------------------------------------------

def workspace_root(root: Path) -> Path:
    """The workspace root, created if needed and resolved (symlinks followed once, here)."""
    root = Path(root).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise VistaError(f"{root}: cannot create the workspace folder ({error.strerror})") from error
    return root.resolve()


def new_workspace(root: Path) -> Path:
    """A fresh, empty session folder under `root/sessions/` named by a 128-bit random token."""
    folder = workspace_root(root) / SESSIONS / secrets.token_hex(16)
    folder.mkdir(parents=True)
    return folder


def open_workspace(root: Path, token: str | None) -> Path | None:
    """The session folder named by `token` if it is a well-formed token of an existing folder, else None."""
    if not isinstance(token, str) or not _TOKEN.match(token):
        return None
    folder = workspace_root(root) / SESSIONS / token
    return folder if folder.is_dir() else None


def workspace_token(workspace: Path) -> str:
    return Path(workspace).name


def confine_path(root: Path, workspace: Path, text: str, what: str = "path") -> Path:
    """Resolve a path the user typed and refuse it unless it stays inside this session's reach.

    Relative paths are taken from the workspace root. The resolved path (symlinks followed) must lie
    inside the root, and if it lies under `sessions/`, inside this session's own folder."""
    text = (text or "").strip()
    if not text:
        raise VistaError(f"{what}: empty; type a folder inside the workspace")
    if "\x00" in text:
        raise VistaError(f"{what}: {text!r} is not a valid path")
    root = workspace_root(root)
    workspace = Path(workspace).resolve()
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as error:
        raise VistaError(f"{what}: {text!r} cannot be resolved ({error})") from error
    if not resolved.is_relative_to(root):
        raise VistaError(f"{what}: {text!r} is outside the workspace {root}; the app only reads and writes there")
    if resolved.is_relative_to(root / STUDIO):
        raise VistaError(f"{what}: {text!r} is the studio's own folder; the app does not read it")
    sessions = root / SESSIONS
    if resolved.is_relative_to(sessions) and not resolved.is_relative_to(workspace):
        raise VistaError(f"{what}: {text!r} belongs to another session's workspace")
    return resolved


def check_upload(paths: list[Path], max_files: int = MAX_PHOTOS, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """Refuse an upload with too many files or too many bytes before anything is copied."""
    if not paths:
        raise VistaError("upload: no files; add photos (JPEG/PNG) or one zip of photos")
    if len(paths) > max_files:
        raise VistaError(f"upload: {len(paths)} files, more than the {max_files} allowed in one capture")
    total = 0
    for path in paths:
        try:
            total += Path(path).stat().st_size
        except OSError as error:
            raise VistaError(f"upload: {Path(path).name} cannot be read ({error.strerror})") from error
    if total > max_bytes:
        raise VistaError(f"upload: {total / 1e6:.0f} MB in total, more than the {max_bytes / 1e6:.0f} MB allowed")


def safe_name(name: str) -> str:
    """A file name an upload may keep: its last component, with only safe characters."""
    base = Path(str(name).replace("\\", "/")).name
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip(".")
    return base[:120] or "file"


def copy_uploads(paths: list[Path], folder: Path) -> list[Path]:
    """Copy uploaded files (already in the web server's cache) into `folder` under safe, unique names."""
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in paths:
        path = Path(path)
        target = folder / safe_name(path.name)
        stem, suffix, n = target.stem, target.suffix, 1
        while target.exists():
            target = folder / f"{stem}-{n}{suffix}"
            n += 1
        shutil.copyfile(path, target)
        copied.append(target)
    return copied


def read_session(workspace: Path) -> dict:
    """What the session holds (data folder, scene folder, path file, video...), {} if nothing yet."""
    path = Path(workspace) / SESSION_FILE
    if not path.is_file():
        return {}
    data = read_json(path, "session file")
    return data if isinstance(data, dict) else {}


def update_session(workspace: Path, **fields: Any) -> dict:
    """Merge `fields` into session.json (None removes a key) and return the new contents."""
    data = read_session(workspace)
    for key, value in fields.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    atomic_write_json(Path(workspace) / SESSION_FILE, data)
    return data


# --- background jobs ------------------------------------------------------------------------------

class JobCancelled(Cancelled):
    """Raised inside a job when the user pressed Cancel. A vista_core Cancelled, so that a vista_api action the
    job runs stops the way it promises (a checkpoint kept, nothing half-written) and lets it through."""


@dataclass
class JobState:
    kind: str
    status: str = "queued"  # queued | running | done | failed | cancelled | interrupted
    stage: str = ""
    step: int = 0
    total: int = 0
    message: str = ""
    eta_s: float | None = None
    psnr: float | None = None
    history: list[list[float]] = field(default_factory=list)  # [step, loss, psnr]
    started_at: float = 0.0
    updated_at: float = 0.0
    result: dict = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")


JOB_HOOKS: list[Callable[[Path, JobState], bool]] = []
"""Called with each state a job writes (vista_studio.jobs mirrors it into the job service's table); a hook returning
True asks the job to stop (Cancel pressed in the jobs table)."""


class Job:
    """A handle the work function uses to report progress and to notice Cancel."""

    def __init__(self, workspace: Path, kind: str, write_every_s: float = 0.5):
        self.workspace = Path(workspace)
        self.state = JobState(kind=kind, started_at=time.time())
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._write_every_s = write_every_s
        self._last_write = 0.0
        self.thread: threading.Thread | None = None
        self.write(force=True)

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled()

    def update(self, force: bool = False, **fields: Any) -> None:
        with self._lock:
            for key, value in fields.items():
                setattr(self.state, key, value)
        self.write(force=force)

    def add_point(self, step: int, loss: float, psnr: float) -> None:
        with self._lock:
            history = self.state.history
            history.append([step, loss, psnr])
            if len(history) > HISTORY_POINTS:
                del history[1:-1:2]  # thin out evenly, keeping the first and the newest point

    def write(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_write < self._write_every_s:
            return
        with self._lock:
            self.state.updated_at = now
            data = asdict(self.state)
            self._last_write = now
        try:
            atomic_write_json(self.workspace / JOB_FILE, _finite(data))
        except VistaError as error:  # a full disk must not kill the job's own error reporting
            log.warning("could not write job state: %s", error)
        for hook in JOB_HOOKS:
            if hook(self.workspace, self.state):
                self._cancel.set()


def _finite(value: Any) -> Any:
    """JSON has no NaN: write None instead (a PSNR before the first step)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


_COMPUTE = threading.Semaphore(1)
_JOBS: dict[str, Job] = {}
_JOBS_LOCK = threading.Lock()


def start_job(workspace: Path, kind: str, work: Callable[[Job], dict | None]) -> Job:
    """Run `work(job)` in a background thread once the machine is free; its return value is the result.

    A VistaError ends the job as failed with its message; Cancel ends it as cancelled; anything else is
    a bug: logged with its traceback, and shown to the user as one line."""
    key = str(Path(workspace).resolve())
    with _JOBS_LOCK:
        running = _JOBS.get(key)
        if running is not None and running.state.active:
            raise VistaError(f"a {running.state.kind} job is already running in this session; wait or cancel it")
        active = sum(job.state.active for job in _JOBS.values())
        if active > limits.LIMITS.max_waiting_jobs:  # one runs, the others wait for the machine
            raise VistaError(f"the studio is busy: {active} jobs are running or waiting; try again in a few minutes")
        limits.check_quota(workspace)
        job = Job(workspace, kind)
        _JOBS[key] = job

    def run() -> None:
        try:
            job.update(stage="waiting for the machine (another session's job is running)", force=True)
            while not _COMPUTE.acquire(timeout=0.2):
                job.check_cancelled()
            try:
                job.check_cancelled()
                job.update(status="running", stage="starting", force=True)
                result = work(job) or {}
            finally:
                _COMPUTE.release()
            job.update(status="done", stage="done", result=result, eta_s=0.0, force=True)
        except Cancelled:
            job.update(status="cancelled", stage="cancelled", message="cancelled by the user", force=True)
        except VistaError as error:
            job.update(status="failed", message=str(error), force=True)
        except Exception as error:  # a bug: keep the traceback for the log, one line for the user
            log.error("job %s in %s failed:\n%s", kind, workspace, traceback.format_exc())
            job.update(status="failed", message=f"internal error ({type(error).__name__}: {error}); "
                                                "see the server log", force=True)

    job.thread = threading.Thread(target=run, name=f"vista-{kind}-{Path(workspace).name[:8]}", daemon=True)
    job.thread.start()
    return job


def cancel_job(workspace: Path) -> bool:
    """Ask the workspace's running job to stop; False if nothing was running."""
    job = _JOBS.get(str(Path(workspace).resolve()))
    if job is None or not job.state.active:
        return False
    job.cancel()
    return True


def cancel_jobs(root: Path, timeout_s: float = 60.0) -> int:
    """Cancel every running job of the sessions under `root` and wait for them to stop (at shutdown);
    returns how many were running. Their files (checkpoints, cached frames) are kept."""
    root = Path(root).resolve()
    jobs = [job for key, job in list(_JOBS.items()) if Path(key).is_relative_to(root) and job.state.active]
    for job in jobs:
        job.cancel()
    deadline = time.monotonic() + timeout_s
    for job in jobs:
        if job.thread is not None:
            job.thread.join(max(0.0, deadline - time.monotonic()))
    return len(jobs)


def wait_job(workspace: Path, timeout_s: float | None = None) -> JobState | None:
    """Block until the workspace's job ends (for scripts and tests); its final state."""
    job = _JOBS.get(str(Path(workspace).resolve()))
    if job is None or job.thread is None:
        return read_job(workspace)
    job.thread.join(timeout_s)
    return job.state


def read_job(workspace: Path) -> JobState | None:
    """The last job's state as written to job.json, None if there never was one.

    A job that says it is running but has no thread in this process was cut short (the server was
    restarted): it is reported as interrupted, and its files (checkpoints, cached frames) stay."""
    key = str(Path(workspace).resolve())
    job = _JOBS.get(key)
    if job is not None:
        with job._lock:
            return JobState(**{**asdict(job.state), "history": list(job.state.history)})
    path = Path(workspace) / JOB_FILE
    if not path.is_file():
        return None
    try:
        data = read_json(path, "job state file")
        state = JobState(**data)
    except (VistaError, TypeError) as error:
        return JobState(kind="unknown", status="failed", message=f"{path}: unreadable ({error})")
    if state.active:
        state.status = "interrupted"
        state.message = "the server stopped while this job ran; start it again (training resumes from its checkpoint)"
    return state
