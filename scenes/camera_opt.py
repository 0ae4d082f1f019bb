"""Camera pose refinement during training: nerfstudio's camera optimizer (SO(3) x R^3 per photo).

Each training photo gets a 6-vector (translation, axis-angle rotation), zero at the start, mapped through
nerfstudio's `exp_map_SO3xR3` (via `render.nerfstudio_parts`) to a correction that rotates the photo's ray
directions and shifts its origins, in scene coordinates, as nerfstudio's `CameraOptimizer.apply_to_raybundle` does.
Its own learning rate and L2 penalties (nerfstudio's defaults: translation 1e-2, rotation 1e-3) come from the
TrainConfig.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from render.cameras import Cameras, Rays
from render.nerfstudio_parts import exp_map_so3xr3


class CameraRefinement(nn.Module):
    """Per-photo pose corrections: `adjustment[:, :3]` translation, `adjustment[:, 3:]` rotation (axis-angle)."""

    def __init__(self, n_photos: int):
        super().__init__()
        self.adjustment = nn.Parameter(torch.zeros(n_photos, 6))

    def forward(self, rays: Rays, slots: torch.Tensor) -> Rays:
        """Rays (scene coordinates) of photo `slots[i]` after its correction."""
        correction = exp_map_so3xr3(self.adjustment[slots])  # [R, 3, 4]
        directions = (correction[:, :, :3] @ rays.directions.unsqueeze(-1)).squeeze(-1)
        return Rays(rays.origins + correction[:, :, 3], directions, rays.radii)  # a rotation keeps cone angles

    def penalty(self, translation_weight: float, rotation_weight: float) -> torch.Tensor:
        """nerfstudio's camera-optimizer regulariser: weighted mean norms of the translations and rotations."""
        return (self.adjustment[:, :3].norm(dim=-1).mean() * translation_weight
                + self.adjustment[:, 3:].norm(dim=-1).mean() * rotation_weight)

    def rotation_deg(self) -> torch.Tensor:
        """[n_photos] rotation of each correction, degrees."""
        return self.adjustment.detach()[:, 3:].norm(dim=-1) * (180.0 / math.pi)

    def translation(self) -> torch.Tensor:
        """[n_photos] length of each correction's shift, scene units."""
        return self.adjustment.detach()[:, :3].norm(dim=-1)

    def refined(self, cameras: Cameras, scene_from_world: torch.Tensor) -> Cameras:
        """The photos' cameras (world coordinates, in slot order) with the corrections applied: what rendering and
        evaluating a training view should use. The correction acts in scene coordinates; `scene_from_world` is a
        similarity (scale x rotation), so in world coordinates it is the rotation conjugated and the shift unscaled."""
        correction = exp_map_so3xr3(self.adjustment.detach()).to(cameras.world_from_camera.dtype)
        linear = scene_from_world[:3, :3].to(correction.dtype)
        scale = linear.det().abs() ** (1.0 / 3.0)
        rotation_world = linear.T @ correction[:, :, :3] @ linear / scale**2
        world_from_camera = cameras.world_from_camera.clone()
        world_from_camera[:, :, :3] = rotation_world @ cameras.world_from_camera[:, :, :3]
        world_from_camera[:, :, 3] = cameras.world_from_camera[:, :, 3] + (linear.T @ correction[:, :, 3:]).squeeze(-1) / scale**2
        return Cameras(world_from_camera, cameras.fx, cameras.fy, cameras.cx, cameras.cy, cameras.width,
                       cameras.height, cameras.distortion)
