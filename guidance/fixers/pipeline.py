"""Tier-2 fixer: a diffusers image-to-image pipeline at low strength on the whole render, kept on the mask (GPU).

The pipeline is loaded by `guidance.pipeline` (the folder checks and diffusers' loading); this file only runs
it with a fixed seed per keyframe and keeps the result on the masked pixels, as Difix3D+ does.
"""

from __future__ import annotations

import numpy as np
import torch

from guidance.fixers.base import BuiltFixer, Fixer, FixerMethod, FixerRequest
from guidance.masks import MaskConfig
from guidance.pipeline import load_img2img_pipeline
from vista_core.errors import VistaError


def pipeline_fixer(pipe, strength: float = 0.3, num_inference_steps: int = 20, prompt: str = "",
                   guidance_scale: float = 1.0, multiple: int = 8) -> Fixer:
    """A fixer that runs img2img on the whole render at low strength with a fixed seed and keeps the result only
    on masked pixels."""
    from PIL import Image as PILImage

    def fix(rgb: torch.Tensor, mask: torch.Tensor, seed: int) -> torch.Tensor:
        if not mask.any():
            return rgb.clone()
        h, w = mask.shape
        # latent-diffusion VAEs downsample by 8: run at the next multiple of 8, resize back
        hp, wp = max(multiple, -(-h // multiple) * multiple), max(multiple, -(-w // multiple) * multiple)
        image = PILImage.fromarray((rgb.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)).resize((wp, hp))
        device = getattr(pipe, "device", torch.device("cpu"))
        generator = torch.Generator(device=device).manual_seed(int(seed))
        out = pipe(prompt=prompt, image=image, strength=strength, num_inference_steps=num_inference_steps,
                   guidance_scale=guidance_scale, generator=generator, output_type="np").images[0]
        out = torch.from_numpy(np.array(PILImage.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8))
                                          .resize((w, h)))).float() / 255.0
        return torch.where(mask[..., None], out[..., :3], rgb)

    return fix


def _build(request: FixerRequest) -> BuiltFixer:
    if request.model_dir is None:
        raise VistaError("the pipeline fixer needs a model folder (a local diffusers img2img pipeline)")
    pipe = load_img2img_pipeline(request.model_dir, request.device)
    return BuiltFixer(pipeline_fixer(pipe, strength=request.strength))


METHOD = FixerMethod("pipeline", MaskConfig(), _build)
"""All three cues (holes, unseen, unstable depth), as Difix3D+ repaints with a pretrained model."""
