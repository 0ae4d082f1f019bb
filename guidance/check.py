"""A cheap before/after check of a scene along a camera path: coverage and floaters, no ground truth needed.

`vista refine` prints it and the studio's Refine step shows it, for the scene before and after guidance:
- coverage (`render.coverage.path_coverage`): the share of what each path frame shows that at least two photos saw
  from a similar direction and distance;
- floaters: the share of each ray's compositing weight lying more than `margin` in front of the ray's own surface,
  taken as the depth where its accumulated weight reaches one half (the median, which a faint floater does not
  move, unlike the mean depth a render reports). A clean surface puts almost all weight within a few samples of
  that depth; fog and floaters in front of it raise the share.

Frames are rendered small (`width_px` wide) so the check takes seconds, not minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from render.cameras import Cameras, Rays, image_rays
from render.coverage import CoverageConfig, path_coverage
from render.render import DEFAULT_CHUNK_RAYS, Renderable, march, rays_to_scene
from render.volume import accumulate, exclusive_prefix, render_weights
from scenes.scene import Scene
from vista_core.progress import ProgressCallback

__all__ = ["PathCheck", "check_path", "floater_share", "pick_check_frames"]


@dataclass(frozen=True)
class PathCheck:
    """The cheap check of one scene along a path."""

    coverage: float
    """Mean coverage score of the checked frames, in [0, 1] (higher: more of what they show was photographed)."""
    floaters: float
    """Mean share of compositing weight in front of the surface over the checked frames' surface pixels, in
    [0, 1] (lower is cleaner)."""
    frames: int
    """Path frames checked."""
    width_px: int
    """Width they were rendered at."""

    def to_dict(self) -> dict:
        return {"coverage": round(self.coverage, 4), "floaters": round(self.floaters, 5), "frames": self.frames,
                "width_px": self.width_px}


@torch.no_grad()
def floater_share(renderable: Renderable, cameras: Cameras, index: int, margin: float = 0.1,
                  min_opacity: float = 0.5, chunk_rays: int = DEFAULT_CHUNK_RAYS) -> float | None:
    """Mean share of each ray's weight nearer than (1 - margin) x its median depth, over the rays of view `index`
    whose opacity is at least `min_opacity`; None if no ray meets a surface."""
    rays = rays_to_scene(image_rays(cameras, index), renderable.scene_from_world.float())
    shares = []
    for start in range(0, len(rays), chunk_rays):
        chunk = Rays(rays.origins[start:start + chunk_rays], rays.directions[start:start + chunk_rays])
        n = len(chunk)
        samples = march(renderable, chunk, None)
        if len(samples.ray_indices) == 0:
            continue
        sigma, _ = renderable.field.density_and_features(samples.u)
        weights, _, _ = render_weights(sigma, samples.t_ends - samples.t_starts, samples.ray_indices, n)
        opacity = accumulate(weights, None, samples.ray_indices, n)
        t_mid = (samples.t_starts + samples.t_ends) * 0.5
        # the median depth: the first sample at which the weight accumulated so far reaches half the ray's opacity
        reached = exclusive_prefix(weights, samples.ray_indices, n) + weights >= 0.5 * opacity[samples.ray_indices]
        median = torch.full((n,), float("inf")).scatter_reduce(
            0, samples.ray_indices[reached], t_mid[reached], reduce="amin", include_self=True)
        front = t_mid < (1 - margin) * median[samples.ray_indices]
        in_front = accumulate(weights * front.float(), None, samples.ray_indices, n)
        surface = opacity >= min_opacity
        shares.append(in_front[surface] / opacity[surface])
    values = torch.cat(shares) if shares else torch.zeros(0)
    return float(values.mean()) if len(values) else None


def pick_check_frames(targets: Cameras, count: int) -> Cameras:
    """`count` frames spread evenly along the path (all of them if it is shorter)."""
    if len(targets) <= count:
        return targets
    return targets[torch.linspace(0, len(targets) - 1, count).round().long()]


def check_path(scene: Scene, targets: Cameras, frames: int = 6, width_px: int = 64,
               progress: ProgressCallback | None = None) -> PathCheck:
    """Coverage and floaters of `scene` on `frames` frames spread along `targets`, rendered `width_px` wide.

    `progress` gets the coverage events (`render.coverage`); a `Cancelled` raised by it stops the check."""
    renderable = scene.renderable()
    renderable.train(False)  # rendering behaviour; refinement and training switch back on their own
    picked = pick_check_frames(targets, frames)
    small = picked.scaled(min(1.0, width_px / picked.width))
    # the photos' depth from the occupancy grid (no network evaluation): on lego-100 (87 photos) the rendered
    # depth maps made up most of the check's time
    config = CoverageConfig(grid_width=min(32, width_px), capture_width=24, visibility="occupancy")
    coverage = path_coverage(renderable, scene.capture, small, config=config, progress=progress)
    shares = [floater_share(renderable, small, i) for i in range(len(small))]
    measured = [s for s in shares if s is not None]
    floaters = float(sum(measured) / len(measured)) if measured else 0.0
    return PathCheck(float(coverage.scores.mean()), floaters, len(small), small.width)
