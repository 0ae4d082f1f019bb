"""What a real place holds, for camera paths: the surfaces the photos saw, the subject they centred on, and which
points a camera may occupy.

An unbounded scene's occupancy grid calls most of the contracted cube occupied (the far field is never carved
out), so presets fitted to it and cameras checked against it fail. This summary is built from the capture instead:

- each of (up to `max_views`) photos is rendered at low resolution from its own viewpoint (`render_camera`, or any
  `ViewRenderer`) and its depth back-projected: points of the surfaces the photos saw, with their colours;
- the subject is what the photos centred on: the points seen by the middle of the photos, near the capture's focus
  of attention (nerfstudio's `focus_of_attention`, the nearest point to every view axis); its centre is their
  median and its radius a percentile of their distances to it;
- the map shows the surface points within the photos' distance of the subject (the focus region);
- a point is seen through if at least `free_views` photos see it in front of the surface they rendered there (the
  space between a camera and what it saw is empty: free-space carving, as in Kutulakos & Seitz's space carving);
  surface points that other photos see through are floaters of one render and are dropped; a camera is in the
  way if it is within `margin` subject radii of a remaining (solid) surface point, or if no photo saw through it
  and it is within `fill` subject radii of one (inside what the photos saw the outside of). Farther from every
  surface, space no photo pointed at (behind the subject of a half-circle capture, above the scene) is open air.

Everything is in world coordinates; `PathGeometry.arrays()`/`from_arrays` turn it into tensors for a cache file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from render.cameras import Cameras, image_rays
from render.config import check_float, check_int
from render.representation import Image, SceneRepresentation

ViewRenderer = Callable[[Cameras, int], Image]
"""Renders camera `index` of some cameras: RGB, depth (world units along the ray) and opacity."""


@dataclass(frozen=True)
class GeometryConfig:
    depth_width: int = 32
    """Pixels across each photo's rendered depth map."""
    max_views: int = 16
    """Photos rendered (evenly spread through the capture)."""
    min_opacity: float = 0.5
    """A pixel shows a surface if its rendered opacity is at least this."""
    centre_crop: float = 0.3
    """The subject is what the middle `centre_crop` of each photo (in width and height) shows."""
    radius_percentile: float = 65.0
    """Subject radius: this percentile of the subject points' distances to their median."""
    focus_factor: float = 1.0
    """The map's focus region: points within this many median photo distances of the subject centre."""
    free_views: int = 2
    """A point is free if this many photos (or all that see it, if fewer) saw past it."""
    depth_tolerance: float = 0.05
    """Relative slack on a photo's depth before a point counts as behind its surface."""
    margin: float = 0.1
    """Cameras keep this many subject radii from any surface point."""
    fill: float = 1.0
    """Space no photo saw through counts as solid within this many subject radii of a surface point (the inside of
    what the photos saw the outside of); farther away it is open air no photo pointed at."""

    def __post_init__(self) -> None:
        check_int("depth_width", self.depth_width, 4, 512)
        check_int("max_views", self.max_views, 2, 1000)
        check_float("min_opacity", self.min_opacity, 0.0, 1.0)
        check_float("centre_crop", self.centre_crop, 0.05, 1.0)
        check_float("radius_percentile", self.radius_percentile, 1.0, 100.0)
        check_float("focus_factor", self.focus_factor, 0.1, 10.0)
        check_int("free_views", self.free_views, 1, 100)
        check_float("depth_tolerance", self.depth_tolerance, 0.0, 1.0)
        check_float("margin", self.margin, 0.0, 5.0)
        check_float("fill", self.fill, 0.0, 10.0)


@dataclass
class PathGeometry:
    """Surfaces the photos saw and the subject they centred on (world coordinates)."""

    views: Cameras  # the low-resolution photo cameras whose depth was rendered
    depth: torch.Tensor  # [V, h, w] world units along each pixel's ray, +inf where nothing was hit
    points: np.ndarray  # [P, 3] every back-projected surface point
    colours: np.ndarray  # [P, 3] uint8
    centre: np.ndarray  # [3] subject centre
    radius: float  # subject radius
    focus_distance: float  # median distance of the photos to the centre
    config: GeometryConfig
    _solid: np.ndarray | None = field(default=None, init=False, repr=False)  # [P] bool, worked out once
    _tree: object = field(default=None, init=False, repr=False)  # scipy k-d tree of the solid points

    def solid(self) -> np.ndarray:
        """[P] bool: the surface points the other photos agree on. A floater that one photo rendered in front of
        the true surface is seen through by the others and left out."""
        if self._solid is None:
            self._solid = ~self._carved_free(self.points) if len(self.points) else np.zeros(0, bool)
        return self._solid

    def focus_points(self) -> tuple[np.ndarray, np.ndarray]:
        """The solid surface points of the focus region (within `focus_factor` photo distances of the subject) and
        their colours: what a top-down map of the place shows."""
        near = np.linalg.norm(self.points - self.centre, axis=1) <= self.config.focus_factor * self.focus_distance
        keep = near & self.solid()
        return self.points[keep], self.colours[keep]

    def occupied(self, points: np.ndarray) -> np.ndarray:
        """[N] bool: is a camera at these world points [N, 3] inside or too close to what the photos saw? Too close:
        within `margin` subject radii of a solid surface point; inside: no photo saw past it and it is within
        `fill` subject radii of one."""
        from scipy.spatial import cKDTree

        query = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if self._tree is None and self.solid().any():
            self._tree = cKDTree(self.points[self.solid()])
        if self._tree is None:
            return ~self._carved_free(query)
        nearest, _ = self._tree.query(query, k=1)
        blocked = nearest < self.config.margin * self.radius
        unseen = ~blocked & (nearest < self.config.fill * self.radius)
        if unseen.any():
            blocked[unseen] = ~self._carved_free(query[unseen])
        return blocked

    def _carved_free(self, points: np.ndarray) -> np.ndarray:
        """Free-space carving: seen in front of the rendered surface by enough photos, or seen by none."""
        p = torch.as_tensor(points, dtype=torch.float32)
        seen = self.views.project(p)  # [V, N]
        u, v = seen.pixels[..., 0], seen.pixels[..., 1]
        inside = seen.in_front & (u >= 0) & (u < self.views.width) & (v >= 0) & (v < self.views.height)
        ui = u.long().clamp(0, self.views.width - 1)
        vi = v.long().clamp(0, self.views.height - 1)
        surface = self.depth[torch.arange(len(self.views))[:, None], vi, ui]
        distance = (p[None] - self.views.positions[:, None]).norm(dim=-1)
        in_front = inside & (distance < surface * (1 - self.config.depth_tolerance))
        n_seen = inside.sum(dim=0)
        needed = n_seen.clamp(max=self.config.free_views)
        return ((n_seen == 0) | (in_front.sum(dim=0) >= needed)).numpy()

    def arrays(self) -> dict[str, torch.Tensor]:
        """The summary's numbers as contiguous tensors (a cache file; the views come from the capture again)."""
        return {"depth": self.depth.contiguous(), "points": torch.from_numpy(self.points).contiguous(),
                "colours": torch.from_numpy(self.colours).contiguous()}

    @staticmethod
    def from_arrays(arrays: dict[str, torch.Tensor], capture: Cameras,
                    config: GeometryConfig = GeometryConfig()) -> PathGeometry:
        views = photo_views(capture, config)
        depth = arrays["depth"].float()
        if tuple(depth.shape) != (len(views), views.height, views.width):
            raise ValueError(f"cached depth {tuple(depth.shape)} does not fit the capture's views")
        return summarise(views, depth, arrays["points"].double().numpy(), arrays["colours"].numpy(), config)


def photo_views(capture: Cameras, config: GeometryConfig = GeometryConfig()) -> Cameras:
    """Up to `max_views` photos, evenly spread, at `depth_width` pixels across (pinhole)."""
    picks = np.unique(np.linspace(0, len(capture) - 1, min(config.max_views, len(capture))).round().astype(int))
    return capture[picks.tolist()].scaled(min(1.0, config.depth_width / capture.width)).pinhole()


def nerf_views(representation: SceneRepresentation) -> ViewRenderer:
    """Render with the scene itself (`render.render.render_camera`)."""
    from render.render import render_camera

    return lambda cameras, index: render_camera(representation, cameras, index)


@torch.no_grad()
def build_path_geometry(capture: Cameras, render_view: ViewRenderer,
                        config: GeometryConfig = GeometryConfig()) -> PathGeometry:
    """Render the photos' depth from their own viewpoints, back-project it and find the subject."""
    views = photo_views(capture, config)
    depths, points, colours = [], [], []
    for i in range(len(views)):
        image = render_view(views, i)
        hit = (image.opacity >= config.min_opacity) & torch.isfinite(image.depth) & (image.depth > 0)
        depths.append(torch.where(hit, image.depth.float(), torch.full_like(image.depth.float(), math.inf)))
        rays = image_rays(views, i)
        flat = hit.reshape(-1).cpu()
        points.append(rays.origins[flat] + rays.directions[flat] * image.depth.reshape(-1).cpu()[flat, None])
        colours.append(image.rgb.reshape(-1, 3).cpu()[flat])
    depth = torch.stack(depths).cpu()
    xyz = torch.cat(points).double().numpy()
    rgb = (torch.cat(colours).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    return summarise(views, depth, xyz, rgb, config)


def summarise(views: Cameras, depth: torch.Tensor, points: np.ndarray, colours: np.ndarray,
              config: GeometryConfig) -> PathGeometry:
    """The subject (centre, radius) and the photos' distance to it, from the depth maps and their points."""
    from render.nerfstudio_parts import focus_of_attention

    focus = focus_of_attention(views.world_from_camera).double().numpy()
    positions = views.positions.double().numpy()
    middle = _centre_points(views, depth, config.centre_crop)
    reach = float(np.median(np.linalg.norm(positions - focus, axis=1)))
    if len(middle):
        # what the middle of the photos shows, near where they pointed (a far wall behind the subject is not it)
        near = middle[np.linalg.norm(middle - focus, axis=1) <= config.focus_factor * reach]
        middle = near if len(near) >= 8 else middle
    centre = np.median(middle, axis=0) if len(middle) >= 8 else focus
    distance = float(np.median(np.linalg.norm(positions - centre, axis=1)))
    radius = float(np.percentile(np.linalg.norm(middle - centre, axis=1), config.radius_percentile)) \
        if len(middle) >= 8 else 0.25 * distance
    radius = float(np.clip(radius, 0.02 * distance, 0.8 * distance))  # a subject, not a point nor the whole place
    return PathGeometry(views, depth, points, colours, centre, radius, distance, config)


def _centre_points(views: Cameras, depth: torch.Tensor, crop: float) -> np.ndarray:
    """Surface points [M, 3] seen by the middle `crop` of every view."""
    h, w = views.height, views.width
    rows = slice(int(h * (1 - crop) / 2), max(int(h * (1 + crop) / 2), int(h * (1 - crop) / 2) + 1))
    cols = slice(int(w * (1 - crop) / 2), max(int(w * (1 + crop) / 2), int(w * (1 - crop) / 2) + 1))
    found = []
    for i in range(len(views)):
        rays = image_rays(views, i)
        d = depth[i]
        mask = torch.zeros_like(d, dtype=torch.bool)
        mask[rows, cols] = True
        mask &= torch.isfinite(d)
        flat = mask.reshape(-1)
        found.append(rays.origins[flat] + rays.directions[flat] * d.reshape(-1)[flat, None])
    return torch.cat(found).double().numpy() if found else np.zeros((0, 3))
