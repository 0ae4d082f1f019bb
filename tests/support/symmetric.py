"""A rotationally symmetric subject for structure from motion: a 'can' whose label repeats around it.

A plain torch ray caster (like `tests.support.procedural`): a vertical cylinder with a top cap against a
featureless grey background. The label is a fixed random colour texture (two scales of blurred noise, so
SIFT finds plenty of features) repeated `folds` times around the axis, and the cap's pattern repeats the
same way, so the view from azimuth a and from a + 360/folds degrees show the same picture. The cameras orbit
the can once, with elevation and distance wobbling at other periods so no two photos are identical (the
pre-flight check would drop exact duplicates) and the far side matches the near side with a valid but
wrong geometry, as a real can with a repeating label does.

`symmetric_orbit(...)` writes the photos (PNG, numbered in capture order) and a nerfstudio transforms.json
with the true poses (file names as `vista poses` writes them) for `scenes.sfm_accuracy.compare_poses`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from PIL import Image

from render.cameras import Cameras, camera_rays
from tests.support.procedural import look_at

RADIUS = 1.0
HEIGHT = 2.0
BACKGROUND = torch.tensor([0.5, 0.5, 0.5])
CENTRE = torch.tensor([0.0, 0.0, 0.9])


def _label_texture(seed: int, size: tuple[int, int] = (128, 256)) -> torch.Tensor:
    """RGB texture [1, 3, H, W]: blurred random colour noise at two scales (fixed seed)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 8, 16, generator=generator)
    fine = torch.rand(1, 3, 48, 96, generator=generator)
    coarse = torch.nn.functional.interpolate(coarse, size=size, mode="bicubic", align_corners=False)
    fine = torch.nn.functional.interpolate(fine, size=size, mode="bilinear", align_corners=False)
    return (0.15 + 0.5 * coarse + 0.45 * (fine - 0.5)).clamp(0, 1)


def _sample(texture: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Texture colour [R, 3] at u (wraps around, 0..1) and v (0..1)."""
    grid = torch.stack([(u % 1.0) * 2 - 1, v.clamp(0, 1) * 2 - 1], -1)[None, None]
    return torch.nn.functional.grid_sample(texture, grid, mode="bilinear", padding_mode="border",
                                           align_corners=False)[0, :, 0].T


def cast_can(origins: torch.Tensor, directions: torch.Tensor, folds: int, seed: int = 7) -> torch.Tensor:
    """Colour [R, 3] of rays against the can (side + top cap) and the grey background."""
    label, cap = _label_texture(seed), _label_texture(seed + 1)
    o, d = origins.float(), directions.float()
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = 2 * (o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1])
    c = o[:, 0] ** 2 + o[:, 1] ** 2 - RADIUS**2
    disc = b * b - 4 * a * c
    t_side = (-b - torch.sqrt(disc.clamp(min=0))) / (2 * a.clamp(min=1e-9))
    z_side = o[:, 2] + t_side * d[:, 2]
    side = (disc > 0) & (t_side > 0) & (z_side >= 0) & (z_side <= HEIGHT)
    t_cap = (HEIGHT - o[:, 2]) / torch.where(d[:, 2].abs() < 1e-9, torch.full_like(d[:, 2], -1e-9), d[:, 2])
    p_cap = o + t_cap[:, None] * d
    r_cap = p_cap[:, :2].norm(dim=-1)
    top = (t_cap > 0) & (r_cap <= RADIUS) & ~side
    rgb = BACKGROUND.expand(len(o), 3).clone()
    p_side = o + t_side[:, None] * d
    phi = torch.atan2(p_side[:, 1], p_side[:, 0]) / (2 * math.pi)
    rgb[side] = _sample(label, phi[side] * folds, 1 - z_side[side] / HEIGHT)
    phi_cap = torch.atan2(p_cap[:, 1], p_cap[:, 0]) / (2 * math.pi)
    rgb[top] = _sample(cap, phi_cap[top] * folds, r_cap[top] / RADIUS) * 0.9  # the lid, a little darker
    return rgb


def orbit_cameras(n_views: int, width: int, height: int, fov_y_deg: float = 38.0) -> Cameras:
    """One orbit around the can; elevation and distance wobble at periods unrelated to the symmetry."""
    t = torch.arange(n_views, dtype=torch.float32) / n_views
    azimuth = 2 * math.pi * t
    elevation = torch.deg2rad(22.0 + 9.0 * torch.sin(2 * math.pi * 3 * t + 0.3))
    distance = 4.6 * (1 + 0.08 * torch.sin(2 * math.pi * t + 1.1))
    offset = torch.stack([torch.cos(elevation) * torch.cos(azimuth), torch.cos(elevation) * torch.sin(azimuth),
                          torch.sin(elevation)], -1)
    positions = CENTRE + distance[:, None] * offset
    return Cameras.from_fov(look_at(positions, CENTRE), fov_y_deg, width, height)


def render(cameras: Cameras, index: int, folds: int, supersample: int = 2) -> torch.Tensor:
    """uint8 image [H, W, 3] of one camera, supersampled so the label does not alias."""
    h, w, s = cameras.height, cameras.width, supersample
    ys, xs = torch.meshgrid(torch.arange(h * s), torch.arange(w * s), indexing="ij")
    xy = (torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).float() + 0.5) / s
    rays = camera_rays(cameras, torch.full((xy.shape[0],), index, dtype=torch.long), xy)
    rgb = cast_can(rays.origins, rays.directions, folds).reshape(h, s, w, s, 3).mean(dim=(1, 3))
    return (rgb * 255 + 0.5).clamp(0, 255).to(torch.uint8)


def symmetric_orbit(folder: Path, n_views: int = 48, width: int = 240, height: int = 180, folds: int = 2) -> Path:
    """Write `folder/photos/frame_NNN.png` and `folder/truth.json` (nerfstudio transforms); returns the photos."""
    photos = Path(folder) / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    cameras = orbit_cameras(n_views, width, height)
    frames = []
    for i in range(n_views):
        Image.fromarray(render(cameras, i, folds).numpy()).save(photos / f"frame_{i:03d}.png")
        matrix = torch.eye(4)
        matrix[:3, :4] = cameras.world_from_camera[i]
        frames.append({"file_path": f"images/frame_{i:03d}.jpg", "transform_matrix": matrix.tolist()})
    truth = {"camera_model": "OPENCV", "w": width, "h": height, "fl_x": float(cameras.fx[0]),
             "fl_y": float(cameras.fy[0]), "cx": width / 2, "cy": height / 2, "frames": frames}
    (Path(folder) / "truth.json").write_text(json.dumps(truth))
    return photos
