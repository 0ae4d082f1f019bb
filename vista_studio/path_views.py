"""Step 3's pictures: the top-down map the user clicks (path coloured by coverage once checked), its pixel
mapping (map.json, read back by vista_studio.path when the user clicks), the 3D preview and the notes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vista_core.files import atomic_write_bytes, atomic_write_json
from vista_studio import workspace as wsp
from vista_studio.path import MAP_JSON, PATH_DIR, path_scene, read_coverage, read_path

MAP_FILE = "map.png"
GLB_FILE = "path.glb"


def path_notes(path, coverage: dict | None) -> list[str]:
    notes = [f"{len(path.keyframes)} keyframes, {path.seconds:g} s{' (loop)' if path.loop else ''}."]
    if coverage is None:
        notes.append("Coverage not checked yet: **Check coverage** colours the path by how well the photos "
                     "saw what each frame shows.")
    else:
        notes.append(f"Coverage: mean {coverage['mean_score']:.2f} (path green = well seen, red = unseen).")
        notes += [f"⚠ {w}" for w in coverage["warnings"]]
    return notes


def path_views(workspace: Path) -> dict:
    """The top-down map, the 3D preview and the notes, drawn by render.path_preview as `vista path --top-down
    --glb` draws them: {"map": png file, "notes": markdown, "glb": file or None}. Drawn here rather than by
    vista_api.paths.write_previews: the studio also needs the map's pixel mapping (map.json, for clicks) and a
    map before there is any path (to click the first keyframes on)."""
    from render.path_preview import path_glb, top_down_map

    opened = path_scene(workspace)
    scene, frame = opened.scene, opened.frame
    path = read_path(workspace)
    folder = workspace / PATH_DIR
    points, colours = opened.map_points()  # a place: the surfaces its photos saw near the subject
    coverage = read_coverage(workspace, path)
    pending = wsp.read_session(workspace).get("pending_key")
    glb = None
    if path is not None:
        frames, _ = path.evaluate(path.frame_times())
        keys = path.keyframe_matrices()
        key_positions = keys[:, :, 3]
        glb = folder / GLB_FILE
        atomic_write_bytes(glb, path_glb(frames, keys, np.array([k.fov_y_deg for k in path.keyframes]), 16 / 9,
                                         points=points, colours=colours, capture=scene.capture))
        notes = path_notes(path, coverage)
    else:
        # no path yet: the map still needs a frame to centre on (the subject centre, or the pending click)
        frames = np.concatenate([np.eye(3), np.asarray(frame.centre, float)[:, None]], 1)[None]
        key_positions = np.array([pending]) if pending else None
        notes = ["Click the map twice to place two keyframes, or apply a preset."]
    top = top_down_map(frames, frame.up, centre=frame.centre, keyframe_positions=key_positions, points=points,
                       colours=colours, capture=scene.capture,
                       coverage=None if coverage is None else np.array(coverage["scores"]),
                       point_px=1 if opened.geometry is None else 2)
    atomic_write_bytes(folder / MAP_FILE, top.png())
    atomic_write_json(folder / MAP_JSON, {"size": list(top.image.size), "centre": top.centre.tolist(),
                                          "right": top.right.tolist(), "forward": top.forward.tolist(),
                                          "up": top.up.tolist(), "units_per_pixel": top.units_per_pixel})
    if pending:
        notes.append("One keyframe placed; click the map again for the second.")
    return {"map": str(folder / MAP_FILE), "notes": "\n\n".join(notes), "glb": str(glb) if glb else None}
