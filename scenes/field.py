"""The radiance field: hash grid -> density MLP -> (geometry features, view direction) -> colour MLP.

Instant-NGP's architecture (Müller et al. 2022): one hidden layer for density, two for colour,
spherical-harmonics direction encoding, truncated-exp density. The grid and MLPs come from
`scenes.backends`, so the same class runs on tiny-cuda-nn or PyTorch.
"""

from __future__ import annotations

import torch
from torch import nn

from render.nerfstudio_parts import spherical_harmonics, trunc_exp
from render.representation import ParameterGroups
from scenes.backends import make_encoding, make_mlp
from scenes.config import FieldConfig
from scenes.hashgrid import footprint_level_weights, grid_layout
from scenes.mlp_fused import ReluMLP


class NerfField(nn.Module):
    """Implements `render.render.TrainableField` on the unit cube."""

    def __init__(self, config: FieldConfig, backend: str, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.backend = backend
        self.encoding = make_encoding(config.grid, backend, generator)
        # the levels' cells per unit for footprint weighting: derived from the config, so a plain tensor, not saved
        self._level_scales = torch.tensor(grid_layout(config.grid).scales, dtype=torch.float32)
        self.density_mlp = make_mlp(config.grid.n_output_dims, 1 + config.geo_feature_dim, config.hidden_dim, 1,
                                    backend)
        self.color_mlp = make_mlp(config.sh_degree**2 + config.geo_feature_dim, 3, config.color_hidden_dim, 2,
                                  backend)
        for mlp in (self.density_mlp, self.color_mlp):
            if isinstance(mlp, ReluMLP):
                mlp.bf16 = config.mlp_precision == "bfloat16"

    @property
    def uses_footprint(self) -> bool:
        """Whether `density_and_features` weighs the grid's levels by a footprint (`render.render` then passes one)."""
        return self.config.grid.footprint_weighting

    def density_and_features(self, u: torch.Tensor,
                             footprint: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Density [S] and geometry features [S, G] at u [S, 3]; `footprint` [S] (the samples' pixel-cone radii in
        the unit cube's units, no gradient) weighs the grid's levels when the config switches it on."""
        encoded = self.encoding(u.clamp(0.0, 1.0))  # [S, L*F], level-major
        if footprint is not None and self.config.grid.footprint_weighting:
            # after the (fused) grid, in torch: autograd carries the weights into the table's gradient
            weights = footprint_level_weights(footprint.to(encoded), self._level_scales.to(encoded.device))  # [S, L]
            grid = self.config.grid
            levels = encoded.reshape(len(encoded), grid.n_levels, grid.n_features_per_level)  # [S, L, F]
            encoded = (levels * weights[:, :, None]).reshape(encoded.shape)
        h = self.density_mlp(encoded)
        # the -1 bias starts densities low so early rays are not saturated (as nerfacto does)
        return trunc_exp(h[:, 0] - 1.0), h[:, 1:]

    def color(self, features: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        return self.color_encoded(features, self.encode_directions(directions))

    def encode_directions(self, directions: torch.Tensor) -> torch.Tensor:
        """The colour MLP's direction input (`render.ray_colours`: renderers encode each ray once)."""
        return spherical_harmonics(directions, self.config.sh_degree)

    def color_encoded(self, features: torch.Tensor, encoded: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.color_mlp(torch.cat([encoded, features], dim=-1)))

    @property
    def fused_colours(self) -> bool:
        """Whether the colour MLP runs the fused CPU kernel (float32, or bfloat16 as `FieldConfig.mlp_precision` says):
        renders then skip torch's bfloat16 autocast (`render.proposal.colour_precision`)."""
        return isinstance(self.color_mlp, ReluMLP) and self.color_mlp.fused_available

    def density(self, u: torch.Tensor) -> torch.Tensor:
        return self.density_and_features(u)[0]

    def parameter_groups(self) -> ParameterGroups:
        """The hash table apart from the MLPs: Instant-NGP puts weight decay on the MLPs only."""
        return {"grid": list(self.encoding.parameters()),
                "mlp": list(self.density_mlp.parameters()) + list(self.color_mlp.parameters())}
