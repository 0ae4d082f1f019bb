"""A capture of mixed photo sizes and orientations made from a real one (fox-small): some photos turned a quarter
turn clockwise (landscape), some cropped, the rest as taken. Each changed frame gets nerfstudio's per-frame keys
(`fl_x, fl_y, cx, cy, w, h, k1, k2, p1, p2`) and, for a turned photo, the pose of the turned camera, so the
dataset shows exactly the same scene through different cameras."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

_INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "p1", "p2")


def turned_clockwise(frame: dict, camera: dict) -> dict:
    """A frame's camera after its photo is turned 90 degrees clockwise (W x H -> H x W).

    A pixel (x, y) moves to (H - y, x): normalised image coordinates (a, b) become (-b, a), so fx' = fy,
    cx' = H - cy, cy' = cx; in OpenGL camera axes the new right is the old up and the new up the old left
    (world_from_camera columns: x' = y, y' = -x). OpenCV's tangential terms turn with the image (p1' = p2,
    p2' = -p1); the radial ones do not change."""
    matrix = np.asarray(frame["transform_matrix"], dtype=np.float64)
    turned = matrix.copy()
    turned[:3, 0], turned[:3, 1] = matrix[:3, 1], -matrix[:3, 0]
    return {**frame, "transform_matrix": turned.tolist(), "fl_x": camera["fl_y"], "fl_y": camera["fl_x"],
            "cx": camera["h"] - camera["cy"], "cy": camera["cx"], "w": camera["h"], "h": camera["w"],
            "k1": camera["k1"], "k2": camera["k2"], "p1": camera["p2"], "p2": -camera["p1"]}


def cropped(frame: dict, camera: dict, box: tuple[int, int, int, int]) -> dict:
    """A frame's camera after its photo is cropped to `box` = (left, top, right, bottom): the principal point
    moves by the crop's corner, the focal lengths stay."""
    left, top, right, bottom = box
    return {**frame, **{k: camera[k] for k in _INTRINSIC_KEYS}, "cx": camera["cx"] - left,
            "cy": camera["cy"] - top, "w": right - left, "h": bottom - top}


def make_mixed_capture(source: Path, out: Path, turn_every: int = 3, crop_every: int = 3,
                       crop: tuple[int, int, int, int] = (16, 40, 250, 440)) -> Path:
    """fox-small with frame i turned if i % turn_every == 1 and cropped to `crop` if i % crop_every == 2."""
    meta = json.loads((source / "transforms.json").read_text())
    camera = {k: meta[k] for k in _INTRINSIC_KEYS}
    (out / "images").mkdir(parents=True, exist_ok=True)
    frames = []
    for i, frame in enumerate(meta["frames"]):
        image = Image.open(source / frame["file_path"])
        if i % turn_every == 1:
            image, frame = image.transpose(Image.Transpose.ROTATE_270), turned_clockwise(frame, camera)
        elif i % crop_every == 2:
            image, frame = image.crop(crop), cropped(frame, camera, crop)
        image.save(out / frame["file_path"], quality=95)
        frames.append(frame)
    (out / "transforms.json").write_text(json.dumps({**meta, "frames": frames}, indent=1))
    return out
