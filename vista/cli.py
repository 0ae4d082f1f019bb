"""The `vista` command line.

Each package registers its own subcommands (`register(subparsers)` in the modules listed in
COMMAND_MODULES); this file only dispatches and turns user mistakes (VistaError) into one line on
stderr with exit code 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

COMMAND_MODULES = [
    "vista.demo",  # demo (the README's first command)
    "vista.train",  # train, eval, info
    "vista.studio",  # app (the Gradio studio)
    "vista.poses",  # poses, import, export
    "vista.video",  # render, verify
    "vista.paths",  # path
    "vista.refine",  # refine
    "vista.jobs",  # jobs (the workspace's background jobs)
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vista",
        description="Vista: photos -> posed images -> hash-grid radiance field -> establishing shots (MP4).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "0")
    if hasattr(sys.stdout, "reconfigure"):  # not when a caller redirected stdout to a StringIO
        sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen, even in a pipe
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    from vista_core.errors import VistaError

    try:
        result = args.handler(args)
    except VistaError as error:
        print(f"vista {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vista {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
