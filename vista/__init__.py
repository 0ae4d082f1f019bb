"""The `vista` command line: one module per group of commands, each parsing flags and calling vista_api."""

from vista.cli import main

__all__ = ["main"]
