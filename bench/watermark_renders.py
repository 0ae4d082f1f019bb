"""The watermark on actual NeRF renders of a real capture (not photos). Not a test.

Give it the frame cache of a `vista render --no-watermark --keep-frames` run (raw PNG renders): each frame is
upscaled (bicubic) to 1280x720 and 1920x1080, marked, written by Vista's encoder at CRF 18 and 30, decoded, and
the bit errors of the 48-bit mark are printed, with the PSNR of marked vs unmarked frames. The commands that made
the frames are in bench/WATERMARK.md.

    python bench/watermark_renders.py /tmp/wm/renders
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from render.encode import Mp4Writer, read_frames  # noqa: E402
from render.watermark import embed_watermark, watermark_bit_errors  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / max(np.mean((a.astype(np.float64) - b) ** 2), 1e-12)))


def main() -> None:
    from PIL import Image

    pngs = sorted(Path(sys.argv[1]).glob("*.png"))
    for width, height in ((1280, 720), (1920, 1080)):
        frames = [np.asarray(Image.open(p).convert("RGB").resize((width, height), Image.BICUBIC)) for p in pngs]
        marked = [embed_watermark(f) for f in frames]
        for crf in (18, 30):
            with tempfile.TemporaryDirectory() as folder:
                out = Path(folder) / "marked.mp4"
                writer = Mp4Writer(out, width, height, 24, crf=crf)
                for frame in marked:
                    writer.write(frame)
                writer.close()
                errors = [watermark_bit_errors(d) for d in read_frames(out)]
            print(f"{len(pngs)} renders -> {width}x{height}, CRF {crf}: bit errors {errors}; PSNR marked vs unmarked "
                  f"min {min(psnr(m, f) for m, f in zip(marked, frames)):.1f} dB; unmarked frames "
                  f"{[watermark_bit_errors(f) for f in frames]} bit errors", flush=True)


if __name__ == "__main__":
    main()
