"""`vista render` (a scene along a camera path to MP4, or again from a recipe) and `vista verify` (labels of a
video): flags -> vista_api.render -> printed lines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

VERIFY_EXIT_CODES = {"signed": 0, "signed (untrusted signer)": 0, "watermarked": 0,
                     "tagged only": 1, "unlabelled": 1, "invalid manifest": 3}
"""`vista verify`'s exit code per verdict (2 stays the exit code of a user error, as for every command)."""


FORMAT_NAMES = {"mp4": "H.264 yuv420p", "prores": "ProRes 4444 with alpha (straight)",
                "png": "16-bit RGBA PNG frames (straight alpha)",
                "exr": "OpenEXR frames (half RGBA, premultiplied, linear; Z depth in world units)"}


def _exit_code_table() -> list[tuple[int, str]]:
    by_code = {2: "a user error (the file is missing or not a video, a bad flag); one line on stderr"}
    for verdict, code in VERIFY_EXIT_CODES.items():
        by_code[code] = f"{by_code[code]}, {verdict}" if code in by_code else verdict
    return sorted(by_code.items())


def register(subparsers: argparse._SubParsersAction) -> None:
    render = subparsers.add_parser(
        "render", help="render a scene along a camera path to an MP4",
        description="Render SCENE along a camera path (nerfstudio camera_path.json, Vista keyframes or instant-ngp "
                    "base_cam.json) to an H.264 MP4 (or, with --format, ProRes 4444 with alpha, or a 16-bit PNG or OpenEXR "
                    "sequence with alpha for compositing), labelled as a synthetic render (metadata, invisible watermark, "
                    "optional visible label and C2PA signature), with a recipe JSON beside it. Frames are cached "
                    "beside the video, so an interrupted render resumes when run again.")
    render.add_argument("scene", type=Path, nargs="?", help="scene folder (made by `vista train`)")
    render.add_argument("--path", type=Path, help="camera path file")
    render.add_argument("--out", type=Path, help="what to write: shot.mp4, shot.mov (ProRes), or a folder for "
                                                 "--format png/exr")
    render.add_argument("--format", dest="output_format", metavar="{mp4,prores,png,exr}",
                        help="mp4: H.264; prores: ProRes 4444 .mov with alpha; png: folder of 16-bit RGBA PNGs; "
                             "exr: folder of OpenEXR (half RGBA, premultiplied, linear, + Z depth in world units) "
                             "(default: from --out's suffix: .mp4, .mov)")
    render.add_argument("--width", type=int, help="frame width in pixels, even (default: the path file's)")
    render.add_argument("--height", type=int, help="frame height in pixels, even (default: the path file's)")
    render.add_argument("--fps", type=float,
                        help="frames per second (default: the path file's); another rate re-times the path so the "
                             "shot keeps its length in seconds")
    render.add_argument("--frames", help="render only frames a:b of the path (Python slice, b excluded)")
    render.add_argument("--preview", action="store_true", help="quarter resolution, for a fast look")
    render.add_argument("--crf", type=int, default=18, help="H.264 quality: lower is better and larger (default 18)")
    render.add_argument("--supersample", type=int, default=1,
                        help="rays per pixel side, averaged: 2 anti-aliases (less shimmer on pull-backs) at 4x the "
                             "render time (default 1)")
    render.add_argument("--motion-blur", type=float, default=0.0, metavar="SHUTTER",
                        help="motion blur: the shutter as a fraction of the frame interval, in (0, 1] (0.5 = a "
                             "180-degree shutter); each frame averages sub-frame renders along the path (default: none)")
    render.add_argument("--motion-blur-samples", type=int, default=8, metavar="N",
                        help="sub-frame renders per blurred frame (default 8; the render takes N times longer)")
    render.add_argument("--seed", type=int, default=0, help="seed recorded in the recipe (default 0)")
    render.add_argument("--png-dir", type=Path, help="also write every frame as a PNG into this folder")
    render.add_argument("--depth-video", type=Path, help="also write a depth MP4 (turbo colormap)")
    render.add_argument("--opacity-video", type=Path, help="also write an opacity (alpha) MP4")
    render.add_argument("--no-watermark", action="store_true", help="do not embed the invisible watermark")
    render.add_argument("--label", action="store_true", help="draw a visible 'synthetic render' corner label")
    render.add_argument("--sign-cert", type=Path, help="PEM certificate chain for C2PA signing (with --sign-key)")
    render.add_argument("--sign-key", type=Path, help="PEM private key for C2PA signing")
    render.add_argument("--recipe", type=Path, help="render again from a recipe JSON; checks the frames are identical")
    render.add_argument("--keep-frames", action="store_true", help="keep the frame cache (OUT.frames) after encoding")
    render.add_argument("--no-progress", action="store_true", help="no progress bar")
    render.add_argument("--ray", metavar="ADDRESS",
                        help="render the frames on a Ray cluster (pip install -e '.[farm]'): host:port or "
                             "ray://host:10001 joins one, 'auto' joins the one Ray finds (RAY_ADDRESS, one started "
                             "on this machine) or starts a local one, 'local' always starts a local one; this "
                             "machine writes the frame cache, encodes, labels and writes the recipe")
    render.add_argument("--ray-threads", type=int, default=1,
                        help="torch threads (and Ray CPUs) per frame task (default 1)")
    render.add_argument("--background", action="store_true",
                        help="queue the render as a job of the output folder (see `vista jobs --workspace DIR`) and "
                             "run it in a worker process; this command returns at once")
    render.set_defaults(handler=run_render)

    verify = subparsers.add_parser(
        "verify", help="grade the synthetic-render labels a video carries",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Look for Vista's labels on a video (MP4, MOV), a PNG/EXR frame or a folder of frames (a C2PA "
                    "manifest, the invisible watermark in sampled frames, metadata tags) and give a graded verdict, "
                    "strongest first:\n"
                    "  signed                     a valid C2PA manifest declaring generated media that chains to a\n"
                    "                             CA in --trust-anchors\n"
                    "  signed (untrusted signer)  the same, but no --trust-anchors given or not chained to them\n"
                    "  watermarked                Vista's invisible watermark decodes in most sampled frames\n"
                    "  invalid manifest           a C2PA manifest that fails validation (e.g. bytes altered after\n"
                    "                             signing); never counts as a label\n"
                    "  tagged only                only the metadata tags, which anyone can add; not evidence\n"
                    "  unlabelled                 nothing\n",
        epilog="exit codes:\n" + "".join(f"  {code}  {names}\n" for code, names in _exit_code_table()))
    verify.add_argument("video", type=Path, help="video (MP4, MOV), a PNG or EXR frame, or a folder of frames")
    verify.add_argument("--samples", type=int, default=8, help="frames to check for the watermark (default 8)")
    verify.add_argument("--trust-anchors", type=Path, help="PEM CA certificates to trust when validating C2PA")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(handler=run_verify)


def run_render(args: argparse.Namespace) -> int:
    from vista.progress import TerminalProgress

    with TerminalProgress(bars=not args.no_progress) as progress:
        return _rerender(args, progress) if args.recipe is not None else _render(args, progress)


def _labels(args: argparse.Namespace):
    from vista_api.render import Labels

    return Labels(watermark=not args.no_watermark, label=args.label, sign_cert=args.sign_cert,
                  sign_key=args.sign_key)


def _rerender(args: argparse.Namespace, progress) -> int:
    from vista_api.render import RerenderRequest, rerender
    from vista_core.errors import VistaError

    ignored = [flag for flag, value in (("--path", args.path), ("--width", args.width), ("--height", args.height),
                                        ("--fps", args.fps), ("--frames", args.frames),
                                        ("--format", args.output_format),
                                        ("--motion-blur", args.motion_blur or None)) if value is not None]
    if ignored or args.preview:
        raise VistaError(f"--recipe fixes the path, size, frames and motion blur; drop {', '.join(ignored) or '--preview'}")
    if args.ray is not None:
        raise VistaError("--ray renders new shots only; render a recipe again without --ray")
    repro = rerender(RerenderRequest(args.recipe, args.out, args.scene, _labels(args)), progress)
    _print_result(repro.shot.render, repro.shot.recipe_file)
    if repro.identical:
        print(f"reproduced: all {len(repro.shot.render.frames)} frames are bit-identical to the recipe's")
        return 0
    print(f"NOT reproduced: {len(repro.mismatched_frames)} frame(s) differ from the recipe's "
          f"(first: {list(repro.mismatched_frames[:5])}); compare the package versions in {args.recipe}")
    return 1


def _render(args: argparse.Namespace, progress) -> int:
    from vista_api.farm import RayFarm
    from vista_api.render import ExtraOutputs, Quality, ShotRequest, render_shot
    from vista_core.errors import VistaError

    missing = [name for name, value in (("SCENE", args.scene), ("--path", args.path), ("--out", args.out))
               if value is None]
    if missing:
        raise VistaError(f"missing {', '.join(missing)} (or give --recipe)")
    request = ShotRequest(
        args.scene, args.path, args.out, args.width, args.height, args.fps, frames=args.frames, preview=args.preview,
        quality=Quality(crf=args.crf, supersample=args.supersample, motion_blur=args.motion_blur,
                        motion_blur_samples=args.motion_blur_samples), labels=_labels(args),
        extras=ExtraOutputs(args.png_dir, args.depth_video, args.opacity_video, args.keep_frames), seed=args.seed,
        output_format=args.output_format, farm=None if args.ray is None else RayFarm(args.ray, threads=args.ray_threads))
    if args.background:
        from vista_api.jobs import JobStore, start_worker

        store = JobStore(request.out.absolute().parent)
        job_id = store.submit("render", request)
        print(f"job {job_id} queued, worker process {start_worker(store.workspace, job_id).pid}: "
              f"vista jobs --workspace {store.workspace}")
        return 0
    shot = render_shot(request, progress)
    if shot.retimed:
        print(shot.retimed)
    _print_result(shot.render, shot.recipe_file)
    return 0


def _print_result(result, recipe_file: Path) -> None:
    cached = len(result.frames) - result.rendered
    print(f"wrote {result.video}: {len(result.frames)} frames, {result.width}x{result.height}, {result.fps:g} fps, "
          f"{FORMAT_NAMES[result.output_format]}" + (f" ({cached} frames from the cache)" if cached else ""))
    if result.rendered:
        print(f"rendered {result.rendered} frames in {result.render_seconds:.1f} s "
              f"({result.frames_per_s:.2f} frames/s)")
    print(result.flicker.summary())
    if result.watermark_checked:
        print(f"invisible watermark decoded in {result.watermark_detected}/{result.watermark_checked} sampled "
              "frames after encoding")
    for name, path in result.extra_outputs.items():
        print(f"{name.replace('_', ' ')}: {path}")
    if result.signed:
        print("C2PA manifest signed (digitalSourceType trainedAlgorithmicMedia)")
    print(f"recipe: {recipe_file}")


def run_verify(args: argparse.Namespace) -> int:
    from vista_api.render import VerifyRequest, verify

    report = verify(VerifyRequest(args.video, args.samples, args.trust_anchors))
    code = VERIFY_EXIT_CODES[report.verdict]
    print(json.dumps({**report.to_dict(), "exit_code": code}, indent=2) if args.json else report.text())
    return code
