"""The fields' small ReLU MLPs on the CPU: `mlp_fused.c` (built by `render.native`, called via ctypes), forward and
backward a block of points at a time.

`ReluMLP` is the `nn.Sequential(Linear, ReLU, ..., Linear)` that `scenes.backends.make_mlp` has always built (same
parameters, same state-dict keys, so checkpoints load either way); its forward runs the kernel for CPU float32
inputs and falls back to the Sequential's own torch ops elsewhere: on a GPU, under autocast (the bfloat16 colour
pass `render.proposal.colour_precision` takes where this kernel does not run), for layers wider than the kernel's
128, or where the kernel cannot be built (warned once). Both agree to float32 rounding (tests/test_mlp_fused.py).
A module whose `bf16` is set (the NeRF's MLPs when `FieldConfig.mlp_precision` is "bfloat16") runs the kernel's
bfloat16 variant instead, where the CPU has AVX-512 BF16 (`bf16_available`): bfloat16 products, float32 sums.

VISTA_MLP=reference forces the torch ops (for comparisons).
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from render.native import Kernel, ptr

_SOURCE = Path(__file__).with_name("mlp_fused.c")
VEC = 16
MAX_WIDTH = 128
CHUNKS = 32  # mlp_fused.c's CHUNKS: the backward's scratch holds this many partial gradients


def _declare(library: ctypes.CDLL) -> None:
    i64, i32, f32p, u32p = ctypes.c_int64, ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_uint32)
    i64p, i32p = ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int)
    library.mlp_forward.argtypes = [f32p, i64, f32p, i64p, i32p, i32, f32p, f32p, u32p, i32]
    library.mlp_forward.restype = None
    library.mlp_backward.argtypes = [f32p, i64, f32p, i64p, i32p, i32, f32p, f32p, f32p, f32p, i64, f32p, u32p, i32]
    library.mlp_backward.restype = None
    library.mlp_bf16_supported.argtypes = []
    library.mlp_bf16_supported.restype = ctypes.c_int

_KERNEL = Kernel(_SOURCE, "VISTA_MLP", "fused CPU MLP", _declare)


def _padded(d: int) -> int:
    return (d + VEC - 1) // VEC * VEC


@dataclass(frozen=True)
class Packing:
    """Where each layer's arrays sit in the packed buffer the kernel reads (see mlp_fused.c)."""

    dims: tuple[int, ...]
    dims_array: torch.Tensor  # int32 [L + 1]: the dims as the kernel reads them
    offsets: torch.Tensor  # int64 [3 L]: transposed weight, weight, bias
    size: int
    hidden_width: int  # floats per point of the saved (padded) hidden activations


@functools.cache
def packing_for(dims: tuple[int, ...]) -> Packing:
    offsets, size = [], 0
    for k, o in zip(dims[:-1], dims[1:]):
        for n in (k * _padded(o), _padded(o) * _padded(k), _padded(o)):
            offsets.append(size)
            size += _padded(n)  # every array starts on a whole vector
    return Packing(dims, torch.tensor(dims, dtype=torch.int32), torch.tensor(offsets, dtype=torch.int64), size,
                   sum(_padded(d) for d in dims[1:-1]))


def pack(linears: list[nn.Linear], packing: Packing) -> torch.Tensor:
    buffer = torch.zeros(packing.size, dtype=torch.float32)
    with torch.no_grad():
        for layer, linear in enumerate(linears):
            o, k = linear.weight.shape
            wt, w, b = packing.offsets[3 * layer: 3 * layer + 3].tolist()
            buffer[wt: wt + k * _padded(o)].view(k, _padded(o))[:, :o] = linear.weight.t()
            buffer[w: w + _padded(o) * _padded(k)].view(_padded(o), _padded(k))[:o, :k] = linear.weight
            buffer[b: b + o] = linear.bias
    return buffer


@functools.cache
def bf16_available() -> bool:
    """Whether this CPU runs the kernel's bfloat16 variant natively (AVX-512 BF16) and the kernel builds."""
    library = _KERNEL.load()
    return library is not None and bool(library.mlp_bf16_supported())


def _pairs(packing: Packing, bf16: bool) -> torch.Tensor | None:
    """Scratch for the bfloat16 weight pairs (mlp_fused.c: pack_pairs), or None: the kernel then runs float32."""
    return torch.empty(packing.size, dtype=torch.int32) if bf16 else None


def _forward(x: torch.Tensor, params: torch.Tensor, packing: Packing, save_hidden: bool, bf16: bool):
    n = x.shape[0]
    y = torch.empty(n, packing.dims[-1], dtype=torch.float32)
    hidden = torch.empty(n, packing.hidden_width, dtype=torch.float32) if save_hidden else None
    pairs = _pairs(packing, bf16)  # held here: a temporary would be freed before the kernel writes to it
    _KERNEL.load().mlp_forward(ptr(x, ctypes.c_float), n, ptr(params, ctypes.c_float),
                               ptr(packing.offsets, ctypes.c_int64), ptr(packing.dims_array, ctypes.c_int),
                               len(packing.dims) - 1, ptr(y, ctypes.c_float),
                               None if hidden is None else ptr(hidden, ctypes.c_float),
                               None if pairs is None else ptr(pairs, ctypes.c_uint32), torch.get_num_threads())
    return y, hidden


class _FusedMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, packing: Packing, linears: list[nn.Linear], bf16: bool, *weights_and_biases):
        params = pack(linears, packing)
        y, hidden = _forward(x, params, packing, save_hidden=True, bf16=bf16)
        ctx.save_for_backward(x, params, hidden)
        ctx.packing, ctx.linears, ctx.bf16 = packing, linears, bf16
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, params, hidden = ctx.saved_tensors
        packing: Packing = ctx.packing
        grad_y = grad_y.contiguous().float()
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        grads = torch.empty(packing.size, dtype=torch.float32)
        scratch = torch.empty(CHUNKS * packing.size, dtype=torch.float32)
        pairs = _pairs(packing, ctx.bf16)
        _KERNEL.load().mlp_backward(ptr(x, ctypes.c_float), x.shape[0], ptr(params, ctypes.c_float),
                                    ptr(packing.offsets, ctypes.c_int64), ptr(packing.dims_array, ctypes.c_int),
                                    len(packing.dims) - 1, ptr(hidden, ctypes.c_float), ptr(grad_y, ctypes.c_float),
                                    None if grad_x is None else ptr(grad_x, ctypes.c_float),
                                    ptr(grads, ctypes.c_float), packing.size, ptr(scratch, ctypes.c_float),
                                    None if pairs is None else ptr(pairs, ctypes.c_uint32), torch.get_num_threads())
        out: list[torch.Tensor | None] = [grad_x, None, None, None]
        for layer, linear in enumerate(ctx.linears):
            o, k = linear.weight.shape
            _, w, b = packing.offsets[3 * layer: 3 * layer + 3].tolist()
            out.append(grads[w: w + _padded(o) * _padded(k)].view(_padded(o), _padded(k))[:o, :k].clone())
            out.append(grads[b: b + o].clone())
        return tuple(out)


class ReluMLP(nn.Sequential):
    """Linear, ReLU, ..., Linear: the fused kernel for CPU float32, torch's ops otherwise (module docstring)."""

    def __init__(self, n_input: int, n_output: int, hidden: int, n_hidden_layers: int):
        layers: list[nn.Module] = []
        width = n_input
        for _ in range(n_hidden_layers):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        layers.append(nn.Linear(width, n_output))
        super().__init__(*layers)
        self._linears = [m for m in layers if isinstance(m, nn.Linear)]
        self._packing = packing_for((n_input, *([hidden] * n_hidden_layers), n_output))
        self.bf16 = False
        """Run the kernel's bfloat16 variant where the CPU has it (`bf16_available`; float32 elsewhere)."""

    @property
    def fused_available(self) -> bool:
        """Whether CPU float32 inputs run the kernel (it builds, and no layer is wider than it takes)."""
        return max(self._packing.dims) <= MAX_WIDTH and _KERNEL.load() is not None

    def _fused_applies(self, x: torch.Tensor) -> bool:
        return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 2
                and not torch.is_autocast_enabled("cpu")
                and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in self.parameters())
                and self.fused_available)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._fused_applies(x):
            return super().forward(x)
        x = x.contiguous()
        params = [p for linear in self._linears for p in (linear.weight, linear.bias)]
        bf16 = self.bf16 and bf16_available()
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
            return _FusedMLP.apply(x, self._packing, self._linears, bf16, *params)
        return _forward(x, pack(self._linears, self._packing), self._packing, save_hidden=False, bf16=bf16)[0]
