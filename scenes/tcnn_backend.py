"""tiny-cuda-nn on an NVIDIA GPU: the only module that imports tinycudann.

The grid is tcnn's `HashGrid` configured from the same `HashGridConfig` (its keys are tcnn's), and its
flat parameter vector is exposed as `table` [n_params, F]: tcnn stores a grid level-major with the F
features of an entry contiguous, exactly the layout of `scenes/hashgrid.py`, so grid weights move
between backends. The MLPs are tcnn's `FullyFusedMLP` (no biases, half precision inside), whose
weights do not map onto `nn.Linear`; a scene is therefore rendered with the backend that trained it.
Ray marching and compositing stay on the rays' device; the grid and MLPs run on CUDA and hand their
outputs back there, so the same training and rendering code serves both backends.
"""

from __future__ import annotations

import tinycudann as tcnn  # ImportError here is how scenes.backends learns tcnn is missing
import torch
from torch import nn

from scenes.config import HashGridConfig
from scenes.hashgrid import grid_layout

_FUSED_WIDTHS = (16, 32, 64, 128)


class TcnnHashGrid(nn.Module):
    """tcnn HashGrid with a [n_params, F] `table` parameter; x in [0, 1]^3 (CUDA) -> [P, L*F] float32."""

    def __init__(self, config: HashGridConfig):
        super().__init__()
        self.config = config
        self.encoding = tcnn.Encoding(n_input_dims=3, encoding_config=config.to_tcnn(), dtype=torch.float32)
        n_params = grid_layout(config).n_params
        if self.encoding.params.numel() != n_params * config.n_features_per_level:
            raise RuntimeError(f"tcnn HashGrid has {self.encoding.params.numel()} parameters, Vista's layout "
                               f"{n_params} x {config.n_features_per_level}: layouts disagree")

    @property
    def n_output_dims(self) -> int:
        return self.config.n_output_dims

    @property
    def table(self) -> torch.Tensor:
        return self.encoding.params.view(-1, self.config.n_features_per_level)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoding(x.to("cuda")).float().to(x.device)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        destination[prefix + "table"] = self.table if keep_vars else self.table.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + "table"
        if key not in state_dict:
            missing_keys.append(key)
            return
        with torch.no_grad():
            self.encoding.params.copy_(state_dict[key].reshape(-1))


class TcnnMLP(nn.Module):
    """FullyFusedMLP (widths 16..128) or CutlassMLP otherwise; ReLU, no output activation."""

    def __init__(self, n_input: int, n_output: int, hidden: int, n_hidden_layers: int):
        super().__init__()
        self.network = tcnn.Network(n_input_dims=n_input, n_output_dims=n_output, network_config={
            "otype": "FullyFusedMLP" if hidden in _FUSED_WIDTHS else "CutlassMLP",
            "activation": "ReLU",
            "output_activation": "None",
            "n_neurons": hidden,
            "n_hidden_layers": n_hidden_layers,
        })

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x.to("cuda")).float().to(x.device)
