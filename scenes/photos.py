"""A dataset's photos in memory, of any sizes, and the resolution they are loaded at.

`Photos` packs N photos (each its own width and height) into one uint8 buffer [P, C], photo after photo,
row-major: 150 photos of 1600x1200 RGB take 0.86 GB (float32 would take 3.5 GB), and training samples pixels
uniformly over every photo by indexing that buffer, with no per-photo loop. `LoadOptions` says at which resolution
a dataset is loaded (`--downscale`, the automatic cap on the long side) and what to do with missing images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from render.config import check_int
from vista_core.errors import VistaError

DEFAULT_MAX_LONG_SIDE = 1600
"""Photos are loaded with their long side at most this many pixels unless the user says otherwise (nerfstudio's
data parsers cap at 1600 px too): a 12-megapixel photo holds far more detail than a CPU run can learn."""
MIN_SIDE_PX = 64
"""A downscale may not leave a photo with a shorter side than this."""
MAX_DOWNSCALE = 64


@dataclass(frozen=True)
class LoadOptions:
    """How a dataset's photos are loaded."""

    downscale: int = 1
    """Divide every photo's width and height by this whole number (1 = full size): each N x N block of pixels
    becomes one (exact area average), the last W mod N columns and H mod N rows are dropped, and the intrinsics
    are divided by N exactly."""
    max_long_side: int = DEFAULT_MAX_LONG_SIDE
    """Downscale by a larger whole number, if needed, so that no photo's long side exceeds this many pixels
    (0 = no cap)."""
    skip_missing: bool = False
    """Load the frames whose images exist when some are missing (otherwise: refuse, naming them)."""

    def __post_init__(self) -> None:
        check_int("downscale", self.downscale, 1, MAX_DOWNSCALE)
        check_int("max_long_side", self.max_long_side, 0)
        if self.max_long_side and self.max_long_side < MIN_SIDE_PX:
            raise VistaError(f"max_long_side must be 0 (no cap) or at least {MIN_SIDE_PX} px, got {self.max_long_side}")

    def factor(self, sizes: list[tuple[int, int]]) -> int:
        """The one downscale factor for a dataset whose photos have these (width, height) sizes: the requested
        `downscale`, or the smallest larger whole number that brings the largest photo's long side within
        `max_long_side`."""
        longest = max(max(w, h) for w, h in sizes)
        capped = math.ceil(longest / self.max_long_side) if self.max_long_side else 1
        return max(self.downscale, capped)


def downscaled_size(width: int, height: int, factor: int) -> tuple[int, int]:
    """A photo's size divided by `factor`, whole blocks only (at least 1 px)."""
    return max(1, width // factor), max(1, height // factor)


def check_downscaled(name: str, original: tuple[int, int], size: tuple[int, int], factor: int) -> None:
    """Refuse a downscale that leaves a photo with a short side under MIN_SIDE_PX (photos that small to begin
    with are loaded as they are)."""
    if factor > 1 and min(size) < MIN_SIDE_PX:
        raise VistaError(f"{name}: downscaling {original[0]}x{original[1]} by {factor} leaves {size[0]}x{size[1]} "
                         f"px, fewer than {MIN_SIDE_PX} px on the short side; use a smaller --downscale "
                         f"(at most {max(1, min(original) // MIN_SIDE_PX)})")


class Photos:
    """N photos of any sizes in one packed uint8 buffer `pixels` [P, C] (C = 3 RGB or 4 RGBA, straight alpha);
    photo i is rows `offsets[i]:offsets[i + 1]`, row-major, `heights[i]` x `widths[i]` pixels."""

    def __init__(self, pixels: torch.Tensor, widths: torch.Tensor, heights: torch.Tensor):
        if pixels.dtype != torch.uint8 or pixels.dim() != 2 or pixels.shape[1] not in (3, 4):
            raise VistaError(f"photos must be uint8 [P, 3 or 4], got {pixels.dtype} {tuple(pixels.shape)}")
        self.pixels = pixels
        self.widths = torch.as_tensor(widths, dtype=torch.long)
        self.heights = torch.as_tensor(heights, dtype=torch.long)
        counts = self.widths * self.heights
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        if int(self.offsets[-1]) != pixels.shape[0]:
            raise VistaError(f"photos hold {pixels.shape[0]} pixels but their sizes add up to {int(self.offsets[-1])}")

    @staticmethod
    def empty(sizes: list[tuple[int, int]], channels: int) -> Photos:
        """Room for photos of these (width, height) sizes, to be filled with `put` (allocated once)."""
        widths = torch.tensor([w for w, _ in sizes], dtype=torch.long)
        heights = torch.tensor([h for _, h in sizes], dtype=torch.long)
        total = int((widths * heights).sum())
        return Photos(torch.empty((total, channels), dtype=torch.uint8), widths, heights)

    @staticmethod
    def from_stacked(images: torch.Tensor) -> Photos:
        """Photos of one size from a [N, H, W, C] uint8 tensor (no copy when it is contiguous)."""
        n, h, w, c = images.shape
        return Photos(images.reshape(n * h * w, c), torch.full((n,), w), torch.full((n,), h))

    def put(self, index: int, image: np.ndarray) -> None:
        """Write photo `index` ([H, W, 3 or 4] uint8 of its size); RGB gets an opaque alpha in an RGBA buffer."""
        h, w = int(self.heights[index]), int(self.widths[index])
        if image.shape[:2] != (h, w):
            raise VistaError(f"photo {index} is {image.shape[1]}x{image.shape[0]}, expected {w}x{h}")
        target = self.pixels[self.offsets[index]:self.offsets[index + 1]].view(h, w, self.channels).numpy()
        target[..., :3] = image[..., :3]  # numpy writes into the torch buffer it shares memory with
        if self.channels == 4:
            target[..., 3] = image[..., 3] if image.shape[2] == 4 else 255

    def __len__(self) -> int:
        return self.widths.shape[0]

    @property
    def channels(self) -> int:
        return self.pixels.shape[1]

    @property
    def nbytes(self) -> int:
        return self.pixels.numel() * self.pixels.element_size()

    def size_of(self, index: int) -> tuple[int, int]:
        """(width, height) of photo `index`."""
        return int(self.widths[index]), int(self.heights[index])

    def photo(self, index: int) -> torch.Tensor:
        """Photo `index` as a [H, W, C] uint8 view of the buffer."""
        w, h = self.size_of(index)
        return self.pixels[self.offsets[index]:self.offsets[index + 1]].view(h, w, self.channels)

    def __getitem__(self, key) -> torch.Tensor:
        """`photos[i]` is one photo [H, W, C]; `photos[i, ...]` indexes into it; `photos[list]` stacks the chosen
        photos [K, H, W, C] (a copy), which needs them to be of one size."""
        if isinstance(key, tuple):
            return self.photo(int(key[0]))[key[1:]]
        if isinstance(key, (int, np.integer)) or (isinstance(key, torch.Tensor) and key.dim() == 0):
            return self.photo(int(key))
        chosen = [int(i) for i in key]
        sizes = {self.size_of(i) for i in chosen}
        if len(sizes) > 1:
            shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:3])
            raise VistaError(f"these photos differ in size ({shown}); this step needs photos of one size")
        return torch.stack([self.photo(i) for i in chosen]) if chosen else torch.empty(0, dtype=torch.uint8)
