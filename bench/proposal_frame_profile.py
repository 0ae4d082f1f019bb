"""Where a proposal-sampler frame's time goes, and how much early ray termination could skip (issue #21).

    PYTHONPATH=. .venv/bin/python bench/proposal_frame_profile.py SCENE_DIR [--size 1280x720]
        [--results bench/results/proposal-frame-profile.json]

Times one frame from capture pose 0 with the proposal densities, the NeRF's density and features, and the colour
MLP wrapped by timers; then, on 50,000 of its rays, the share of each pass's samples that lie behind a
transmittance below 1e-2 / 1e-3 / 1e-4 (what early termination could skip). Not a test: run it alone.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import time
from pathlib import Path

import torch

from render import proposal, unbounded
from render.cameras import Cameras
from render.render import image_rays, rays_to_scene, render_camera
from scenes.scene import load_scene

REPO = Path(__file__).resolve().parents[1]
TIMERS: dict[str, float] = collections.defaultdict(float)


def timed(name: str, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        TIMERS[name] += time.perf_counter() - start
        return out

    return wrapper


def behind(weights: torch.Tensor, eps: float) -> float:
    """Share of samples [R, S] whose transmittance before them is below eps."""
    transmittance = 1 - torch.cumsum(weights, dim=1)
    late = torch.cat([torch.zeros_like(transmittance[:, :1], dtype=torch.bool), transmittance[:, :-1] < eps], dim=1)
    return float(late.float().mean())


def termination_potential(scene, representation, cameras: Cameras) -> dict:
    rays_world = image_rays(cameras, 0)
    rays = rays_to_scene(rays_world, representation.scene_from_world.to(rays_world.origins.dtype))
    rays = rays.slice(len(rays) // 2 - 25_000, len(rays) // 2 + 25_000)
    fns = [proposal._density_fn(f) for f in scene.proposals.fields]
    with torch.no_grad():
        samples, weights_list, _ = scene.proposals.sampler.sample(rays.origins, rays.directions, unbounded.NEAR,
                                                                 unbounded.FAR, fns, stratified=False)
        positions = samples.frustums.get_positions().reshape(-1, 3)
        sigma, _ = proposal._field_values(representation, rays, samples, positions)
        n, s = samples.frustums.starts.shape[:2]
        weights = proposal.sample_weights(samples, sigma.reshape(n, s, 1))[..., 0]
    passes = {f"proposal pass {i} ({w.shape[1]} samples)": w[..., 0] for i, w in enumerate(weights_list)}
    passes[f"NeRF ({s} samples)"] = weights
    return {name: {str(eps): behind(w, eps) for eps in (1e-2, 1e-3, 1e-4)} for name, w in passes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scene")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "proposal-frame-profile.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    density_fn = proposal._density_fn
    proposal._density_fn = lambda field: timed("proposal densities", density_fn(field))
    proposal._field_values = timed("NeRF density and features", proposal._field_values)
    proposal._colors = timed("colour MLP (visible samples)", proposal._colors)
    scene = load_scene(args.scene)
    if scene.proposals is None:
        raise SystemExit(f"{args.scene}: not a proposal-sampler scene")
    representation = scene.renderable()
    representation.train(False)
    scene.proposals.sampler.sample = timed("sampler (incl. proposal densities)", scene.proposals.sampler.sample)
    width, height = (int(v) for v in args.size.split("x"))
    capture = scene.capture
    focal = float(capture.fy[0]) * height / capture.height
    cameras = Cameras(capture.world_from_camera[:1], torch.tensor([focal]), torch.tensor([focal]),
                      torch.tensor([width / 2]), torch.tensor([height / 2]), width, height)
    load = os.getloadavg()
    start = time.perf_counter()
    render_camera(representation, cameras, 0)
    total = time.perf_counter() - start
    print(f"| {args.size} frame: {total:.2f} s | share |\n|---|---|")
    for name, seconds in TIMERS.items():
        print(f"| {name} | {seconds:.2f} s ({seconds / total:.0%}) |")
    potential = termination_potential(scene, representation, cameras)
    for name, shares in potential.items():
        print(f"{name}: behind T<1e-2/1e-3/1e-4: " + " / ".join(f"{v:.1%}" for v in shares.values()))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    args.results.write_text(json.dumps({
        "benchmark": "bench/proposal_frame_profile.py", "commit": commit, "scene": args.scene, "size": args.size,
        "command": f"PYTHONPATH=. .venv/bin/python bench/proposal_frame_profile.py {args.scene} --size {args.size}",
        "load_average_before": load, "cpus": os.cpu_count(), "frame_seconds": total, "timers": dict(TIMERS),
        "behind_transmittance": potential}, indent=1) + "\n")
    print(f"written: {args.results}")


if __name__ == "__main__":
    main()
