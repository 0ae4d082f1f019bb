"""Starting the studio: the one entry into the studio package that the CLI (`vista app`) may call.

The Gradio layout is the top-level app.py, the only module that imports gradio; no package imports it
statically (import-linter's contracts), so it is loaded by name here, when the studio actually starts.
"""

from __future__ import annotations

import importlib
from pathlib import Path


def launch_studio(workspace: Path, host: str, port: int) -> None:
    """Serve the studio on host:port with its sessions under `workspace`; blocks until the server stops."""
    importlib.import_module("app").launch_app(workspace, host, port)
