"""The proposal density fields of the "proposal" sampler (`render.proposal`): nerfacto's proposal networks
(a 5-level hash grid, finest 128 then 256 cells, 2^17 entries per level, one 16-wide hidden layer, truncated-exp
density) built from Vista's own grid and MLP (`scenes.backends`: the fused CPU kernels, or tiny-cuda-nn)."""

from __future__ import annotations

import torch
from torch import nn

from render.config import SamplingConfig
from render.nerfstudio_parts import ProposalSampler, trunc_exp
from render.proposal import Proposals
from scenes.backends import make_encoding, make_mlp
from scenes.config import HashGridConfig

FINEST = (128, 256)
"""Finest grid resolution of each pass's field (nerfacto's two proposal networks)."""


class ProposalField(nn.Module):
    def __init__(self, finest: int, backend: str, generator: torch.Generator | None = None):
        super().__init__()
        self.finest = finest  # the render-time bake's resolution (render.proposal_bake)
        self.grid = HashGridConfig.spanning(finest, n_levels=5, log2_hashmap_size=17)
        self.encoding = make_encoding(self.grid, backend, generator)
        self.mlp = make_mlp(self.grid.n_output_dims, 1, 16, 1, backend)

    def density(self, u: torch.Tensor) -> torch.Tensor:
        return trunc_exp(self.mlp(self.encoding(u.clamp(0.0, 1.0)))[:, 0] - 1.0)


def make_proposals(sampling: SamplingConfig, backend: str, generator: torch.Generator) -> Proposals:
    """One field per proposal pass (the finest resolutions of `FINEST`, the last one repeated for more passes)."""
    fields = [ProposalField(FINEST[min(i, len(FINEST) - 1)], backend, generator)
              for i in range(len(sampling.proposal_samples))]
    return Proposals(fields, ProposalSampler(tuple(sampling.proposal_samples), sampling.nerf_samples),
                     far_penalty=float(sampling.far_weight_penalty))
