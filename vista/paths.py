"""`vista path`: make a camera path for a trained scene (a preset fitted to it, or your keyframes),
write it as nerfstudio's camera_path.json, and optionally preview it and check its coverage.

    vista path SCENE --preset orbit --seconds 8 --out path.json
    vista path SCENE --keyframes keys.json --out path.json --top-down map.png --coverage

The keyframe file format is documented in render/paths.py (and the README).
"""

from __future__ import annotations

import argparse
import inspect
import math
from dataclasses import replace
from pathlib import Path

# flag -> keyword of the preset functions in render.path_presets (only where the preset takes it)
_PRESET_FLAGS = {
    "degrees": "degrees",
    "radius_factor": ("radius_factor", "start_factor"),
    "end_factor": "end_factor",
    "elevation": ("elevation_deg", "start_elevation_deg"),
    "end_elevation": "end_elevation_deg",
    "azimuth": "azimuth_deg",
    "height_factor": "height_factor",
    "fov": "fov_y_deg",
    "keyframe_count": "n_keyframes",
}


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
    source.add_argument("--keyframes", type=Path, help="keyframe JSON (or a camera_path.json with keyframes) to edit")
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
    out.add_argument("--save-keyframes", type=Path, help="also write the path's keyframes (to edit and pass to --keyframes)")
    out.add_argument("--dataparser-transforms", type=Path,
                     help="nerfstudio run's dataparser_transforms.json: write camera_path.json in its coordinates")
    out.add_argument("--glb", type=Path, help="write a 3D preview (scene points, path, frusta)")
    out.add_argument("--top-down", type=Path, help="write a top-down PNG of the path (coloured by coverage with --coverage)")
    out.add_argument("--coverage", action="store_true", help="score every frame: did the photos see what it shows?")
    out.add_argument("--coverage-json", type=Path, help="write the per-frame coverage report (implies --coverage)")
    out.add_argument("--coverage-frames", type=int, default=60,
                     help="frames actually scored, evenly spread (default 60; others take the nearest score)")
    p.set_defaults(handler=run_path)


def _preset_options(args: argparse.Namespace, preset: str) -> dict:
    from render import path_presets
    from vista_core.errors import VistaError

    builder = {"orbit": path_presets.orbit, "dolly-in": path_presets.dolly_in, "pull-back": path_presets.pull_back,
               "crane-up": path_presets.crane_up, "fly-over": path_presets.fly_over, "spiral": path_presets.spiral,
               "follow-capture": path_presets.follow_capture}[preset]
    accepted = set(inspect.signature(builder).parameters)
    options = {}
    for flag, keywords in _PRESET_FLAGS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        keywords = (keywords,) if isinstance(keywords, str) else keywords
        keyword = next((k for k in keywords if k in accepted), None)
        if keyword is None:
            raise VistaError(f"--{flag.replace('_', '-')} does not apply to preset {preset}")
        if isinstance(value, float) and not math.isfinite(value):
            raise VistaError(f"--{flag.replace('_', '-')} must be a finite number")
        options[keyword] = value
    return options


def run_path(args: argparse.Namespace) -> int:
    import numpy as np

    from vista_core.errors import VistaError
    from vista_core.files import atomic_write_bytes, atomic_write_json
    from render.path_io import read_dataparser_transforms, read_keyframes, write_camera_path, write_keyframes
    from render.path_presets import fit_scene_frame, occupancy_query, preset_path
    from scenes.scene import load_scene

    if args.width < 1 or args.height < 1 or args.width * args.height > 64_000_000:
        raise VistaError(f"--width/--height {args.width}x{args.height} is not a sensible render size")
    scene = load_scene(args.scene)
    renderable = scene.renderable()
    occupied = occupancy_query(renderable)
    frame = fit_scene_frame(scene.capture, scene.scene_from_world, occupied)
    if args.preset:
        seconds = 8.0 if args.seconds is None else args.seconds  # 0 is an error, not "the default"
        fps = 30.0 if args.fps is None else args.fps
        path = preset_path(args.preset, frame, capture=scene.capture, seconds=seconds,
                           fps=fps, occupied=None if args.no_avoid else occupied,
                           **_preset_options(args, args.preset))
    else:
        given = [f for f in _PRESET_FLAGS if getattr(args, f) is not None]
        if given:
            raise VistaError(f"--{given[0].replace('_', '-')} is a preset option; edit the keyframe file instead")
        path = read_keyframes(args.keyframes)
        changes = {k: v for k, v in (("seconds", args.seconds), ("fps", args.fps)) if v is not None}
        path = replace(path, **changes) if changes else path
    if args.ease:
        path = replace(path, ease=args.ease)
    dataparser = read_dataparser_transforms(args.dataparser_transforms) if args.dataparser_transforms else None
    write_camera_path(args.out, path, args.width, args.height, dataparser)
    times = [f"{t:.2f}" for t in path.keyframe_times()]
    shown = ", ".join(times) if len(times) <= 8 else ", ".join(times[:4] + ["..."] + times[-2:])
    print(f"{path.n_frames} frames, {path.seconds:g} s at {path.fps:g} fps, {len(path.keyframes)} keyframes at "
          f"{shown} s{' (loop)' if path.loop else ''}; wrote {args.out}")
    if args.save_keyframes:
        write_keyframes(args.save_keyframes, path)
        print(f"keyframes written to {args.save_keyframes} (edit, then --keyframes {args.save_keyframes})")

    report = None
    if args.coverage or args.coverage_json:
        report = _coverage(renderable, scene.capture, path, args)
        print(f"coverage: mean {report.scores.mean():.2f}, lowest {report.scores.min():.2f}")
        for warning in report.warnings:
            print(f"warning: {warning}")
        if args.coverage_json:
            atomic_write_json(args.coverage_json, report.to_dict())
    if args.glb or args.top_down:
        from render.path_preview import path_glb, scene_points, top_down_map

        frames, _ = path.evaluate(path.frame_times())
        points, colours = scene_points(renderable, view_direction=-frame.up)
        keys = path.keyframe_matrices()
        if args.glb:
            data = path_glb(frames, keys, np.array([k.fov_y_deg for k in path.keyframes]), args.width / args.height,
                            points=points, colours=colours, capture=scene.capture)
            atomic_write_bytes(args.glb, data)
            print(f"3D preview written to {args.glb}")
        if args.top_down:
            image = top_down_map(frames, frame.up, centre=frame.centre, keyframe_positions=keys[:, :, 3], points=points,
                                 colours=colours, capture=scene.capture,
                                 coverage=None if report is None else report.scores)
            atomic_write_bytes(args.top_down, image.png())
            print(f"top-down preview written to {args.top_down}")
    return 0


def _coverage(renderable, capture, path, args):
    from render.coverage import path_coverage

    cameras = path.sample(args.width, args.height)
    step = max(1, math.ceil(len(cameras) / max(1, args.coverage_frames)))

    def progress(stage: str, i: int, n: int) -> None:
        print(f"\rcoverage: {stage} {i}/{n}", end="\n" if i == n else "", flush=True)

    return path_coverage(renderable, capture, cameras, path.frame_times(), frame_step=step, progress=progress)
