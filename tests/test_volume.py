"""Volume rendering against hand-worked numbers (as nerfacc's tests do)."""

import math

import torch

from render.volume import accumulate, distortion_loss, render_weights


def test_transmittance_matches_hand_computation():
    # ray 0: three samples, ray 1: one sample, ray 2: no samples
    sigmas = torch.tensor([1.0, 2.0, 3.0, 0.5])
    deltas = torch.tensor([0.5, 0.25, 1.0, 2.0])
    rays = torch.tensor([0, 0, 0, 1])
    weights, transmittance, alphas = render_weights(sigmas, deltas, rays, 3)
    # sigma*delta = 0.5, 0.5, 3.0 | 1.0
    expected_t = torch.tensor([1.0, math.exp(-0.5), math.exp(-1.0), 1.0])
    expected_a = torch.tensor([1 - math.exp(-0.5), 1 - math.exp(-0.5), 1 - math.exp(-3.0), 1 - math.exp(-1.0)])
    torch.testing.assert_close(transmittance, expected_t)
    torch.testing.assert_close(alphas, expected_a)
    torch.testing.assert_close(weights, expected_t * expected_a)
    opacity = accumulate(weights, None, rays, 3)
    torch.testing.assert_close(opacity, torch.tensor([1 - math.exp(-4.0), 1 - math.exp(-1.0), 0.0]))


def test_accumulate_colours_and_gradients_flow():
    sigmas = torch.tensor([10.0, 10.0], requires_grad=True)
    deltas = torch.tensor([0.1, 0.1])
    rays = torch.tensor([0, 0])
    rgb = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    weights, _, _ = render_weights(sigmas, deltas, rays, 1)
    colour = accumulate(weights, rgb, rays, 1)
    w0 = 1 - math.exp(-1.0)
    w1 = math.exp(-1.0) * (1 - math.exp(-1.0))
    torch.testing.assert_close(colour, torch.tensor([[w0, w1, 0.0]]))
    colour.sum().backward()
    assert sigmas.grad is not None and torch.all(torch.isfinite(sigmas.grad))


def test_distortion_loss_matches_quadratic_definition():
    torch.manual_seed(0)
    counts = [5, 3, 7]
    weights = torch.rand(sum(counts))
    deltas = torch.rand(sum(counts)) * 0.1
    rays = torch.cat([torch.full((c,), i) for i, c in enumerate(counts)])
    t = torch.cat([torch.cumsum(torch.rand(c), 0) for c in counts])
    fast = distortion_loss(weights, t, deltas, rays, len(counts))
    slow = 0.0
    for r in range(len(counts)):
        m = rays == r
        w, tm, d = weights[m], t[m], deltas[m]
        slow += (w[:, None] * w[None, :] * (tm[:, None] - tm[None, :]).abs()).sum() + (w**2 * d).sum() / 3
    torch.testing.assert_close(fast, torch.as_tensor(slow / len(counts), dtype=fast.dtype))
