"""What training learns per photo besides the field: its appearance (`scenes.appearance`) and its pose correction
(`scenes.camera_opt`), each on or off by the TrainConfig, with the robust photometric losses they are trained by.

Photos are addressed by slot: their position among the scene's training photos (`Scene.capture_names`). The weights
file stores them as `photos.appearance` and `photos.pose`, so checkpoints carry them and resumed runs continue them.
"""

from __future__ import annotations

import torch
from torch import nn

from render.cameras import Rays
from scenes.appearance import AppearanceModel
from scenes.camera_opt import CameraRefinement
from scenes.config import TrainConfig
from vista_core.errors import VistaError

APPEARANCE_KEY = "photos.appearance"
POSE_KEY = "photos.pose"
HUBER_DELTA = 0.1
"""Residual (colour units) where the Huber loss turns from quadratic to linear."""
CHARBONNIER_EPS = 1e-3
"""Charbonnier's epsilon (sqrt(r^2 + eps^2), the smooth L1 of Barron's robust loss at alpha=1)."""


class PhotoCorrections(nn.Module):
    """The per-photo parameters a TrainConfig switches on; `slots` maps a dataset image index to a training slot."""

    def __init__(self, config: TrainConfig, n_photos: int):
        super().__init__()
        self.n_photos = n_photos
        self.appearance = AppearanceModel(n_photos) if config.appearance else None
        self.camera = CameraRefinement(n_photos) if config.camera_refinement else None
        self.slot_of_image = torch.arange(n_photos)

    @property
    def active(self) -> bool:
        return self.appearance is not None or self.camera is not None

    def bind(self, train_indices: list[int], n_images: int) -> None:
        """Address the photos by their dataset index: training photo `train_indices[k]` is slot k."""
        if len(train_indices) != self.n_photos:
            raise VistaError(f"the scene has corrections for {self.n_photos} photos, the data has "
                             f"{len(train_indices)} training photos")
        slot = torch.full((n_images,), -1, dtype=torch.long)
        slot[torch.tensor(train_indices, dtype=torch.long)] = torch.arange(self.n_photos)
        self.slot_of_image = slot

    def slots(self, image_index: torch.Tensor) -> torch.Tensor:
        return self.slot_of_image[image_index]

    def correct_rays(self, rays: Rays, slots: torch.Tensor) -> Rays:
        return rays if self.camera is None else self.camera(rays, slots.to(rays.origins.device))

    def correct_colour(self, rgb: torch.Tensor, slots: torch.Tensor, opacity: torch.Tensor,
                       background: torch.Tensor | None) -> torch.Tensor:
        if self.appearance is None:
            return rgb
        return self.appearance(rgb, slots.to(rgb.device), opacity, background)

    def penalty(self, config: TrainConfig) -> torch.Tensor | None:
        terms = []
        if self.appearance is not None and config.appearance_penalty > 0:
            terms.append(config.appearance_penalty * self.appearance.penalty())
        if self.camera is not None:
            terms.append(self.camera.penalty(config.camera_translation_penalty, config.camera_rotation_penalty))
        return sum(terms) if terms else None

    def parameter_groups(self, config: TrainConfig) -> list[dict]:
        """Adam groups with their learning rate as a fraction of the field's (`lr_scale`, read by
        `scenes.step.set_learning_rate`)."""
        groups = []
        if self.appearance is not None:
            groups.append({"params": [self.appearance.delta], "lr_scale": config.appearance_lr_scale,
                           "weight_decay": 0.0})
        if self.camera is not None:
            groups.append({"params": [self.camera.adjustment], "lr_scale": config.camera_lr_scale,
                           "weight_decay": 0.0})
        return groups

    def state(self) -> dict[str, torch.Tensor]:
        out = {}
        if self.appearance is not None:
            out[APPEARANCE_KEY] = self.appearance.delta.detach().clone()
        if self.camera is not None:
            out[POSE_KEY] = self.camera.adjustment.detach().clone()
        return out

    def load(self, state: dict[str, torch.Tensor], where: str) -> None:
        """Restore from a weights file's tensors; a missing or misshapen entry is a VistaError naming `where`."""
        for key, param in ((APPEARANCE_KEY, None if self.appearance is None else self.appearance.delta),
                           (POSE_KEY, None if self.camera is None else self.camera.adjustment)):
            if param is None:
                continue
            value = state.get(key)
            if value is None or value.shape != param.shape or not bool(torch.isfinite(value).all()):
                raise VistaError(f"{where}: '{key}' is missing, misshapen or not finite (expected "
                                 f"{list(param.shape)})")
            with torch.no_grad():
                param.copy_(value)


def photometric_loss(kind: str, rgb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-channel loss of the residuals: MSE, Huber (delta `HUBER_DELTA`) or Charbonnier."""
    if kind == "mse":
        return torch.mean((rgb - target) ** 2)
    if kind == "huber":
        return torch.nn.functional.huber_loss(rgb, target, delta=HUBER_DELTA)
    if kind == "charbonnier":
        return torch.mean(torch.sqrt((rgb - target) ** 2 + CHARBONNIER_EPS**2))
    raise VistaError(f"unknown photo loss {kind!r}")
