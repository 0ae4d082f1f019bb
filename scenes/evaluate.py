"""Evaluation on held-out views: `evaluate_scene(Scene, PosedImages) -> Metrics`.

PSNR and SSIM as the NeRF papers compute them (SSIM: Gaussian window sigma 1.5, via scikit-image),
on RGB composited over the scene's background (white for Blender scenes). Each view is rendered with its own
camera at its photo's size, so photos of different sizes and orientations are each compared at their own.
"""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from render.render import render_camera
from scenes.data import PosedImages
from scenes.scene import Scene
from vista_core.errors import VistaError
from vista_core.files import atomic_write_bytes


@dataclass
class ViewMetrics:
    name: str
    psnr: float
    ssim: float


@dataclass
class Metrics:
    views: list[ViewMetrics] = field(default_factory=list)

    @property
    def mean_psnr(self) -> float:
        return float(np.mean([v.psnr for v in self.views])) if self.views else float("nan")

    @property
    def mean_ssim(self) -> float:
        return float(np.mean([v.ssim for v in self.views])) if self.views else float("nan")

    def table(self) -> str:
        lines = ["| view | PSNR (dB) | SSIM |", "|---|---|---|"]
        lines += [f"| {v.name} | {v.psnr:.2f} | {v.ssim:.4f} |" for v in self.views]
        lines.append(f"| **mean** | **{self.mean_psnr:.2f}** | **{self.mean_ssim:.4f}** |")
        return "\n".join(lines)


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    mse = float(torch.mean((image.float() - reference.float()) ** 2))
    return -10.0 * math.log10(max(mse, 1e-10))


def ssim(image: torch.Tensor, reference: torch.Tensor) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(image.numpy(), reference.numpy(), channel_axis=-1, data_range=1.0,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False))


def to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def side_by_side(render: torch.Tensor, reference: torch.Tensor) -> np.ndarray:
    """render | ground truth | error (absolute difference, amplified 4x)."""
    error = ((render - reference).abs().mean(-1, keepdim=True) * 4).clamp(0, 1).expand_as(render)
    return np.concatenate([to_uint8(render), to_uint8(reference), to_uint8(error)], axis=1)


SHOWN_NAMES = 3
"""How many offending view names a message lists before "and N more"."""


def refuse_training_views(scene: Scene, data: PosedImages, indices: list[int]) -> None:
    """A view the scene was trained on is no held-out view: scoring it would report memorisation as quality
    (`vista eval --data OTHER`, or a dataset whose split was reordered since training). Names are compared after
    normalising './' and 'a/../'."""
    trained = {posixpath.normpath(name) for name in scene.capture_names}
    seen = [data.names[i] for i in indices if posixpath.normpath(data.names[i]) in trained]
    if seen:
        shown = ", ".join(seen[:SHOWN_NAMES]) + (f" and {len(seen) - SHOWN_NAMES} more" if len(seen) > SHOWN_NAMES
                                                  else "")
        raise VistaError(f"{data.source}: {len(seen)} of its {len(indices)} held-out views were training views of "
                         f"this scene ({shown}); evaluate on views the scene was not trained on")


def evaluate_scene(scene: Scene, data: PosedImages, out_dir: Path | None = None,
                   indices: list[int] | None = None, show_progress: bool = False) -> Metrics:
    """Render the held-out views (or `indices`), compare with the photos, optionally save side-by-sides."""
    from tqdm.auto import tqdm

    indices = data.heldout_indices if indices is None else indices
    if not indices:
        raise VistaError(f"{data.source}: no held-out views to evaluate on")
    refuse_training_views(scene, data, indices)
    renderable = scene.renderable()
    metrics = Metrics()
    for i in tqdm(indices, disable=not show_progress, desc="eval", unit="view"):
        image = render_camera(renderable, data.cameras[i], 0).rgb  # one camera: its own photo's size
        reference = data.composited(i, scene.background)
        name = data.names[i]
        metrics.views.append(ViewMetrics(name, psnr(image, reference), ssim(image, reference)))
        if out_dir is not None:
            import io

            buffer = io.BytesIO()
            PILImage.fromarray(side_by_side(image, reference)).save(buffer, format="PNG")
            safe = name.replace("/", "_").replace("\\", "_").rsplit(".", 1)[0]
            atomic_write_bytes(Path(out_dir) / f"{safe}.png", buffer.getvalue())
    return metrics
