"""Baked proposal densities against the fields themselves, on trained proposal-sampler scenes (issue #21).

    PYTHONPATH=. .venv/bin/python bench/proposal_bake.py SCENE_DIR:DATA_DIR:DOWNSCALE [...]
        [--sizes 1280x720,1920x1080] [--results bench/results/proposal-bake.json]

Per scene and size, seconds per frame from capture pose 0 with the proposal fields evaluated (the former render path)
and with their bakes (`render.proposal_bake`), the first baked frame (which fills the blocks it sees) apart, and the
PSNR between the two frames; then held-out PSNR/SSIM against the photos both ways (at DOWNSCALE, the
scene's training resolution). Not a test: run it alone on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import torch

from render.cameras import Cameras
from render.render import render_camera
from scenes.data import load_posed_images
from scenes.evaluate import evaluate_scene, psnr
from scenes.photos import LoadOptions
from scenes.scene import load_scene

REPO = Path(__file__).resolve().parents[1]


def camera_at(scene, size: str) -> Cameras:
    """Capture pose 0 at `size`, its focal length scaled with the height."""
    width, height = (int(v) for v in size.split("x"))
    capture = scene.capture
    focal = float(capture.fy[0]) * height / capture.height
    return Cameras(capture.world_from_camera[:1], torch.tensor([focal]), torch.tensor([focal]),
                   torch.tensor([width / 2]), torch.tensor([height / 2]), width, height)


@contextlib.contextmanager
def former_path(proposals):
    """The render path before the bakes: the proposal fields evaluated."""
    proposals.bake_for_render = False
    try:
        yield
    finally:
        proposals.bake_for_render = True


def timed_frame(representation, cameras: Cameras) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    image = render_camera(representation, cameras, 0).rgb
    return image, time.perf_counter() - start


def heldout(scene, data) -> tuple[float, float, float]:
    start = time.perf_counter()
    metrics = evaluate_scene(scene, data)
    return metrics.mean_psnr, metrics.mean_ssim, time.perf_counter() - start


def measure(spec: str, sizes: list[str]) -> dict:
    scene_dir, data_dir, downscale = spec.split(":")
    scene = load_scene(scene_dir)
    if scene.proposals is None:
        raise SystemExit(f"{scene_dir}: not a proposal-sampler scene")
    representation = scene.renderable()
    representation.train(False)
    proposals = scene.proposals
    row = {"scene": scene_dir, "data": data_dir, "downscale": int(downscale), "frames": {}}
    for size in sizes:
        cameras = camera_at(scene, size)
        proposals.bakes = {}
        with former_path(proposals):
            exact, exact_s = timed_frame(representation, cameras)
        _, first_s = timed_frame(representation, cameras)  # fills the blocks this view sees
        fast, fast_s = timed_frame(representation, cameras)  # as every later frame of a video that sees them
        bakes = [proposals.bakes[id(f)] for f in proposals.fields]
        row["frames"][size] = {
            "fields_s": exact_s, "baked_first_s": first_s, "baked_s": fast_s, "speedup": exact_s / fast_s,
            "psnr_baked_vs_fields": psnr(fast, exact),
            "bakes": [{"resolution": b.resolution, "blocks_filled": float(b.filled.float().mean()),
                       "vertices_evaluated": b.evaluated} for b in bakes]}
        print(f"{scene_dir} {size}: fields {exact_s:.2f} s, baked {first_s:.2f} s (filling) then {fast_s:.2f} s "
              f"({exact_s / fast_s:.2f}x), {row['frames'][size]['psnr_baked_vs_fields']:.2f} dB apart; blocks "
              "filled " + ", ".join(f"{b.filled.float().mean():.0%}" for b in bakes), flush=True)
    data = load_posed_images(Path(data_dir), options=LoadOptions(downscale=int(downscale)))
    for mode in ("fields", "baked"):
        with former_path(proposals) if mode == "fields" else contextlib.nullcontext():
            value, similarity, seconds = heldout(scene, data)
        row[f"heldout_{mode}"] = {"psnr": value, "ssim": similarity, "seconds": seconds}
        print(f"{scene_dir} held-out ({mode}): {value:.3f} dB, SSIM {similarity:.4f}, {seconds:.1f} s", flush=True)
    return row


def table(rows: list[dict], sizes: list[str]) -> str:
    head = "| scene | " + " | ".join(f"{s} fields / first baked / baked s (x)" for s in sizes) + \
        " | baked vs fields dB | held-out fields / baked dB |"
    lines = [head, "|" + "---|" * (3 + len(sizes))]
    for r in rows:
        frames = " | ".join(f"{r['frames'][s]['fields_s']:.1f} / {r['frames'][s]['baked_first_s']:.1f} / "
                            f"{r['frames'][s]['baked_s']:.1f} "
                            f"({r['frames'][s]['speedup']:.2f}x)" for s in sizes)
        apart = ", ".join(f"{r['frames'][s]['psnr_baked_vs_fields']:.1f}" for s in sizes)
        lines.append(f"| {Path(r['scene']).name} | {frames} | {apart} | "
                     f"{r['heldout_fields']['psnr']:.3f} / {r['heldout_baked']['psnr']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenes", nargs="+", help="SCENE_DIR:DATA_DIR:DOWNSCALE")
    parser.add_argument("--sizes", default="1280x720,1920x1080")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "proposal-bake.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    sizes = [s for s in args.sizes.split(",") if s]
    load = os.getloadavg()
    rows = [measure(spec, sizes) for spec in args.scenes]
    print(table(rows, sizes))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "render", "scenes"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({
        "benchmark": "bench/proposal_bake.py", "commit": commit + (" + uncommitted changes" if dirty else ""),
        "command": "PYTHONPATH=. .venv/bin/python bench/proposal_bake.py " + " ".join(args.scenes) +
                   f" --sizes {args.sizes}", "machine": {"cpus": os.cpu_count()}, "load_average_before": load,
        "load_average_after": os.getloadavg(), "rows": rows}, indent=1) + "\n")
    print(f"written: {args.results}")


if __name__ == "__main__":
    main()
