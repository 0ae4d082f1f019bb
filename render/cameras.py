"""Pinhole cameras (optionally OpenCV-distorted) and the rays through their pixels.

Conventions (nerfstudio's, so its files map 1:1): `world_from_camera` is camera-to-world with
OpenGL camera axes (+x right, +y up, the camera looks along -z); pixel (u, v) has its centre at
(u + 0.5, v + 0.5) with v growing downwards. A camera path is just a batch of cameras, so the same
ray code renders training views and video frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vista_core.errors import VistaError


@dataclass(frozen=True)
class Cameras:
    """N cameras of one image size."""

    world_from_camera: torch.Tensor  # [N, 3, 4]
    fx: torch.Tensor  # [N] focal lengths in pixels
    fy: torch.Tensor  # [N]
    cx: torch.Tensor  # [N] principal point in pixels
    cy: torch.Tensor  # [N]
    width: int
    height: int
    distortion: torch.Tensor | None = None  # [N, 6] nerfstudio order (k1, k2, k3, k4, p1, p2)

    def __post_init__(self) -> None:
        n = self.world_from_camera.shape[0]
        if self.world_from_camera.shape != (n, 3, 4):
            raise VistaError(f"world_from_camera must be [N, 3, 4], got {tuple(self.world_from_camera.shape)}")
        for name in ("fx", "fy", "cx", "cy"):
            if getattr(self, name).shape != (n,):
                raise VistaError(f"{name} must be [N={n}], got {tuple(getattr(self, name).shape)}")
        if self.width < 1 or self.height < 1:
            raise VistaError(f"image size must be positive, got {self.width}x{self.height}")
        if self.distortion is not None and self.distortion.shape != (n, 6):
            raise VistaError(f"distortion must be [N, 6], got {tuple(self.distortion.shape)}")

    def __len__(self) -> int:
        return self.world_from_camera.shape[0]

    def __getitem__(self, index) -> "Cameras":
        index = torch.as_tensor(index).reshape(-1)
        return Cameras(
            self.world_from_camera[index], self.fx[index], self.fy[index], self.cx[index], self.cy[index],
            self.width, self.height, None if self.distortion is None else self.distortion[index],
        )

    def concat(self, other: "Cameras") -> "Cameras":
        """These cameras followed by `other` (same image size; missing distortion counts as none)."""
        if (other.width, other.height) != (self.width, self.height):
            raise VistaError(f"cannot join {self.width}x{self.height} and {other.width}x{other.height} cameras")
        distortion = None
        if self.distortion is not None or other.distortion is not None:
            distortion = torch.cat([torch.zeros(len(c), 6) if c.distortion is None else c.distortion
                                    for c in (self, other)])
        return Cameras(torch.cat([self.world_from_camera, other.world_from_camera]), torch.cat([self.fx, other.fx]),
                       torch.cat([self.fy, other.fy]), torch.cat([self.cx, other.cx]), torch.cat([self.cy, other.cy]),
                       self.width, self.height, distortion)

    @property
    def positions(self) -> torch.Tensor:
        """Camera centres [N, 3]."""
        return self.world_from_camera[:, :, 3]

    @property
    def fov_y_deg(self) -> torch.Tensor:
        return torch.rad2deg(2 * torch.atan(self.height / (2 * self.fy)))

    def scaled(self, factor: float) -> "Cameras":
        """The same cameras at `factor` times the resolution (e.g. 0.25 for a quick preview)."""
        width, height = max(1, round(self.width * factor)), max(1, round(self.height * factor))
        sx, sy = width / self.width, height / self.height
        return Cameras(self.world_from_camera, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height,
                       self.distortion)

    @staticmethod
    def from_fov(world_from_camera: torch.Tensor, fov_y_deg: torch.Tensor | float, width: int, height: int) -> "Cameras":
        """Centred pinhole cameras with square pixels and the given vertical field of view."""
        n = world_from_camera.shape[0]
        fov = torch.as_tensor(fov_y_deg, dtype=torch.float32).expand(n)
        fy = height / (2 * torch.tan(torch.deg2rad(fov) / 2))
        return Cameras(world_from_camera.float(), fy.clone(), fy.clone(), torch.full((n,), width / 2),
                       torch.full((n,), height / 2), width, height)


@dataclass(frozen=True)
class Rays:
    origins: torch.Tensor  # [R, 3]
    directions: torch.Tensor  # [R, 3], unit length

    def __len__(self) -> int:
        return self.origins.shape[0]


def camera_rays(cameras: Cameras, camera_index: torch.Tensor, pixels: torch.Tensor) -> Rays:
    """Rays through pixel positions `pixels` [R, 2] = (x, y) of cameras `camera_index` [R].

    Pixel positions are continuous (0.5 is the first pixel's centre)."""
    i = camera_index
    x = (pixels[:, 0] - cameras.cx[i]) / cameras.fx[i]
    y = (pixels[:, 1] - cameras.cy[i]) / cameras.fy[i]
    if cameras.distortion is not None:
        undistorted = _undistort(torch.stack([x, y], dim=-1), cameras.distortion[i])
        x, y = undistorted[:, 0], undistorted[:, 1]
    directions_camera = torch.stack([x, -y, -torch.ones_like(x)], dim=-1)  # OpenCV -> OpenGL axes
    rotation = cameras.world_from_camera[i, :, :3]
    directions = torch.einsum("rij,rj->ri", rotation, directions_camera)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return Rays(cameras.world_from_camera[i, :, 3].contiguous(), directions)


def _undistort(coords: torch.Tensor, distortion: torch.Tensor) -> torch.Tensor:
    if not torch.any(distortion != 0):
        return coords
    from render.nerfstudio_parts import undistort_normalized

    return undistort_normalized(coords, distortion)


def image_rays(cameras: Cameras, index: int) -> Rays:
    """All H*W rays of one camera, row-major (y then x)."""
    ys, xs = torch.meshgrid(torch.arange(cameras.height), torch.arange(cameras.width), indexing="ij")
    pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1).float() + 0.5
    return camera_rays(cameras, torch.full((pixels.shape[0],), index, dtype=torch.long), pixels)
