"""One training step's pieces, shared by training (`scenes.train`) and refinement (`guidance.refine`).

A step is: the representation's own upkeep (`refresh`: the NeRF's occupancy grid updates on its
schedule, as nerfacc's `OccGridEstimator.update_every_n_steps`), the learning rate, the photo loss
(random pixels of the photos -> rays, moved by each photo's pose correction if refined -> render -> composite
over a random background where the photos have alpha -> each photo's appearance if learned -> MSE or a robust
loss), any extra terms the caller adds, then Adam. Random draws come from one CPU generator in a fixed order,
so a seed and a step count give the same weights every time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from render.cameras import camera_rays
from render.render import rays_to_device, rays_to_scene, render_rays
from render.representation import SceneRepresentation
from scenes.config import TrainConfig
from scenes.corrections import PhotoCorrections, photometric_loss
from scenes.data import PosedImages
from vista_core.errors import VistaError


class TrainingPixels:
    """Every pixel of every training photo (photos of any sizes), to sample uniformly over all of them.

    The photos stay in the dataset's packed uint8 buffer (no copy): a draw picks one of the training photos'
    pixels, finds its photo by binary search over the running pixel counts (`torch.searchsorted`) and reads the
    colour at that photo's offset; no Python loop per ray. For photos of one size the draws and their order are
    those of a flat [N*H*W] index, as before photos could differ in size."""

    def __init__(self, data: PosedImages):
        self.data = data
        self.cameras = data.cameras
        self.has_alpha = data.has_alpha
        self.indices = torch.tensor(data.train_indices, dtype=torch.long)
        if self.indices.numel() == 0:
            raise VistaError(f"{data.source}: no training images")
        photos = data.images
        self.pixels = photos.pixels  # uint8 [P, C], all photos (held-out ones are never drawn)
        self.widths = photos.widths[self.indices]
        self.starts = photos.offsets[self.indices]  # where each training photo begins in `pixels`
        counts = self.widths * photos.heights[self.indices]
        self.ends = counts.cumsum(0)  # running pixel count over the training photos
        self.before = self.ends - counts  # pixels of the training photos before each one
        self.total = int(self.ends[-1])

    def sample(self, n: int, generator: torch.Generator, jitter: bool):
        """(image index [n], pixel coordinates [n, 2], colour [n, C]): pixel centres, or random points of the
        pixels if `jitter`."""
        flat = torch.randint(0, self.total, (n,), generator=generator)
        which = torch.searchsorted(self.ends, flat, right=True)  # the training photo holding each draw
        within = flat - self.before[which]  # row-major position inside that photo
        width = self.widths[which]
        offset = torch.rand(n, 2, generator=generator) if jitter else 0.5
        xy = torch.stack([within % width, within // width], dim=-1).float() + offset
        return self.indices[which], xy, self.pixels[self.starts[which] + within].float() / 255.0


@dataclass(frozen=True)
class PhotoTerm:
    loss: torch.Tensor  # scalar, differentiable: MSE plus the weighted distortion loss
    mse: torch.Tensor  # scalar
    n_rays: int
    n_samples: int


def photo_loss(scene: SceneRepresentation, pixels: TrainingPixels, n_rays: int, generator: torch.Generator, *,
               pixel_jitter: bool, distortion_weight: float = 0.0, corrections: PhotoCorrections | None = None,
               loss_kind: str = "mse") -> PhotoTerm:
    """The photometric loss (`loss_kind`: MSE, Huber or Charbonnier) between rendered rays and `n_rays` random
    photo pixels, plus mip-NeRF 360's distortion loss if weighted.

    Where the photos have alpha, both the target and the render are composited over one random colour per ray
    (Instant-NGP): transparent pixels then only match if the field is empty there. `corrections` (training only)
    move each photo's rays by its pose correction before rendering and map the rendered colour through its
    appearance after compositing, as nerfstudio's camera optimizer and a per-image colour transform do."""
    device = scene.scene_from_world.device
    image_index, xy, target = pixels.sample(n_rays, generator, pixel_jitter)
    jitter = torch.rand(n_rays, generator=generator).to(device)
    background = None
    if pixels.has_alpha:
        background = torch.rand(n_rays, 3, generator=generator)
        alpha = target[:, 3:4]
        target = target[:, :3] * alpha + background * (1 - alpha)
        background = background.to(device)
    rays = rays_to_scene(rays_to_device(camera_rays(pixels.cameras, image_index, xy), device), scene.scene_from_world)
    slots = None if corrections is None else corrections.slots(image_index)
    if slots is not None:
        rays = corrections.correct_rays(rays, slots)
    out = render_rays(scene, rays, jitter=jitter, background=background, with_distortion=distortion_weight > 0)
    rgb = out.rgb if slots is None else corrections.correct_colour(out.rgb, slots, out.opacity, background)
    target = target.to(device)
    mse = torch.mean((rgb - target) ** 2)
    loss = mse if loss_kind == "mse" else photometric_loss(loss_kind, rgb, target)
    if out.distortion is not None:
        loss = loss + distortion_weight * out.distortion
    if out.regularizer is not None:
        loss = loss + out.regularizer
    return PhotoTerm(loss, mse, n_rays, out.n_samples)


def make_optimizer(scene: SceneRepresentation, config: TrainConfig,
                   corrections: PhotoCorrections | None = None) -> torch.optim.Optimizer:
    """Adam over the representation's parameter groups (weight decay on the group named "mlp" only), then the
    per-photo corrections' groups, each at its own fraction of the learning rate."""
    decay = {"mlp": config.weight_decay_mlp}
    extra = [] if corrections is None else corrections.parameter_groups(config)
    # Instant-NGP's Adam settings (eps 1e-15, beta2 0.99). The fused implementation updates the 16M-entry
    # grid table ~5x faster than the default on the CPU (measured).
    return torch.optim.Adam(
        [{"params": params, "weight_decay": decay.get(name, 0.0)} for name, params in scene.parameter_groups().items()]
        + extra,
        lr=config.learning_rate, betas=(0.9, 0.99), eps=1e-15, fused=True,
    )


def set_learning_rate(optimizer: torch.optim.Optimizer, learning_rate: float) -> None:
    """Every group at `learning_rate`, times the group's own `lr_scale` if it has one (the per-photo corrections)."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate * group.get("lr_scale", 1.0)


def apply_gradients(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One Adam step on `loss`."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
