"""The `vista` command line: one module per group of commands, each parsing flags and calling vista_api."""

from vista.cli import build_parser, main

__all__ = ["build_parser", "main"]
