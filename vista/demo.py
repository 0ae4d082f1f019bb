"""`vista demo`: the README's first command — the bundled sample scene from posed images to an MP4.

It runs the same functions as `vista train`, `vista path --preset orbit` and `vista render`, in order,
and reuses a trained scene it finds in the output folder, so running it twice only renders again.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from scenes.config import PRESETS
    from vista_api.demo import SAMPLE

    demo = subparsers.add_parser(
        "demo", help="train the sample scene and render an orbit fly-through to MP4",
        description="Train the bundled sample scene (the NeRF-synthetic lego at 100x100, ../shared/data/lego-100), "
                    "fit an orbit path to it and render OUT/shot.mp4 with its recipe. A scene already in OUT/scene "
                    "is reused.")
    demo.add_argument("--data", type=Path, default=SAMPLE, help=f"posed dataset (default: {SAMPLE})")
    demo.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder (default outputs/demo)")
    demo.add_argument("--preset", default="preview", choices=sorted(PRESETS), help="training preset (default preview)")
    demo.add_argument("--minutes", type=float, default=3.0, help="training budget in minutes (default 3)")
    demo.add_argument("--seconds", type=float, default=4.0, help="length of the shot (default 4)")
    demo.add_argument("--fps", type=float, default=24.0, help="frames per second (default 24)")
    demo.add_argument("--width", type=int, default=320, help="frame width (default 320)")
    demo.add_argument("--height", type=int, default=240, help="frame height (default 240)")
    demo.add_argument("--retrain", action="store_true", help="train again even if OUT/scene exists")
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from vista.progress import TerminalProgress
    from vista_api import demo as api

    request = api.DemoRequest(args.data, args.out, args.preset, args.minutes, args.seconds, args.fps, args.width,
                              args.height, args.retrain)
    with TerminalProgress() as progress:
        result = api.run_demo(request, progress)
    print(f"done in {result.seconds:.0f} s. Check its labels: vista verify {result.video}")
    return 0

