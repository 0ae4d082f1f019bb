"""Vista's invisible watermark: a spread-spectrum luma pattern on a frame-relative grid (torch does the resampling).

Why not the DWT-DCT mark SDXL uses (`invisible-watermark`'s dwtDct, Vista's first mark): it hides each bit in
the largest of 15 Haar coefficients of the chroma plane, and on smooth, low-chroma content the embedding itself
changes which coefficient is largest. On fox-small photos at 1280x720 it decoded with 27-29 of 48 bits wrong
before any encoding (bench/WATERMARK.md). This mark is the classic additive spread-spectrum watermark (Cox et al.,
"Secure spread spectrum watermarking for multimedia", IEEE TIP 1997), with the tiles of a frame-relative grid as
chips and a non-blind detector replaced by correlation after a local high-pass (as in Kalker et al.'s JAWS):

- The frame is divided into a GRID x GRID lattice of cells, fixed relative to the frame (a 1920x1080 cell is
  15x8 pixels, a 256x256 one 2x2). Each cell is one chip: a seeded pseudo-random sign times the sign of the
  message bit the cell carries; the 48 bits are spread over all the cells (~341 each), anywhere in the frame.
- Embedding adds the chip pattern, bilinearly upsampled, to R, G and B alike (a pure luma change, so chroma
  subsampling cannot erase it), scaled by the local texture: busy regions hide a stronger mark than flat sky
  (perceptual masking, Watson 1993), at an overall RMS of WATERMARK_STRENGTH grey levels (PSNR ~42 dB).
- Detection area-averages the luma onto the same lattice, removes the picture by subtracting a 3x3 cell mean,
  and correlates with each bit's chips; the sign of each correlation is the bit. The lattice is relative to the
  frame, so a rescaled copy decodes the same; centred crops are found by trying a few crop ratios.
"""

from __future__ import annotations

from functools import cache

import numpy as np

WATERMARK_BITS = [int(b) for b in np.unpackbits(np.frombuffer(b"VISTA1", dtype=np.uint8))]
"""Vista's own 48-bit message (the bytes "VISTA1")."""
WATERMARK_MIN_PIXELS = 256 * 256  # a smaller frame has < 2x2 pixels per cell, which H.264 smooths away
GRID = 128  # cells per side: 16384 chips, ~341 per bit
WATERMARK_STRENGTH = 3.0
"""RMS over the cells of the chip amplitude, in grey levels; bilinear upsampling lowers the RMS per pixel to
~0.7 of it, so a marked frame keeps a PSNR of ~41-42 dB against the unmarked one (~40 dB on white backgrounds,
where informed embedding makes up for clipping)."""
WATERMARK_MAX_BIT_ERRORS = 4  # a random 48-bit string has <= 4 errors with probability 7.6e-10
CROP_RATIOS = (1.0, 0.95, 0.9, 0.85, 0.8)
"""Centred crops the detector tries (5 tries: a random frame passes with probability < 4e-9)."""
_SEED = 0x5649535441  # "VISTA"
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601
EMBED_ROUNDS = 3  # informed-embedding rounds (embed_watermark)
EMBED_MAX_GAIN = 3.0  # at most this multiple of the base amplitude on any bit
_SUB = 4  # samples per cell per side when resampling a cropped frame onto the lattice


@cache
def _chips() -> tuple[np.ndarray, np.ndarray]:
    """(signs [GRID, GRID] of +-1, bit index [GRID, GRID]): the same for every frame and every Vista build."""
    rng = np.random.default_rng(_SEED)
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(GRID, GRID))
    bit_of_cell = (rng.permutation(GRID * GRID) % len(WATERMARK_BITS)).reshape(GRID, GRID)
    return signs, bit_of_cell


def watermark_fits(width: int, height: int) -> bool:
    return width * height >= WATERMARK_MIN_PIXELS and min(width, height) >= GRID


def _luma(rgb: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32) @ _LUMA_WEIGHTS)


def _highpass(cells, valid=None):
    """Cell values minus their 3x3 neighbourhood mean (over valid cells only): the picture goes, the chips stay."""
    import torch.nn.functional as F

    if valid is None:
        return cells - F.avg_pool2d(cells[None, None], 3, 1, 1, count_include_pad=False)[0, 0]
    total = F.avg_pool2d((cells * valid)[None, None], 3, 1, 1)[0, 0]
    count = F.avg_pool2d(valid[None, None], 3, 1, 1)[0, 0].clamp(min=1e-6)
    return (cells - total / count) * valid


def _masking(rgb: np.ndarray):
    """Per-cell strength, RMS 1: local texture (mean |high-pass| over 3x3 cells) relative to the frame's median,
    kept within [0.5, 2] so flat areas still carry some mark and busy ones not a glaring one."""
    import torch.nn.functional as F

    cells = F.interpolate(_luma(rgb)[None, None], size=(GRID, GRID), mode="area")[0, 0]
    activity = F.avg_pool2d(_highpass(cells).abs()[None, None], 3, 1, 1, count_include_pad=False)[0, 0]
    weight = (activity / activity.median().clamp(min=1e-3)).clamp(0.5, 2.0)
    return weight / weight.pow(2).mean().sqrt()


def _upsample(cells, height: int, width: int) -> np.ndarray:
    import torch.nn.functional as F

    # bilinear: smooth cell edges are less visible and survive H.264's transform better than hard steps
    return F.interpolate(cells[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


def _correlations(rgb: np.ndarray) -> np.ndarray:
    """Per bit, the correlation of the frame's high-passed lattice with that bit's chips (uncropped frame)."""
    signs, bit_of_cell = _chips()
    cells, _ = _cells_for_crop(_luma(rgb), 1.0)
    residual = _highpass(cells).numpy()
    return np.bincount(bit_of_cell.ravel(), weights=(residual * signs).ravel(), minlength=len(WATERMARK_BITS))


def embed_watermark(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> the same frame carrying WATERMARK_BITS (see the module docstring).

    Informed embedding, after Malvar and Florencio's improved spread spectrum (IEEE TSP 2003): the picture itself
    correlates a little with each bit's chips (edges, texture, clipping at white and black), which a plain additive
    mark leaves as noise for the detector. Knowing the picture, a few rounds raise the amplitude of each bit whose
    correlation in the marked, clipped frame falls short of the mark's own, at most EMBED_MAX_GAIN-fold."""
    import torch

    from vista_core.errors import VistaError

    height, width = rgb.shape[:2]
    if not watermark_fits(width, height):
        raise VistaError(f"a {width}x{height} frame is too small for the invisible watermark (needs >= 256x256 "
                         f"pixels and >= {GRID} on each side); render larger or pass --no-watermark")
    signs, bit_of_cell = _chips()
    polarity = 2 * np.asarray(WATERMARK_BITS, dtype=np.float32) - 1
    masking = _masking(rgb)
    base = _upsample(torch.from_numpy(signs * polarity[bit_of_cell]) * masking, height, width)
    # the mark's own response per bit (the whole chain is linear): what each bit should show at least
    target = _correlations(np.repeat(WATERMARK_STRENGTH * base[..., None], 3, axis=2) + 128) * polarity
    gain = np.ones(len(WATERMARK_BITS), dtype=np.float32)
    host = rgb.astype(np.float32)
    for _ in range(EMBED_ROUNDS):
        pattern = _upsample(torch.from_numpy(signs * (polarity * gain)[bit_of_cell]) * masking, height, width)
        marked = np.clip(host + WATERMARK_STRENGTH * pattern[..., None], 0, 255)
        shortfall = np.maximum(target - _correlations(marked) * polarity, 0) / target
        if not shortfall.any():
            break
        gain = np.minimum(gain + shortfall, EMBED_MAX_GAIN)
    return np.round(marked).astype(np.uint8)


def _cells_for_crop(luma, ratio: float):
    """Lattice cell means (and which cells are covered) if `luma` is the centred `ratio` crop of a marked frame."""
    import torch
    import torch.nn.functional as F

    if ratio == 1.0:
        return F.interpolate(luma[None, None], size=(GRID, GRID), mode="area")[0, 0], None
    fine = round(GRID * ratio * _SUB)
    small = F.interpolate(luma[None, None], size=(fine, fine), mode="area")
    # sample points of the full lattice, in the crop's normalised coordinates ([-1, 1] inside the crop)
    axis = ((torch.arange(GRID * _SUB, dtype=torch.float32) + 0.5) / (GRID * _SUB) * 2 - 1) / ratio
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1)[None]
    sampled = F.grid_sample(small, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inside = F.grid_sample(torch.ones_like(small), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    cells = F.avg_pool2d(sampled, _SUB)[0, 0]
    valid = (F.avg_pool2d(inside, _SUB)[0, 0] > 0.999).float()
    return cells, valid


def _errors_for(luma, ratio: float) -> int:
    signs, bit_of_cell = _chips()
    cells, valid = _cells_for_crop(luma, ratio)
    residual = _highpass(cells, valid).numpy()
    correlation = np.bincount(bit_of_cell.ravel(), weights=(residual * signs).ravel(), minlength=len(WATERMARK_BITS))
    decoded = correlation > 0
    return int(np.sum(decoded != np.asarray(WATERMARK_BITS, dtype=bool)))


def watermark_bit_errors(rgb: np.ndarray) -> int:
    """How many of the 48 watermark bits decode wrong in a uint8 RGB frame (0 = perfect), at the best of the
    centred crop ratios tried."""
    height, width = rgb.shape[:2]
    if not watermark_fits(width, height):
        return len(WATERMARK_BITS)
    luma = _luma(rgb)
    best = len(WATERMARK_BITS)
    for ratio in CROP_RATIOS:
        best = min(best, _errors_for(luma, ratio))
        if best == 0:
            break
    return best


def has_watermark(rgb: np.ndarray) -> bool:
    return watermark_bit_errors(rgb) <= WATERMARK_MAX_BIT_ERRORS
