"""Runs inside the nerfstudio venv only: makes nerfstudio work offline on a CPU-only machine.

nerfacto builds torchmetrics' LPIPS metric in `populate_modules`, and LPIPS fetches AlexNet weights from
the internet when it is constructed. This benchmark never uses LPIPS (both methods are scored with Vista's
PSNR/SSIM), so the metric is replaced by a parameter-free stand-in that refuses to be called. The patch
lives in the benchmark's own helpers, never in nerfstudio's files or in Vista's environment.
"""

from __future__ import annotations

import os

import torch


class _NoLPIPS(torch.nn.Module):
    """Stand-in for torchmetrics' LPIPS: constructing it downloads nothing; calling it is an error."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, *args, **kwargs):
        raise RuntimeError("LPIPS is disabled in the offline nerfstudio benchmark (it needs AlexNet weights)")


def patch_nerfstudio_for_offline_cpu() -> None:
    """Call before nerfstudio builds a model."""
    import torchmetrics.image.lpip

    torchmetrics.image.lpip.LearnedPerceptualImagePatchSimilarity = _NoLPIPS
    # nerfstudio 1.1.5 checkpoints are pickled Python objects; torch >= 2.6 refuses them unless told otherwise.
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
