"""The fixers refinement can use, by name (`RefineConfig.fixer`): a small registry in place of if/else chains.

- "none": no fixer; the geometric priors train alone.
- "inpaint" (`inpaint.py`): OpenCV inpainting of the holes alone, no diffusion step (CPU, no model); it isolates
  what the patch prior's step adds.
- "prior" (`patch_prior.py`): Tier 1, the patch prior's one-step denoiser on holes, started from that inpainting
  (CPU).
- "pipeline" (`pipeline.py`): Tier 2, a diffusers img2img pipeline from a local folder (GPU).

A new method is one file with a `METHOD` (`base.FixerMethod`) and one entry below.
"""

from __future__ import annotations

from guidance.fixers import inpaint, patch_prior, pipeline
from guidance.fixers.base import BuiltFixer, Fixer, FixerMethod, FixerRequest
from guidance.masks import MaskConfig
from vista_core.errors import VistaError

__all__ = ["FIXERS", "BuiltFixer", "Fixer", "FixerMethod", "FixerRequest", "build_fixer", "fixer_method"]

NONE = FixerMethod("none", MaskConfig(), lambda request: BuiltFixer(None), repaints=False)

FIXERS: dict[str, FixerMethod] = {method.name: method for method in (NONE, inpaint.METHOD, patch_prior.METHOD,
                                                                     pipeline.METHOD)}


def fixer_method(name: str) -> FixerMethod:
    if name not in FIXERS:
        raise VistaError(f"unknown fixer {name!r}; choose one of {', '.join(FIXERS)}")
    return FIXERS[name]


def build_fixer(name: str, request: FixerRequest) -> BuiltFixer:
    """The fixer `name` built from `request` (this may train a model: `request.progress` reports it)."""
    return fixer_method(name).build(request)
