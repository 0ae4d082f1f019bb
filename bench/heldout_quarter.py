"""Held-out PSNR of a trained scene at a quarter of its training resolution, plus a photo | render sheet.

    .venv/bin/python bench/heldout_quarter.py DATA SCENE [--sheet out.png]

A quick check (a few seconds per view) where `vista eval` at full resolution takes minutes on an unbounded scene.
Photos are reduced by Pillow's 4x4 block average; cameras by the same factor.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from PIL import Image

from render.cameras import Cameras
from render.render import render_camera
from scenes.data import load_posed_images
from scenes.scene import load_scene

_FACTOR = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("scene")
    parser.add_argument("--sheet", default="bench/out/heldout_quarter.png")
    args = parser.parse_args()
    scene = load_scene(args.scene)
    representation = scene.renderable()
    representation.train(False)
    data = load_posed_images(args.data)
    psnrs, tiles = [], []
    for i in data.heldout_indices:
        camera = data.cameras[i]
        w, h = camera.width // _FACTOR, camera.height // _FACTOR
        small = Cameras(camera.world_from_camera, camera.fx / _FACTOR, camera.fy / _FACTOR, camera.cx / _FACTOR,
                        camera.cy / _FACTOR, w, h, camera.distortion)
        rendered = render_camera(representation, small, 0).rgb.numpy()
        photo = np.asarray(Image.fromarray(data.images[i].numpy()[..., :3]).reduce(_FACTOR)).astype(np.float32)
        photo = photo[:h, :w] / 255
        psnrs.append(-10 * math.log10(max(float(((rendered - photo) ** 2).mean()), 1e-10)))
        tiles.append(np.concatenate([photo, rendered], axis=1))
        print(f"{data.names[i]}: {psnrs[-1]:.2f} dB")
    print(f"mean held-out PSNR at 1/{_FACTOR} resolution: {sum(psnrs) / len(psnrs):.2f} dB over {len(psnrs)} views")
    Image.fromarray((np.concatenate(tiles[:4], axis=0).clip(0, 1) * 255).astype(np.uint8)).save(args.sheet)


if __name__ == "__main__":
    main()
