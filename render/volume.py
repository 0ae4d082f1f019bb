"""Volume rendering of packed samples (the emission-absorption model of NeRF, Mildenhall et al. 2020).

Samples of all rays are packed in one flat array sorted by ray, then by distance, as nerfacc does
(`render_weight_from_density`); nerfacc's own kernels are CUDA-only, so this is the torch form:
transmittance T_i = exp(-sum_{j<i} sigma_j delta_j), alpha_i = 1 - exp(-sigma_i delta_i),
weight_i = T_i * alpha_i.
"""

from __future__ import annotations

import torch


def ray_start_offsets(ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    """Index of each ray's first sample [n_rays] (rays without samples get the next ray's start)."""
    counts = torch.bincount(ray_indices, minlength=n_rays)
    return torch.cumsum(counts, 0) - counts


def exclusive_optical_depth(sigma_delta: torch.Tensor, ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    """sum_{j<i} sigma_j delta_j within each ray, for packed samples [S]."""
    return exclusive_prefix(sigma_delta, ray_indices, n_rays)


def render_weights(sigmas: torch.Tensor, deltas: torch.Tensor, ray_indices: torch.Tensor,
                   n_rays: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compositing weights, transmittance before each sample and alphas, all [S]."""
    sigma_delta = sigmas * deltas
    transmittance = torch.exp(-exclusive_optical_depth(sigma_delta, ray_indices, n_rays))
    alphas = 1.0 - torch.exp(-sigma_delta)
    return transmittance * alphas, transmittance, alphas


def accumulate(weights: torch.Tensor, values: torch.Tensor | None, ray_indices: torch.Tensor,
               n_rays: int) -> torch.Tensor:
    """Per-ray sum of weights * values: [S] or [S, C] -> [R] or [R, C]. values None sums the weights."""
    if values is None:
        src = weights
    else:
        src = weights * values if values.dim() == 1 else weights[:, None] * values
    out = torch.zeros((n_rays,) + src.shape[1:], dtype=src.dtype, device=src.device)
    return out.index_add(0, ray_indices, src)


def distortion_loss(weights: torch.Tensor, t_mids: torch.Tensor, deltas: torch.Tensor, ray_indices: torch.Tensor,
                    n_rays: int) -> torch.Tensor:
    """mip-NeRF 360 distortion loss (Barron et al. 2022, eq. 15) on packed samples, averaged over rays.

    sum_ij w_i w_j |t_i - t_j| + 1/3 sum_i w_i^2 delta_i, with the double sum in O(S) via prefix sums.
    """
    if weights.numel() == 0:
        return weights.sum()
    wt = weights * t_mids
    w_before = exclusive_prefix(weights, ray_indices, n_rays)
    wt_before = exclusive_prefix(wt, ray_indices, n_rays)
    inter = 2 * weights * (t_mids * w_before - wt_before)
    intra = weights.square() * deltas / 3
    return (inter + intra).sum() / n_rays


def exclusive_prefix(values: torch.Tensor, ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    """sum_{j<i} values_j within each ray, for packed samples [S]."""
    if values.numel() == 0:
        return values
    # float64 cumsum: across many rays the running total grows large, float32 would lose the tail
    inclusive = torch.cumsum(values.double(), 0)
    exclusive = inclusive - values.double()
    starts = ray_start_offsets(ray_indices, n_rays)
    base = exclusive[starts.clamp(max=values.numel() - 1)]
    return (exclusive - base[ray_indices]).to(values.dtype)
