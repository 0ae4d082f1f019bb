"""Configs for the field and its training, with the named presets the CLI, app and tests share.

Every field carries a docstring-style comment; `vista train --help` lists the presets.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace
from typing import Literal

from render.config import ConfigValueError, SamplingConfig, check_float, check_int
from vista_core.errors import VistaError

Backend = Literal["auto", "torch", "tcnn"]
PhotoLossKind = Literal["mse", "huber", "charbonnier"]

MAX_GRID_RESOLUTION = 1 << 20
"""Finest hash-grid resolution at most: its cube (2^60) still fits the kernels' unsigned 64-bit dense-index test,
and Instant-NGP's largest scenes use 2^19."""
MAX_WIDTH = 1024
"""MLP widths at most (Instant-NGP uses 64; tiny-cuda-nn's fused MLPs go to 128)."""


@dataclass(frozen=True)
class HashGridConfig:
    """Multiresolution hash encoding (Instant-NGP, Müller et al. 2022).

    The keys are tiny-cuda-nn's `HashGrid` keys, so `to_tcnn()` is a one-liner and the torch
    grid uses the same level layout and hash, making checkpoints portable between backends.
    """

    n_levels: int = 16
    """Number of resolution levels."""
    n_features_per_level: int = 2
    """Features stored per table entry."""
    log2_hashmap_size: int = 19
    """log2 of the entries per level; coarse levels that fit are indexed densely, not hashed."""
    base_resolution: int = 16
    """Grid resolution of the coarsest level."""
    per_level_scale: float = 1.3819
    """Growth factor of the resolution from one level to the next."""
    footprint_weighting: bool = False
    """Anti-aliasing (Zip-NeRF's feature down-weighting, Barron et al. 2023, sec. 3): scale each level's features by
    erf(1 / sqrt(8 sigma^2 n^2)), sigma the std of the sample's pixel footprint (render.footprint) and n the
    level's cells per unit, so levels finer than a pixel's footprint fade instead of aliasing; trained the same way.
    Not a tiny-cuda-nn key: the weights multiply the grid's output. Off in scenes from before it existed."""

    def __post_init__(self) -> None:
        check_int("n_levels", self.n_levels, 1, 32)
        if not isinstance(self.footprint_weighting, bool):
            raise ConfigValueError(f"footprint_weighting must be true or false, got {self.footprint_weighting!r}")
        if self.n_features_per_level not in (1, 2, 4, 8) or isinstance(self.n_features_per_level, bool):
            raise ConfigValueError(f"n_features_per_level must be 1, 2, 4 or 8, got {self.n_features_per_level!r}")
        check_int("log2_hashmap_size", self.log2_hashmap_size, 10, 24)
        check_int("base_resolution", self.base_resolution, 2, MAX_GRID_RESOLUTION)
        check_float("per_level_scale", self.per_level_scale, 1.0, 4.0)
        finest = self.base_resolution * self.per_level_scale ** (self.n_levels - 1)
        if finest > MAX_GRID_RESOLUTION:
            raise ConfigValueError(f"per_level_scale: the finest level would have {finest:.3g} cells per side "
                                   f"(base_resolution x per_level_scale^(n_levels - 1)); at most {MAX_GRID_RESOLUTION}")

    @property
    def n_output_dims(self) -> int:
        return self.n_levels * self.n_features_per_level

    def to_tcnn(self) -> dict:
        return {
            "otype": "HashGrid",
            "n_levels": self.n_levels,
            "n_features_per_level": self.n_features_per_level,
            "log2_hashmap_size": self.log2_hashmap_size,
            "base_resolution": self.base_resolution,
            "per_level_scale": self.per_level_scale,
        }

    @staticmethod
    def spanning(finest_resolution: int, n_levels: int = 16, base_resolution: int = 16, **kwargs) -> HashGridConfig:
        """A grid whose finest level has about `finest_resolution` cells per side."""
        scale = math.exp(math.log(finest_resolution / base_resolution) / max(n_levels - 1, 1))
        return HashGridConfig(n_levels=n_levels, base_resolution=base_resolution, per_level_scale=round(scale, 4), **kwargs)


@dataclass(frozen=True)
class FieldConfig:
    """The radiance field: hash grid -> density MLP -> (features, view direction) -> colour MLP."""

    grid: HashGridConfig = dataclasses.field(default_factory=lambda: HashGridConfig.spanning(1024))
    hidden_dim: int = 64
    """Width of the density MLP (one hidden layer, as in Instant-NGP)."""
    geo_feature_dim: int = 15
    """Features passed from the density MLP to the colour MLP."""
    color_hidden_dim: int = 64
    """Width of the two hidden layers of the colour MLP."""
    sh_degree: int = 4
    """Spherical-harmonics degree of the view-direction encoding (1..4)."""
    mlp_precision: str = "float32"
    """"bfloat16": the density and colour MLPs multiply in bfloat16 (float32 sums) on a CPU with AVX-512 BF16, as
    tiny-cuda-nn's fused MLP runs in half precision on a GPU (`scenes.mlp_fused`); float32 on other CPUs."""

    def __post_init__(self) -> None:
        check_int("sh_degree", self.sh_degree, 1, 4)
        if self.mlp_precision not in ("float32", "bfloat16"):
            raise ConfigValueError(f"mlp_precision must be 'float32' or 'bfloat16', got {self.mlp_precision!r}")
        for name in ("hidden_dim", "geo_feature_dim", "color_hidden_dim"):
            check_int(name, getattr(self, name), 1, MAX_WIDTH)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; saved with every checkpoint."""

    preset: str = "preview"
    field: FieldConfig = dataclasses.field(default_factory=FieldConfig)
    sampling: SamplingConfig = dataclasses.field(default_factory=SamplingConfig)
    steps: int = 2000
    """Optimisation steps (a time budget in minutes, if given, stops earlier)."""
    rays_per_step: int = 4096
    samples_per_step: int = 0
    """Cap on a step's samples (0: none). While rays still take many samples (early on, before the occupancy
    grid has found the empty space) a step traces fewer rays, as Instant-NGP keeps its samples per batch fixed."""
    learning_rate: float = 1e-2
    weight_decay_mlp: float = 1e-6
    seed: int = 0
    checkpoint_every: int = 500
    """Steps between checkpoints (also written at the end and on Ctrl-C)."""
    backend: Backend = "auto"
    distortion_loss_weight: float = 0.0
    """mip-NeRF 360's distortion loss weight (0 disables it): pulls each ray's weights together, against floaters
    (the presets for real use set `PLACES_DISTORTION`)."""
    pixel_jitter: bool = False
    """Cast each training ray through a random point of its pixel, not its centre (as Instant-NGP does). Off by
    default: the field then learns the photos blurred by up to a pixel, which helps only where photos are few and
    aliased (bench/GUIDANCE_RESULTS.md, "Pixel jitter is off again by default")."""

    # --- What real photos need (issue #21): per-photo appearance, camera refinement, robust loss. ---
    appearance: bool = False
    """Learn a per-photo affine colour transform (exposure, white balance) applied in the photo loss
    (`scenes.appearance`); new views render with the neutral (identity) appearance."""
    appearance_lr_scale: float = 0.1
    """Learning rate of the appearance transforms, as a fraction of `learning_rate` (measured at 0.1 on the
    procedural scene, tests/test_appearance.py; it recovers per-photo gains only partly in 300 steps: a higher
    rate is untested)."""
    appearance_penalty: float = 1e-3
    """Weight of the pull of every photo's transform toward the identity (keeps the neutral appearance the mean)."""
    camera_refinement: bool = False
    """Refine every training photo's pose (nerfstudio's SO(3) x R^3 camera optimizer, `scenes.camera_opt`)."""
    camera_lr_scale: float = 0.1
    """Learning rate of the pose corrections as a fraction of `learning_rate` (0.1 x 1e-2 = nerfacto's 1e-3)."""
    camera_translation_penalty: float = 1e-2
    """nerfstudio's L2 penalty on the corrections' translations."""
    camera_rotation_penalty: float = 1e-3
    """nerfstudio's L2 penalty on the corrections' rotations."""
    photo_loss: PhotoLossKind = "mse"
    """Photometric loss: "mse", or a robust one that weighs large residuals (moving things, reflections) less:
    "huber" (delta 0.1) or "charbonnier" (Barron's robust loss with alpha=1, eps 1e-3)."""
    confidence_rays_per_photo: int = 512
    """Pixels per training photo scored after training for its confidence (per-photo PSNR; 0 skips it)."""

    def __post_init__(self) -> None:
        check_int("steps", self.steps, 1)
        check_int("rays_per_step", self.rays_per_step, 16, 1 << 20)
        check_int("samples_per_step", self.samples_per_step, 0)
        check_float("learning_rate", self.learning_rate, 0.0, 1.0, low_open=True, high_open=True)
        check_float("weight_decay_mlp", self.weight_decay_mlp, 0.0, 1.0)
        check_int("seed", self.seed, 0, (1 << 63) - 1)
        check_int("checkpoint_every", self.checkpoint_every, 1)
        check_float("distortion_loss_weight", self.distortion_loss_weight, 0.0, 1e6)
        check_float("appearance_lr_scale", self.appearance_lr_scale, 0.0, 100.0, low_open=True)
        check_float("appearance_penalty", self.appearance_penalty, 0.0, 1e3)
        check_float("camera_lr_scale", self.camera_lr_scale, 0.0, 100.0, low_open=True)
        check_float("camera_translation_penalty", self.camera_translation_penalty, 0.0, 1e3)
        check_float("camera_rotation_penalty", self.camera_rotation_penalty, 0.0, 1e3)
        if self.photo_loss not in ("mse", "huber", "charbonnier"):
            raise ConfigValueError(f"photo_loss must be 'mse', 'huber' or 'charbonnier', got {self.photo_loss!r}")
        check_int("confidence_rays_per_photo", self.confidence_rays_per_photo, 0, 1 << 16)


PLACES_DISTORTION = 0.002
"""The distortion loss weight of `preview` and `quality`: nerfacto's, not tuned here. It stopped skull-66's held-out
score collapsing (3 / 10 minutes: 15.86 -> 22.01 / 13.13 -> 20.30 dB), lifted fox-small's (27.38 -> 28.10 / 28.72 ->
30.11 dB) and left lego-200's (34.29 / 34.31 dB at 10 minutes; bench/results/distortion.json)."""

PLACES_PROPOSAL_RAY_SHARE = 0.25
"""The share of a step's rays whose proposal samples train the proposal fields in `preview` and `quality` (the rest
are evaluated without gradients). 1 -> 0.5, at 3 minutes, one run each: skull-66 (½ size) 21.96 -> 21.85 dB at
23,059 -> 25,744 rays/s, fox-small 28.22 -> 28.15 dB (bench/results/proposal-updates.json); steps timed in one process
1.07x / 1.06x faster (bench/results/step-ab-ray-share-*.json). 0.5 -> 0.25 together with `PLACES_MLP_PRECISION`:
see there. Updating the fields on fewer steps instead (nerfacto's schedule) cost skull-66 0.5-1.2 dB."""

PLACES_MLP_PRECISION = "bfloat16"
"""The NeRF MLPs' precision in `preview` and `quality` (`FieldConfig.mlp_precision`). Together with the proposal ray
share 0.5 -> 0.25, at 3 minutes, one run each, side by side (bench/results/bf16-share.json): fox-small 27.80 ->
28.16 dB at 19,624 -> 22,102 rays/s, skull-66 (½ size) 21.79 -> 21.64 dB at 19,661 -> 22,029 rays/s."""

PRESETS: dict[str, TrainConfig] = {
    # Seconds on a CPU: for tests and a first look.
    "test": TrainConfig(
        preset="test",
        field=FieldConfig(grid=HashGridConfig.spanning(256, n_levels=8, log2_hashmap_size=15), hidden_dim=32,
                          color_hidden_dim=32),
        sampling=SamplingConfig(grid_resolution=64, max_samples_per_ray=192, warmup_steps=64, update_every=8),
        steps=300,
        rays_per_step=1024,
        checkpoint_every=100,
    ),
    # A few minutes on a CPU.
    "preview": TrainConfig(
        preset="preview",
        field=FieldConfig(grid=HashGridConfig.spanning(512, n_levels=16, log2_hashmap_size=17),
                          mlp_precision=PLACES_MLP_PRECISION),
        # places: proposal sampling with the far-weight prior (README "Real captures": at 3 minutes 3.3-3.5x the
        # occupancy grid's rays/s, +1.5 dB on fox-small, -0.7 dB on skull-66, and all seven path presets fit)
        sampling=SamplingConfig(grid_resolution=96, max_samples_per_ray=384, unbounded_sampler="proposal",
                                proposal_ray_share=PLACES_PROPOSAL_RAY_SHARE),
        steps=1500,
        rays_per_step=4096,
        samples_per_step=4096 * 16,
        distortion_loss_weight=PLACES_DISTORTION,
    ),
    # Ten minutes or more on a CPU, far less on a GPU.
    "quality": TrainConfig(
        preset="quality",
        field=FieldConfig(grid=HashGridConfig.spanning(1024, n_levels=16, log2_hashmap_size=19),
                          mlp_precision=PLACES_MLP_PRECISION),
        sampling=SamplingConfig(grid_resolution=128, max_samples_per_ray=512, unbounded_sampler="proposal",
                                proposal_ray_share=PLACES_PROPOSAL_RAY_SHARE),
        steps=20000,
        rays_per_step=4096,
        samples_per_step=4096 * 16,
        checkpoint_every=1000,
        distortion_loss_weight=PLACES_DISTORTION,
    ),
}


def with_footprint_weighting(config: TrainConfig, on: bool = True) -> TrainConfig:
    """The config with the hash grid's footprint weighting (anti-aliasing) switched on or off."""
    grid = replace(config.field.grid, footprint_weighting=on)
    return replace(config, field=replace(config.field, grid=grid))


def preset_config(name: str, **overrides) -> TrainConfig:
    """The named preset with some top-level fields replaced (e.g. steps, seed, backend)."""
    if name not in PRESETS:
        raise VistaError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    try:
        return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
    except ValueError as error:  # __post_init__ range checks, e.g. --steps 0
        raise VistaError(f"preset {name!r}: {error}") from error
