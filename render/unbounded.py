"""Where rays of unbounded ("unbounded") scenes take their candidate samples: one step length in contracted space.

The field and its occupancy grid live in mip-NeRF 360's contracted space (nerfstudio's SceneContraction, L-inf:
the unit cube stays, a point at L-inf distance r > 1 goes to 2 - 1/r), so a grid cell far away covers a lot of
world. Sampling should follow the same space: mip-NeRF 360 (Barron et al. 2022, sec. 2) spaces its samples
linearly in disparity beyond the unit cube for this reason, and Instant-NGP's cone stepping makes the step grow
with distance so the steps per cascade cell stay about constant.

The "contracted" schedule does both with one number: a ray steps linearly with `step` until it leaves the unit
cube [-1, 1]^3, then linearly in disparity measured from that exit (1 / (t - t_exit + 1), which is 1 / r for a ray
leaving radially) with the same `step` in contracted space, out to the far plane. The former schedule ("disparity":
linear to 3 scene units, then 1/t to the far plane, half the steps each) took ~9x more steps per contracted
length beyond 3 units than inside, and as many samples per ray until opacity built up (125-180 on fox).

Opacity thresholds follow the real step too (Instant-NGP thresholds sigma times its cascade's step): beyond the
unit cube a contracted step `step` is about `step * r^2` long in the world, so `world_step_at` scales the
occupancy grid's opacity by it.
"""

from __future__ import annotations

import math

import torch

from render.cameras import Rays

NEAR = 0.05
"""Scene units in front of the camera where sampling starts."""
FAR = 1000.0
"""Scene units where sampling ends (the contraction maps it within 0.001 of the cube's side 2)."""
_LINEAR_UNTIL = 3.0
"""The "disparity" schedule: linear to here (beyond the unit cube seen from any camera inside it)."""


def cube_exit(rays: Rays) -> torch.Tensor:
    """[R] distance at which each ray leaves the box [-1, 1]^3 (NEAR for rays that start outside it or miss it)."""
    d = rays.directions
    safe = torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    inv = 1.0 / safe
    a = (-1.0 - rays.origins) * inv
    b = (1.0 - rays.origins) * inv
    t_far = torch.maximum(a, b).amin(dim=-1)
    return torch.nan_to_num(t_far, nan=NEAR, posinf=NEAR, neginf=NEAR).clamp(min=NEAR, max=FAR)


def contracted_edges(p: torch.Tensor, t_exit: torch.Tensor, n_inner: torch.Tensor, n_outer: int) -> torch.Tensor:
    """Distances t at step coordinates p (same shape as t_exit's gathered rows): p in [0, n_inner] is linear from
    NEAR to t_exit, p in [n_inner, n_inner + n_outer] linear in 1 / (t - t_exit + 1) from 1 to the far plane."""
    n_in = n_inner.float()
    inner = NEAR + (t_exit - NEAR) * (p / n_in.clamp(min=1.0))
    q_far = 1.0 / (FAR - t_exit + 1.0)
    # times the float reciprocal, not divided: the C marcher (march_fused.c) does exactly the same
    q = 1.0 - (1.0 - q_far) * ((p - n_in) * (1.0 / n_outer)).clamp(0.0, 1.0)
    outer = t_exit - 1.0 + 1.0 / q
    return torch.where(p <= n_in, inner, outer)


def effective_step(step: float, max_samples_per_ray: int) -> float:
    """`step`, or longer if a ray could otherwise take more than `max_samples_per_ray` steps (which bounds a
    render's memory): the unit cube's diagonal 2 sqrt(3), then a contracted distance of 1 beyond it, and rounding."""
    return max(step, (2.0 * math.sqrt(3.0) + 1.0) / max(max_samples_per_ray - 4, 1))


def max_inner_steps(step: float) -> int:
    """Linear steps at most (the cube's diagonal): a ray crossing the cube from outside takes longer ones."""
    return math.ceil(2.0 * math.sqrt(3.0) / step)


def outer_steps(step: float) -> int:
    """Steps from the unit cube's side to the far plane: the contracted distance there is 1 for a radial ray."""
    return max(1, int(round(1.0 / step)))


def contracted_schedule(rays: Rays, shift: torch.Tensor,
                        step: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ray index [S], t_start [S], t_end [S]) of every candidate step, packed and sorted by ray then distance.

    `shift` [R] in [0, 1) moves each ray's step boundaries by that fraction of a step (0.5: the step's middle),
    as the object marcher's jitter does; the steps tile [NEAR, FAR] without gaps or overlaps."""
    t_exit = cube_exit(rays)
    usable = (torch.isfinite(shift) & torch.isfinite(rays.origins).all(dim=-1)
              & torch.isfinite(rays.directions).all(dim=-1))
    # at most ceil(2 sqrt(3) / step): a ray starting outside the cube (a path that leaves it) takes the outer steps only
    n_inner = torch.ceil((t_exit - NEAR) * (1.0 / step)).long().clamp(min=0, max=max_inner_steps(step))
    n_outer = outer_steps(step)
    # boundaries at p = 0, shift + 0.5, shift + 1.5, ..., the span's end: part steps at both ends (the zero-length
    # ones dropped below), so every shift tiles [NEAR, FAR]
    edges_per_ray = torch.where(usable, n_inner + n_outer + 3, 0)
    owner = torch.repeat_interleave(torch.arange(len(rays), device=shift.device), edges_per_ray)
    first = torch.cumsum(edges_per_ray, 0) - edges_per_ray
    k = (torch.arange(owner.numel(), device=shift.device) - first[owner]).float()
    total = (n_inner + n_outer).float()[owner]
    p = (k + torch.where(usable, shift, 0.5)[owner] - 1.5).clamp(min=0.0).minimum(total)
    edges = contracted_edges(p, t_exit[owner], n_inner[owner], n_outer)
    # each edge but a ray's last starts a step; each but its first ends one (shared edges: no gaps, no overlaps)
    is_last = torch.zeros(owner.numel(), dtype=torch.bool, device=shift.device)
    is_last[(first + edges_per_ray - 1)[edges_per_ray > 0]] = True
    ray, starts, ends = owner[~is_last], edges[~is_last], edges.roll(-1)[~is_last]
    keep = ends > starts
    return ray[keep], starts[keep], ends[keep]


def disparity_edges(s: torch.Tensor) -> torch.Tensor:
    """The "disparity" schedule: s in [0, 1] -> distance, linear to 3 units, then linear in 1/t to the far plane."""
    half = s.clamp(max=0.5) * 2
    linear = NEAR + (_LINEAR_UNTIL - NEAR) * half
    rest = (s - 0.5).clamp(min=0.0) * 2
    disparity = 1 / _LINEAR_UNTIL + (1 / FAR - 1 / _LINEAR_UNTIL) * rest
    return torch.where(s <= 0.5, linear, 1.0 / disparity)


def disparity_schedule(rays: Rays, shift: torch.Tensor,
                       max_samples: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ray index, t_start, t_end) of the former schedule's steps, as `contracted_schedule`."""
    k = torch.arange(max_samples + 1, dtype=torch.float32, device=shift.device)[None, :]
    edges = disparity_edges(((k + shift[:, None] - 0.5) / max_samples).clamp(0.0, 1.0))
    starts, ends = edges[:, :-1], edges[:, 1:]
    ray_idx, step_idx = torch.nonzero(ends > starts, as_tuple=True)
    return ray_idx, starts[ray_idx, step_idx], ends[ray_idx, step_idx]


def world_step_at(u: torch.Tensor, step: float) -> torch.Tensor:
    """[P] world length (scene units) of a contracted step `step` at field coordinates u [P, 3] of an unbounded
    scene: `step` inside the unit cube, `step * r^2` beyond it (r = 1 / (2 - |s|_inf), the contraction undone)."""
    s = (u * 4.0 - 2.0).abs().amax(dim=-1)
    r = 1.0 / (2.0 - s.clamp(1.0, 2.0 - 1.0 / FAR))
    return step * r * r
