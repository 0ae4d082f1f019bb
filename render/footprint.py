"""Each sample's pixel footprint in the field's unit cube: what a footprint-weighted hash grid reads.

A ray's pixel is a cone (`Rays.radii`: radius per unit distance, mip-NeRF's base radius); at distance t along the
ray it is a disc of radius r t in scene units. The field sees scene points through `render.render.field_coords`:
object scenes scale the box [-1, 1]^3 by 1/2 into the unit cube; unbounded scenes first contract (mip-NeRF 360,
L-inf norm, nerfstudio's SceneContraction), which shrinks far footprints, then scale [-2, 2]^3 by 1/4.

For the contraction we use its isotropic approximation, as Zip-NeRF does for its Gaussians (camp_zipnerf's
`track_isotropic`): the footprint is scaled by |det J|^(1/3), J the contraction's Jacobian at the sample. For the
L-inf contraction c(x) = (2 - 1/m) x/m, m = |x|_inf > 1, J is triangular up to a permutation (only the dominant
axis' column has off-diagonal terms), with diagonal 1/m^2 (dominant axis) and (2 - 1/m)/m (the two others), so
|det J|^(1/3) = ((2 - 1/m)^2 / m^4)^(1/3); inside the unit cube J = I.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from render.cameras import Rays
from render.representation import SceneKind


class FootprintField(Protocol):
    """A radiance field (`render.render.RadianceField`) that can weigh its features by each sample's footprint."""

    @property
    def uses_footprint(self) -> bool:
        """True: `render_rays` passes footprints [S] (pixel-cone radii in the unit cube's units) as the second argument
        of `density_and_features` for rays that carry `Rays.radii`."""

    def density_and_features(self, u: torch.Tensor, footprint: torch.Tensor | None = None,
                             ) -> tuple[torch.Tensor, torch.Tensor]: ...


def contraction_scale(positions: torch.Tensor) -> torch.Tensor:
    """|det J|^(1/3) [P] of the L-inf scene contraction at scene points [P, 3]: 1 inside the unit cube."""
    m = positions.abs().amax(dim=-1).clamp(min=1.0)
    return ((2.0 - 1.0 / m) ** 2 / m**4) ** (1.0 / 3.0)


def field_footprints(scene: Any, rays: Rays, samples: Any) -> torch.Tensor | None:
    """Footprint std [S] in the field's unit-cube units of `samples` (`render.render.Samples`: ray_indices,
    t_starts, t_ends [S]) of `rays` (scene coordinates, unit directions) in `scene` (a `render.render.Renderable`:
    its field and kind); None when the rays carry no radii or the field does not weigh by footprints (a
    `FootprintField` with `uses_footprint`)."""
    if rays.radii is None or not getattr(scene.field, "uses_footprint", False):
        return None
    return sample_footprints(scene.kind, rays, samples.ray_indices, samples.t_starts, samples.t_ends)


PIXEL_STD_PER_RADIUS = 0.5
"""The std of the Gaussian that stands for a pixel, per unit of its cone radius: a 1-px box has std 1/sqrt(12) px and
mip-NeRF's base radius is 2/sqrt(12) px. Zip-NeRF's erf takes that std. Using the radius itself (the first version)
fades every level one level too early: on the multi-scale lego (400 steps) it lost 0.5-1.3 dB at every scale to this
std (bench/results/multiscale-footprint-std.json)."""


def sample_footprints(kind: SceneKind, rays: Rays, ray_indices: torch.Tensor, t_starts: torch.Tensor,
                      t_ends: torch.Tensor) -> torch.Tensor:
    """Footprint std [S] in the field's unit-cube units of samples (ray_indices, t_starts, t_ends) [S] of `rays`
    with radii: the pixel's Gaussian (`PIXEL_STD_PER_RADIUS`) at the samples' distance."""
    t_mids = (t_starts + t_ends) * 0.5
    std_scene = rays.radii[ray_indices] * t_mids * PIXEL_STD_PER_RADIUS
    if kind == "object":
        return std_scene * 0.5
    positions = rays.origins[ray_indices] + rays.directions[ray_indices] * t_mids[:, None]
    return std_scene * contraction_scale(positions) * 0.25


def density_and_features(field: Any, u: torch.Tensor, footprint: torch.Tensor | None,
                         index: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
    """The field's density and features at samples `index` of u [S, 3], with their footprints when there are any
    (a field that does not use them is called exactly as before)."""
    if footprint is None:
        return field.density_and_features(u[index])
    return field.density_and_features(u[index], footprint[index])
