"""Tier-1 guidance's model: a tiny diffusion model of the user's own photos, trained on the CPU.

diffusers supplies the model (`UNet2DModel`, ~1 M parameters) and the noise schedule
(`DDPMScheduler`, epsilon prediction); this module trains it on random 32x32 patches of the
training photos. It is used two ways:
- as a fixer (`guidance.fixers.patch_prior`): one low-noise denoising step on the holes of a rendered view;
- `score_gradient`: the DiffusioNeRF-style regulariser, (predicted noise - true noise) on rendered
  patches, applied as a weak gradient (score distillation).

Saved as `prior.json` (configs, strict JSON) + `unet.safetensors`; no pickle.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from guidance.diffusers_models import ddpm_scheduler, patch_unet
from render.configio import config_from_dict, config_to_dict
from vista_core.errors import VistaError
from vista_core.files import atomic_write_bytes, atomic_write_json, read_json
from vista_core.progress import ProgressCallback, report

PRIOR_FILE = "prior.json"
WEIGHTS_FILE = "unet.safetensors"
PATCH = 32


@dataclass(frozen=True)
class PriorConfig:
    """Training of the patch prior."""

    steps: int = 300
    """Optimisation steps (about 50 s on 2 free CPU cores at batch 16): what the real-photo benchmark ran
    (bench/results/guidance-real-*.json)."""
    batch_size: int = 16
    """Patches per step."""
    learning_rate: float = 1e-3
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    """UNet widths per resolution (32, 64, 64 is ~1.06 M parameters)."""
    train_timesteps: int = 1000
    """DDPM noise levels (linear betas, as in Ho et al. 2020)."""
    min_photos: int = 4
    """Fewer training photos than this is refused: the prior would memorise them."""
    seed: int = 0


@dataclass
class PatchPrior:
    unet: torch.nn.Module
    scheduler: object
    config: PriorConfig
    info: dict = field(default_factory=dict)


def _make_unet(config: PriorConfig):
    return patch_unet(PATCH, tuple(config.block_out_channels))


def _make_scheduler(config: PriorConfig):
    return ddpm_scheduler(config.train_timesteps)


def photo_stack(images: torch.Tensor, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> torch.Tensor:
    """uint8 photos [N, H, W, 3|4] -> float [N, 3, H, W] in [-1, 1], RGBA composited over `background`."""
    x = images.float() / 255.0
    if x.shape[-1] == 4:
        x = x[..., :3] * x[..., 3:4] + torch.tensor(background) * (1 - x[..., 3:4])
    return x.permute(0, 3, 1, 2) * 2 - 1


def random_patches(photos: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n random 32x32 crops [n, 3, 32, 32] of photos [N, 3, H, W], randomly mirrored left-right."""
    _, _, h, w = photos.shape
    image = torch.randint(0, photos.shape[0], (n,), generator=generator)
    y = torch.randint(0, h - PATCH + 1, (n,), generator=generator)
    x = torch.randint(0, w - PATCH + 1, (n,), generator=generator)
    rows = (y[:, None] + torch.arange(PATCH))[:, :, None]
    cols = (x[:, None] + torch.arange(PATCH))[:, None, :]
    patches = photos[image[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], patches.flip(-1), patches)


def train_patch_prior(images: torch.Tensor, config: PriorConfig = PriorConfig(), source: str = "photos",
                      show_progress: bool = False, background=(1.0, 1.0, 1.0),
                      progress: ProgressCallback | None = None) -> PatchPrior:
    """Train the prior on training photos uint8 [N, H, W, 3|4] with the DDPM epsilon objective.

    `progress` gets a "patch prior" event after every step; raising `vista_core.progress.Cancelled` from it stops
    training (nothing is saved)."""
    from tqdm.auto import tqdm

    n, h, w = images.shape[:3]
    if n < config.min_photos:
        raise VistaError(f"{source}: a patch prior needs at least {config.min_photos} photos to learn from, "
                         f"got {n}; add photos or use --tier pipeline")
    if h < PATCH or w < PATCH:
        raise VistaError(f"{source}: photos are {w}x{h}; the patch prior needs at least {PATCH}x{PATCH}")
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # diffusers' layers initialise from the global generator
    unet = _make_unet(config)
    scheduler = _make_scheduler(config)
    photos = photo_stack(images, background)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    unet.train()
    start = time.perf_counter()
    losses = []
    for step in tqdm(range(config.steps), disable=not show_progress, desc="patch prior", unit="step"):
        clean = random_patches(photos, config.batch_size, generator)
        noise = torch.randn(clean.shape, generator=generator)
        t = torch.randint(0, config.train_timesteps, (config.batch_size,), generator=generator)
        noisy = scheduler.add_noise(clean, noise, t)
        # cosine decay keeps the last steps from undoing the fit
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        loss = torch.nn.functional.mse_loss(unet(noisy, t).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        report(progress, "patch prior", step + 1, config.steps, metrics={"loss": losses[-1]})
    unet.eval()
    unet.requires_grad_(False)
    info = {"photos": n, "source": source, "train_seconds": time.perf_counter() - start,
            "final_loss": float(np.mean(losses[-50:])),
            "parameters": sum(p.numel() for p in unet.parameters())}
    return PatchPrior(unet, scheduler, config, info)


def save_patch_prior(prior: PatchPrior, folder: Path) -> None:
    from safetensors.torch import save

    folder = Path(folder)
    state = {k: v.contiguous() for k, v in prior.unet.state_dict().items()}
    atomic_write_bytes(folder / WEIGHTS_FILE, save(state))
    atomic_write_json(folder / PRIOR_FILE, {"format": "vista-patch-prior", "config": config_to_dict(prior.config),
                                            "info": prior.info})


def load_patch_prior(folder: Path) -> PatchPrior:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    meta_path = folder / PRIOR_FILE
    if not meta_path.is_file():
        raise VistaError(f"{meta_path}: not found; is {folder} a patch prior saved by Vista?")
    meta = read_json(meta_path, "patch prior file")
    if not isinstance(meta, dict) or meta.get("format") != "vista-patch-prior":
        raise VistaError(f"{meta_path}: not a Vista patch prior file")
    config = config_from_dict(PriorConfig, meta.get("config"), f"{meta_path}: config")
    unet = _make_unet(config)
    try:
        unet.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    except FileNotFoundError as error:
        raise VistaError(f"{folder / WEIGHTS_FILE}: weights file not found") from error
    except (SafetensorError, OSError, RuntimeError) as error:
        raise VistaError(f"{folder / WEIGHTS_FILE}: weights do not match {PRIOR_FILE} ({error})") from error
    unet.eval()
    unet.requires_grad_(False)
    return PatchPrior(unet, _make_scheduler(config), config, dict(meta.get("info") or {}))


def score_gradient(prior: PatchPrior, patches: torch.Tensor, generator: torch.Generator,
                   t_min: int = 20, t_max: int = 200) -> torch.Tensor:
    """DiffusioNeRF / score-distillation gradient for rendered patches [B, 3, 32, 32] in [0, 1]:
    eps_hat(x_t, t) - eps at a random low noise level; the patches' gradient is this times a weight."""
    with torch.no_grad():
        x = patches.detach() * 2 - 1
        t = torch.randint(t_min, t_max + 1, (x.shape[0],), generator=generator)
        noise = torch.randn(x.shape, generator=generator)
        noisy = prior.scheduler.add_noise(x, noise, t)
        eps = prior.unet(noisy, t).sample
        return eps - noise
