"""Per-photo appearance: a learned affine colour transform per training photo, applied to the rendered colour in the
photo loss (exposure and white balance differ between real photos).

NeRF-W (Martin-Brualla et al. 2021) and nerfstudio's nerfacto learn a latent appearance vector per photo and feed it
to the colour MLP. Exposure and white balance are, to first order, an affine map of the linear colour the camera
saw, so a per-photo 3x4 matrix `[I + A | b]` after compositing models them exactly (as Urban Radiance Fields' and
Zip-NeRF's per-image affine colour correction do) without touching the field or the renderer. It starts at the
identity, a small penalty keeps it near it, and the identity is the neutral appearance new views render with.
"""

from __future__ import annotations

import torch
from torch import nn


class AppearanceModel(nn.Module):
    """`n_photos` affine colour transforms, stored as their difference from the identity (zero at the start)."""

    def __init__(self, n_photos: int):
        super().__init__()
        self.delta = nn.Parameter(torch.zeros(n_photos, 3, 4))

    def forward(self, rgb: torch.Tensor, slots: torch.Tensor, opacity: torch.Tensor | None = None,
                background: torch.Tensor | None = None) -> torch.Tensor:
        """The colour photo `slots[i]` would have recorded for rendered colour `rgb[i]`.

        With a synthetic `background` (photos with alpha, composited over a random colour per ray) only the
        foreground, premultiplied by `opacity`, went through the camera: the transform applies to it and the bias
        scales with opacity, so a transparent pixel stays exactly the background."""
        delta = self.delta[slots]  # [R, 3, 4]
        matrix, bias = delta[:, :, :3], delta[:, :, 3]
        if background is None:
            return rgb + (matrix @ rgb.unsqueeze(-1)).squeeze(-1) + bias
        behind = background * (1.0 - opacity).unsqueeze(-1)
        front = rgb - behind
        return front + (matrix @ front.unsqueeze(-1)).squeeze(-1) + bias * opacity.unsqueeze(-1) + behind

    def penalty(self) -> torch.Tensor:
        """Mean squared distance from the identity over all photos (the pull toward the neutral appearance)."""
        return self.delta.square().sum(dim=(1, 2)).mean()

    def gains(self) -> torch.Tensor:
        """[n_photos, 3] per-channel gain of each photo's transform (the diagonal): its exposure x white balance."""
        return 1.0 + torch.diagonal(self.delta.detach()[:, :, :3], dim1=1, dim2=2)
