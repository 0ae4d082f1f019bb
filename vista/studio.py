"""`vista app`: start the Gradio studio on this machine (app.py's `launch_app`: the CLI's one edge to the studio,
allowed by name in the import contracts)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

LOCAL_HOST = "127.0.0.1"


def register(subparsers: argparse._SubParsersAction) -> None:
    app = subparsers.add_parser(
        "app", help="start the studio in the browser (photos -> scene -> path -> video)",
        description="Start Vista's Gradio studio. It listens on 127.0.0.1 (this machine only) unless --host or "
                    "--share-lan says otherwise; each browser session works in its own folder under --workspace.")
    app.add_argument("--host", default=LOCAL_HOST, help="address to listen on (default 127.0.0.1: this machine only)")
    app.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    app.add_argument("--share-lan", action="store_true",
                     help="listen on all interfaces (0.0.0.0) so other machines on the network can connect")
    app.add_argument("--workspace", type=Path, default=Path("outputs/app"),
                     help="folder for the sessions' files; typed paths are confined to it (default outputs/app)")
    app.add_argument("--session-ttl-hours", type=float, default=72.0,
                     help="delete session folders idle for longer than this, at startup and every hour (default 72)")
    app.set_defaults(handler=run_app)


def listen_address(host: str, share_lan: bool) -> str:
    return "0.0.0.0" if share_lan else host


def run_app(args: argparse.Namespace) -> int:
    from vista_core.errors import VistaError

    if not 0 < args.port < 65536:
        raise VistaError(f"--port {args.port} is not a TCP port (1-65535)")
    if not args.session_ttl_hours > 0:
        raise VistaError(f"--session-ttl-hours {args.session_ttl_hours} must be a positive number of hours")
    host = listen_address(args.host, args.share_lan)
    if host != LOCAL_HOST:
        log.warning("warning: the studio listens on %s: anyone who can reach this machine on port %d can use it, "
                    "upload files to %s and run jobs on this machine. There is no login.", host, args.port,
                    args.workspace)
    import app  # gradio is imported only when the studio starts

    app.launch_app(args.workspace, host, args.port, session_ttl_hours=args.session_ttl_hours)
    return 0
