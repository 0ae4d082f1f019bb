"""The fast CPU hash grid: `hashgrid_fused.c` compiled once with the system C compiler, called via ctypes.

Built by `render.native` (why C and not torch.utils.cpp_extension is explained there).
Where it cannot be built (no compiler, no OpenMP), the plain-PyTorch twin in `hashgrid.py` runs
instead, with a warning that says so; both give the same values and gradients (tests/test_hashgrid.py).

VISTA_HASHGRID=reference forces the twin (for comparisons).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from render.native import Kernel, ptr
from scenes.hashgrid import GridLayout, hash_encode_reference

_SOURCE = Path(__file__).with_name("hashgrid_fused.c")


def _declare(library: ctypes.CDLL) -> None:
    i64, f32p, i64p = ctypes.c_int64, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int64)
    for name in ("hashgrid_forward", "hashgrid_backward"):
        getattr(library, name).argtypes = [f32p, i64, f32p, ctypes.c_int, ctypes.c_int, f32p, i64p, i64p, f32p,
                                           ctypes.c_int]
        getattr(library, name).restype = None


_KERNEL = Kernel(_SOURCE, "VISTA_HASHGRID", "fused CPU hash grid", _declare)
_load = _KERNEL.load


def fused_available() -> bool:
    return _load() is not None


class LayoutArrays:
    """The layout as contiguous arrays the kernel reads (kept alive beside the module)."""

    def __init__(self, layout: GridLayout):
        self.scales = torch.tensor(layout.scales, dtype=torch.float32)
        self.resolutions = torch.tensor(layout.resolutions, dtype=torch.int64)
        self.offsets = torch.tensor(layout.offsets, dtype=torch.int64)
        self.n_levels = len(layout.scales)



class _FusedEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, table: torch.Tensor, arrays: LayoutArrays) -> torch.Tensor:
        library = _load()
        n_features = table.shape[1]
        out = torch.empty(x.shape[0], arrays.n_levels * n_features, dtype=torch.float32)
        library.hashgrid_forward(ptr(x, ctypes.c_float), x.shape[0], ptr(table, ctypes.c_float), n_features,
                                 arrays.n_levels, ptr(arrays.scales, ctypes.c_float),
                                 ptr(arrays.resolutions, ctypes.c_int64), ptr(arrays.offsets, ctypes.c_int64),
                                 ptr(out, ctypes.c_float), torch.get_num_threads())
        ctx.save_for_backward(x)
        ctx.arrays = arrays
        ctx.table_shape = table.shape
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        arrays: LayoutArrays = ctx.arrays
        grad_out = grad_out.contiguous().float()
        grad_table = torch.zeros(ctx.table_shape, dtype=torch.float32)
        _load().hashgrid_backward(ptr(x, ctypes.c_float), x.shape[0], ptr(grad_out, ctypes.c_float),
                                  ctx.table_shape[1], arrays.n_levels, ptr(arrays.scales, ctypes.c_float),
                                  ptr(arrays.resolutions, ctypes.c_int64), ptr(arrays.offsets, ctypes.c_int64),
                                  ptr(grad_table, ctypes.c_float), torch.get_num_threads())
        return None, grad_table, None


def hash_encode(x: torch.Tensor, table: torch.Tensor, layout: GridLayout,
                arrays: LayoutArrays | None = None) -> torch.Tensor:
    """Same contract as `hash_encode_reference`; fused on CPU float32 when the kernel is available.

    Gradients flow to the table only (positions are data in NeRF training); a caller that needs
    d/dx gets the reference path.
    """
    usable = (x.device.type == "cpu" and table.device.type == "cpu" and x.dtype == torch.float32
              and table.dtype == torch.float32 and not x.requires_grad and table.shape[1] <= 8)
    if not usable or _load() is None:
        return hash_encode_reference(x, table, layout)
    return _FusedEncode.apply(x.contiguous(), table.contiguous(), arrays or LayoutArrays(layout))
