"""Configs of the render package: ray marching and video; frozen dataclasses saved as strict JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from vista_core.errors import VistaError


class ConfigValueError(VistaError, ValueError):
    """A config field outside its range. A user mistake (one line, exit code 2), and a ValueError, so that the strict
    JSON loader (`render.configio`) and the presets prefix the message with the file and the config it came from."""


def check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    """`value` is an int (not a bool) in [low, high] (no upper bound if high is None), else ConfigValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        rule = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigValueError(f"{name} must be {rule}, got {value}")


def check_float(name: str, value: object, low: float, high: float, *, low_open: bool = False,
                high_open: bool = False) -> None:
    """`value` is a finite number in the interval (brackets as given), else ConfigValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigValueError(f"{name} must be a finite number, got {value!r}")
    if not ((value > low if low_open else value >= low) and (value < high if high_open else value <= high)):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ConfigValueError(f"{name} must be in {interval}, got {value}")


MAX_GRID_RESOLUTION = 256
"""Occupancy cells per side at most: 256^3 cells take ~85 MB and a warm-up update evaluates every one of them;
512^3 would take ~0.7 GB before its temporaries (presets use 64-128, Instant-NGP and nerfacc 128)."""
MAX_SAMPLES_PER_RAY = 4096
"""Candidate steps per ray at most: a chunk of rays holds rays x steps candidates (presets use 192-512)."""

DEFAULT_CHUNK_RAYS = 16384
"""Rays per `render_rays` call when rendering images: 16384 renders the trained lego at 320x180 ~1.3x faster
than 8192 (fewer rounds and kernel launches; measured), and bounds a chunk's candidates at ~400 MB."""


@dataclass(frozen=True)
class SamplingConfig:
    """Ray marching with an occupancy grid (empty-space skipping as in Instant-NGP / nerfacc)."""

    grid_resolution: int = 128
    """Cells per side of the occupancy grid."""
    max_samples_per_ray: int = 512
    """Candidate steps across the scene box (before skipping empty space)."""
    occupancy_threshold: float = 0.01
    """A cell is occupied if its opacity over one step exceeds this."""
    update_every: int = 16
    """Steps between occupancy-grid updates."""
    warmup_steps: int = 256
    """Steps during which every cell is re-evaluated on each update."""
    early_stop_transmittance: float = 1e-3
    """Stop marching a ray once its transmittance falls below this."""
    min_alpha: float = 1e-4
    """Samples contributing less opacity than this are dropped before the gradient pass."""
    unbounded_schedule: Literal["contracted", "disparity"] = "contracted"
    """Unbounded scenes: "contracted" steps `unbounded_step` in contracted space (linear in the unit cube, linear in
    disparity beyond); "disparity" is the former schedule (max_samples_per_ray steps, half linear to 3 units, half
    in disparity to the far plane). See render/unbounded.py."""
    unbounded_step: float = 1 / 64
    """Unbounded scenes, "contracted" schedule: the marching step in contracted space (the unit cube has side 2,
    the contracted scene 4)."""
    unbounded_sampler: Literal["occupancy", "proposal"] = "occupancy"
    """Unbounded scenes: "occupancy" marches the occupancy grid with `unbounded_schedule`; "proposal" samples
    `proposal_samples` per pass from small proposal density fields, then `nerf_samples` from the NeRF
    (mip-NeRF 360 / nerfacto; render/proposal.py)."""
    proposal_samples: tuple[int, ...] = (64, 32)
    """"proposal" sampler: samples per ray of each proposal pass (nerfacto: 256, 96)."""
    nerf_samples: int = 24
    """"proposal" sampler: samples per ray through the NeRF (nerfacto: 48)."""
    proposal_anneal_steps: int = 0
    """"proposal" sampler: training steps over which the proposal weights' exponent rises from 0 to 1 before each
    resampling (nerfacto's proposal weight annealing, slope 10 over 1000 steps): early on the NeRF's samples spread
    along the ray instead of trusting a still-untrained proposal density. 0: no annealing. Renders never anneal."""
    proposal_update_every: int = 1
    """"proposal" sampler: the proposal fields get gradients on one training step in this many (the others evaluate
    them without, sparing their backward pass); nerfacto's `proposal_update_every` (5). 1: every step."""
    proposal_update_warmup: int = 0
    """"proposal" sampler: steps over which that interval rises from 1 to `proposal_update_every` (nerfacto's
    `proposal_warmup`, 5000)."""
    proposal_ray_share: float = 1.0
    """"proposal" sampler: on an update step, the share of the step's rays (its first ones; the batch is a random
    draw) whose proposal samples give the proposal fields gradients; the rest are evaluated without (their backward
    pass spared). 1: all rays."""
    far_weight_penalty: float = 0.006
    """"proposal" sampler: weight of a prior on the compositing weight beyond the unit cube (`render.proposal.
    far_weight`), the occupancy grid's pruning of weak far density made soft. 0: none. 0.006 was the best of
    0.001-0.03 on skull-66 at 200 steps (bench/results/skull-far-weight-sweep.json; 0.03 collapses the scene); at 3
    minutes it gave skull-66 +5.7 dB and fox-small -0.09 dB (bench/results/real-captures-far-*.json)."""
    mask_unseen: bool = True
    """Cells no training photo sees are never occupied (`render.occupancy.cells_seen_by`, as nerfacc's
    `mark_invisible_cells`); set when training starts and saved with the grid."""

    def __post_init__(self) -> None:
        check_int("grid_resolution", self.grid_resolution, 4, MAX_GRID_RESOLUTION)
        check_int("max_samples_per_ray", self.max_samples_per_ray, 1, MAX_SAMPLES_PER_RAY)
        check_float("occupancy_threshold", self.occupancy_threshold, 0.0, 1e6, low_open=True)
        check_int("update_every", self.update_every, 1)
        check_int("warmup_steps", self.warmup_steps, 0)
        check_float("early_stop_transmittance", self.early_stop_transmittance, 0.0, 1.0, high_open=True)
        check_float("min_alpha", self.min_alpha, 0.0, 1.0, high_open=True)
        if self.unbounded_schedule not in ("contracted", "disparity"):
            raise ConfigValueError(f"unbounded_schedule must be 'contracted' or 'disparity', got "
                                   f"{self.unbounded_schedule!r}")
        check_float("unbounded_step", self.unbounded_step, 1e-3, 0.5)
        if self.unbounded_sampler not in ("occupancy", "proposal"):
            raise ConfigValueError(f"unbounded_sampler must be 'occupancy' or 'proposal', got {self.unbounded_sampler!r}")
        if not (isinstance(self.proposal_samples, tuple) and 1 <= len(self.proposal_samples) <= 3):
            raise ConfigValueError(f"proposal_samples must list 1 to 3 sample counts, got {self.proposal_samples!r}")
        for count in self.proposal_samples:
            check_int("proposal_samples", count, 2, MAX_SAMPLES_PER_RAY)
        check_int("nerf_samples", self.nerf_samples, 2, MAX_SAMPLES_PER_RAY)
        check_int("proposal_anneal_steps", self.proposal_anneal_steps, 0)
        check_int("proposal_update_every", self.proposal_update_every, 1)
        check_int("proposal_update_warmup", self.proposal_update_warmup, 0)
        check_float("proposal_ray_share", self.proposal_ray_share, 0.0, 1.0, low_open=True)
        if not (isinstance(self.far_weight_penalty, (int, float)) and 0.0 <= self.far_weight_penalty < float("inf")):
            raise ConfigValueError(f"far_weight_penalty must be a number >= 0, got {self.far_weight_penalty!r}")
        if not isinstance(self.mask_unseen, bool):
            raise ConfigValueError(f"mask_unseen must be true or false, got {self.mask_unseen!r}")


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
"""libx264's speed presets (`x264 --help`)."""


@dataclass(frozen=True)
class VideoConfig:
    """How frames are rendered and encoded (recorded in the recipe)."""

    fps: float = 24.0
    """Frames per second (constant frame rate)."""
    crf: int = 18
    """libx264 constant rate factor: lower is better quality and larger files (18 is visually lossless)."""
    x264_preset: str = "medium"
    """libx264 speed/size trade-off."""
    band_pixels: int = 1 << 16
    """Pixels rendered at once (rows of the frame); bounds memory at any resolution."""
    chunk_rays: int = DEFAULT_CHUNK_RAYS
    """Rays per `render_rays` call inside a band."""
    watermark: bool = True
    """Embed the invisible 'synthetic render' watermark in every frame (frames must have >= 256x256 pixels)."""
    label: bool = False
    """Draw a visible 'synthetic render' label in the bottom-right corner."""
    supersample: int = 1
    """Rays per pixel along each side, averaged (2: 2x2 rays, 4x the render time). One ray per pixel aliases
    texture that a pull-back shrinks, and the aliasing shimmers from frame to frame (bench/guidance.py:
    2x2 lowered the pull-back's flicker against the truth by 0.001-0.002)."""
    motion_blur: float = 0.0
    """Shutter as a fraction of the frame interval, in [0, 1]: 0 is none, 0.5 a 180-degree shutter. Each frame is
    the average of `motion_blur_samples` renders along the path while the shutter is open (render.motion_blur)."""
    motion_blur_samples: int = 8
    """Sub-frame renders per blurred frame (the render takes this many times longer)."""

    def __post_init__(self) -> None:
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and 0 < self.fps <= 240):
            raise ConfigValueError(f"fps must be in (0, 240], got {self.fps}")
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise ConfigValueError(f"crf must be in [0, 51], got {self.crf}")
        if self.x264_preset not in X264_PRESETS:
            raise ConfigValueError(f"x264_preset must be one of {list(X264_PRESETS)}, got {self.x264_preset!r}")
        check_int("band_pixels", self.band_pixels, 1, 1 << 24)
        check_int("chunk_rays", self.chunk_rays, 1, 1 << 20)
        if not (isinstance(self.supersample, int) and 1 <= self.supersample <= 4):
            raise ConfigValueError(f"supersample must be 1, 2, 3 or 4 rays per pixel side, got {self.supersample}")
        check_float("motion_blur", self.motion_blur, 0.0, 1.0)
        check_int("motion_blur_samples", self.motion_blur_samples, 2, 64)
