"""How well Vista's invisible watermark survives what happens to a video after `vista render`. Not a test.

Frames: real capture photos (fox-small, 270x480 portrait; skull-66, 1068x712, CC BY 4.0 by alansartlog) scaled to
cover 1280x720 / 1920x1080 and centre-cropped, with a slow pan across each photo so H.264 sees motion: a 4 s clip
at 24 fps per scene and size, marked by `render.watermark.embed_watermark` and written by Vista's own encoder
(`render.encode.Mp4Writer`, CRF 18, as `vista render`). Then each attack runs on that MP4 with FFmpeg
(imageio-ffmpeg's binary, libx264, default CRF 23 unless stated) and 8 evenly spaced frames of the result are
decoded (render.encode.read_frames) and checked with `watermark_bit_errors` (decoded = <= 4 of 48 bits wrong).

Each scene also runs "soft": the photos box-downsampled 4x before the upscale, standing in for the blurry frames
of a briefly trained NeRF (smooth content is where the first mark, imwatermark's dwtDct, failed).

    nice -n 10 python bench/watermark_robustness.py            # writes bench/results/watermark-robustness.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from render.encode import Mp4Writer, probe_video, read_frames  # noqa: E402
from render.watermark import WATERMARK_MAX_BIT_ERRORS, embed_watermark, watermark_bit_errors  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
FPS, SECONDS, SAMPLES = 24, 4, 8
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
# attack name -> FFmpeg arguments between the input and the output (None: the file as Vista wrote it)
ATTACKS: dict[str, list[str] | None] = {
    "as rendered (CRF 18)": None,
    "re-encode CRF 23": ["-crf", "23"],
    "re-encode CRF 30": ["-crf", "30"],
    "re-encode CRF 35": ["-crf", "35"],
    "downscale 0.5x": ["-vf", "scale=trunc(iw/4)*2:trunc(ih/4)*2", "-crf", "23"],
    "centre crop 0.9": ["-vf", "crop=trunc(iw*0.45)*2:trunc(ih*0.45)*2", "-crf", "23"],
    "top-left crop 0.9": ["-vf", "crop=trunc(iw*0.45)*2:trunc(ih*0.45)*2:0:0", "-crf", "23"],
    "2 s cut from 1 s": ["-ss", "1", "-t", "2", "-crf", "23"],
}


def capture_clip(scene: str, width: int, height: int, soften: int = 1) -> tuple[list[np.ndarray], str]:
    """SECONDS * FPS frames: one photo per second, each panned 4% of the frame width over its second; `soften`:
    box-downsample the photo by that factor first (a soft, render-like frame)."""
    from PIL import Image

    photos = sorted((DATA / scene / "images").glob("*.jpg"))
    chosen = photos[:: max(1, len(photos) // SECONDS)][:SECONDS]
    frames = []
    for path in chosen:
        image = Image.open(path).convert("RGB")
        image = image.resize((image.width // soften, image.height // soften), Image.BOX) if soften > 1 else image
        scale = max(width * 1.04 / image.width, height / image.height)
        image = image.resize((round(image.width * scale + 0.5), round(image.height * scale + 0.5)), Image.BICUBIC)
        top = (image.height - height) // 2
        spare = image.width - width
        for k in range(FPS):
            left = round(spare * k / (FPS - 1))
            frames.append(np.asarray(image.crop((left, top, left + width, top + height))))
    return frames, ", ".join(p.name for p in chosen)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


def write_marked(frames: list[np.ndarray], out: Path) -> dict:
    height, width = frames[0].shape[:2]
    writer = Mp4Writer(out, width, height, FPS)  # Vista's defaults: CRF 18, preset medium
    psnrs, seconds = [], 0.0
    for frame in frames:
        start = time.process_time()
        marked = embed_watermark(frame)
        seconds += time.process_time() - start
        psnrs.append(psnr(marked, frame))
        writer.write(marked)
    writer.close()
    unmarked = [watermark_bit_errors(f) for f in frames[:: len(frames) // SAMPLES]]
    return {"psnr_marked_vs_unmarked_db": {"min": min(psnrs), "mean": float(np.mean(psnrs))},
            "embed_cpu_seconds_per_frame": seconds / len(frames), "unmarked_bit_errors": unmarked}


def attack(source: Path, args: list[str] | None, out: Path) -> Path:
    if args is None:
        return source
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(source), *args,
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-an", str(out)]
    subprocess.run(command, check=True)
    return out


def recovery(video: Path) -> dict:
    info = probe_video(video)
    indices = sorted({round(i * (info.frames - 1) / (SAMPLES - 1)) for i in range(SAMPLES)})
    errors = [watermark_bit_errors(f) for f in read_frames(video, indices)]
    return {"size": f"{info.width}x{info.height}", "frames": info.frames, "bit_errors": errors,
            "decoded": sum(e <= WATERMARK_MAX_BIT_ERRORS for e in errors), "sampled": len(errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=["fox-small", "skull-66"])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--soften", nargs="+", type=int, default=[1, 4],
                        help="content variants: 1 = the photos, N = box-downsampled N times first (soft)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "watermark")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "watermark-robustness.json")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    print(f"{'scene':15} {'size':6} {'attack':22} {'decoded':>8}  bit errors per sampled frame (of 48)")
    for scene, soften, size in [(c, f, z) for c in args.scenes for f in args.soften for z in args.sizes]:
        label = scene if soften == 1 else f"{scene} soft"
        frames, photos = capture_clip(scene, *SIZES[size], soften)
        source = args.out / f"{label.replace(' ', '-')}-{size}.mp4"
        marking = write_marked(frames, source)
        print(f"{label:15} {size:6} marked: PSNR {marking['psnr_marked_vs_unmarked_db']['min']:.1f} dB min, "
              f"unmarked frames {marking['unmarked_bit_errors']} bit errors", flush=True)
        row = {"scene": scene, "soften": soften, "size": size, "photos": photos, **marking, "attacks": {}}
        for name, ffmpeg_args in ATTACKS.items():
            slug = name.replace(" ", "-").replace(".", "").replace("(", "").replace(")", "")
            result = recovery(attack(source, ffmpeg_args, source.with_name(f"{source.stem}-{slug}.mp4")))
            row["attacks"][name] = {"ffmpeg_args": ffmpeg_args, **result}
            print(f"{label:15} {size:6} {name:22} {result['decoded']:>3}/{result['sampled']:<4}  "
                  f"{result['bit_errors']} ({result['size']}, {result['frames']} frames)", flush=True)
        results.append(row)
    report = {"benchmark": "watermark robustness on real-capture frames", "commit": commit,
              "command": "python bench/watermark_robustness.py " + " ".join(sys.argv[1:]),
              "machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "cpus": os.cpu_count(), "python": platform.python_version()},
              "fps": FPS, "seconds": SECONDS, "samples_per_video": SAMPLES,
              "decoded_means": f"<= {WATERMARK_MAX_BIT_ERRORS} of 48 bits wrong", "results": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
