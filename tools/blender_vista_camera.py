"""Export the active camera's animation from Blender to a Vista camera path file.

    blender -b shot.blend --python tools/blender_vista_camera.py -- shot.json               # every frame
    blender -b shot.blend --python tools/blender_vista_camera.py -- keys.json --keyframes   # Blender's keys

Then `vista render SCENE --path shot.json --out shot.mp4`, or edit keys.json (`vista path SCENE --keyframes
keys.json`). Inside Blender's Text Editor, set ARGS below and press Run Script.

Coordinate convention (the same as `vista path --export-camera` and its glTF import):
- Blender's world coordinates ARE Vista's world coordinates, the dataset's own (transforms.json's), in the scene's
  units: nothing is converted. A camera animation that came from Vista's .glb through Blender's glTF importer,
  and a mesh from `vista export --mesh scene.ply`, are already in these coordinates.
- A Blender camera looks along its local -Z with +Y up and +X right: OpenGL's camera axes, which Vista and
  nerfstudio use too. So the camera's world matrix (`matrix_world`: parents, constraints and drivers included)
  is Vista's world_from_camera as it is; only a scale on the camera object is removed.
- Field of view: Vista's is vertical and the principal point centred. It is computed from the lens, the sensor
  and its fit, and the render size, as Blender frames the image (sensor fit AUTO: the sensor width spans the
  longer side). Lens shift, a non-square pixel aspect and orthographic cameras are refused.
- Timing: Blender frame `frame_start + j` is Vista frame j; the frame rate is the scene's (fps / fps_base).

Output:
- default: nerfstudio's camera_path.json, one camera per frame (exact: Vista renders these very cameras);
- `--keyframes`: Vista's keyframe JSON (render/paths.py) with a keyframe at each frame where the camera, its data
  (focal length) or a parent has a key, timed to land on the same frames. Vista's spline between keys is not
  Blender's F-curve, so in-between frames differ slightly; use it to edit the move in Vista, the default to
  render it as Blender plays it. A key that repeats the previous camera (a hold) is dropped, with a warning:
  a Vista path cannot stand still.

Everything above `main` is plain Python (no bpy) so that Vista's tests check the maths without Blender.
"""

from __future__ import annotations

import json
import math
import sys

ARGS: list[str] = []  # when run from Blender's Text Editor: e.g. ["/tmp/shot.json"]


class ExportError(Exception):
    """A camera or scene this script cannot turn into a Vista path; the message says what to change."""


# --- maths (no bpy) ----------------------------------------------------------------------------------------------

def vertical_fov_deg(lens_mm: float, sensor_width_mm: float, sensor_height_mm: float, sensor_fit: str,
                     width_px: int, height_px: int) -> float:
    """Blender's vertical field of view for a render of width_px x height_px (square pixels)."""
    if sensor_fit == "VERTICAL":
        half = sensor_height_mm / 2 / lens_mm
    elif sensor_fit == "HORIZONTAL" or width_px >= height_px:  # AUTO fits the sensor width to the longer side
        half = sensor_width_mm / 2 / lens_mm * height_px / width_px
    else:
        half = sensor_width_mm / 2 / lens_mm
    return math.degrees(2 * math.atan(half))


def world_from_camera(matrix_world: list[list[float]]) -> list[list[float]]:
    """A camera object's 4x4 world matrix (rows) without its scale: Vista's world_from_camera as a 4x4."""
    columns = [[matrix_world[r][c] for r in range(3)] for c in range(3)]
    norms = [math.sqrt(sum(v * v for v in col)) for col in columns]
    if min(norms) < 1e-12:
        raise ExportError("the camera has a zero scale")
    rotation = [[columns[c][r] / norms[c] for c in range(3)] for r in range(3)]
    if _det3(rotation) < 0:
        raise ExportError("the camera is mirrored (a negative scale on it or a parent); Vista cameras are rotations")
    return [rotation[r] + [float(matrix_world[r][3])] for r in range(3)] + [[0.0, 0.0, 0.0, 1.0]]


def _det3(m: list[list[float]]) -> float:
    return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))


def quaternion_xyzw(m: list[list[float]]) -> list[float]:
    """Unit quaternion (x, y, z, w) of the rotation in the upper-left 3x3 of `m` (Shepperd's method)."""
    trace = m[0][0] + m[1][1] + m[2][2]
    if trace > 0:
        s = 2 * math.sqrt(trace + 1)
        q = [(m[2][1] - m[1][2]) / s, (m[0][2] - m[2][0]) / s, (m[1][0] - m[0][1]) / s, s / 4]
    elif m[0][0] > m[1][1] and m[0][0] > m[2][2]:
        s = 2 * math.sqrt(1 + m[0][0] - m[1][1] - m[2][2])
        q = [s / 4, (m[0][1] + m[1][0]) / s, (m[0][2] + m[2][0]) / s, (m[2][1] - m[1][2]) / s]
    elif m[1][1] > m[2][2]:
        s = 2 * math.sqrt(1 + m[1][1] - m[0][0] - m[2][2])
        q = [(m[0][1] + m[1][0]) / s, s / 4, (m[1][2] + m[2][1]) / s, (m[0][2] - m[2][0]) / s]
    else:
        s = 2 * math.sqrt(1 + m[2][2] - m[0][0] - m[1][1])
        q = [(m[0][2] + m[2][0]) / s, (m[1][2] + m[2][1]) / s, s / 4, (m[1][0] - m[0][1]) / s]
    norm = math.sqrt(sum(v * v for v in q))
    return [v / norm for v in q]


def frames_camera_path(matrices: list[list[list[float]]], fovs: list[float], width: int, height: int,
                       fps: float) -> dict:
    """nerfstudio's camera_path.json: one camera per frame (4x4 world_from_camera, rows), vertical FOV in degrees."""
    if len(matrices) < 2:
        raise ExportError("the shot has fewer than 2 frames; set the scene's frame range")
    return {"camera_type": "perspective", "render_width": int(width), "render_height": int(height),
            "fps": float(fps), "seconds": len(matrices) / float(fps),
            "camera_path": [{"camera_to_world": [float(v) for row in m for v in row], "fov": float(f),
                             "aspect": width / height} for m, f in zip(matrices, fovs)]}


def keyframes_path(frames: list[int], matrices: list[list[list[float]]], fovs: list[float],
                   fps: float) -> tuple[dict, list[str]]:
    """Vista's keyframe JSON with a keyframe at each Blender frame in `frames` (increasing), timed so that each lands
    on its own frame: the path spans frames[0]..frames[-1], n frames over n / fps seconds, and Vista's open path puts
    its n frames at [0, seconds] with both ends included. Also the warnings (dropped holds)."""
    kept, warnings = [], []
    for f, m, fov in zip(frames, matrices, fovs):
        if kept and _same_camera(kept[-1][1], m, kept[-1][2], fov):
            warnings.append(f"frame {f}: the camera holds still since frame {kept[-1][0]}; that key is dropped")
            continue
        kept.append((f, m, fov))
    if len(kept) < 2:
        raise ExportError("the camera never moves; a Vista path needs at least 2 different cameras")
    if kept[-1][0] != frames[-1]:
        warnings.append(f"the Vista path ends at frame {kept[-1][0]}, where the camera stops moving")
    count = kept[-1][0] - kept[0][0] + 1
    seconds = count / fps
    frame_time = seconds / (count - 1)
    keys = []
    for i, (f, m, fov) in enumerate(kept):
        key = {"position": [m[0][3], m[1][3], m[2][3]], "orientation": quaternion_xyzw(m), "fov_y_deg": fov}
        if i + 1 < len(kept):
            key["duration_s"] = (kept[i + 1][0] - f) * frame_time
        keys.append(key)
    return {"seconds": seconds, "fps": float(fps), "loop": False, "constant_speed": False, "ease": "linear",
            "segment_ease": "linear", "keyframes": keys}, warnings


def _same_camera(a: list[list[float]], b: list[list[float]], fov_a: float, fov_b: float) -> bool:
    return all(abs(a[r][c] - b[r][c]) < 1e-7 for r in range(3) for c in range(4)) and abs(fov_a - fov_b) < 1e-9


# --- Blender ------------------------------------------------------------------------------------------------------

def _key_frames(scene, camera) -> list[int]:
    """Frames with a key on the camera object, its camera data or a parent, within the frame range, plus both ends."""
    frames = {scene.frame_start, scene.frame_end}
    owners, obj = [camera.data], camera
    while obj is not None:
        owners.append(obj)
        obj = obj.parent
    for owner in owners:
        action = owner.animation_data.action if owner.animation_data else None
        for curve in action.fcurves if action else []:
            frames.update(round(k.co[0]) for k in curve.keyframe_points)
    return sorted(f for f in frames if scene.frame_start <= f <= scene.frame_end)


def _camera_at(scene, camera, frame: int) -> tuple[list[list[float]], float]:
    scene.frame_set(frame)
    data, render = camera.data, scene.render
    width = round(render.resolution_x * render.resolution_percentage / 100)
    height = round(render.resolution_y * render.resolution_percentage / 100)
    fov = vertical_fov_deg(data.lens, data.sensor_width, data.sensor_height, data.sensor_fit, width, height)
    return world_from_camera([list(row) for row in camera.matrix_world]), fov


def main(argv: list[str]) -> int:
    import bpy

    if not argv or argv[0].startswith("-"):
        raise ExportError("usage: blender -b FILE.blend --python tools/blender_vista_camera.py -- OUT.json "
                          "[--keyframes]")
    scene = bpy.context.scene
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        raise ExportError("the scene has no active camera (Scene Properties > Camera)")
    data, render = camera.data, scene.render
    if data.type != "PERSP":
        raise ExportError(f"camera {camera.name} is {data.type}; Vista renders perspective cameras")
    if data.shift_x or data.shift_y or render.pixel_aspect_x != render.pixel_aspect_y:
        raise ExportError("lens shift and non-square pixels are not supported; Vista's principal point is centred")
    fps = render.fps / render.fps_base
    width = round(render.resolution_x * render.resolution_percentage / 100)
    height = round(render.resolution_y * render.resolution_percentage / 100)
    keyframes = "--keyframes" in argv[1:]
    frames = _key_frames(scene, camera) if keyframes else list(range(scene.frame_start, scene.frame_end + 1))
    cameras = [_camera_at(scene, camera, f) for f in frames]
    matrices, fovs = [c[0] for c in cameras], [c[1] for c in cameras]
    if keyframes:
        out, warnings = keyframes_path(frames, matrices, fovs, fps)
    else:
        out, warnings = frames_camera_path(matrices, fovs, width, height, fps), []
    for warning in warnings:
        print(f"warning: {warning}")
    with open(argv[0], "w", encoding="utf-8") as handle:
        json.dump(out, handle, indent=1)
    print(f"wrote {argv[0]}: camera {camera.name}, {len(frames)} {'keyframes' if keyframes else 'frames'} "
          f"at {fps:g} fps, {width}x{height}")
    return 0


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else ARGS
    try:
        sys.exit(main(argv))
    except ExportError as error:
        print(f"blender_vista_camera: error: {error}", file=sys.stderr)
        sys.exit(2)
