"""The one place the field's backend is chosen: "auto" | "torch" | "tcnn".

- tcnn: tiny-cuda-nn's HashGrid + FullyFusedMLP on an NVIDIA GPU (`scenes/tcnn_backend.py` is
  the only module importing tinycudann).
- torch: the same hash grid in PyTorch; on the CPU it runs the fused C kernel
  (`hashgrid_fused.c`, through `hashgrid_fused.py`) when it compiles, else the plain twin
  (`hashgrid.py`). The two give the same values, so a torch checkpoint does not depend on which ran.
  Its MLPs run `mlp_fused.c` (through `mlp_fused.py`) on the CPU, torch's own layers elsewhere.
Asking for tcnn by name where it is missing is an error with the install hint, never a silent
fallback; "auto" logs its choice once.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from scenes.config import HashGridConfig
from scenes.hashgrid import GridLayout, grid_layout, init_table
from scenes.hashgrid_fused import LayoutArrays, hash_encode
from scenes.mlp_fused import ReluMLP
from vista_core.errors import VistaError

log = logging.getLogger("vista")

TCNN_INSTALL_HINT = (
    "install tiny-cuda-nn on a machine with CUDA: "
    "pip install 'git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch' "
    "(see README, 'GPU extra')"
)

_logged_auto = False


def tcnn_status() -> tuple[bool, str]:
    """Whether tinycudann can be used here, and why not."""
    if not torch.cuda.is_available():
        return False, "CUDA is not available on this machine"
    try:
        from scenes import tcnn_backend  # noqa: F401  (imports tinycudann)
    except ImportError as error:
        return False, f"tinycudann is not installed ({error})"
    return True, "tinycudann with CUDA"


def resolve_backend(requested: str) -> str:
    """Turn "auto" | "torch" | "tcnn" into the backend to use, or raise a clear error."""
    global _logged_auto
    if requested not in ("auto", "torch", "tcnn"):
        raise VistaError(f"unknown backend {requested!r}; choose auto, torch or tcnn")
    if requested == "torch":
        return "torch"
    ok, reason = tcnn_status()
    if requested == "tcnn":
        if not ok:
            raise VistaError(f"backend 'tcnn' requested but {reason}; {TCNN_INSTALL_HINT}")
        return "tcnn"
    chosen = "tcnn" if ok else "torch"
    if not _logged_auto:
        log.info("backend auto -> %s (%s)", chosen, reason if ok else f"tcnn unavailable: {reason}")
        _logged_auto = True
    return chosen


class TorchHashGrid(nn.Module):
    """Hash grid with its table as one parameter [n_params, F]; x in [0, 1]^3 -> [P, L*F]."""

    def __init__(self, config: HashGridConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.layout: GridLayout = grid_layout(config)
        self.table = nn.Parameter(init_table(self.layout, config.n_features_per_level, generator))
        self._arrays = LayoutArrays(self.layout)

    @property
    def n_output_dims(self) -> int:
        return self.config.n_output_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return hash_encode(x, self.table, self.layout, self._arrays)


def make_encoding(config: HashGridConfig, backend: str, generator: torch.Generator | None = None) -> nn.Module:
    if backend == "tcnn":
        from scenes import tcnn_backend

        return tcnn_backend.TcnnHashGrid(config)
    return TorchHashGrid(config, generator)


def make_mlp(n_input: int, n_output: int, hidden: int, n_hidden_layers: int, backend: str) -> nn.Module:
    """ReLU MLP without output activation (the field applies its own)."""
    if backend == "tcnn":
        from scenes import tcnn_backend

        return tcnn_backend.TcnnMLP(n_input, n_output, hidden, n_hidden_layers)
    # the same Sequential (layers, initialisation, state-dict keys) as always, with a fused CPU forward/backward
    return ReluMLP(n_input, n_output, hidden, n_hidden_layers)
