"""`vista jobs`: the workspace's jobs (poses, train, refine, render) from its SQLite table: list, cancel, resume, and
`run`, which a worker process is started with (flags -> vista_api.jobs -> printed lines)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ACTIONS = ("list", "cancel", "resume", "run")


def register(subparsers: argparse._SubParsersAction) -> None:
    jobs = subparsers.add_parser(
        "jobs", help="list, cancel or resume the workspace's background jobs",
        description="The jobs of a workspace (a studio's root, or any folder), as recorded in WORKSPACE/.vista/"
                    "jobs.sqlite: state (queued, running, done, failed, interrupted, cancelled), progress, owner, "
                    "result. A job whose worker process died (killed, or the server restarted) is shown as "
                    "interrupted; `resume` continues it (training from its checkpoint, a render from its cached "
                    "frames).")
    jobs.add_argument("action", nargs="?", default="list", choices=ACTIONS,
                      help="list (default); cancel ID; resume ID (in a new worker process); run ID (what a worker "
                           "process runs: a queued job, in the foreground)")
    jobs.add_argument("id", nargs="?", type=int, help="job number (for cancel, resume, run)")
    jobs.add_argument("--workspace", type=Path, default=Path("."), help="workspace folder (default: .)")
    jobs.set_defaults(handler=run_jobs)


def run_jobs(args: argparse.Namespace) -> int:
    from vista_api.jobs import JobStore, start_worker
    from vista_core.errors import VistaError

    if args.action != "list" and args.id is None:
        raise VistaError(f"vista jobs {args.action} needs a job number (see `vista jobs`)")
    if args.action == "list" and not (args.workspace / ".vista" / "jobs.sqlite").is_file():
        print(f"{args.workspace}: no jobs yet")
        return 0
    store = JobStore(args.workspace)
    if args.action == "cancel":
        print(store.cancel(args.id))
    elif args.action == "resume":
        store.resume(args.id)
        worker = start_worker(args.workspace, args.id)
        print(f"job {args.id} resumed in worker process {worker.pid}")
    elif args.action == "run":
        row = store.run(args.id)
        print(f"job {row.id} {row.state}" + (f": {row.result}" if row.result else f": {row.message}"))
        return 0 if row.state == "done" else 1
    else:
        print_table(store.rows())
    return 0


def print_table(rows) -> None:
    """One line per job, newest first."""
    if not rows:
        print("no jobs")
        return
    print(f"{'id':>4}  {'kind':7} {'state':11} {'owner':12} {'started':19}  progress / result")
    for row in rows:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.started_at)) if row.started_at else "-"
        detail = row.result if row.state == "done" else (row.message or row.progress_text())
        print(f"{row.id:>4}  {row.kind:7} {row.state:11} {row.owner[:12]:12} {started:19}  {detail}")
