"""From a transforms file's frames to cameras and photos: missing images, per-photo sizes and intrinsics, and
the resolution the photos are loaded at.

Each frame carries its own pinhole intrinsics at its image's full size (nerfstudio writes per-frame `fl_x, fl_y,
cx, cy, w, h` when photos differ). Downscaling by a whole number N averages each N x N block of pixels into one
(`scenes.images_io.read_image`) and divides the intrinsics by N: with pixel centres at (u + 0.5, v + 0.5)
(render.cameras' convention), continuous image coordinates map by exactly 1/N (pixel u of the result covers
[N u, N u + N) of the photo), so fx' = fx / N and cx' = cx / N put every 3D point on the same spot of the small
picture as of the photo. Dropping the last W mod N columns and H mod N rows moves no coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from render.cameras import Cameras
from scenes.images_io import is_missing, probe_image, read_image
from scenes.photos import LoadOptions, Photos, check_downscaled, downscaled_size
from vista_core.errors import VistaError, require_finite

SHOWN_MISSING = 5
"""How many missing images a message names before "and N more"."""


@dataclass
class Frame:
    """One frame of a transforms file, before its image is read."""

    path: Path
    name: str
    where: str  # the transforms file, for messages about the image
    matrix: np.ndarray  # [3, 4] camera-to-world, OpenGL axes
    split: str = "train"
    focal_x_fraction: float | None = None  # Blender: focal length as a fraction of the image width
    intrinsics: tuple[float, float, float | None, float | None] | None = None  # fx, fy, cx, cy in full-size pixels
    declared_size: tuple[float | None, float | None] = (None, None)  # 'w', 'h' from the transforms file
    distortion: list[float] = field(default_factory=lambda: [0.0] * 6)  # k1, k2, k3, k4, p1, p2


@dataclass
class LoadedFrames:
    frames: list[Frame]
    cameras: Cameras
    photos: Photos
    factor: int
    notes: list[str]


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_MISSING])
    return shown + (f" and {len(names) - SHOWN_MISSING} more" if len(names) > SHOWN_MISSING else "")


def present_frames(frames: list[Frame], root: Path, source: Path, options: LoadOptions,
                   notes: list[str]) -> list[Frame]:
    """The frames whose images exist. Missing ones are all named in one refusal, or skipped with a note when
    `options.skip_missing`."""
    missing = [f for f in frames if is_missing(f.path, root)]
    if not missing:
        return frames
    count = f"{len(missing)} of {len(frames)} images"
    if len(missing) == len(frames):
        raise VistaError(f"{source}: all {len(frames)} images are missing: {_listing([f.name for f in missing])}")
    if not options.skip_missing:
        raise VistaError(f"{source}: {count} missing: {_listing([f.name for f in missing])} "
                         "(use --skip-missing to train on the rest)")
    notes.append(f"skipping {count} that are missing (--skip-missing): {_listing([f.name for f in missing])}")
    return [f for f in frames if not is_missing(f.path, root)]


def _full_size_intrinsics(frame: Frame, width: int, height: int) -> list[float]:
    if frame.focal_x_fraction is not None:  # Blender: square pixels, centred principal point
        focal = frame.focal_x_fraction * width
        return [focal, focal, width / 2, height / 2]
    assert frame.intrinsics is not None
    fx, fy, cx, cy = frame.intrinsics
    return [fx, fy, width / 2 if cx is None else cx, height / 2 if cy is None else cy]


def _check_declared_size(frame: Frame, width: int, height: int) -> None:
    declared_w, declared_h = frame.declared_size
    if declared_w is not None and (round(declared_w), round(declared_h or height)) != (width, height):
        raise VistaError(f"{frame.path}: image is {width}x{height} but {frame.where} says "
                         f"{declared_w:.0f}x{(declared_h or 0):.0f}")


def load_frames(frames: list[Frame], root: Path, options: LoadOptions, notes: list[str]) -> LoadedFrames:
    """Read every frame's image at the options' resolution into one `Photos` buffer, with cameras of each
    photo's own (downscaled) size. Headers are read first, so a bad image or size is refused before any photo is
    decoded, and memory holds one full-size photo at a time plus the downscaled set."""
    headers = [probe_image(f.path, f.where, root) for f in frames]
    for frame, header in zip(frames, headers):
        _check_declared_size(frame, header.width, header.height)
    originals = [(h.width, h.height) for h in headers]
    factor = options.factor(originals)
    sizes = [downscaled_size(w, h, factor) for w, h in originals]
    for frame, original, size in zip(frames, originals, sizes):
        check_downscaled(frame.name, original, size, factor)
    if factor > options.downscale:
        largest = max(range(len(originals)), key=lambda i: max(originals[i]))
        (w, h), (w2, h2) = originals[largest], sizes[largest]
        notes.append(f"photos downscaled by {factor} ({w}x{h} -> {w2}x{h2}) so that the long side is at most "
                     f"{options.max_long_side} px (--max-long-side 0 keeps full size)")
    photos = Photos.empty(sizes, 4 if any(h.has_alpha for h in headers) else 3)
    for i, frame in enumerate(frames):
        photos.put(i, read_image(frame.path, frame.where, root, factor))
    intrinsics = torch.tensor([_full_size_intrinsics(f, w, h) for f, (w, h) in zip(frames, originals)],
                              dtype=torch.float64)
    k = (intrinsics / factor).float()
    distortion = torch.tensor([f.distortion for f in frames], dtype=torch.float32)
    require_finite(distortion.tolist(), f"{frames[0].where}: distortion")
    world_from_camera = torch.tensor(np.stack([f.matrix for f in frames]), dtype=torch.float32)
    cameras = Cameras.sized(world_from_camera, k[:, 0], k[:, 1], k[:, 2], k[:, 3],
                            torch.tensor([w for w, _ in sizes]), torch.tensor([h for _, h in sizes]),
                            distortion if torch.any(distortion != 0) else None)
    return LoadedFrames(frames, cameras, photos, factor, notes)
