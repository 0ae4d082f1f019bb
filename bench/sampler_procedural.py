"""Held-out PSNR and samples per ray on the procedural outdoor scene for a few `unbounded_step` values (preset test,
200 steps, 1024 rays per step, max_samples_per_ray 384, one seed): the numbers in bench/RESULTS.md.

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/sampler_procedural.py 0.0237,0.03125,0.0625
"""

import dataclasses
import sys
import time

import torch

sys.path.insert(0, ".")
from scenes.config import preset_config
from scenes.evaluate import evaluate_scene
from scenes.train import train_scene
from tests.support.procedural import synthetic_capture

torch.set_num_threads(1)
capture = synthetic_capture(n_train=12, width=48, height=36, n_path=8)
for step in [float(x) for x in sys.argv[1].split(",")]:
    base = preset_config("test", steps=200, seed=0)
    config = dataclasses.replace(base, rays_per_step=1024, checkpoint_every=10**6,
                                 sampling=dataclasses.replace(base.sampling, unbounded_step=step, max_samples_per_ray=384))
    t0 = time.process_time()
    scene = train_scene(capture.data, f"/tmp/sampler-procedural/s{step}", config, show_progress=False, overwrite=True)
    cpu = time.process_time() - t0
    m = evaluate_scene(scene, capture.data)
    print(step, f"psnr {m.mean_psnr:.2f} spr {scene.metrics['samples_per_ray']:.1f} occ {scene.grid.occupied_fraction:.3f} train_cpu {cpu:.1f}s", flush=True)
