"""The guidance run's config; the measurements behind its defaults are in bench/GUIDANCE_RESULTS.md."""

from __future__ import annotations

from dataclasses import dataclass

from guidance.fixers import FIXERS
from guidance.masks import MaskConfig


@dataclass(frozen=True)
class RefineConfig:
    """One guidance run. The defaults are the settings the real-photo benchmark ran (bench/guidance_real.py:
    300 steps, a 300-step prior; bench/results/guidance-real-*.json)."""

    steps: int = 300
    """Training steps added to the scene (split evenly over the rounds)."""
    rounds: int = 3
    """Progressive rounds: keyframes move 1/R, 2/R, ... of the way from the capture to the path."""
    keyframes: int = 6
    """Target cameras fixed per round."""
    learning_rate: float = 3e-3
    """Adam learning rate at the start; decays to 10% by the end."""
    geometric: bool = True
    """Use the visibility loss and the depth-smoothness prior (and the distortion loss if its weight is above 0)."""
    visibility_weight: float = 0.05
    """Weight of Nerfbusters' visibility loss (density where neither a photo nor a fixed pixel looked)."""
    visibility_points: int = 4096
    """Points sampled per step for the visibility loss."""
    distortion_weight: float = 0.0
    """mip-NeRF 360's distortion loss; off by default: on a sparse arc it pulled weight in front of the surface."""
    fixer: str = "prior"
    """A `guidance.fixers.FIXERS` name: 'none' (priors only), 'inpaint' (OpenCV inpainting of the holes, no
    diffusion), 'prior' (inpainting then the patch prior's one-step fixer) or 'pipeline' (an img2img pipeline)."""
    fix_timestep: int = 50
    """Noise level of the one-step fixer (of 1000); on holes 50 beat 100, 200 and 400."""
    pseudo_weight: float = 0.05
    """Weight of the fixed views' loss relative to the photos'. Kept low: every pseudo ray lands in a repainted hole,
    and at 0.5 the holes' colour was fitted in mid-air in front of the photographed surfaces."""
    pseudo_rays: int = 512
    """Pseudo-ground-truth rays added to each step."""
    pseudo_masked_only: bool = True
    """Supervise only the pixels the fixer changed: elsewhere a pseudo view is the field's own render, and
    training on it locks in its errors."""
    smoothness_weight: float = 0.003
    """Weight of the depth-smoothness prior on a patch of a path keyframe each step (`smoothness_patch_loss`):
    without it the visibility loss bared texture the base scene had spread through a fuzzy layer, and the path
    flickered more than with plain training."""
    smoothness_patch: int = 16
    """Side of the square patch rendered each step for the smoothness prior (256 rays, ~+25% per step)."""
    polish_fraction: float = 0.15
    """Final fraction of the steps trained on the photos and the visibility loss alone (no pseudo views, no
    smoothness, no score), so the photos have the last word on the surfaces they see."""
    seen_direction_weight: float = 0.0
    """Weight of the seen-direction prior (`guidance.terms.seen_direction_loss`): along the path, a surface's colour
    should be what it shows toward the photos that looked at it from the nearest directions. 0 disables it."""
    seen_direction_rays: int = 512
    """Path rays the seen-direction prior renders each step (plus `seen_directions` renders of them, no gradients)."""
    seen_directions: int = 3
    """How many of the nearest photo directions the seen-direction target averages."""
    seen_direction_angle: float = 0.0
    """Degrees: a path ray whose direction is within this of a photo's (at its surface) is left to the photos; the
    term ramps to full weight at twice the angle."""
    score_weight: float = 0.0
    """Weight of the patch prior's score on rendered patches (0 disables the regulariser)."""
    score_every: int = 4
    """Steps between score evaluations (each renders one 32x32 patch)."""
    mask: MaskConfig | None = None
    """None: the fixer's default (`guidance.fixers.FixerMethod.default_mask`)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < self.rounds or self.rounds < 1:
            raise ValueError(f"need steps >= rounds >= 1, got steps={self.steps}, rounds={self.rounds}")
        if self.keyframes < 1:
            raise ValueError("keyframes must be >= 1")
        if not 0.0 <= self.polish_fraction < 1.0:
            raise ValueError(f"polish_fraction must be in [0, 1), got {self.polish_fraction}")
        if self.fixer not in FIXERS:
            raise ValueError(f"fixer must be one of {', '.join(FIXERS)}, got {self.fixer!r}")
