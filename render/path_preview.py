"""Previews of a camera path over its scene: a GLB (render.meshes) and a top-down image (PIL) for the app.

- `scene_points(renderable)`: the scene's `preview_points` (the NeRF: occupied cells) as coloured world points
  (colour from the field, seen from above) — a cheap stand-in for the scene's geometry.
- `path_glb(...)`: the points (or a mesh), the path as a polyline, frusta at the keyframes and, faintly,
  the capture cameras; trimesh (render.meshes) writes the GLB (lines as GL_LINES, points as GL_POINTS).
- `top_down_map(...)`: an orthographic view down the scene's up axis with the points, the capture
  cameras, the path coloured by per-frame coverage (red = the photos never saw it, green = well seen) and
  numbered keyframes. The returned `TopDownMap` maps pixels to world points and back, so an app can
  turn a click into a keyframe position.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from render.cameras import Cameras
from render.meshes import glb_bytes, line_segments, point_cloud
from render.representation import SceneRepresentation

PATH_COLOUR = (255, 140, 0)
CAPTURE_COLOUR = (80, 150, 255)


def scene_points(renderable: SceneRepresentation, max_points: int = 30000, seed: int = 0,
                 view_direction: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Where the scene holds something, in world coordinates [P, 3], and its colours [P, 3] uint8 seen along
    `view_direction` (world; default straight down), from the representation's `preview_points`."""
    m = renderable.scene_from_world.double()
    device = m.device
    direction = torch.tensor([0.0, 0.0, -1.0], device=device) if view_direction is None else torch.as_tensor(
        view_direction, dtype=torch.float32, device=device)
    direction = (direction.double() @ m[:3, :3].T).float()
    points, colours = renderable.preview_points(max_points, seed, direction / direction.norm())
    if len(points) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.uint8)
    world = (points.double() - m[:3, 3]) @ torch.linalg.inv(m[:3, :3]).T
    return world.cpu().numpy(), (colours.cpu().numpy() * 255).round().astype(np.uint8)


def frustum_lines(world_from_camera: np.ndarray, fov_y_deg: float, aspect: float, size: float) -> np.ndarray:
    """Line segments [8, 2, 3] of a camera frustum (apex to 4 corners, and the image rectangle) `size` deep."""
    h = size * math.tan(math.radians(fov_y_deg) / 2)
    w = h * aspect
    corners_cam = np.array([[w, h, -size], [-w, h, -size], [-w, -h, -size], [w, -h, -size]])
    corners = corners_cam @ world_from_camera[:3, :3].T + world_from_camera[:3, 3]
    apex = world_from_camera[:3, 3]
    lines = [[apex, c] for c in corners] + [[corners[i], corners[(i + 1) % 4]] for i in range(4)]
    return np.array(lines)


def path_glb(frames_world_from_camera: np.ndarray, keyframe_world_from_camera: np.ndarray,
             keyframe_fov_deg: np.ndarray, aspect: float, *, points: np.ndarray | None = None,
             colours: np.ndarray | None = None, mesh=None, capture: Cameras | None = None,
             frustum_size: float | None = None) -> bytes:
    """GLB bytes of the scene (points or a mesh from render.meshes), the path polyline and frusta."""
    named: list[tuple[str, object]] = []
    positions = frames_world_from_camera[:, :3, 3]
    if frustum_size is None:
        extent = np.ptp(positions, axis=0).max() if len(positions) > 1 else 1.0
        frustum_size = 0.06 * max(extent, 1e-3)
    if mesh is not None:
        named.append(("scene", mesh))
    if points is not None and len(points):
        rgba = None
        if colours is not None:
            rgba = np.concatenate([colours, np.full((len(colours), 1), 255, np.uint8)], axis=1)
        named.append(("points", point_cloud(points, rgba)))
    named.append(("path", line_segments(np.stack([positions[:-1], positions[1:]], axis=1), PATH_COLOUR)))
    key_lines = np.concatenate([frustum_lines(m, f, aspect, frustum_size)
                                for m, f in zip(keyframe_world_from_camera, keyframe_fov_deg)])
    named.append(("keyframes", line_segments(key_lines, (255, 255, 255))))
    if capture is not None and len(capture):
        c2w = capture.world_from_camera.double().cpu().numpy()
        fov = capture.fov_y_deg.double().cpu().numpy()
        widths, heights = capture.image_sizes()  # photos may differ in size and orientation
        aspects = (widths.double() / heights.double()).numpy()
        capture_lines = np.concatenate([frustum_lines(m, f, a, frustum_size * 0.6)
                                        for m, f, a in zip(c2w, fov, aspects)])
        named.append(("capture", line_segments(capture_lines, CAPTURE_COLOUR)))
    return glb_bytes(named)


@dataclass
class TopDownMap:
    """A top-down image and its pixel <-> world mapping (x right, y down; pixel centres at +0.5)."""

    image: Image.Image
    centre: np.ndarray  # [3] world point at the image centre
    right: np.ndarray  # [3] world direction of +x pixels
    forward: np.ndarray  # [3] world direction of -y pixels (up the image)
    up: np.ndarray  # [3] the world up the map looks down
    units_per_pixel: float

    def pixel_to_world(self, x: float, y: float, height: float = 0.0) -> np.ndarray:
        """World point under pixel (x, y), `height` world units above the map's centre plane."""
        w, h = self.image.size
        return (self.centre + (x - w / 2) * self.units_per_pixel * self.right
                - (y - h / 2) * self.units_per_pixel * self.forward + height * self.up)

    def world_to_pixel(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates [N, 2] of world points [N, 3] (height is dropped)."""
        w, h = self.image.size
        d = np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.centre
        return np.stack([d @ self.right / self.units_per_pixel + w / 2,
                         -(d @ self.forward) / self.units_per_pixel + h / 2], axis=1)

    def height_of(self, point: np.ndarray) -> float:
        return float((np.asarray(point, dtype=np.float64) - self.centre) @ self.up)

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()


def _coverage_colour(score: float) -> tuple[int, int, int]:
    s = min(max(score, 0.0), 1.0)
    return (int(255 * min(1.0, 2 * (1 - s))), int(255 * min(1.0, 2 * s)), 40)


def top_down_map(frames_world_from_camera: np.ndarray, up: np.ndarray, *, centre: np.ndarray | None = None,
                 keyframe_positions: np.ndarray | None = None, points: np.ndarray | None = None,
                 colours: np.ndarray | None = None, capture: Cameras | None = None,
                 coverage: np.ndarray | None = None, width: int = 512, height: int = 512,
                 margin: float = 0.08, point_px: int = 1) -> TopDownMap:
    """Draw the path over the scene seen from above (down `up`), coloured by coverage when given; each point is
    a `point_px`-pixel square (2 for a place's sparser back-projected surfaces)."""
    up = np.asarray(up, dtype=np.float64)
    up = up / np.linalg.norm(up)
    positions = frames_world_from_camera[:, :3, 3]
    ref = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    right = np.cross(ref, up)
    right /= np.linalg.norm(right)
    forward = np.cross(up, right)
    content = [positions]
    if points is not None and len(points):
        content.append(points)
    if capture is not None:
        content.append(capture.positions.double().numpy())
    everything = np.concatenate(content)
    xs, ys = everything @ right, everything @ forward
    span = max(np.ptp(xs) / (width * (1 - 2 * margin)), np.ptp(ys) / (height * (1 - 2 * margin)), 1e-9)
    if centre is None:
        centre = everything.mean(axis=0)
    centre = np.asarray(centre, dtype=np.float64)
    mid = np.array([(xs.max() + xs.min()) / 2, (ys.max() + ys.min()) / 2])
    plane_centre = centre - (centre @ right) * right - (centre @ forward) * forward + mid[0] * right + mid[1] * forward
    image = Image.new("RGB", (width, height), (24, 24, 28))
    result = TopDownMap(image, plane_centre, right, forward, up, float(span))
    draw = ImageDraw.Draw(image)
    if points is not None and len(points):
        order = np.argsort(points @ up)  # draw low points first so the top of the scene is visible
        px = result.world_to_pixel(points[order])
        cols = colours[order] if colours is not None else np.full((len(order), 3), 160, np.uint8)
        for (x, y), c in zip(px, cols):
            if point_px <= 1:
                draw.point((float(x), float(y)), fill=tuple(int(v) for v in c))
            else:
                draw.rectangle((float(x), float(y), float(x) + point_px - 1, float(y) + point_px - 1),
                               fill=tuple(int(v) for v in c))
    if capture is not None:
        for x, y in result.world_to_pixel(capture.positions.double().numpy()):
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=CAPTURE_COLOUR)
    px = result.world_to_pixel(positions)
    for i in range(len(px) - 1):
        colour = PATH_COLOUR if coverage is None else _coverage_colour(float(coverage[i]))
        draw.line([tuple(px[i]), tuple(px[i + 1])], fill=colour, width=3)
    x0, y0 = px[0]
    draw.rectangle((x0 - 4, y0 - 4, x0 + 4, y0 + 4), outline=(255, 255, 255))
    if keyframe_positions is not None:
        for k, (x, y) in enumerate(result.world_to_pixel(keyframe_positions)):
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), outline=(255, 255, 255), width=2)
            draw.text((x + 5, y - 12), str(k), fill=(255, 255, 255))
    return result
