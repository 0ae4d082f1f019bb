"""`vista path`: make a camera path for a trained scene (a preset fitted to it, or your keyframes),
write it as nerfstudio's camera_path.json, and optionally preview it and check its coverage.
Flags -> vista_api.paths -> printed lines.

    vista path SCENE --preset orbit --seconds 8 --out path.json
    vista path SCENE --keyframes keys.json --out path.json --top-down map.png --coverage
    vista path SCENE --preset orbit --out path.json --export-camera shot.glb   # an animated camera for Blender

The keyframe file format is documented in render/paths.py (and the README).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from render.path_presets import PRESETS

    p = subparsers.add_parser(
        "path", help="make a camera path (preset or keyframes) -> nerfstudio camera_path.json",
        description="Make a camera path for a trained scene: a preset fitted to the scene and its photos, or "
                    "your keyframes (JSON, format in the README). Writes nerfstudio's camera_path.json "
                    "(ns-render reads it), optionally a GLB and a top-down preview and a per-frame coverage "
                    "report that warns where the photos never saw what the camera shows.")
    p.add_argument("scene", type=Path, help="scene folder (from vista train)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", choices=PRESETS, help="a shot fitted to the scene")
    source.add_argument("--keyframes", type=Path,
                        help="keyframe JSON (or a camera_path.json or .glb camera with keyframes) to edit")
    p.add_argument("--out", type=Path, required=True, help="camera_path.json to write")
    p.add_argument("--seconds", type=float, help="length of the shot (default 8, or the keyframe file's)")
    p.add_argument("--fps", type=float, help="frames per second (default 30, or the keyframe file's)")
    p.add_argument("--width", type=int, default=640, help="render width in pixels (default 640)")
    p.add_argument("--height", type=int, default=360, help="render height in pixels (default 360)")
    p.add_argument("--ease", choices=["linear", "ease-in", "ease-out", "ease-in-out"],
                   help="easing of the whole path (default: the preset's or the file's)")
    shot = p.add_argument_group("preset options (each applies to the presets that take it)")
    shot.add_argument("--degrees", type=float, help="orbit/spiral: how far around the subject (default 360/720)")
    shot.add_argument("--radius-factor", type=float,
                      help="distance as a multiple of the photos' median distance (orbit, crane-up; start of dolly-in)")
    shot.add_argument("--end-factor", type=float, help="dolly-in/pull-back/spiral: distance factor at the end")
    shot.add_argument("--elevation", type=float, help="degrees above the subject's horizon (default: the photos')")
    shot.add_argument("--end-elevation", type=float, help="crane-up/spiral: elevation at the end (degrees)")
    shot.add_argument("--azimuth", type=float, help="degrees around the subject from the photos' side (default 0)")
    shot.add_argument("--height-factor", type=float, help="fly-over: height in subject radii above its centre")
    shot.add_argument("--fov", type=float, help="vertical field of view in degrees (default: the photos')")
    shot.add_argument("--keyframe-count", type=int, help="follow-capture: keyframes kept (default 12)")
    shot.add_argument("--no-avoid", action="store_true", help="do not move the preset out of occupied space")
    out = p.add_argument_group("outputs")
    out.add_argument("--save-keyframes", type=Path,
                     help="also write the path's keyframes (to edit and pass to --keyframes)")
    out.add_argument("--dataparser-transforms", type=Path,
                     help="nerfstudio run's dataparser_transforms.json: write camera_path.json in its coordinates")
    out.add_argument("--glb", type=Path, help="write a 3D preview (scene points, path, frusta)")
    out.add_argument("--export-camera", type=Path, metavar="SHOT.glb",
                     help="also write the path as a glTF camera animation (one key per frame, focal length) that "
                          "Blender imports in the scene's world coordinates; `vista render --path SHOT.glb` reads it")
    out.add_argument("--top-down", type=Path,
                     help="write a top-down PNG of the path (coloured by coverage with --coverage)")
    out.add_argument("--coverage", action="store_true", help="score every frame: did the photos see what it shows?")
    out.add_argument("--coverage-json", type=Path, help="write the per-frame coverage report (implies --coverage)")
    out.add_argument("--coverage-frames", type=int, default=60,
                     help="frames actually scored, evenly spread (default 60; others take the nearest score)")
    p.set_defaults(handler=run_path)


def _request(args: argparse.Namespace):
    from vista_api.paths import PathRequest, PresetOptions

    options = PresetOptions(degrees=args.degrees, radius_factor=args.radius_factor, end_factor=args.end_factor,
                            elevation=args.elevation, end_elevation=args.end_elevation, azimuth=args.azimuth,
                            height_factor=args.height_factor, fov=args.fov, keyframe_count=args.keyframe_count)
    return PathRequest(preset=args.preset, keyframes=args.keyframes, seconds=args.seconds, fps=args.fps,
                       ease=args.ease, options=options, avoid_occupied=not args.no_avoid)


def run_path(args: argparse.Namespace) -> int:
    from vista_api import paths as api
    from vista_core.files import atomic_write_json

    files = api.PathFiles(args.out, args.width, args.height, args.save_keyframes, args.dataparser_transforms,
                          args.export_camera)
    scene = api.open_path_scene(args.scene)
    path = api.make_path(_request(args), scene)
    api.write_path(files, path)
    print(f"{api.describe_path(path)}; wrote {args.out}")
    if args.save_keyframes:
        print(f"keyframes written to {args.save_keyframes} (edit, then --keyframes {args.save_keyframes})")
    if args.export_camera:
        print(f"camera animation written to {args.export_camera} (glTF 2.0; Blender: File > Import > glTF)")
    coverage = None
    if args.coverage or args.coverage_json:
        request = api.CoverageRequest(args.width, args.height, args.coverage_frames)
        coverage = api.check_coverage(request, scene, path, _print_coverage_progress)
        print(f"coverage: mean {coverage.scores.mean():.2f}, lowest {coverage.scores.min():.2f}")
        for warning in coverage.warnings:
            print(f"warning: {warning}")
        if args.coverage_json:
            atomic_write_json(args.coverage_json, coverage.to_dict())
    if args.glb or args.top_down:
        previews = api.PreviewRequest(args.glb, args.top_down, args.width / args.height)
        api.write_previews(previews, scene, path, coverage)
        if args.glb:
            print(f"3D preview written to {args.glb}")
        if args.top_down:
            print(f"top-down preview written to {args.top_down}")
    return 0


def _print_coverage_progress(event) -> None:
    """"coverage: photos 3/12", rewritten in place on one line per phase."""
    from vista_api.paths import STAGE_COVERAGE_PHOTOS

    phase = "photos" if event.stage == STAGE_COVERAGE_PHOTOS else "frames"
    print(f"\rcoverage: {phase} {event.done}/{event.total}", end="\n" if event.done == event.total else "",
          flush=True)
