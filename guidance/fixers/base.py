"""What every fixer method is made of: the fixer function, what building one may use, and the method's entry.

A fixer repaints the pixels of a rendered view that the scene is unsure about (Difix3D+'s role); a method
pairs a fixer factory with the mask it repaints by default. One method per file beside this one, as
diffusers keeps one pipeline per file; `guidance.fixers` registers them by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from guidance.masks import MaskConfig
from guidance.patch_prior import PatchPrior, PriorConfig
from vista_core.progress import ProgressCallback

Fixer = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
"""(rgb [H, W, 3] in [0, 1], mask [H, W] bool, seed) -> rgb with only the masked pixels changed."""


@dataclass(frozen=True)
class FixerRequest:
    """What a fixer factory may use; each method reads its own fields."""

    photos: torch.Tensor | None = None
    """The training photos, uint8 [N, H, W, 3|4] (the patch prior learns from them)."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Colour behind the photos' transparent pixels."""
    source: str = "photos"
    """Where the photos came from, for error messages."""
    timestep: int = 50
    """Noise level of the patch prior's one-step fix (of 1000; `RefineConfig.fix_timestep`)."""
    prior_config: PriorConfig = field(default_factory=PriorConfig)
    prior: PatchPrior | None = None
    """An already trained patch prior: used instead of training one."""
    model_dir: Path | None = None
    """A local diffusers image-to-image pipeline folder (Tier 2)."""
    strength: float = 0.3
    """img2img strength (Tier 2)."""
    device: str | None = None
    """Where the pipeline runs (None: CUDA, required)."""
    show_progress: bool = False
    progress: ProgressCallback | None = None
    """Progress of any model training the factory does; raising `Cancelled` stops it."""


@dataclass(frozen=True)
class BuiltFixer:
    fix: Fixer | None
    """None for a method that repaints nothing."""
    prior: PatchPrior | None = None
    """The patch prior the method trained or was given (the score regulariser can use it; saved with the scene)."""


@dataclass(frozen=True)
class FixerMethod:
    name: str
    """The `RefineConfig.fixer` value that selects it."""
    default_mask: MaskConfig
    """The pixels it repaints unless the refine config names a mask."""
    build: Callable[[FixerRequest], BuiltFixer]
    repaints: bool = True
    """False for "none": no views are rendered and fixed, only the priors train."""
