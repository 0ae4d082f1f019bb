"""Tier-1 fixer: one low-noise denoising step of the patch prior on the holes of a rendered view (CPU).

The holes are first filled by OpenCV's Telea inpainting (`inpaint.py`) so the step starts from
plausible colours; the image is noised to a low timestep with one fixed-seed draw, the prior's UNet
predicts the noise on overlapping 32x32 tiles, and the clean estimate x0 = (x_t - sqrt(1 - a) eps) / sqrt(a)
(DDPM, Ho et al. 2020) is blended across tiles with a Hann window. Only masked pixels change.
"""

from __future__ import annotations

import math

import torch

from guidance.fixers.base import BuiltFixer, Fixer, FixerMethod, FixerRequest
from guidance.fixers.inpaint import inpaint_holes
from guidance.masks import MaskConfig
from guidance.patch_prior import PATCH, PatchPrior, train_patch_prior
from vista_core.errors import VistaError

_TILES_PER_BATCH = 64


def _tile_origins(size: int, stride: int) -> list[int]:
    starts = list(range(0, max(size - PATCH, 0) + 1, stride))
    if starts[-1] + PATCH < size:
        starts.append(size - PATCH)
    return starts


def _alphas(prior: PatchPrior, t: int) -> tuple[float, float]:
    alpha_bar = float(prior.scheduler.alphas_cumprod[t])
    return math.sqrt(alpha_bar), math.sqrt(1 - alpha_bar)


@torch.no_grad()
def fix_masked(prior: PatchPrior, rgb: torch.Tensor, mask: torch.Tensor, timestep: int = 200, seed: int = 0,
               inpaint_first: bool = True) -> torch.Tensor:
    """Replace the masked pixels of rgb [H, W, 3] (in [0, 1]) by the prior's one-step denoised estimate."""
    if not mask.any():
        return rgb.clone()
    h, w = mask.shape
    source = inpaint_holes(rgb, mask) if inpaint_first else rgb
    x = source.permute(2, 0, 1)[None] * 2 - 1
    pad_h, pad_w = max(PATCH - h, 0), max(PATCH - w, 0)
    x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    hp, wp = x.shape[-2:]
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=generator)
    a, s = _alphas(prior, timestep)
    noisy = a * x + s * noise
    mask_p = torch.nn.functional.pad(mask[None, None].float(), (0, pad_w, 0, pad_h))
    window = torch.hann_window(PATCH + 2, periodic=False)[1:-1]
    window = (window[:, None] * window[None, :]).clamp(min=1e-3)
    total = torch.zeros(1, 3, hp, wp)
    weight = torch.zeros(1, 1, hp, wp)
    tiles = [(y0, x0) for y0 in _tile_origins(hp, PATCH // 2) for x0 in _tile_origins(wp, PATCH // 2)
             if mask_p[..., y0:y0 + PATCH, x0:x0 + PATCH].any()]
    for start in range(0, len(tiles), _TILES_PER_BATCH):
        batch = tiles[start:start + _TILES_PER_BATCH]
        crops = torch.cat([noisy[..., y0:y0 + PATCH, x0:x0 + PATCH] for y0, x0 in batch])
        eps = prior.unet(crops, torch.full((len(batch),), timestep)).sample
        x0_hat = ((crops - s * eps) / a).clamp(-1, 1)
        for (y0, x0), estimate in zip(batch, x0_hat):
            total[0, :, y0:y0 + PATCH, x0:x0 + PATCH] += estimate * window
            weight[0, :, y0:y0 + PATCH, x0:x0 + PATCH] += window
    estimate = (total / weight.clamp(min=1e-6))[0, :, :h, :w].permute(1, 2, 0) * 0.5 + 0.5
    return torch.where(mask[..., None], estimate.clamp(0, 1), rgb)


def patch_prior_fixer(prior: PatchPrior, timestep: int) -> Fixer:
    def fix(rgb: torch.Tensor, mask: torch.Tensor, seed: int) -> torch.Tensor:
        return fix_masked(prior, rgb, mask, timestep=timestep, seed=seed)

    return fix


def _build(request: FixerRequest) -> BuiltFixer:
    prior = request.prior
    if prior is None:
        if request.photos is None:
            raise VistaError("the patch prior fixer needs the training photos to learn from")
        prior = train_patch_prior(request.photos, request.prior_config, source=request.source,
                                  show_progress=request.show_progress, background=request.background,
                                  progress=request.progress)
    return BuiltFixer(patch_prior_fixer(prior, request.timestep), prior)


METHOD = FixerMethod("prior", MaskConfig(cues=("holes",)), _build)
"""Holes only: measured on path views, a one-step denoise of rendered pixels that were merely unseen or had
unstable depth made them worse at every noise level (bench/GUIDANCE_RESULTS.md)."""
