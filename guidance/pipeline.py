"""Tier-2 guidance's model: a diffusers image-to-image pipeline from a local folder (GPU).

diffusers does the loading (`AutoPipelineForImage2Image.from_pretrained(folder,
local_files_only=True)`, which also turns a text-to-image folder into its img2img pipeline) and
the denoising; Vista only checks the folder first so the user gets one clear line for a missing,
incomplete or wrong-type folder. Nothing is downloaded: the folder must hold the weights. The fixer
that runs it is `guidance.fixers.pipeline`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from guidance.diffusers_models import image_to_image_pipeline
from vista_core.errors import VistaError
from vista_core.files import read_json

MODEL_INDEX = "model_index.json"


def check_model_folder(folder: Path) -> str:
    """The pipeline class named by a diffusers folder, after checking every listed component is present."""
    folder = Path(folder)
    if not folder.exists():
        raise VistaError(f"{folder}: model folder not found")
    if not folder.is_dir():
        raise VistaError(f"{folder}: is a file; --model-dir must be a diffusers pipeline folder")
    index_path = folder / MODEL_INDEX
    if not index_path.is_file():
        raise VistaError(f"{folder}: no {MODEL_INDEX}; not a diffusers pipeline folder (save one with "
                         "pipeline.save_pretrained(folder))")
    index = read_json(index_path, "diffusers model index")
    if not isinstance(index, dict) or not isinstance(index.get("_class_name"), str):
        raise VistaError(f"{index_path}: has no '_class_name'; not a diffusers model index")
    missing = []
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or value[0] is None:
            continue
        component = folder / name
        if not component.is_dir() or not any(component.iterdir()):
            missing.append(name)
    if missing:
        raise VistaError(f"{folder}: incomplete pipeline folder, missing component folder(s) {', '.join(missing)} "
                         f"listed in {MODEL_INDEX}")
    return index["_class_name"]


def require_cuda() -> str:
    if not torch.cuda.is_available():
        raise VistaError("--tier pipeline needs a CUDA GPU and none is available here; use --tier prior "
                         "(the CPU tier, trained on your own photos)")
    return "cuda"


def load_img2img_pipeline(folder: Path, device: str | None = None):
    """Load the pipeline in `folder` for image-to-image on `device` (default: CUDA, required)."""
    class_name = check_model_folder(folder)
    device = device or require_cuda()
    try:
        pipe = image_to_image_pipeline(folder)
    except ValueError as error:
        if "can't find a pipeline" in str(error):
            raise VistaError(f"{folder}: pipeline type {class_name} has no image-to-image variant; use a Stable "
                             "Diffusion style (img2img-capable) pipeline folder") from error
        raise VistaError(f"{folder}: could not load the pipeline ({error})") from error
    except (OSError, KeyError, TypeError, AttributeError) as error:
        raise VistaError(f"{folder}: incomplete or corrupt pipeline folder ({type(error).__name__}: {error})") from error
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe
