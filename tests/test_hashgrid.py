"""The hash grid: a hand-worked case, the naive reference, the fused CPU kernel, and the backend switch."""

from __future__ import annotations

import math

import pytest
import torch

from scenes import backends
from scenes.config import HashGridConfig
from scenes.hashgrid import grid_layout, hash_encode_reference, init_table, level_indices_and_weights
from scenes.hashgrid_fused import LayoutArrays, fused_available, hash_encode
from vista_core.errors import VistaError


def naive_encode(x: torch.Tensor, table: torch.Tensor, config: HashGridConfig) -> torch.Tensor:
    """Point by point, corner by corner, straight from the Instant-NGP paper and tcnn's grid.h."""
    layout = grid_layout(config)
    out = torch.zeros(x.shape[0], config.n_output_dims, dtype=torch.float64)
    for p in range(x.shape[0]):
        for level in range(config.n_levels):
            scale, res = layout.scales[level], layout.resolutions[level]
            size = layout.offsets[level + 1] - layout.offsets[level]
            pos = [float(torch.tensor(x[p, d].item() * scale, dtype=torch.float32)) + 0.5 for d in range(3)]
            cell = [math.floor(v) for v in pos]
            frac = [v - c for v, c in zip(pos, cell)]
            for corner in range(8):
                bits = [(corner >> d) & 1 for d in range(3)]
                c = [cell[d] + bits[d] for d in range(3)]
                if res**3 <= size:
                    index = c[0] + c[1] * res + c[2] * res * res
                else:
                    index = (c[0] ^ ((c[1] * 2654435761) % 2**32) ^ ((c[2] * 805459861) % 2**32)) % 2**32
                row = index % size + layout.offsets[level]
                weight = math.prod(frac[d] if bits[d] else 1 - frac[d] for d in range(3))
                f = config.n_features_per_level
                out[p, level * f:(level + 1) * f] += weight * table[row].double()
    return out


SMALL = HashGridConfig(n_levels=4, n_features_per_level=2, log2_hashmap_size=10, base_resolution=4,
                       per_level_scale=2.0)  # levels 0-1 dense, 2-3 hashed


def test_layout_matches_tcnn_formula():
    layout = grid_layout(SMALL)
    # scale = base * 2^l - 1, resolution = ceil(scale) + 1, params = min(next multiple of 8 of res^3, 2^10)
    assert layout.scales == (3.0, 7.0, 15.0, 31.0)
    assert layout.resolutions == (4, 8, 16, 32)
    assert layout.offsets == (0, 64, 64 + 512, 64 + 512 + 1024, 64 + 512 + 2048)


def test_hand_worked_trilinear_value():
    # one dense level of resolution 2 (scale 1): x = (0.25, 0.5, 0.5) -> pos = (0.75, 1, 1), cell (0, 1, 1)
    config = HashGridConfig(n_levels=1, n_features_per_level=1, log2_hashmap_size=10, base_resolution=2)
    layout = grid_layout(config)
    assert layout.resolutions == (2,) and layout.scales == (1.0,)
    table = torch.arange(layout.n_params, dtype=torch.float32)[:, None]  # value = row index
    x = torch.tensor([[0.25, 0.5, 0.5]])
    # corners (0|1, 1, 1) with weights 0.25 and 0.75 (y and z fractions are 0); rows x + 2y + 4z = 6 and 7
    expected = 0.25 * 6 + 0.75 * 7
    assert hash_encode_reference(x, table, layout).item() == pytest.approx(expected)
    assert hash_encode(x, table, layout).item() == pytest.approx(expected)


def test_tcnn_hash_of_a_corner():
    layout = grid_layout(SMALL)
    x = torch.tensor([[0.5, 0.25, 0.75]])
    rows, weights = level_indices_and_weights(x, layout, 3)  # hashed level, scale 31
    # corner 0: pos = (16, 8.25, 23.75) -> cell (16, 8, 23)
    expected = (16 ^ (8 * 2654435761 % 2**32) ^ (23 * 805459861 % 2**32)) % 1024 + layout.offsets[3]
    assert rows[0, 0].item() == expected
    assert weights.sum().item() == pytest.approx(1.0)


def test_reference_matches_naive():
    g = torch.Generator().manual_seed(0)
    layout = grid_layout(SMALL)
    table = torch.randn(layout.n_params, 2, generator=g)
    x = torch.rand(50, 3, generator=g)
    torch.testing.assert_close(hash_encode_reference(x, table, layout).double(), naive_encode(x, table, SMALL),
                               rtol=1e-5, atol=1e-5)


needs_fused = pytest.mark.skipif(not fused_available(), reason="no C compiler: fused CPU hash grid not built")


@needs_fused
@pytest.mark.parametrize("n_features", [1, 2, 4])
def test_fused_matches_reference_values_and_gradients(n_features):
    config = HashGridConfig(n_levels=8, n_features_per_level=n_features, log2_hashmap_size=12, base_resolution=4,
                            per_level_scale=1.7)
    layout = grid_layout(config)
    g = torch.Generator().manual_seed(1)
    table = torch.randn(layout.n_params, n_features, generator=g).requires_grad_()
    x = torch.cat([torch.rand(3000, 3, generator=g), torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])])
    upstream = torch.randn(x.shape[0], config.n_output_dims, generator=g)

    reference = hash_encode_reference(x, table, layout)
    (grad_reference,) = torch.autograd.grad((reference * upstream).sum(), table)
    fused = hash_encode(x, table, layout, LayoutArrays(layout))
    (grad_fused,) = torch.autograd.grad((fused * upstream).sum(), table)

    torch.testing.assert_close(fused, reference, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad_fused, grad_reference, rtol=1e-5, atol=1e-5)
    assert grad_fused.abs().sum() > 0


@needs_fused
def test_blocked_and_point_by_point_paths_give_the_same_bits():
    """hashgrid_fused.c encodes blocks of in-range points together and a block holding any other point point by
    point: the same operations, so the same bits (values and table gradients), dense and hashed levels alike."""
    layout = grid_layout(SMALL)
    g = torch.Generator().manual_seed(4)
    table = torch.randn(layout.n_params, 2, generator=g).requires_grad_()
    x = torch.cat([torch.rand(4000, 3, generator=g), torch.ones(16, 3), torch.zeros(16, 3)])
    upstream = torch.randn(x.shape[0], SMALL.n_output_dims, generator=g)
    spoiled = torch.arange(len(x)) % 16 == 5  # one point per block of 16 (the C BLOCK) below 0
    upstream[spoiled] = 0.0
    x_spoiled = x.clone()
    x_spoiled[spoiled] = -1.0
    blocked, per_point = hash_encode(x, table, layout), hash_encode(x_spoiled, table, layout)
    assert torch.equal(blocked[~spoiled], per_point[~spoiled])
    (grad_blocked,) = torch.autograd.grad(blocked, table, upstream)
    (grad_per_point,) = torch.autograd.grad(per_point, table, upstream)
    assert torch.equal(grad_blocked, grad_per_point) and grad_blocked.abs().sum() > 0


@needs_fused
def test_fused_gradient_is_reproducible_across_thread_counts():
    layout = grid_layout(SMALL)
    g = torch.Generator().manual_seed(2)
    table = torch.randn(layout.n_params, 2, generator=g).requires_grad_()
    x = torch.rand(20000, 3, generator=g)
    grads = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 1):
            torch.set_num_threads(n)
            out = hash_encode(x, table, layout)
            grads.append(torch.autograd.grad(out.square().sum(), table)[0])
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(grads[0], grads[1]) and torch.equal(grads[0], grads[2])


@needs_fused
def test_points_spanning_several_tiles():
    """hashgrid_fused.c runs a 16-level grid's points through the levels 8192 at a time (TILE_BYTES): values do not
    depend on where the tiles fall, and every tile's gradient reaches the table."""
    config = HashGridConfig(n_levels=16, n_features_per_level=2, log2_hashmap_size=12, base_resolution=4,
                            per_level_scale=1.5)
    layout = grid_layout(config)
    g = torch.Generator().manual_seed(5)
    table = torch.randn(layout.n_params, 2, generator=g).requires_grad_()
    x = torch.rand(20_011, 3, generator=g)  # two whole tiles and a part ending in a part of a block
    upstream = torch.randn(x.shape[0], config.n_output_dims, generator=g)
    whole = hash_encode(x, table, layout)
    with torch.no_grad():
        assert torch.equal(whole, torch.cat([hash_encode(x[:5003], table, layout),
                                             hash_encode(x[5003:], table, layout)]))
    (grad_fused,) = torch.autograd.grad(whole, table, upstream)
    (grad_reference,) = torch.autograd.grad(hash_encode_reference(x, table, layout), table, upstream)
    torch.testing.assert_close(grad_fused, grad_reference, rtol=1e-4, atol=1e-4)


def test_positions_needing_gradients_use_the_reference():
    layout = grid_layout(SMALL)
    table = init_table(layout, 2, torch.Generator().manual_seed(0))
    x = torch.rand(10, 3, generator=torch.Generator().manual_seed(3)).requires_grad_()
    hash_encode(x, table, layout).sum().backward()
    assert x.grad is not None


def test_backend_switch(monkeypatch):
    with pytest.raises(VistaError, match="backend"):
        backends.resolve_backend("cuda")
    assert backends.resolve_backend("torch") == "torch"
    monkeypatch.setattr(backends, "tcnn_status", lambda: (False, "CUDA is not available on this machine"))
    assert backends.resolve_backend("auto") == "torch"
    with pytest.raises(VistaError, match="pip install .*tiny-cuda-nn"):
        backends.resolve_backend("tcnn")


@pytest.mark.gpu
@pytest.mark.skipif(not backends.tcnn_status()[0], reason="needs CUDA and tinycudann")
def test_tcnn_grid_matches_torch_grid():
    config = HashGridConfig(n_levels=8, n_features_per_level=2, log2_hashmap_size=14, base_resolution=16,
                            per_level_scale=1.5)
    torch_grid = backends.make_encoding(config, "torch", torch.Generator().manual_seed(0))
    tcnn_grid = backends.make_encoding(config, "tcnn")
    tcnn_grid.load_state_dict(torch_grid.state_dict())
    x = torch.rand(4096, 3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(tcnn_grid(x).cpu(), torch_grid(x), rtol=1e-3, atol=1e-4)
