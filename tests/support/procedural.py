"""A procedural outdoor scene with exact depth, for measuring guidance (`bench/guidance.py`, tests).

A plain torch ray caster (no library does this small job better): a textured ground plane z = 0,
a few textured boxes and spheres lit by a sun with hard shadows, and a sky gradient at infinity.
World axes are z-up, cameras OpenGL camera-to-world like everything else in Vista. Everything is
Lambertian so a radiance field can reproduce it exactly; images are 2x2 supersampled so the
ground texture does not alias.

`synthetic_capture(...)` returns the posed images of a short hand-held arc (training views, the
in-between views held out) plus the cameras of an establishing shot that pulls back and rises,
and `render_truth(cameras)` gives exact RGB and depth for any cameras.

`procedural_world(seed)` is the scene itself: seed 0 is the fixed scene below (BOXES, SPHERES, the ground
texture of seed 1234), any other seed draws other shapes, sizes, placements, colours, stripes and ground
texture, so that a benchmark's seeds are different scenes, not one scene seen with different camera wobble.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from guidance.paths import establishing_path
from render.cameras import Cameras, Rays, camera_rays
from scenes.data import PosedImages, normalize_unbounded

SUN = torch.tensor([0.45, 0.3, 0.84])
SUN = SUN / SUN.norm()
SKY_HORIZON = torch.tensor([0.86, 0.9, 0.97])
SKY_ZENITH = torch.tensor([0.32, 0.5, 0.86])
WORLD_UP = torch.tensor([0.0, 0.0, 1.0])
LOOK_AT = torch.tensor([0.0, 0.0, 0.5])


@dataclass(frozen=True)
class Box:
    center: tuple[float, float, float]
    half_size: tuple[float, float, float]
    yaw_deg: float
    color_a: tuple[float, float, float]
    color_b: tuple[float, float, float]
    stripe_period: float


@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float
    color_a: tuple[float, float, float]
    color_b: tuple[float, float, float]


BOXES = (
    Box((0.0, 0.0, 0.5), (0.5, 0.35, 0.5), 20.0, (0.8, 0.3, 0.2), (0.95, 0.8, 0.6), 0.25),
    Box((-1.3, 0.9, 0.35), (0.3, 0.3, 0.35), -15.0, (0.2, 0.45, 0.75), (0.9, 0.9, 0.9), 0.18),
    Box((1.6, -1.4, 0.25), (0.6, 0.25, 0.25), 40.0, (0.35, 0.3, 0.25), (0.7, 0.65, 0.5), 0.3),
)
SPHERES = (
    Sphere((1.2, 0.8, 0.45), 0.45, (0.95, 0.85, 0.2), (0.3, 0.6, 0.3)),
    Sphere((-0.9, -1.1, 0.3), 0.3, (0.6, 0.2, 0.6), (0.95, 0.95, 0.95)),
)


@dataclass
class Hit:
    depth: torch.Tensor  # [R] distance along the unit ray, inf for sky
    rgb: torch.Tensor  # [R, 3]


def _yaw_matrix(deg: float) -> torch.Tensor:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _intersect_box(box: Box, origins: torch.Tensor, directions: torch.Tensor):
    """Distance [R] (inf on miss), local hit point [R, 3] and local normal [R, 3] (slab method)."""
    rot = _yaw_matrix(box.yaw_deg)
    center = torch.tensor(box.center)
    half = torch.tensor(box.half_size)
    o = (origins - center) @ rot  # world -> box frame (rot is orthonormal)
    d = directions @ rot
    safe = torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    a, b = (-half - o) / safe, (half - o) / safe
    t_near = torch.minimum(a, b).amax(-1)
    t_far = torch.maximum(a, b).amin(-1)
    hit = (t_near <= t_far) & (t_near > 1e-4)
    t = torch.where(hit, t_near, torch.full_like(t_near, math.inf))
    local = o + d * torch.where(hit, t_near, torch.zeros_like(t_near))[:, None]
    axis = (local.abs() / half).argmax(-1)
    normal_local = torch.nn.functional.one_hot(axis, 3).float() * torch.sign(local)
    return t, local, normal_local @ rot.T


def _intersect_sphere(sphere: Sphere, origins: torch.Tensor, directions: torch.Tensor):
    center = torch.tensor(sphere.center)
    oc = origins - center
    b = (oc * directions).sum(-1)
    c = (oc * oc).sum(-1) - sphere.radius**2
    disc = b * b - c
    t = -b - torch.sqrt(disc.clamp(min=0))
    hit = (disc > 0) & (t > 1e-4)
    t = torch.where(hit, t, torch.full_like(t, math.inf))
    point = origins + directions * torch.where(hit, t, torch.zeros_like(t))[:, None]
    normal = (point - center) / sphere.radius
    return t, normal


def _soft_square_wave(x: torch.Tensor, sharpness: float = 6.0) -> torch.Tensor:
    """0..1 stripes with soft edges (hard edges would alias at these image sizes)."""
    return 0.5 + 0.5 * torch.tanh(sharpness * torch.sin(x))


_GROUND_EXTENT = 24.0  # world units covered by the ground texture (it repeats beyond)


def _ground_texture(seed: int = 1234, grass: tuple[float, float, float] = (0.3, 0.55, 0.25),
                    stone: tuple[float, float, float] = (0.75, 0.7, 0.58)) -> torch.Tensor:
    """A non-periodic RGB texture [1, 3, 256, 256]: smooth random colour patches at two scales.

    Repeating tiles would let a radiance field explain the ground at a wrong depth (the pattern
    matches itself one period over), so the pattern is random noise (seeded), blurred."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 1, 16, 16, generator=generator)
    fine = torch.rand(1, 3, 128, 128, generator=generator)
    size = (256, 256)
    coarse = torch.nn.functional.interpolate(coarse, size=size, mode="bicubic", align_corners=False)
    fine = torch.nn.functional.interpolate(fine, size=size, mode="bilinear", align_corners=False)
    base = torch.tensor(grass)[None, :, None, None] * coarse + torch.tensor(stone)[None, :, None, None] * (1 - coarse)
    return (base * (0.6 + 0.5 * fine)).clamp(0, 1)


_TEXTURE = _ground_texture()


@dataclass(frozen=True)
class World:
    """The procedural scene: boxes, spheres and the ground texture [1, 3, 256, 256]."""

    boxes: tuple[Box, ...]
    spheres: tuple[Sphere, ...]
    texture: torch.Tensor


DEFAULT_WORLD = World(BOXES, SPHERES, _TEXTURE)


def _colour(generator: torch.Generator) -> tuple[float, float, float]:
    return tuple(float(v) for v in 0.15 + 0.8 * torch.rand(3, generator=generator))


def procedural_world(seed: int = 0) -> World:
    """Seed 0: the fixed scene (DEFAULT_WORLD). Other seeds: a central box the arc looks at (its size, yaw and
    stripes drawn) plus 2-3 more boxes and 1-3 spheres placed at random around it, all coloured at random, on a
    ground texture of the seed's own noise and tints."""
    if seed == 0:
        return DEFAULT_WORLD
    g = torch.Generator().manual_seed(10_000 + seed)

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=g))

    def around() -> tuple[float, float]:  # 1.1-2.2 units from the centre, any direction
        angle, radius = uniform(0, 2 * math.pi), uniform(1.1, 2.2)
        return radius * math.cos(angle), radius * math.sin(angle)

    h = uniform(0.35, 0.6)
    boxes = [Box((0.0, 0.0, h), (uniform(0.3, 0.6), uniform(0.25, 0.45), h), uniform(-45, 45), _colour(g), _colour(g),
                 uniform(0.15, 0.35))]
    for _ in range(int(torch.randint(2, 4, (), generator=g))):
        x, y = around()
        half = (uniform(0.15, 0.6), uniform(0.15, 0.35), uniform(0.15, 0.45))
        boxes.append(Box((x, y, half[2]), half, uniform(-60, 60), _colour(g), _colour(g), uniform(0.12, 0.35)))
    spheres = []
    for _ in range(int(torch.randint(1, 4, (), generator=g))):
        x, y = around()
        r = uniform(0.2, 0.5)
        spheres.append(Sphere((x, y, r), r, _colour(g), _colour(g)))
    texture = _ground_texture(20_000 + seed, grass=_colour(g), stone=_colour(g))
    return World(tuple(boxes), tuple(spheres), texture)


def _ground_albedo(p: torch.Tensor, texture: torch.Tensor = _TEXTURE) -> torch.Tensor:
    uv = (p[:, :2] / (_GROUND_EXTENT / 2))[None, None]  # [-1, 1] over the texture
    return torch.nn.functional.grid_sample(texture, uv, mode="bilinear", padding_mode="reflection",
                                           align_corners=False)[0, :, 0].T


def _occluded(points: torch.Tensor, normals: torch.Tensor, world: World = DEFAULT_WORLD) -> torch.Tensor:
    origins = points + normals * 1e-3
    directions = SUN.expand_as(points)
    blocked = torch.zeros(points.shape[0], dtype=torch.bool)
    for box in world.boxes:
        blocked |= torch.isfinite(_intersect_box(box, origins, directions)[0])
    for sphere in world.spheres:
        blocked |= torch.isfinite(_intersect_sphere(sphere, origins, directions)[0])
    return blocked


def cast(rays: Rays, world: World = DEFAULT_WORLD) -> Hit:
    """Exact colour and depth of world-space rays in `world`."""
    o, d = rays.origins.float(), rays.directions.float()
    n_rays = o.shape[0]
    depth = torch.full((n_rays,), math.inf)
    albedo = torch.zeros(n_rays, 3)
    normal = torch.zeros(n_rays, 3)
    # ground plane z = 0, seen from above
    t_ground = torch.where(d[:, 2] < -1e-6, -o[:, 2] / d[:, 2].clamp(max=-1e-6), torch.full_like(depth, math.inf))
    t_ground = torch.where(t_ground > 0, t_ground, torch.full_like(depth, math.inf))
    hit = t_ground < depth
    depth = torch.where(hit, t_ground, depth)
    point = o + d * torch.where(torch.isfinite(depth), depth, torch.zeros_like(depth))[:, None]
    albedo[hit] = _ground_albedo(point[hit], world.texture)
    normal[hit] = WORLD_UP
    for box in world.boxes:
        t, local, n = _intersect_box(box, o, d)
        hit = t < depth
        depth = torch.where(hit, t, depth)
        stripes = _soft_square_wave(math.pi * (local[:, 0] + local[:, 2]) / box.stripe_period)[:, None]
        color = torch.tensor(box.color_a) * stripes + torch.tensor(box.color_b) * (1 - stripes)
        albedo[hit] = color[hit]
        normal[hit] = n[hit]
    for sphere in world.spheres:
        t, n = _intersect_sphere(sphere, o, d)
        hit = t < depth
        depth = torch.where(hit, t, depth)
        lon = torch.atan2(n[:, 1], n[:, 0])
        lat = torch.asin(n[:, 2].clamp(-1, 1))
        checker = (_soft_square_wave(6 * lon) - 0.5) * (_soft_square_wave(6 * lat) - 0.5) * 2 + 0.5
        color = torch.tensor(sphere.color_a) * checker[:, None] + torch.tensor(sphere.color_b) * (1 - checker[:, None])
        albedo[hit] = color[hit]
        normal[hit] = n[hit]
    surface = torch.isfinite(depth)
    point = o + d * torch.where(surface, depth, torch.zeros_like(depth))[:, None]
    lambert = (normal * SUN).sum(-1).clamp(min=0)
    shadow = torch.zeros(n_rays, dtype=torch.bool)
    if surface.any():
        shadow[surface] = _occluded(point[surface], normal[surface], world)
    light = 0.35 + 0.65 * lambert * (~shadow).float()
    up = d[:, 2].clamp(0, 1)[:, None] ** 0.6
    sky = SKY_HORIZON * (1 - up) + SKY_ZENITH * up
    rgb = torch.where(surface[:, None], albedo * light[:, None], sky)
    return Hit(depth, rgb.clamp(0, 1))


def render_truth(cameras: Cameras, index: int, supersample: int = 2, world: World = DEFAULT_WORLD) -> Hit:
    """Exact RGB [H, W, 3] and depth [H, W] (distance along the ray through the pixel centre) of one camera."""
    h, w = cameras.height, cameras.width
    s = supersample
    ys, xs = torch.meshgrid(torch.arange(h * s), torch.arange(w * s), indexing="ij")
    xy = (torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).float() + 0.5) / s
    rays = camera_rays(cameras, torch.full((xy.shape[0],), index, dtype=torch.long), xy)
    rgb = cast(rays, world).rgb.reshape(h, s, w, s, 3).mean(dim=(1, 3))
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    centres = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).float() + 0.5
    depth = cast(camera_rays(cameras, torch.full((h * w,), index, dtype=torch.long), centres), world).depth.reshape(h, w)
    return Hit(depth, rgb)


def look_at(positions: torch.Tensor, target: torch.Tensor, up: torch.Tensor = WORLD_UP) -> torch.Tensor:
    """OpenGL camera-to-world [N, 3, 4] for cameras at positions [N, 3] looking at target [3] or [N, 3]."""
    forward = target - positions
    forward = forward / forward.norm(dim=-1, keepdim=True)
    right = torch.linalg.cross(forward, up.expand_as(forward))
    right = right / right.norm(dim=-1, keepdim=True)
    cam_up = torch.linalg.cross(right, forward)
    return torch.stack([right, cam_up, -forward, positions], dim=-1)


def orbit_positions(azimuth_deg: torch.Tensor, elevation_deg: torch.Tensor, radius: torch.Tensor,
                    center: torch.Tensor = LOOK_AT) -> torch.Tensor:
    az, el = torch.deg2rad(azimuth_deg), torch.deg2rad(elevation_deg)
    offset = torch.stack([torch.cos(el) * torch.cos(az), torch.cos(el) * torch.sin(az), torch.sin(el)], -1)
    return center + radius[:, None] * offset


def hand_held_arc(n_views: int, width: int, height: int, seed: int = 0, fov_y_deg: float = 50.0,
                  radius: float = 4.0, elevation_deg: float = 12.0, span_deg: float = 50.0,
                  center_azimuth_deg: float = -60.0) -> Cameras:
    """A short arc at eye height around the objects, with a little hand-held wobble (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.linspace(-0.5, 0.5, n_views)
    azimuth = center_azimuth_deg + span_deg * t
    elevation = elevation_deg + 1.5 * torch.randn(n_views, generator=generator)
    distance = radius * (1 + 0.03 * torch.randn(n_views, generator=generator))
    positions = orbit_positions(azimuth, elevation, distance)
    target = LOOK_AT + 0.1 * torch.randn(n_views, 3, generator=generator)
    return Cameras.from_fov(look_at(positions, target), fov_y_deg, width, height)


def interpolation_cameras(cameras: Cameras) -> Cameras:
    """Views half-way between consecutive cameras (position and look direction averaged)."""
    c2w = cameras.world_from_camera
    mid_pos = 0.5 * (c2w[:-1, :, 3] + c2w[1:, :, 3])
    mid_fwd = -0.5 * (c2w[:-1, :, 2] + c2w[1:, :, 2])
    targets = mid_pos + 4.0 * mid_fwd / mid_fwd.norm(dim=-1, keepdim=True)
    return Cameras(look_at(mid_pos, targets), cameras.fx[:-1], cameras.fy[:-1], cameras.cx[:-1], cameras.cy[:-1],
                   cameras.width, cameras.height)


@dataclass
class SyntheticCapture:
    data: PosedImages  # training arc + interpolation views (held out), exact images
    interpolation_indices: list[int]  # = data.heldout_indices
    path: Cameras  # establishing shot from the arc (`guidance.paths.establishing_path`), not in data
    path_truth: list[Hit]  # exact RGB and depth per path camera
    interpolation_truth: list[Hit]


def synthetic_capture(n_train: int = 12, width: int = 64, height: int = 48, n_path: int = 8, seed: int = 0,
                      pull_back: float = 1.5, rise_deg: float = 20.0) -> SyntheticCapture:
    """Render the hand-held arc, its in-between views and an establishing shot of `procedural_world(seed)`.

    `seed` draws the scene (shapes, sizes, placements, colours, textures) and the hand-held wobble: each seed is
    a different scene; seed 0 is the fixed one."""
    world = procedural_world(seed)
    train = hand_held_arc(n_train, width, height, seed)
    between = interpolation_cameras(train)
    cameras = train.concat(between)
    truths = [render_truth(cameras, i, world=world) for i in range(len(cameras))]
    images = torch.stack([(t.rgb * 255 + 0.5).clamp(0, 255).to(torch.uint8) for t in truths])
    train_idx = list(range(n_train))
    heldout = list(range(n_train, len(cameras)))
    names = [f"arc_{i:02d}" for i in train_idx] + [f"between_{i:02d}" for i in range(len(between))]
    data = PosedImages(cameras, images, names, train_idx, heldout, "unbounded", normalize_unbounded(train),
                       (0.0, 0.0, 0.0), f"procedural(seed={seed}, {width}x{height})")
    path = establishing_path(train, data.scene_from_world, n_path, pull_back=pull_back, rise_deg=rise_deg)
    path_truth = [render_truth(path, i, world=world) for i in range(len(path))]
    return SyntheticCapture(data, heldout, path, path_truth, [truths[i] for i in heldout])
