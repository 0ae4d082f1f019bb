"""A confidence per training photo after training (issue #22): how well the scene reproduces it (PSNR on a fixed
sample of its pixels, through its learned appearance and pose correction) and how far pose refinement moved it.

A photo whose PSNR is far below the others', or whose pose needed a large correction, likely has a wrong pose (or
shows something the others do not): `flagged` names them for `vista info` and the studio.
"""

from __future__ import annotations

import math
import statistics

import torch

from render.cameras import camera_rays
from render.render import rays_to_device, rays_to_scene, render_rays
from scenes.scene import Scene
from scenes.step import TrainingPixels

LOW_PSNR_DB = 3.0
"""A photo this many dB below the median training PSNR is flagged (a sound pose fits within ~1-2 dB of the rest)."""
LARGE_ROTATION_DEG = 1.0
"""A pose correction rotating this much more than the median correction is flagged."""
LARGE_SHIFT_PERCENT = 1.0
"""A pose correction moving the camera this much (percent of the capture's extent) beyond the median is flagged."""
_CHUNK_RAYS = 8192


@torch.no_grad()
def photo_confidence(scene: Scene, pixels: TrainingPixels, rays_per_photo: int) -> dict:
    """Per training photo: PSNR on `rays_per_photo` pixel centres (seeded, so reproducible), pose correction
    (degrees, percent of the capture extent) and appearance gain; the median PSNR and the flagged photos."""
    representation = scene.renderable()
    representation.train(False)
    generator = torch.Generator().manual_seed(scene.config.seed + 1)
    psnrs = [_photo_psnr(scene, representation, pixels, slot, rays_per_photo, generator)
             for slot in range(len(pixels.indices))]
    rotation, shift = _pose_corrections(scene, len(psnrs))
    gains = None if scene.corrections.appearance is None else scene.corrections.appearance.gains()
    median = statistics.median(psnrs)
    # Refinement corrects every photo a little (a whole-scene rotation is unobservable, so corrections drift
    # together): a photo stands out by its correction beyond the typical one.
    typical_rotation, typical_shift = statistics.median(rotation), statistics.median(shift)
    photos = []
    for slot, name in enumerate(scene.capture_names):
        flags = []
        if psnrs[slot] < median - LOW_PSNR_DB:
            flags.append(f"PSNR {median - psnrs[slot]:.1f} dB below the median")
        if rotation[slot] - typical_rotation > LARGE_ROTATION_DEG or shift[slot] - typical_shift > LARGE_SHIFT_PERCENT:
            flags.append(f"pose corrected by {rotation[slot]:.2f} deg, {shift[slot]:.2f}% of the extent")
        entry = {"name": name, "psnr": round(psnrs[slot], 2), "rotation_deg": round(rotation[slot], 3),
                 "shift_percent": round(shift[slot], 3), "flags": flags}
        if gains is not None:
            entry["gain_rgb"] = [round(float(g), 3) for g in gains[slot]]
        photos.append(entry)
    return {"median_psnr": round(median, 2), "rays_per_photo": rays_per_photo,
            "flagged": [p["name"] for p in photos if p["flags"]], "per_photo": photos}


def _photo_psnr(scene: Scene, representation, pixels: TrainingPixels, slot: int, n: int,
                generator: torch.Generator) -> float:
    width = int(pixels.widths[slot])
    per_image = int(pixels.ends[slot] - pixels.before[slot])  # this photo's pixels (photos may differ in size)
    within = torch.randint(0, per_image, (n,), generator=generator)
    target = pixels.pixels[pixels.starts[slot] + within].float() / 255.0
    background = torch.tensor(scene.background, dtype=torch.float32)
    if pixels.has_alpha:
        target = target[:, :3] * target[:, 3:4] + background * (1 - target[:, 3:4])
    image_index = pixels.indices[slot].expand(n)
    xy = torch.stack([within % width, within // width], dim=-1).float() + 0.5
    device = representation.scene_from_world.device
    rays = rays_to_scene(rays_to_device(camera_rays(pixels.cameras, image_index, xy), device),
                         representation.scene_from_world)
    slots = torch.full((n,), slot, dtype=torch.long)
    rays = scene.corrections.correct_rays(rays, slots)
    squared = 0.0
    for start in range(0, n, _CHUNK_RAYS):
        part = slice(start, start + _CHUNK_RAYS)
        chunk = type(rays)(rays.origins[part], rays.directions[part])
        out = render_rays(representation, chunk)
        bg = background.to(device).expand(len(chunk), 3) if pixels.has_alpha else None
        rgb = scene.corrections.correct_colour(out.rgb, slots[part], out.opacity, bg)
        squared += float(((rgb.clamp(0, 1).cpu() - target[part]) ** 2).sum())
    return -10.0 * math.log10(max(squared / (3 * n), 1e-10))


def _pose_corrections(scene: Scene, n: int) -> tuple[list[float], list[float]]:
    """Rotation (degrees) and shift (percent of the capture's extent, the diagonal of its camera centres' bounding
    box in scene units) of each photo's correction; zeros without pose refinement."""
    camera = scene.corrections.camera
    if camera is None:
        return [0.0] * n, [0.0] * n
    linear = scene.scene_from_world[:3, :3]
    centres = scene.capture.positions.to(linear.dtype) @ linear.T
    extent = float((centres.amax(0) - centres.amin(0)).norm()) if n > 1 else 2.0
    shift = camera.translation() * 100.0 / max(extent, 1e-6)
    return camera.rotation_deg().tolist(), shift.tolist()


def confidence_summary(photos: dict | None, shown: int = 5) -> str | None:
    """One line for people: the median training PSNR and the photos whose pose may be wrong (None if unrecorded)."""
    if not photos or not photos.get("per_photo"):
        return None
    flagged = [p for p in photos["per_photo"] if p.get("flags")]
    text = f"photo confidence: median training PSNR {photos['median_psnr']:.1f} dB over {len(photos['per_photo'])} photos"
    if not flagged:
        return text + "; no photo stands out"
    listed = "; ".join(f"{p['name']} ({', '.join(p['flags'])})" for p in flagged[:shown])
    more = f" and {len(flagged) - shown} more" if len(flagged) > shown else ""
    return f"{text}; {len(flagged)} may have a wrong pose: {listed}{more}"
