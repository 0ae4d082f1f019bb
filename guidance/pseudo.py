"""Pseudo-ground-truth: rendered views whose uncertain pixels a fixer repainted (Difix3D+'s progressive loop).

`fix_views` renders each camera of a round, masks the pixels the scene is unsure about
(`guidance.masks`) and lets the fixer repaint only those; `PseudoViews` keeps every round's
results and samples their pixels as down-weighted training targets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from guidance.fixers import Fixer
from guidance.masks import MaskConfig, uncertainty_mask
from guidance.priors import SupervisedRays
from render.cameras import Cameras
from render.render import render_camera
from scenes.scene import Scene


@dataclass
class PseudoViews:
    """Fixed renders used as down-weighted ground truth: cameras, RGB [K, H, W, 3] and masks [K, H, W]."""

    cameras: Cameras | None = None
    rgb: list[torch.Tensor] = field(default_factory=list)
    masks: list[torch.Tensor] = field(default_factory=list)
    _flat_rgb: torch.Tensor | None = field(default=None, init=False, repr=False)
    _masked: torch.Tensor | None = field(default=None, init=False, repr=False)

    def add(self, cameras: Cameras, rgb: list[torch.Tensor], masks: list[torch.Tensor]) -> None:
        self.cameras = cameras if self.cameras is None else self.cameras.concat(cameras)
        self.rgb += rgb
        self.masks += masks
        # flattened once per round, not on every training step
        self._flat_rgb = torch.stack(self.rgb).reshape(-1, 3)
        self._masked = torch.stack(self.masks).reshape(-1).nonzero()[:, 0]

    def supervised_rays(self, masked_only: bool) -> SupervisedRays:
        """The pixels the pseudo loss trains on, as evidence for the visibility loss."""
        masks = torch.stack(self.masks)
        return SupervisedRays(self.cameras, masks if masked_only else torch.ones_like(masks))

    def __len__(self) -> int:
        return len(self.rgb)

    def sample(self, n: int, generator: torch.Generator, masked_only: bool = False):
        """(view index [n], pixel centres [n, 2], colour [n, 3]) of random pixels, or None if none are masked."""
        h, w = self.rgb[0].shape[:2]
        if masked_only:
            if len(self._masked) == 0:
                return None
            flat = self._masked[torch.randint(0, len(self._masked), (n,), generator=generator)]
        else:
            flat = torch.randint(0, len(self) * h * w, (n,), generator=generator)
        image = flat // (h * w)
        within = flat % (h * w)
        xy = torch.stack([within % w, within // w], -1).float() + 0.5
        return image, xy, self._flat_rgb[flat]


@dataclass
class RoundReport:
    fraction: float
    mask_fraction: float
    low_opacity: float
    uncovered: float
    unstable: float
    seconds_fixing: float


def fix_views(scene: Scene, cameras: Cameras, fixer: Fixer | None, mask_config: MaskConfig, seed: int,
              round_index: int) -> tuple[list[torch.Tensor], list[torch.Tensor], RoundReport]:
    """Render each camera, mask its uncertain pixels and let the fixer repaint them."""
    representation = scene.renderable()
    fixed, masks, parts = [], [], []
    start = time.perf_counter()
    for i in range(len(cameras)):
        view = render_camera(representation, cameras, i)
        shifted = None
        if "unstable" in mask_config.cues:  # half a step nearer than the default 0.5
            shifted = render_camera(representation, cameras, i, jitter=0.0).depth
        mask = uncertainty_mask(view, shifted, cameras, i, scene.capture, mask_config,
                                empty_is_valid=scene.kind == "object")
        rgb = view.rgb if fixer is None else fixer(view.rgb, mask.mask, seed * 1000 + round_index * 100 + i)
        fixed.append(rgb)
        masks.append(mask.mask)
        parts.append(mask)
    n = max(len(parts), 1)
    report = RoundReport(0.0, sum(p.fraction for p in parts) / n,
                         sum(float(p.low_opacity.float().mean()) for p in parts) / n,
                         sum(float(p.uncovered.float().mean()) for p in parts) / n,
                         sum(float(p.unstable.float().mean()) for p in parts) / n, time.perf_counter() - start)
    return fixed, masks, report
