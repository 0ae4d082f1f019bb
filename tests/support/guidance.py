"""Shared helpers of the guidance tests: tiny cameras, scenes, photos, a tiny patch prior and a random pipeline."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from guidance.patch_prior import PriorConfig
from render.cameras import Cameras

TINY_PRIOR = PriorConfig(steps=4, batch_size=4, block_out_channels=(16, 32), seed=0)


def camera_at_origin_looking_down_minus_z(width=8, height=6) -> Cameras:
    pose = torch.cat([torch.eye(3), torch.zeros(3, 1)], dim=1)[None]
    return Cameras.from_fov(pose, 60.0, width, height)


def tiny_scene(kind="object"):
    from scenes.config import preset_config
    from scenes.scene import new_scene

    config = preset_config("test", seed=0)
    camera = camera_at_origin_looking_down_minus_z()
    return new_scene(config, "torch", kind, torch.eye(4), (1.0, 1.0, 1.0), camera, ["a"], "test")


def smooth_photos() -> torch.Tensor:
    """Five smooth random 48x36 photos, uint8 [5, 36, 48, 3]."""
    generator = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(5, 3, 6, 8, generator=generator), size=(36, 48),
                                             mode="bilinear", align_corners=False)
    return (smooth.permute(0, 2, 3, 1) * 255).to(torch.uint8)


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*")) if p.is_file()}


def build_tiny_pipeline(folder: Path, text_to_image: bool = True) -> Path:
    """A random-weight Stable Diffusion pipeline from configs, tokenizer written locally (as diffusers' tests do,
    minus the download of their tiny tokenizer)."""
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionImg2ImgPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    tokens = folder / "tokenizer-source"
    tokens.mkdir(parents=True)
    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    (tokens / "vocab.json").write_text(json.dumps(vocab))
    (tokens / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(tokens / "vocab.json"), str(tokens / "merges.txt"), model_max_length=77)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=[16, 32], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        norm_num_groups=8)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"],
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, vocab_size=len(vocab),
        max_position_embeddings=77))
    cls = StableDiffusionPipeline if text_to_image else StableDiffusionImg2ImgPipeline
    pipe = cls(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
               scheduler=PNDMScheduler(skip_prk_steps=True), safety_checker=None, feature_extractor=None,
               requires_safety_checker=False)
    out = folder / "pipeline"
    pipe.save_pretrained(str(out))
    return out
