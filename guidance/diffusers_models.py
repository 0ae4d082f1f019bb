"""diffusers' models, schedulers and pipelines: the only module that imports diffusers.

Guidance builds the Tier-1 patch prior from diffusers parts (`UNet2DModel` + `DDPMScheduler`, trained on the
user's photos) and loads the Tier-2 image-to-image pipeline from a folder the user names (never a download).
"""

from __future__ import annotations

from pathlib import Path


def patch_unet(sample_size: int, block_out_channels: tuple[int, ...]):
    """A small `UNet2DModel` for RGB patches (one ResNet layer per block, plain down/up blocks)."""
    from diffusers import UNet2DModel

    n = len(block_out_channels)
    return UNet2DModel(sample_size=sample_size, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=tuple(block_out_channels), down_block_types=("DownBlock2D",) * n,
                       up_block_types=("UpBlock2D",) * n, norm_num_groups=8)


def ddpm_scheduler(train_timesteps: int):
    """DDPM's linear beta schedule with epsilon prediction (Ho et al. 2020)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=train_timesteps, beta_schedule="linear", prediction_type="epsilon")


def image_to_image_pipeline(folder: Path):
    """The img2img variant of the pipeline saved in `folder`, from local files only (raises diffusers' errors)."""
    from diffusers import AutoPipelineForImage2Image

    return AutoPipelineForImage2Image.from_pretrained(str(folder), local_files_only=True)
