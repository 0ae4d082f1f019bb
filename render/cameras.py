"""Pinhole cameras (optionally OpenCV-distorted) and the rays through their pixels.

Conventions (nerfstudio's, so its files map 1:1): `world_from_camera` is camera-to-world with
OpenGL camera axes (+x right, +y up, the camera looks along -z); pixel (u, v) has its centre at
(u + 0.5, v + 0.5) with v growing downwards. A camera path is just a batch of cameras, so the same
ray code renders training views and video frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from render.nerfstudio_parts import undistort_normalized
from vista_core.errors import VistaError, require_finite

_MIN_DEPTH = 1e-6  # points closer to the image plane than this count as behind the camera


@dataclass(frozen=True)
class Cameras:
    """N cameras: of one image size (`width` x `height`, as every camera path is), or each of its own size (a
    capture whose photos differ: `widths` / `heights`, then `width` x `height` is the most common size, the one
    a video of the scene defaults to). Build per-camera sizes with `Cameras.sized`."""

    world_from_camera: torch.Tensor  # [N, 3, 4]
    fx: torch.Tensor  # [N] focal lengths in pixels
    fy: torch.Tensor  # [N]
    cx: torch.Tensor  # [N] principal point in pixels
    cy: torch.Tensor  # [N]
    width: int
    height: int
    distortion: torch.Tensor | None = None  # [N, 6] nerfstudio order (k1, k2, k3, k4, p1, p2)
    widths: torch.Tensor | None = None
    """[N] int64 per-camera image widths, or None when every camera is `width` x `height`."""
    heights: torch.Tensor | None = None
    """[N] int64 per-camera image heights (given with `widths`)."""

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
        if (self.widths is None) != (self.heights is None):
            raise VistaError("per-camera widths and heights go together")
        if self.widths is not None:
            for name in ("widths", "heights"):
                sizes = getattr(self, name)
                if sizes.shape != (n,) or sizes.is_floating_point() or bool((sizes < 1).any()):
                    raise VistaError(f"{name} must be [N={n}] positive integers")

    @staticmethod
    def sized(world_from_camera: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor, cx: torch.Tensor,
              cy: torch.Tensor, widths: torch.Tensor, heights: torch.Tensor,
              distortion: torch.Tensor | None = None) -> Cameras:
        """Cameras with one image size each: per-camera sizes are kept only when they differ, and `width` x
        `height` becomes the most common size (the first camera's among equally common ones)."""
        widths, heights = torch.as_tensor(widths, dtype=torch.long).cpu(), torch.as_tensor(heights, dtype=torch.long).cpu()
        pairs = list(zip(widths.tolist(), heights.tolist()))
        if not pairs:
            raise VistaError("no cameras")
        counts: dict[tuple[int, int], int] = {}
        for pair in pairs:
            counts[pair] = counts.get(pair, 0) + 1
        width, height = max(counts, key=lambda pair: (counts[pair], -pairs.index(pair)))
        mixed = len(counts) > 1
        return Cameras(world_from_camera, fx, fy, cx, cy, width, height, distortion,
                       widths if mixed else None, heights if mixed else None)

    @property
    def mixed_sizes(self) -> bool:
        """Whether the cameras differ in image size."""
        return self.widths is not None

    def image_sizes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-camera (widths [N], heights [N]) as int64, also for cameras of one size."""
        if self.widths is not None and self.heights is not None:
            return self.widths, self.heights
        n = len(self)
        return torch.full((n,), self.width, dtype=torch.long), torch.full((n,), self.height, dtype=torch.long)

    def size_of(self, index: int) -> tuple[int, int]:
        """(width, height) of camera `index`."""
        if self.widths is None or self.heights is None:
            return self.width, self.height
        return int(self.widths[index]), int(self.heights[index])

    def __len__(self) -> int:
        return self.world_from_camera.shape[0]

    @property
    def device(self) -> torch.device:
        return self.world_from_camera.device

    def __getitem__(self, index) -> Cameras:
        """The cameras at `index`; a selection of cameras of one size (e.g. a single camera) has that size."""
        index = torch.as_tensor(index, device=self.device).reshape(-1)
        distortion = None if self.distortion is None else self.distortion[index]
        if self.widths is None or self.heights is None:
            return Cameras(self.world_from_camera[index], self.fx[index], self.fy[index], self.cx[index],
                           self.cy[index], self.width, self.height, distortion)
        cpu = index.cpu()
        return Cameras.sized(self.world_from_camera[index], self.fx[index], self.fy[index], self.cx[index],
                             self.cy[index], self.widths[cpu], self.heights[cpu], distortion)

    def concat(self, other: Cameras) -> Cameras:
        """These cameras followed by `other` (same image size; missing distortion counts as none)."""
        if (other.width, other.height) != (self.width, self.height) or self.mixed_sizes or other.mixed_sizes:
            raise VistaError(f"cannot join {self.width}x{self.height} and {other.width}x{other.height} cameras")
        distortion = None
        if self.distortion is not None or other.distortion is not None:
            distortion = torch.cat([torch.zeros(len(c), 6, device=self.device) if c.distortion is None else c.distortion
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
        heights = self.image_sizes()[1].to(self.fy) if self.mixed_sizes else self.height
        return torch.rad2deg(2 * torch.atan(heights / (2 * self.fy)))

    def pinhole(self) -> Cameras:
        """The same cameras without lens distortion."""
        return Cameras(self.world_from_camera, self.fx, self.fy, self.cx, self.cy, self.width, self.height, None,
                       self.widths, self.heights)

    def scaled(self, factor: float) -> Cameras:
        """The same cameras at `factor` times the resolution (e.g. 0.25 for a quick preview), each camera's size
        rounded (at least 1 px) and its intrinsics scaled by exactly new size / old size per axis: pixel centres
        sit at (u + 0.5, v + 0.5), so the image's edges 0 and W map to 0 and W' and every pixel's footprint maps to
        the area its resized pixels cover (fx' = fx W'/W, cx' = cx W'/W)."""
        old_w, old_h = self.image_sizes()
        new_w = (old_w.double() * factor).round().clamp(min=1).long()
        new_h = (old_h.double() * factor).round().clamp(min=1).long()
        sx, sy = (new_w.double() / old_w).to(self.fx), (new_h.double() / old_h).to(self.fy)
        sx, sy = sx.to(self.device), sy.to(self.device)
        width, height = max(1, round(self.width * factor)), max(1, round(self.height * factor))
        return Cameras(self.world_from_camera, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height,
                       self.distortion, new_w if self.mixed_sizes else None, new_h if self.mixed_sizes else None)

    @staticmethod
    def from_fov(world_from_camera: torch.Tensor, fov_y_deg: torch.Tensor | float, width: int, height: int) -> Cameras:
        """Centred pinhole cameras with square pixels and the given vertical field of view."""
        n, device = world_from_camera.shape[0], world_from_camera.device
        fov = torch.as_tensor(fov_y_deg, dtype=torch.float32, device=device).expand(n)
        fy = height / (2 * torch.tan(torch.deg2rad(fov) / 2))
        return Cameras(world_from_camera.float(), fy.clone(), fy.clone(), torch.full((n,), width / 2, device=device),
                       torch.full((n,), height / 2, device=device), width, height)

    # -- projection -----------------------------------------------------------------------------
    def project(self, points: torch.Tensor, index: int | None = None) -> Projection:
        """World points [P, 3] -> where every camera sees them ([N, P] results), or camera `index` alone ([P]).

        Pinhole: lens distortion is ignored. One camera is a plain matrix product (`mm`), all cameras a batched
        one (`bmm`): torch's kernels for the two round differently for few points, and each caller keeps the
        numbers it always had."""
        if index is None:
            rotation, position = self.world_from_camera[:, :, :3], self.world_from_camera[:, :, 3]
            # R^T (p - t) for every camera: world -> camera coordinates (OpenGL axes)
            local = torch.einsum("nij,npi->npj", rotation, points[None] - position[:, None])
            fx, fy, cx, cy = self.fx[:, None], self.fy[:, None], self.cx[:, None], self.cy[:, None]
        else:
            world_from_camera = self.world_from_camera[index]
            local = (points - world_from_camera[:, 3]) @ world_from_camera[:, :3]  # R^T (p - t)
            fx, fy, cx, cy = self.fx[index], self.fy[index], self.cx[index], self.cy[index]
        depth = -local[..., 2]  # OpenGL cameras look along -z
        safe = depth.clamp(min=_MIN_DEPTH)
        x = fx * local[..., 0] / safe + cx
        y = -fy * local[..., 1] / safe + cy  # image rows grow downwards, camera +y is up
        return Projection(torch.stack([x, y], dim=-1), depth, depth > _MIN_DEPTH)

    # -- JSON -----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Image size, poses and pinhole intrinsics as JSON lists (float32 values survive JSON unchanged).

        Cameras with lens distortion are refused: call `pinhole()` first where dropping it is intended."""
        if self.distortion is not None:
            raise VistaError("cameras with lens distortion cannot be written as JSON")
        sizes = {} if self.widths is None or self.heights is None else {
            "widths": self.widths.tolist(), "heights": self.heights.tolist()}
        return {"width": self.width, "height": self.height, "world_from_camera": self.world_from_camera.tolist(),
                "fx": self.fx.tolist(), "fy": self.fy.tolist(), "cx": self.cx.tolist(), "cy": self.cy.tolist(), **sizes}

    @staticmethod
    def from_dict(data: dict, where: str) -> Cameras:
        """Cameras from `to_dict`'s JSON (other keys are ignored); a VistaError naming `where` if malformed."""
        try:
            require_finite([data["world_from_camera"], data["fx"], data["fy"], data["cx"], data["cy"]], where)
            return Cameras(torch.tensor(data["world_from_camera"], dtype=torch.float32),
                           torch.tensor(data["fx"], dtype=torch.float32), torch.tensor(data["fy"], dtype=torch.float32),
                           torch.tensor(data["cx"], dtype=torch.float32), torch.tensor(data["cy"], dtype=torch.float32),
                           int(data["width"]), int(data["height"]), None, *_sizes_from_dict(data))
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise VistaError(f"{where}: cameras are malformed ({error})") from error


def _sizes_from_dict(data: dict) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The optional per-camera "widths" / "heights" lists of `Cameras.to_dict` (integers only)."""
    if "widths" not in data and "heights" not in data:
        return None, None
    sizes = data["widths"], data["heights"]
    if not all(isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v) for v in sizes):
        raise ValueError("'widths' and 'heights' must be lists of integers")
    return torch.tensor(sizes[0], dtype=torch.long), torch.tensor(sizes[1], dtype=torch.long)


@dataclass(frozen=True)
class Projection:
    """World points as cameras see them: [N, P] for N cameras and P points, or [P] for one camera."""

    pixels: torch.Tensor  # [..., 2] continuous (x, y); 0.5 is the first pixel's centre
    depth: torch.Tensor  # [...] distance along the optical axis, negative behind the camera
    in_front: torch.Tensor  # [...] bool: in front of the camera (pixels are meaningless elsewhere)


PIXEL_RADIUS_FACTOR = 2.0 / 12.0**0.5
"""mip-NeRF's base radius: a cone of radius 2/sqrt(12) pixel widths has the variance of the pixel's box footprint."""


@dataclass(frozen=True)
class Rays:
    origins: torch.Tensor  # [R, 3]
    directions: torch.Tensor  # [R, 3], unit length
    radii: torch.Tensor | None = None
    """[R] the pixel's cone radius per unit distance along the ray (mip-NeRF's base radius), or None: rays of no
    known pixel (a footprint-weighted field then samples points, as every field did before radii existed)."""
    colour_directions: torch.Tensor | None = None
    """[R, 3] unit directions the colour is seen from, if not `directions` (the samples stay on the ray): guidance's
    seen-direction prior asks what a surface shows toward the photos (`guidance.terms.seen_direction_term`)."""

    def __len__(self) -> int:
        return self.origins.shape[0]

    def to(self, device: torch.device) -> Rays:
        """The rays on `device` (the same tensors when already there)."""
        radii = None if self.radii is None else self.radii.to(device)
        seen = None if self.colour_directions is None else self.colour_directions.to(device)
        return Rays(self.origins.to(device), self.directions.to(device), radii, seen)

    def slice(self, start: int, stop: int) -> Rays:
        """Rays start..stop-1 (a chunk), radii included."""
        radii = None if self.radii is None else self.radii[start:stop]
        seen = None if self.colour_directions is None else self.colour_directions[start:stop]
        return Rays(self.origins[start:stop], self.directions[start:stop], radii, seen)


def pixel_radii(cameras: Cameras, camera_index: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cone radius per unit distance [R] of the pixels at normalized pinhole coordinates (x, y) of cameras
    `camera_index`: 2/sqrt(12) x the square root of the pixel's solid angle, 1 / (fx fy (1 + x^2 + y^2)^(3/2))
    (a pixel off the axis sees a smaller angle). At the image centre it is mip-NeRF's 2/sqrt(12) / f. Lens
    distortion's local stretch of a pixel is ignored."""
    i = camera_index
    solid_angle = 1.0 / (cameras.fx[i] * cameras.fy[i] * (1.0 + x * x + y * y) ** 1.5)
    return PIXEL_RADIUS_FACTOR * solid_angle.sqrt()


def camera_rays(cameras: Cameras, camera_index: torch.Tensor, pixels: torch.Tensor) -> Rays:
    """Rays through pixel positions `pixels` [R, 2] = (x, y) of cameras `camera_index` [R], with their pixels'
    cone radii (`pixel_radii`).

    Pixel positions are continuous (0.5 is the first pixel's centre)."""
    i = camera_index
    x = (pixels[:, 0] - cameras.cx[i]) / cameras.fx[i]
    y = (pixels[:, 1] - cameras.cy[i]) / cameras.fy[i]
    radii = pixel_radii(cameras, i, x, y)
    if cameras.distortion is not None:
        undistorted = _undistort(torch.stack([x, y], dim=-1), cameras.distortion[i])
        x, y = undistorted[:, 0], undistorted[:, 1]
    directions_camera = torch.stack([x, -y, -torch.ones_like(x)], dim=-1)  # OpenCV -> OpenGL axes
    rotation = cameras.world_from_camera[i, :, :3]
    directions = torch.einsum("rij,rj->ri", rotation, directions_camera)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return Rays(cameras.world_from_camera[i, :, 3].contiguous(), directions, radii)


def _undistort(coords: torch.Tensor, distortion: torch.Tensor) -> torch.Tensor:
    if not torch.any(distortion != 0):
        return coords
    return undistort_normalized(coords, distortion)


def image_rays(cameras: Cameras, index: int) -> Rays:
    """All H*W rays of camera `index` (its own size), row-major (y then x)."""
    device = cameras.device
    width, height = cameras.size_of(index)
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1).float() + 0.5
    return camera_rays(cameras, torch.full((pixels.shape[0],), index, dtype=torch.long, device=device), pixels)
