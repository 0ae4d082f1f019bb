"""The fused CPU MLP (scenes/mlp_fused.c) against torch's own layers: values, gradients, reproducibility, fallbacks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scenes import mlp_fused
from scenes.backends import make_mlp
from scenes.mlp_fused import ReluMLP

pytestmark = pytest.mark.skipif(mlp_fused._KERNEL.load() is None, reason="no C compiler: the torch path runs")

SHAPES = [(32, 16, 64, 1), (31, 3, 64, 2), (10, 1, 16, 1), (7, 5, 24, 3)]


def _reference(mlp: ReluMLP, x: torch.Tensor) -> torch.Tensor:
    return nn.Sequential.forward(mlp, x)


def _grads(mlp: ReluMLP, x: torch.Tensor, grad_y: torch.Tensor, forward) -> list[torch.Tensor]:
    x = x.clone().requires_grad_(True)
    mlp.zero_grad(set_to_none=True)
    forward(x).backward(grad_y)
    return [x.grad] + [p.grad for p in mlp.parameters()]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n", [1, 33, 1000])
def test_values_and_gradients_match_torch(shape, n):
    torch.manual_seed(0)
    n_in, n_out, hidden, layers = shape
    mlp = ReluMLP(n_in, n_out, hidden, layers)
    x, grad_y = torch.randn(n, n_in), torch.randn(n, n_out)
    torch.testing.assert_close(mlp(x), _reference(mlp, x), rtol=1e-5, atol=1e-5)
    fused, reference = _grads(mlp, x, grad_y, mlp), _grads(mlp, x, grad_y, lambda z: _reference(mlp, z))
    for a, b in zip(fused, reference):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))


@pytest.mark.parametrize("bf16", [False, True])
def test_weight_gradients_do_not_depend_on_the_thread_count(bf16):
    if bf16 and not mlp_fused.bf16_available():
        pytest.skip("this CPU has no AVX-512 BF16")
    torch.manual_seed(1)
    mlp = ReluMLP(31, 3, 64, 2)
    mlp.bf16 = bf16
    x, grad_y = torch.randn(5000, 31), torch.randn(5000, 3)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _grads(mlp, x, grad_y, mlp)
        torch.set_num_threads(2)
        two = _grads(mlp, x, grad_y, mlp)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_no_grad_forward_equals_the_training_forward():
    torch.manual_seed(2)
    mlp = ReluMLP(32, 16, 64, 1)
    x = torch.randn(777, 32, requires_grad=True)
    with torch.no_grad():
        inference = mlp(x)
    assert torch.equal(inference, mlp(x).detach())


def test_parameters_only_need_gradients_when_the_input_has_none():
    torch.manual_seed(3)
    mlp = ReluMLP(10, 1, 16, 1)
    x = torch.randn(100, 10)
    mlp(x).sum().backward()
    reference = ReluMLP(10, 1, 16, 1)
    reference.load_state_dict(mlp.state_dict())
    _reference(reference, x).sum().backward()
    for a, b in zip(mlp.parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)


def test_empty_batch():
    mlp = ReluMLP(32, 16, 64, 1)
    x = torch.zeros(0, 32, requires_grad=True)
    y = mlp(x)
    assert y.shape == (0, 16)
    y.sum().backward()
    assert x.grad.shape == (0, 32) and torch.equal(mlp[0].weight.grad, torch.zeros_like(mlp[0].weight))


def test_same_module_layout_and_initialisation_as_the_sequential_it_replaces():
    torch.manual_seed(4)
    mlp = make_mlp(31, 3, 64, 2, "torch")
    torch.manual_seed(4)
    sequential = nn.Sequential(nn.Linear(31, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    assert isinstance(mlp, ReluMLP)
    assert mlp.state_dict().keys() == sequential.state_dict().keys()
    for key, value in sequential.state_dict().items():
        assert torch.equal(mlp.state_dict()[key], value)


def test_torch_runs_under_autocast_and_for_wide_layers(monkeypatch):
    torch.manual_seed(5)
    calls = []
    real_forward = mlp_fused._forward
    monkeypatch.setattr(mlp_fused, "_forward", lambda *a, **k: calls.append(1) or real_forward(*a, **k))
    mlp = ReluMLP(31, 3, 64, 2)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert mlp(torch.randn(50, 31)).dtype == torch.bfloat16
        ReluMLP(31, 3, 256, 1)(torch.randn(50, 31))
        assert calls == []
        mlp(torch.randn(50, 31))
        assert calls == [1]


bf16_only = pytest.mark.skipif(not mlp_fused.bf16_available(), reason="this CPU has no AVX-512 BF16")


def _bf16(t: torch.Tensor) -> torch.Tensor:
    return t.bfloat16().float()


def _bf16_emulation(mlp: ReluMLP, x: torch.Tensor, grad_y: torch.Tensor) -> list[torch.Tensor]:
    """The kernel's bfloat16 arithmetic in torch: [y, grad x, grad W1, grad b1, ...]. Operands of every product
    are rounded to bfloat16; their products are then exact in float32, so only the order of the sums differs."""
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    inputs, h = [], x
    for i, linear in enumerate(linears):
        inputs.append(h)
        h = _bf16(h) @ _bf16(linear.weight).t() + linear.bias
        h = h.clamp_min(0.0) if i < len(linears) - 1 else h
    grads: list[torch.Tensor] = []
    dy = grad_y
    for i in reversed(range(len(linears))):
        grads[:0] = [_bf16(dy).t() @ _bf16(inputs[i]), dy.sum(0)]
        dy = (_bf16(dy) @ _bf16(linears[i].weight)) * ((inputs[i] > 0) if i > 0 else 1.0)
    return [h, dy] + grads


def _relative_errors(values: list[torch.Tensor], reference: list[torch.Tensor]) -> list[float]:
    return [float((a - b).norm() / b.norm().clamp_min(1e-30)) for a, b in zip(values, reference)]


@bf16_only
@pytest.mark.parametrize("shape", SHAPES)
def test_bfloat16_kernel_computes_bfloat16_products_with_float32_sums(shape):
    torch.manual_seed(6)
    n_in, n_out, hidden, layers = shape
    mlp = ReluMLP(n_in, n_out, hidden, layers)
    x, grad_y = torch.randn(500, n_in), torch.randn(500, n_out)
    emulated = _bf16_emulation(mlp, x, grad_y)
    float32 = [mlp(x).detach()] + _grads(mlp, x, grad_y, mlp)
    mlp.bf16 = True
    bfloat16 = [mlp(x).detach()] + _grads(mlp, x, grad_y, mlp)
    # far closer to the emulation than float32 is (a rounded hidden value may land on the other side of a tie)
    for kernel, plain in zip(_relative_errors(bfloat16, emulated), _relative_errors(float32, emulated)):
        assert kernel < 0.05 * plain + 1e-6
    with torch.no_grad():
        assert torch.equal(mlp(x), bfloat16[0])


def test_the_field_config_picks_the_precision_of_the_nerf_mlps():
    from scenes.config import FieldConfig, HashGridConfig
    from scenes.field import NerfField

    grid = HashGridConfig.spanning(64, n_levels=4, log2_hashmap_size=12)
    assert not NerfField(FieldConfig(grid=grid), "torch").color_mlp.bf16
    field = NerfField(FieldConfig(grid=grid, mlp_precision="bfloat16"), "torch")
    assert field.density_mlp.bf16 and field.color_mlp.bf16
    with pytest.raises(ValueError, match="mlp_precision"):
        FieldConfig(mlp_precision="float16")
