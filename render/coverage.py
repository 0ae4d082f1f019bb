"""How well did the photos see what each frame of a camera path shows?

For each frame: render its depth on a coarse pixel grid (`render_camera` on a scaled-down copy of the
frame's camera), back-project the pixels that hit something to surface points, and count, for each
point, the capture cameras that saw it *similarly*: the point projects inside the photo, in front of
it; the photo's ray and the frame's ray meet at the point within `max_angle_deg`; the photo was within
`distance_ratio` of the frame's distance to the point; and the point is not hidden behind something
else in that photo. Visibility compares with each photo's depth map, computed once per report at low
resolution: by default their rendered depth, or (`visibility="occupancy"`) the depth of the first occupied
cell of the occupancy grid along each ray (the renderer's own marcher without network evaluation; the
conservative grid makes it stricter).
A frame's score is the fraction of its surface points seen by at least `min_views` photos. Frames that
look at regions the photos never saw (the back of an object photographed from the front, the far side
of a wall) score near 0; frames near the photos score near 1.

Runs of frames below `low_score` become warnings such as
"frames 84-120 (2.8-4.0 s) look at regions no photo covered well (coverage 0.12)".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from render.cameras import Cameras, image_rays
from render.render import rays_to_scene, render_camera
from render.representation import SceneRepresentation as Renderable
from vista_core.errors import VistaError
from vista_core.progress import ProgressCallback, report

STAGE_PHOTOS = "coverage: rendering the photos"
"""Events while the photos' depth maps are made (done, total photos)."""
STAGE_FRAMES = "coverage: scoring frames"
"""Events while the path's frames are scored (done, total scored frames)."""


@dataclass(frozen=True)
class CoverageConfig:
    grid_width: int = 32
    """Pixels sampled across a frame (rows follow the aspect ratio)."""
    capture_width: int = 32
    """Width of the photos' rendered depth maps used for the visibility test."""
    max_angle_deg: float = 30.0
    """A photo sees a point 'similarly' if its ray and the frame's ray meet there within this angle."""
    distance_ratio: float = 2.5
    """... and if its distance to the point is within this factor of the frame's."""
    depth_tolerance: float = 0.08
    """Relative slack of the visibility test against the photo's rendered depth."""
    min_views: int = 2
    """Photos needed for a point to count as covered."""
    min_opacity: float = 0.5
    """A pixel shows a surface if its rendered opacity is at least this."""
    visibility: str = "render"
    """How the photos' depth maps are made: "render" (rendered depth) or "occupancy" (first occupied grid
    cell: no network evaluation, but the conservative grid makes it stricter)."""
    low_score: float = 0.5
    """Frames scoring below this are reported."""


@dataclass
class CaptureDepth:
    """The capture cameras at low resolution with their rendered depth (world units along each ray)."""

    cameras: Cameras
    depth: torch.Tensor  # [N, h, w], +inf where the photo's ray hits nothing
    slack: float = 0.0  # absolute depth slack (world units): the grid's cell size for occupancy depth


@dataclass
class CoverageReport:
    scores: np.ndarray  # [F] in [0, 1]
    surface_fraction: np.ndarray  # [F] fraction of sampled pixels showing a surface
    times: np.ndarray  # [F] seconds
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"scores": [round(float(s), 4) for s in self.scores],
                "surface_fraction": [round(float(s), 4) for s in self.surface_fraction],
                "times": [round(float(t), 4) for t in self.times], "warnings": self.warnings,
                "mean_score": round(float(self.scores.mean()), 4) if len(self.scores) else None}


def render_capture_depth(renderable: Renderable, capture: Cameras, config: CoverageConfig = CoverageConfig(),
                         progress: ProgressCallback | None = None) -> CaptureDepth:
    """Every capture camera's depth at `config.capture_width` pixels wide (once per report); a STAGE_PHOTOS
    event after each photo (a `Cancelled` raised by `progress` stops it)."""
    if config.visibility not in ("occupancy", "render"):
        raise VistaError(f"coverage: visibility must be 'occupancy' or 'render', got {config.visibility!r}")
    small = capture.scaled(min(1.0, config.capture_width / capture.width)).pinhole()
    depths = []
    for i in range(len(small)):
        if config.visibility == "occupancy":
            depths.append(occupancy_depth(renderable, small, i))
        else:
            image = render_camera(renderable, small[i], 0)  # one camera: its own photo's size
            depths.append(torch.where(image.opacity >= config.min_opacity, image.depth,
                                      torch.full_like(image.depth, math.inf)))
        report(progress, STAGE_PHOTOS, i + 1, len(small))
    slack = 2.0 * renderable.occupancy_cell / renderable.scale if config.visibility == "occupancy" else 0.0
    return CaptureDepth(small, _stack_padded(depths), slack)


def _stack_padded(depths: list[torch.Tensor]) -> torch.Tensor:
    """Depth maps of photos of any sizes as one [N, H_max, W_max] tensor, +inf beyond each photo (never read:
    `count_similar_views` keeps to each photo's own size)."""
    h, w = max(d.shape[0] for d in depths), max(d.shape[1] for d in depths)
    return torch.stack([torch.nn.functional.pad(d, (0, w - d.shape[1], 0, h - d.shape[0]), value=math.inf)
                        for d in depths])


@torch.no_grad()
def occupancy_depth(renderable: Renderable, cameras: Cameras, index: int) -> torch.Tensor:
    """Distance (world units) along each pixel's ray to the first occupied grid cell [H, W]; +inf if none."""
    rays = rays_to_scene(image_rays(cameras, index), renderable.scene_from_world.float())
    depth = renderable.occupied_depth(rays)
    width, height = cameras.size_of(index)
    return (depth / renderable.scale).reshape(height, width)


def frame_surface_points(renderable: Renderable, cameras: Cameras, index: int,
                         config: CoverageConfig = CoverageConfig()) -> tuple[torch.Tensor, int]:
    """Surface points [P, 3] (world) seen by frame `index` on a coarse pixel grid, and the number of pixels sampled."""
    small = cameras[index].scaled(min(1.0, config.grid_width / cameras.width))
    image = render_camera(renderable, small, 0)
    rays = image_rays(small, 0)
    hit = image.opacity.reshape(-1) >= config.min_opacity
    points = rays.origins[hit] + rays.directions[hit] * image.depth.reshape(-1)[hit, None]
    return points, small.width * small.height


def count_similar_views(points: torch.Tensor, viewer: torch.Tensor, capture: CaptureDepth,
                        config: CoverageConfig = CoverageConfig()) -> torch.Tensor:
    """For surface points [P, 3] seen from `viewer` [3]: how many capture cameras saw each one similarly [P]."""
    cams = capture.cameras
    seen = cams.project(points)  # [N, P]
    u, v = seen.pixels[..., 0], seen.pixels[..., 1]
    widths, heights = (size.to(points.device)[:, None] for size in cams.image_sizes())  # each photo's own size
    inside = seen.in_front & (u >= 0) & (u < widths) & (v >= 0) & (v < heights)
    offsets = points[None] - cams.positions[:, None]  # [N, P, 3]
    distance = offsets.norm(dim=-1)  # [N, P]
    # visibility: the photo's own depth at that pixel must not be in front of the point
    ui = torch.minimum(u.long().clamp(min=0), widths - 1)
    vi = torch.minimum(v.long().clamp(min=0), heights - 1)
    photo_depth = capture.depth[torch.arange(len(cams), device=points.device)[:, None], vi, ui]
    visible = distance <= photo_depth * (1 + config.depth_tolerance) + capture.slack
    # similar angle and distance to the frame's view of the point
    frame_offsets = points - viewer
    frame_distance = frame_offsets.norm(dim=-1).clamp(min=1e-9)  # [P]
    cosine = (offsets * frame_offsets[None]).sum(-1) / (distance.clamp(min=1e-9) * frame_distance[None])
    similar_angle = cosine >= math.cos(math.radians(config.max_angle_deg))
    ratio = distance / frame_distance[None]
    similar_distance = (ratio <= config.distance_ratio) & (ratio >= 1 / config.distance_ratio)
    return (inside & visible & similar_angle & similar_distance).sum(dim=0)


def frame_coverage(renderable: Renderable, cameras: Cameras, index: int, capture: CaptureDepth,
                   config: CoverageConfig = CoverageConfig()) -> tuple[float, float]:
    """(score, surface fraction) of frame `index`; a frame that shows no surface scores 1 (nothing to get wrong)."""
    points, n_pixels = frame_surface_points(renderable, cameras, index, config)
    if len(points) == 0:
        return 1.0, 0.0
    counts = count_similar_views(points, cameras.world_from_camera[index, :, 3], capture, config)
    return float((counts >= config.min_views).float().mean()), len(points) / n_pixels


def path_coverage(renderable: Renderable, capture: Cameras, frames: Cameras, times: np.ndarray | None = None,
                  config: CoverageConfig = CoverageConfig(), frame_step: int = 1,
                  progress: ProgressCallback | None = None,
                  depth: CaptureDepth | None = None) -> CoverageReport:
    """Coverage of every `frame_step`-th frame (others take the nearest scored frame's value) plus warnings.

    `depth` reuses the photos' depth maps of an earlier call (`render_capture_depth`). Events: STAGE_PHOTOS
    (unless `depth` is given), then STAGE_FRAMES after each scored frame; a `Cancelled` raised by `progress`
    stops it."""
    times = np.arange(len(frames), dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    if depth is None:
        depth = render_capture_depth(renderable, capture, config, progress)
    scored = list(range(0, len(frames), max(1, frame_step)))
    if scored[-1] != len(frames) - 1:
        scored.append(len(frames) - 1)
    values = {}
    for j, i in enumerate(scored):
        values[i] = frame_coverage(renderable, frames, i, depth, config)
        report(progress, STAGE_FRAMES, j + 1, len(scored))
    keys = np.array(scored)
    nearest = keys[np.abs(np.arange(len(frames))[:, None] - keys[None]).argmin(axis=1)]
    scores = np.array([values[int(k)][0] for k in nearest])
    surface = np.array([values[int(k)][1] for k in nearest])
    return CoverageReport(scores, surface, times, coverage_warnings(scores, surface, times, config.low_score))


def coverage_warnings(scores: np.ndarray, surface: np.ndarray, times: np.ndarray, low: float = 0.5,
                      min_surface: float = 0.02) -> list[str]:
    warnings = []
    for start, end in _runs(scores < low):
        worst = float(scores[start:end + 1].min())
        warnings.append(f"frames {_span(start, end)} ({_span_s(times[start], times[end])}) look at regions no photo "
                        f"covered well (coverage {float(scores[start:end + 1].mean()):.2f}, lowest {worst:.2f})")
    for start, end in _runs(surface < min_surface):
        warnings.append(f"frames {_span(start, end)} ({_span_s(times[start], times[end])}) show almost nothing of "
                        "the scene (the camera looks past it)")
    return warnings


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, flag in enumerate(list(mask) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - 1))
            start = None
    return runs


def _span(a: int, b: int) -> str:
    return f"{a}" if a == b else f"{a}-{b}"


def _span_s(a: float, b: float) -> str:
    return f"{a:.1f} s" if abs(a - b) < 0.05 else f"{a:.1f}-{b:.1f} s"
