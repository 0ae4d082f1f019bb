"""Render rays and whole cameras from a scene representation; the hash-grid NeRF's marcher and compositing.

`render_rays` and `render_camera` take any `render.representation.SceneRepresentation`. The first
representation is here: `Renderable`, a radiance field seen only through the small `RadianceField`
protocol, in the field's unit cube (bounded "object" scenes map the box [-1, 1]^3 to it, "unbounded"
captures are first contracted (mip-NeRF 360, via nerfstudio's SceneContraction) into [-2, 2]^3),
with an occupancy grid to skip empty space.

Sampling follows Instant-NGP: fixed steps across the box (object) or steps of one length in contracted
space (unbounded, `render.unbounded`), candidates in empty cells of the occupancy grid dropped (for object scenes by
the C marcher `march_fused.c` where it builds), then a no-gradient density pass, front to back in
rounds, stops each ray once it is opaque, and only the surviving samples are evaluated (and
differentiated) in full.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from render import footprint, march_native, unbounded
from render.cameras import Cameras, Rays, image_rays
from render.config import DEFAULT_CHUNK_RAYS, SamplingConfig
from render.occupancy import OccupancyGrid, occupied_cell_points
from render.proposal import Proposals, render_proposal_rays
from render.ray_colours import ray_colours
from render.representation import Image, ParameterGroups, RayBundleOutput, SceneKind, SceneRepresentation
from render.volume import accumulate, distortion_loss, exclusive_optical_depth, ray_start_offsets, render_weights

__all__ = ["DEFAULT_CHUNK_RAYS", "Image", "RadianceField", "RayBundleOutput", "Renderable", "SceneKind",
           "SceneRepresentation", "TrainableField", "field_coords", "march", "rays_to_scene", "render_camera",
           "rays_to_device", "render_rays"]


_REAL_STEP_THRESHOLD = False
"""Threshold unbounded cells by their real step (`unbounded.world_step_at`)? Off: the far cells' r^2 lifts the grid's
mean, nerfacc's min(threshold, mean) stopped protecting a young foreground on fox-small (bench/RESULTS.md)."""


class RadianceField(Protocol):
    def density_and_features(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density [S] and geometry features [S, G] at points u [S, 3] of the unit cube."""

    def color(self, features: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """RGB [S, 3] in [0, 1] from geometry features and unit view directions [S, 3]."""


class TrainableField(RadianceField, Protocol):
    """A radiance field that can also be trained and saved (a torch module)."""

    def parameter_groups(self) -> ParameterGroups: ...

    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def train(self, mode: bool = True) -> object: ...


@dataclass
class Renderable:
    """The hash-grid NeRF as a `SceneRepresentation`: a radiance field, its occupancy grid and how to march it.

    Rendering needs only a `RadianceField`; training and saving (parameter_groups, refresh, train, state) need a
    `TrainableField`."""

    field: RadianceField
    grid: OccupancyGrid
    kind: SceneKind
    scene_from_world: torch.Tensor  # [4, 4] similarity: scale * rotation, translation
    background: torch.Tensor  # [3]
    sampling: SamplingConfig
    proposals: Proposals | None = None  # unbounded scenes with the "proposal" sampler (render/proposal.py)

    @property
    def scale(self) -> float:
        return float(torch.linalg.norm(self.scene_from_world[:3, 0]))

    def step_size(self) -> float:
        """Marching step in scene units (the object box diagonal / max samples); for unbounded scenes the step inside
        the unit cube (`render.unbounded`: the "contracted" schedule keeps it in contracted space beyond)."""
        if self.kind == "object":
            return 2 * math.sqrt(3) / self.sampling.max_samples_per_ray
        if self.sampling.unbounded_schedule == "contracted":
            return unbounded.effective_step(self.sampling.unbounded_step, self.sampling.max_samples_per_ray)
        return 6.0 / self.sampling.max_samples_per_ray  # the "disparity" schedule: 2 x its linear part's 3 units

    def render_rays(self, rays_scene: Rays, *, jitter: torch.Tensor | None = None,
                    background: torch.Tensor | None = None, with_distortion: bool = False) -> RayBundleOutput:
        return _render_field_rays(self, rays_scene, jitter, background, with_distortion)

    def occupied(self, points_scene: torch.Tensor) -> torch.Tensor:
        """Occupied cells of the grid; outside the object box is empty."""
        if self.kind == "object":
            inside = (points_scene.abs() <= 1.0).all(dim=-1)
            return self.grid.query(field_coords(points_scene.clamp(-1.0, 1.0), "object")) & inside
        return self.grid.query(field_coords(points_scene, "unbounded"))

    def occupied_depth(self, rays_scene: Rays) -> torch.Tensor:
        """The marcher's first sample: it steps only through occupied cells."""
        samples = march(self, rays_scene, None)
        depth = torch.full((len(rays_scene),), math.inf, device=rays_scene.origins.device)
        depth.scatter_reduce_(0, samples.ray_indices, samples.t_starts, reduce="amin")
        return depth

    @property
    def occupancy_cell(self) -> float:
        return 2.0 / self.grid.resolution

    @property
    def max_samples_per_ray(self) -> int:
        return self.sampling.max_samples_per_ray

    @property
    def fixed_samples_per_ray(self) -> bool:
        return self.proposals is not None

    def preview_points(self, max_points: int, seed: int,
                       view_direction_scene: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Occupied cell centres (unbounded scenes: only the uncontracted inner region, the capture's focus)."""
        return occupied_cell_points(self, max_points, seed, view_direction_scene)

    def parameter_groups(self) -> ParameterGroups:
        groups = self.field.parameter_groups()
        return groups if self.proposals is None else groups | {"proposal": self.proposals.parameters()}

    def refresh(self, step: int, generator: torch.Generator, *, warm_up: bool = True) -> None:
        """The occupancy grid's update, when its schedule says so; the proposal weights' annealing exponent. Proposal
        sampling never reads the grid (only `occupied` and the map do): `settle` rebuilds it before saves instead,
        sparing 6-9% of a step (fox-small, 156 vs 167 ms at best; bench/results/grid-upkeep.json)."""
        if self.proposals is None:
            self.grid.maybe_update(step, self.opacity_over_step, generator, warm_up=warm_up)
        else:
            self.proposals.at_step(step, self.sampling)

    def settle(self, seed: int) -> None:
        if self.proposals is not None:  # a marched grid is kept up to date by the training steps themselves
            self.grid.rebuild(self.opacity_over_step, torch.Generator().manual_seed(seed))

    def opacity_over_step(self, u: torch.Tensor) -> torch.Tensor:
        """sigma * marching step at field coordinates u [P, 3]: what the occupancy grid thresholds (the real step
        there: it grows with distance beyond the unit cube in the "contracted" schedule)."""
        sigma = self.field.density_and_features(u)[0]
        if self.kind == "unbounded" and self.sampling.unbounded_schedule == "contracted" and _REAL_STEP_THRESHOLD:
            return sigma * unbounded.world_step_at(u, self.step_size())
        return sigma * self.step_size()

    def train(self, mode: bool = True) -> None:
        self.field.train(mode)
        if self.proposals is not None:
            self.proposals.train(mode)

    def state(self) -> dict[str, torch.Tensor]:
        state = {f"field.{k}": v.detach().contiguous() for k, v in self.field.state_dict().items()}
        state["occupancy.density"] = self.grid.density.contiguous()
        return state | self.grid.seen_state() | ({} if self.proposals is None else self.proposals.state())


def field_coords(positions: torch.Tensor, kind: SceneKind) -> torch.Tensor:
    """Scene coordinates -> the field's unit cube."""
    if kind == "object":
        return (positions + 1.0) * 0.5
    from render.nerfstudio_parts import contract

    return (contract(positions) + 2.0) * 0.25


def rays_to_scene(rays: Rays, scene_from_world: torch.Tensor) -> Rays:
    linear = scene_from_world[:3, :3]
    origins = rays.origins @ linear.T + scene_from_world[:3, 3]
    directions = rays.directions @ linear.T
    return Rays(origins, directions / directions.norm(dim=-1, keepdim=True), rays.radii)  # similarity: same angles


def rays_to_device(rays: Rays, device: torch.device) -> Rays:
    """The rays on the scene's device (the same tensors when already there)."""
    return rays.to(device)


def _box_interval(rays: Rays) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through the box [-1, 1]^3 (slab method)."""
    d = rays.directions
    safe = torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    inv = 1.0 / safe
    a = (-1.0 - rays.origins) * inv
    b = (1.0 - rays.origins) * inv
    t_near = torch.minimum(a, b).amax(dim=-1).clamp(min=0.0)
    t_far = torch.maximum(a, b).amin(dim=-1)
    return t_near, t_far


@dataclass
class Samples:
    ray_indices: torch.Tensor  # [S] sorted
    t_starts: torch.Tensor  # [S]
    t_ends: torch.Tensor  # [S]
    u: torch.Tensor  # [S, 3] field coordinates

    def select(self, keep: torch.Tensor) -> Samples:
        return Samples(self.ray_indices[keep], self.t_starts[keep], self.t_ends[keep], self.u[keep])


def march(scene: Renderable, rays: Rays, jitter: torch.Tensor | None) -> Samples:
    """Candidate samples of rays (in scene coordinates) that fall in occupied cells.

    jitter [R] in [0, 1) shifts each ray's samples (stratified sampling in training); None in rendering.
    """
    shift = torch.full((len(rays),), 0.5, device=rays.origins.device) if jitter is None else jitter
    if scene.kind == "object":
        return _march_object(scene, rays, shift)
    return _march_unbounded(scene, rays, shift)


_COARSE = 4  # fine steps per coarse step in the object marcher


def _packed_range(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For per-ray counts [R]: (ray index, index within the ray) of every element, packed."""
    ray = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    return ray, torch.arange(ray.numel(), device=counts.device) - starts[ray]


def _march_object(scene: Renderable, rays: Rays, shift: torch.Tensor) -> Samples:
    """Fixed steps through the box; the steps whose midpoint lies in an occupied cell are kept."""
    step = scene.step_size()
    t_near, t_far = _box_interval(rays)
    chord = (t_far - t_near).clamp(min=0.0)
    # a ray with a NaN or infinite origin, direction, interval or jitter gets no steps, in both marchers
    usable = (torch.isfinite(chord) & torch.isfinite(shift) & torch.isfinite(rays.origins).all(dim=-1)
              & torch.isfinite(rays.directions).all(dim=-1))
    chord = torch.where(usable, chord, 0.0)
    n_fine = torch.ceil(chord / step).long().clamp(max=scene.sampling.max_samples_per_ray)
    if march_native.load() is not None and rays.origins.device.type == "cpu":
        ray, starts, ends, u = march_native.march_object_native(
            rays.origins, rays.directions, t_near, t_far, shift, n_fine, scene.grid, step)
        return Samples(ray, starts, ends, u)
    return _march_object_torch(scene, rays, shift, step, t_near, t_far, n_fine)


def _march_object_torch(scene: Renderable, rays: Rays, shift: torch.Tensor, step: float, t_near: torch.Tensor,
                        t_far: torch.Tensor, n_fine: torch.Tensor) -> Samples:
    """The PyTorch twin of the C marcher, coarse-to-fine: a coarse pass over a dilated, 4x coarser occupancy
    grid discards empty stretches before fine samples are made, so empty space costs a quarter as much."""
    n_coarse = (n_fine + _COARSE - 1) // _COARSE
    ray_c, j = _packed_range(n_coarse)
    t_coarse_mid = t_near[ray_c] + ((j * _COARSE).float() + _COARSE / 2) * step
    coarse_pos = rays.origins[ray_c] + rays.directions[ray_c] * t_coarse_mid[:, None]
    keep_c = scene.grid.query_coarse(field_coords(coarse_pos, "object"), _COARSE)
    ray_c, j = ray_c[keep_c], j[keep_c]
    # expand each kept coarse step into its fine steps
    ray = ray_c.repeat_interleave(_COARSE)
    k = (j * _COARSE).repeat_interleave(_COARSE) + torch.arange(_COARSE, device=j.device).repeat(ray_c.numel())
    valid = k < n_fine[ray]
    ray, k = ray[valid], k[valid]
    starts = torch.maximum(t_near[ray] + (k.float() + shift[ray] - 0.5) * step, t_near[ray])
    ends = torch.minimum(t_near[ray] + (k.float() + shift[ray] + 0.5) * step, t_far[ray])
    positions = rays.origins[ray] + rays.directions[ray] * ((starts + ends) * 0.5)[:, None]
    u = field_coords(positions, "object")
    keep = scene.grid.query(u) & (ends > starts)
    return Samples(ray[keep], starts[keep], ends[keep], u[keep])


def _march_unbounded(scene: Renderable, rays: Rays, shift: torch.Tensor) -> Samples:
    """Candidate steps of `render.unbounded`'s schedule whose midpoint lies in an occupied cell (the "contracted"
    schedule by the C marcher where it builds)."""
    contracted = scene.sampling.unbounded_schedule == "contracted"
    if contracted and march_native.load() is not None and rays.origins.device.type == "cpu":
        ray, starts, ends, u = march_native.march_unbounded_native(rays.origins, rays.directions, shift, scene.grid,
                                                                   scene.step_size())
        return Samples(ray, starts, ends, u)
    return _march_unbounded_torch(scene, rays, shift)


def _march_unbounded_torch(scene: Renderable, rays: Rays, shift: torch.Tensor) -> Samples:
    """The PyTorch twin of the C marcher (and the "disparity" schedule's marcher)."""
    sampling = scene.sampling
    if sampling.unbounded_schedule == "contracted":
        ray, starts, ends = unbounded.contracted_schedule(rays, shift, scene.step_size())
    else:
        ray, starts, ends = unbounded.disparity_schedule(rays, shift, sampling.max_samples_per_ray)
    positions = rays.origins[ray] + rays.directions[ray] * ((starts + ends) * 0.5)[:, None]
    u = field_coords(positions, "unbounded")
    keep = scene.grid.query(u)
    return Samples(ray[keep], starts[keep], ends[keep], u[keep])


_FIRST_ROUND = 4
"""Steps per live ray in the first density round; each later round doubles it."""


def _front_to_back(scene: Renderable, samples: Samples, deltas: torch.Tensor, n_rays: int, with_values: bool,
                   radii: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Which samples matter (transmittance before them above the early-stop level, opacity above `min_alpha`):
    [S] bool; with `with_values`, also the density [K] and features [K, G] of the K kept samples.

    Densities are evaluated front to back in rounds (4, then 8, 16, ... steps per ray) and a ray leaves
    once it is opaque, so samples behind a surface are never evaluated: on the trained lego this halves
    the field evaluations of a rendered frame (measured). Same result as evaluating every sample."""
    sampling = scene.sampling
    n, device = samples.ray_indices.numel(), samples.u.device
    keep = torch.zeros(n, dtype=torch.bool, device=device)
    index_in_ray = torch.arange(n, device=device) - ray_start_offsets(samples.ray_indices, n_rays)[samples.ray_indices]
    depth_before = torch.zeros(n_rays, device=device)  # optical depth of each ray's evaluated samples
    sigma_parts, feature_parts, kept_parts = [], [], []
    pending = torch.arange(n, device=device)  # samples not evaluated yet, of rays still live: shrinks every round
    end = width = _FIRST_ROUND
    while pending.numel() > 0:
        now = index_in_ray[pending] < end
        chosen, pending = pending[now], pending[~now]
        rays = samples.ray_indices[chosen]
        sigma, features = footprint.density_and_features(scene.field, samples.u, radii, chosen)
        sigma_delta = sigma * deltas[chosen]
        within = exclusive_optical_depth(sigma_delta, rays, n_rays)
        transmittance = torch.exp(-(depth_before[rays] + within))
        alphas = 1.0 - torch.exp(-sigma_delta)
        matters = (transmittance > sampling.early_stop_transmittance) & (alphas > sampling.min_alpha)
        keep[chosen[matters]] = True
        if with_values:
            kept_parts.append(chosen[matters])
            sigma_parts.append(sigma[matters])
            feature_parts.append(features[matters])
        depth_before.index_add_(0, rays, sigma_delta)
        live = torch.exp(-depth_before) > sampling.early_stop_transmittance
        pending = pending[live[samples.ray_indices[pending]]]
        width *= 2
        end += width
    if not with_values:
        return keep, None, None
    if not sigma_parts:
        sigma, features = footprint.density_and_features(scene.field, samples.u, radii, slice(0, 0))
        return keep, sigma, features
    # each round took a few steps of every live ray: put the kept values back in sample (ray-major) order
    order = torch.argsort(torch.cat(kept_parts))
    return keep, torch.cat(sigma_parts)[order], torch.cat(feature_parts)[order]


def render_rays(scene: SceneRepresentation, rays_scene: Rays, *, jitter: torch.Tensor | None = None,
                background: torch.Tensor | None = None, with_distortion: bool = False) -> RayBundleOutput:
    """Render rays given in scene coordinates with any representation; differentiable when gradients are enabled."""
    return scene.render_rays(rays_scene, jitter=jitter, background=background, with_distortion=with_distortion)


def _render_field_rays(scene: Renderable, rays_scene: Rays, jitter: torch.Tensor | None,
                       background: torch.Tensor | None, with_distortion: bool) -> RayBundleOutput:
    """The NeRF's `render_rays`: march, find the samples that matter, evaluate them, composite (NeRF)."""
    if scene.proposals is not None:
        return render_proposal_rays(scene, scene.proposals, rays_scene, jitter, background, with_distortion)
    n_rays = len(rays_scene)
    samples = march(scene, rays_scene, jitter)
    deltas, radii = samples.t_ends - samples.t_starts, footprint.field_footprints(scene, rays_scene, samples)
    # Pass 1, no gradient: find where each ray becomes opaque and which samples matter.
    with torch.no_grad():
        keep, sigma, features = _front_to_back(scene, samples, deltas, n_rays,
                                               with_values=not torch.is_grad_enabled(), radii=radii)
    if torch.is_grad_enabled():
        sigma, features = footprint.density_and_features(scene.field, samples.u, radii, keep)
    samples = samples.select(keep)
    deltas = deltas[keep]
    seen_from = rays_scene.directions if rays_scene.colour_directions is None else rays_scene.colour_directions
    rgb = ray_colours(scene.field, features, seen_from, samples.ray_indices)
    weights, _, _ = render_weights(sigma, deltas, samples.ray_indices, n_rays)
    t_mids = (samples.t_starts + samples.t_ends) * 0.5
    opacity = accumulate(weights, None, samples.ray_indices, n_rays)
    color = accumulate(weights, rgb, samples.ray_indices, n_rays)
    depth = accumulate(weights, t_mids, samples.ray_indices, n_rays) / opacity.clamp(min=1e-6)
    bg = scene.background if background is None else background
    color = color + (1.0 - opacity)[:, None] * bg
    distortion = None
    if with_distortion:
        distortion = distortion_loss(weights, t_mids, deltas, samples.ray_indices, n_rays)
    return RayBundleOutput(color, depth, opacity, int(samples.ray_indices.numel()), distortion)


@torch.no_grad()
def render_camera(scene: SceneRepresentation, cameras: Cameras, index: int, chunk_rays: int = DEFAULT_CHUNK_RAYS,
                  jitter: float | None = None) -> Image:
    """Render camera `index` of `cameras` (world coordinates) to RGB, depth and opacity.

    Rays are processed `chunk_rays` at a time so memory stays bounded at any resolution. `jitter` in [0, 1)
    shifts every ray's samples by that fraction of a step (None: 0.5, the step's middle); guidance compares
    two shifts to find unstable depth."""
    rays_world = rays_to_device(image_rays(cameras, index), scene.scene_from_world.device)
    rays = rays_to_scene(rays_world, scene.scene_from_world.to(rays_world.origins.dtype))
    rgb, depth, opacity = [], [], []
    for start in range(0, len(rays), chunk_rays):
        chunk = rays.slice(start, start + chunk_rays)
        shift = None if jitter is None else torch.full((len(chunk),), float(jitter), device=chunk.origins.device)
        out = render_rays(scene, chunk, jitter=shift)
        rgb.append(out.rgb)
        depth.append(out.depth)
        opacity.append(out.opacity)
    h, w = cameras.height, cameras.width
    return Image(
        torch.cat(rgb).clamp(0, 1).reshape(h, w, 3),
        (torch.cat(depth) / scene.scale).reshape(h, w),
        torch.cat(opacity).reshape(h, w),
    )
