"""Proposal sampling for unbounded scenes (mip-NeRF 360, Barron et al. 2022; nerfacto's sampler).

The occupancy grid (`render.render`) decides where rays sample from the NeRF's own density, so a real capture,
still foggy after minutes of CPU training, costs 130-180 samples per ray (fox-small, skull-66: measured). Here the
sample count is fixed instead: a small density field (`scenes.proposal_field`, Vista's fused hash grid with 5
levels and a 16-wide MLP) is evaluated at lin-disp bins along each ray, its weights are resampled (twice, as
nerfacto does with one network per pass), and only the final `nerf_samples` samples per ray go through the full
field. The interlevel loss trains the proposal density to bound the NeRF's weights; nerfstudio supplies the
samplers and both losses (`render.nerfstudio_parts.ProposalSampler`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from dataclasses import dataclass
from typing import Protocol

import torch

from render import footprint, proposal_bake, proposal_fused, unbounded
from render.cameras import Rays
from render.nerfstudio_parts import ProposalSampler, contract, interlevel_and_distortion, sample_weights
from render.ray_colours import ray_colours
from render.representation import RayBundleOutput


class DensityField(Protocol):
    def density(self, u: torch.Tensor) -> torch.Tensor:
        """Density [P] at points u [P, 3] of the field's unit cube."""


def _coords(positions: torch.Tensor) -> torch.Tensor:
    """Scene points -> the field's unit cube, as `render.render.field_coords` does for unbounded scenes."""
    return (contract(positions) + 2.0) * 0.25


@dataclass
class Proposals:
    """The proposal density fields (torch modules, one per pass) and the sampler that uses them."""

    fields: list
    sampler: ProposalSampler
    anneal: float = 1.0
    """Exponent of the proposal weights before each resampling in training (`anneal_exponent`; 1: none)."""
    far_penalty: float = 0.0
    """Weight of the far-weight prior in training (`SamplingConfig.far_weight_penalty`; 0: none)."""
    bake_for_render: bool = True
    """Renders without gradients look the proposal densities up in dense bakes (`render.proposal_bake`); False
    evaluates the fields themselves (for comparisons)."""
    update: bool = True
    """Whether this training step gives the proposal fields gradients (`updates_proposals`)."""
    ray_share: float = 1.0
    """On such a step, the share of rays whose samples carry those gradients (`SamplingConfig.proposal_ray_share`)."""
    bakes: dict = dataclasses.field(default_factory=dict, repr=False)

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for f in self.fields for p in f.parameters()]

    @property
    def renders_from_bakes(self) -> bool:
        """Whether a render now (no gradients, bakes allowed) looks the proposal densities up in the bakes."""
        return self.bake_for_render and not torch.is_grad_enabled()

    def density_fns(self, render: bool) -> list:
        """The sampler's density functions, one per pass: the baked fields for a render without gradients; without
        gradients on a training step that does not update the fields (as nerfstudio's sampler does off its
        `update_sched`)."""
        if render and self.renders_from_bakes:
            return [_density_fn(proposal_bake.baked(f, self.bakes)) for f in self.fields]
        share = 1.0 if render else self.ray_share if self.update else 0.0
        return [_density_fn(f, share) for f in self.fields]

    def at_step(self, step: int, sampling) -> None:
        """The annealing exponent and whether the fields get gradients at training step `step` (`SamplingConfig`)."""
        self.anneal = anneal_exponent(step, sampling.proposal_anneal_steps)
        self.update = updates_proposals(step, sampling.proposal_update_every, sampling.proposal_update_warmup)
        self.ray_share = float(sampling.proposal_ray_share)

    def train(self, mode: bool) -> None:
        if mode:  # the next optimiser step makes every bake stale: free them now, not at the next render
            self.bakes.clear()
        for f in self.fields:
            f.train(mode)

    def state(self) -> dict[str, torch.Tensor]:
        return {f"proposal.{i}.{k}": v.detach().contiguous() for i, f in enumerate(self.fields)
                for k, v in f.state_dict().items()}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        for i, f in enumerate(self.fields):
            prefix = f"proposal.{i}."
            f.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


def anneal_exponent(step: int, anneal_steps: int, slope: float = 10.0) -> float:
    """nerfacto's proposal weight annealing: the exponent rises from 0 at step 0 to 1 at `anneal_steps` along
    Schlick's bias curve (slope 10: half-way by ~9% of the steps), so the first steps resample almost uniformly
    along each ray. `anneal_steps` 0: always 1."""
    if anneal_steps <= 0:
        return 1.0
    x = min(max(step / anneal_steps, 0.0), 1.0)
    return slope * x / ((slope - 1.0) * x + 1.0)


def updates_proposals(step: int, every: int, warmup: int) -> bool:
    """Whether training step `step` gives the proposal fields gradients: nerfacto's schedule, written as a function
    of the step so that a resumed run updates on the same steps. Always in the first 10 steps (as nerfstudio's
    sampler), then on one step in `interval`, which rises from 1 to `every` over `warmup` steps."""
    if step < 10 or every <= 1:
        return True
    interval = every if warmup <= 0 else min(every, 1 + (every - 1) * step // warmup)
    return step % interval == 0


def _density_fn(field: DensityField, grad_share: float = 1.0):
    """Density at sample positions [R, S, 3] -> [R, S, 1]; only the first `grad_share` of the rays' samples carry
    gradients to the field (0: none)."""
    def density(positions: torch.Tensor) -> torch.Tensor:
        shape, flat = positions.shape[:-1], positions.reshape(-1, 3)
        tracked_rays = round(shape[0] * grad_share) if torch.is_grad_enabled() else 0
        tracked = tracked_rays * (flat.shape[0] // max(shape[0], 1))  # rays first: a ray's samples are contiguous
        if tracked >= flat.shape[0]:
            return field.density(_coords(flat)).reshape(*shape, 1)
        parts = [field.density(_coords(flat[:tracked]))] if tracked else []
        with torch.no_grad():
            parts.append(field.density(_coords(flat[tracked:])))
        return torch.cat(parts).reshape(*shape, 1)

    return density


def _seed_from(jitter: torch.Tensor) -> int:
    """A seed for nerfstudio's samplers, which draw from torch's global generator: taken from this batch's jitter
    (drawn from the training generator), so a seed and a step count still give the same run, resumed or not."""
    return int((jitter.double() * 1e6).sum().item()) % (1 << 62)


VISIBLE_WEIGHT = 1e-4
"""Without gradients, samples whose compositing weight is below this get no colour: they change a pixel by less than
this (8-bit levels are 4e-3 apart), and the colour MLP is a fifth of a frame's time."""


@functools.cache
def _bf16_colours() -> bool:
    return os.environ.get("VISTA_COLOUR", "") != "fp32" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def colour_precision(device: torch.device, field=None) -> contextlib.AbstractContextManager:
    """bfloat16 matmuls for a render's colour MLP on a CPU that has them natively (AVX-512 BF16, AMX; oneDNN) when
    the field's colour MLP runs torch's layers: on 720p frames of fox-small and skull-66 the colour stage took 37% /
    25% less time, the frame 16% / 4%, and the frame stayed 70-73 dB from the fp32 one (well under an 8-bit level;
    bench/results/render-colour-bf16.json). A field whose colour MLP runs the fused kernel (`fused_colours`,
    `scenes.mlp_fused`) keeps the kernel's own precision (float32, or bfloat16 where `FieldConfig.mlp_precision`
    asks): in float32 its 720p frames were 6% faster than with torch's bf16 layers, its 1080p frames 5% faster and 4%
    slower (bench/results/mlp-fused.json). Elsewhere fp32, since oneDNN would emulate bf16 there
    (not measured). VISTA_COLOUR=fp32 forces fp32 (e.g. for 16-bit frames that must match fp32 ones)."""
    if device.type == "cpu" and _bf16_colours() and not getattr(field, "fused_colours", False):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _colors(field, features: torch.Tensor, ray_directions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Colours [R * S, 3] of the samples (weights [R, S, 1]) seen along `ray_directions` [R, 3]; rendering (no
    gradients) computes only the visible ones (`VISIBLE_WEIGHT`)."""
    n_rays, n_samples = weights.shape[:2]
    if torch.is_grad_enabled():
        ray_indices = torch.arange(n_rays, device=features.device).repeat_interleave(n_samples)
        return ray_colours(field, features, ray_directions, ray_indices)
    visible = torch.nonzero(weights.reshape(-1) >= VISIBLE_WEIGHT).squeeze(1)
    rgb = features.new_zeros(len(features), 3)
    if len(visible):
        with colour_precision(features.device, field):
            colours = ray_colours(field, features[visible], ray_directions, visible // n_samples)
            rgb[visible] = colours.to(rgb.dtype)
    return rgb


def _field_values(renderable, rays: Rays, samples, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The NeRF's density and features at the final samples, with each sample's pixel footprint when the field
    weighs its levels by one (anti-aliasing, `render.footprint`)."""
    coords = _coords(positions)
    if rays.radii is None or not getattr(renderable.field, "uses_footprint", False):
        return renderable.field.density_and_features(coords)
    n_rays, n_samples = samples.frustums.starts.shape[:2]
    ray_indices = torch.arange(n_rays, device=positions.device).repeat_interleave(n_samples)
    radii = footprint.sample_footprints("unbounded", rays, ray_indices, samples.frustums.starts.reshape(-1),
                                       samples.frustums.ends.reshape(-1))
    return renderable.field.density_and_features(coords, radii)


def far_weight(positions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over rays of the compositing weight of the samples beyond the unit cube (the contracted background).

    The occupancy grid prunes cells whose density times the (long) far step stays below its threshold, so weak far
    density stays transparent and the background colour shows through; proposal sampling has no such prior, and on
    skull-66's near-black backdrop it grew an opaque, blotchy wall. Penalising this weight is that prior, soft: a
    bright background pays more in the photo loss than the penalty costs, a near-black one does not."""
    n_rays, n_samples = weights.shape[:2]
    outside = positions.reshape(n_rays, n_samples, 3).abs().amax(dim=-1) > 1.0
    return (weights[..., 0] * outside).sum(dim=-1).mean()


def render_proposal_rays(renderable, proposals: Proposals, rays: Rays, jitter: torch.Tensor | None,
                         background: torch.Tensor | None, with_distortion: bool) -> RayBundleOutput:
    """Render scene-space rays through the proposal passes and the NeRF (`renderable.field`); in training (jitter
    given) the output carries the interlevel loss (and the distortion loss if asked) as `regularizer`."""
    training = jitter is not None
    samples = None
    if not training and proposals.renders_from_bakes:
        samples = proposal_fused.render_samples(proposals, rays)
    if samples is None:
        fns = proposals.density_fns(render=not training)
        with torch.random.fork_rng(devices=[]):
            if training:
                torch.manual_seed(_seed_from(jitter))
            samples, weights_list, samples_list = proposals.sampler.sample(
                rays.origins, rays.directions, unbounded.NEAR, unbounded.FAR, fns, stratified=training,
                anneal=proposals.anneal if training else 1.0)
    n_rays, n_samples = samples.frustums.starts.shape[:2]
    positions = samples.frustums.get_positions().reshape(-1, 3)
    sigma, features = _field_values(renderable, rays, samples, positions)
    seen_from = rays.directions if rays.colour_directions is None else rays.colour_directions
    weights = sample_weights(samples, sigma.reshape(n_rays, n_samples, 1))
    rgb = _colors(renderable.field, features, seen_from, weights).reshape(n_rays, n_samples, 3)
    opacity = weights[..., 0].sum(dim=-1)
    t_mids = ((samples.frustums.starts + samples.frustums.ends) * 0.5)[..., 0]
    depth = (weights[..., 0] * t_mids).sum(dim=-1) / opacity.clamp(min=1e-6)
    bg = renderable.background if background is None else background
    color = (weights * rgb).sum(dim=-2) + (1.0 - opacity)[:, None] * bg
    regularizer = distortion = None
    if training and torch.is_grad_enabled():  # a no-gradient render with jitter (guidance) needs no losses
        weights_list.append(weights)
        samples_list.append(samples)
        interlevel, distortion_value = interlevel_and_distortion(weights_list, samples_list)
        regularizer = interlevel
        if proposals.far_penalty > 0:
            regularizer = regularizer + proposals.far_penalty * far_weight(positions, weights)
        distortion = distortion_value if with_distortion else None
    return RayBundleOutput(color, depth, opacity, n_rays * n_samples, distortion, regularizer)
