"""The scene-representation seam: a second representation (an analytic ball, no NeRF, no occupancy grid) renders
through `render_camera` and trains through `scenes.step`'s shared step; the NeRF's occupancy query agrees with
the path fitter's."""

from __future__ import annotations

import numpy as np
import torch

from render.cameras import Cameras, Rays
from render.occupancy import OccupancyGrid, UpdateSchedule
from render.render import render_camera
from render.representation import ParameterGroups, RayBundleOutput
from scenes.config import preset_config
from scenes.data import PosedImages
from scenes.step import TrainingPixels, apply_gradients, make_optimizer, photo_loss

BALL_RADIUS = 0.5  # scene units
SCENE_SCALE = 2.0  # scene units per world unit


class PaintedBall:
    """An opaque ball of one learnable colour at the origin: everything a `SceneRepresentation` must do."""

    kind = "object"

    def __init__(self):
        self.scene_from_world = torch.diag(torch.tensor([SCENE_SCALE, SCENE_SCALE, SCENE_SCALE, 1.0]))
        self.background = torch.ones(3)
        self.colour_logit = torch.nn.Parameter(torch.zeros(3))
        self.refreshed: list[int] = []

    @property
    def scale(self) -> float:
        return SCENE_SCALE

    def render_rays(self, rays_scene: Rays, *, jitter=None, background=None, with_distortion=False):
        b = (rays_scene.origins * rays_scene.directions).sum(-1)
        c = (rays_scene.origins**2).sum(-1) - BALL_RADIUS**2
        disc = b * b - c
        t = -b - disc.clamp(min=0).sqrt()
        hit = (disc > 0) & (t > 0)
        bg = (self.background if background is None else background).expand(len(rays_scene), 3)
        rgb = torch.where(hit[:, None], torch.sigmoid(self.colour_logit).expand(len(rays_scene), 3), bg)
        return RayBundleOutput(rgb, torch.where(hit, t, torch.zeros_like(t)), hit.float(), int(hit.sum()))

    def occupied(self, points_scene: torch.Tensor) -> torch.Tensor:
        return points_scene.norm(dim=-1) <= BALL_RADIUS

    def occupied_depth(self, rays_scene: Rays) -> torch.Tensor:
        out = self.render_rays(rays_scene)
        return torch.where(out.opacity > 0, out.depth, torch.full_like(out.depth, float("inf")))

    occupancy_cell = 0.05
    max_samples_per_ray = 1
    fixed_samples_per_ray = True

    def preview_points(self, max_points: int, seed: int, view_direction_scene: torch.Tensor):
        generator = torch.Generator().manual_seed(seed)
        points = torch.nn.functional.normalize(torch.randn(min(max_points, 200), 3, generator=generator), dim=-1)
        return points * BALL_RADIUS, torch.sigmoid(self.colour_logit).detach().expand(len(points), 3)

    def parameter_groups(self) -> ParameterGroups:
        return {"colour": [self.colour_logit]}

    def refresh(self, step: int, generator: torch.Generator, *, warm_up: bool = True) -> None:
        self.refreshed.append(step)

    def settle(self, seed: int) -> None:
        pass

    def train(self, mode: bool = True) -> None:
        pass

    def state(self) -> dict[str, torch.Tensor]:
        return {"colour_logit": self.colour_logit.detach().contiguous()}


def _camera_above(width: int = 15, height: int = 15) -> Cameras:
    pose = torch.cat([torch.eye(3), torch.tensor([[0.0], [0.0], [3.0]])], dim=1)[None]  # looks down -z at the ball
    return Cameras.from_fov(pose, 40.0, width, height)


def test_a_second_representation_renders_through_render_camera():
    ball = PaintedBall()
    image = render_camera(ball, _camera_above(), 0)
    centre = image.depth[7, 7].item()
    # world units through the centre pixel: the camera is 3 from the centre, the radius 0.5 scene units = 0.25 world
    assert abs(centre - (3.0 - BALL_RADIUS / SCENE_SCALE)) < 1e-2
    assert image.opacity[7, 7] == 1 and image.opacity[0, 0] == 0
    assert torch.equal(image.rgb[0, 0], torch.ones(3))  # a missed ray shows the background
    assert torch.allclose(image.rgb[7, 7], torch.full((3,), 0.5))


def test_the_shared_training_step_trains_a_second_representation():
    camera = _camera_above()
    target = torch.tensor([0.8, 0.3, 0.1])
    images = render_camera(PaintedBall(), camera, 0).opacity[None, :, :, None] * target  # the ball, on black
    data = PosedImages(camera, (images * 255 + 0.5).to(torch.uint8), ["above"], [0], [], "object", torch.eye(4),
                       (0.0, 0.0, 0.0), "test")
    ball = PaintedBall()
    ball.background = torch.zeros(3)
    optimizer = make_optimizer(ball, preset_config("test", learning_rate=0.1))
    pixels, generator = TrainingPixels(data), torch.Generator().manual_seed(0)
    for step in range(100):
        ball.refresh(step, generator)
        apply_gradients(optimizer, photo_loss(ball, pixels, 64, generator, pixel_jitter=False).loss)
    assert torch.allclose(torch.sigmoid(ball.colour_logit), target, atol=0.02)
    assert ball.refreshed == list(range(100))


def _ring_of_cameras(count: int = 8, radius_world: float = 2.0) -> Cameras:
    from render.keyframes import look_at_rotation

    poses = []
    for k in range(count):
        angle = 2 * np.pi * k / count
        position = np.array([radius_world * np.cos(angle), radius_world * np.sin(angle), 0.5])
        pose = np.eye(4)[:3]
        pose[:, :3], pose[:, 3] = look_at_rotation(position, np.zeros(3), (0, 0, 1)), position
        poses.append(pose)
    return Cameras.from_fov(torch.tensor(np.stack(poses), dtype=torch.float32), 40.0, 24, 24)


def test_paths_coverage_previews_and_video_take_a_second_representation(tmp_path):
    """The seam's promise: nothing in render/ (paths, coverage, previews, video) needs the NeRF."""
    from render.coverage import path_coverage
    from render.encode import probe_video
    from render.path_presets import fit_scene_frame, occupancy_query, preset_path
    from render.path_preview import scene_points
    from render.video import VideoConfig, render_video

    ball, capture = PaintedBall(), _ring_of_cameras()
    occupied = occupancy_query(ball)
    frame = fit_scene_frame(capture, ball.scene_from_world, occupied)
    path = preset_path("orbit", frame, capture=capture, seconds=1.0, fps=6.0, occupied=occupied)
    frames = path.sample(24, 24)
    positions = frames.world_from_camera[:, :3, 3]
    assert (positions.norm(dim=-1) > BALL_RADIUS / SCENE_SCALE).all()  # the orbit stays outside the ball
    coverage = path_coverage(ball, capture, frames)
    assert len(coverage.scores) == len(frames) and ((coverage.scores >= 0) & (coverage.scores <= 1)).all()
    points, colours = scene_points(ball)
    assert np.allclose(np.linalg.norm(points, axis=1), BALL_RADIUS / SCENE_SCALE, atol=1e-5) and colours.shape[1] == 3
    result = render_video(ball, frames, tmp_path / "ball.mp4", VideoConfig(fps=6.0, watermark=False), show_progress=False)
    assert probe_video(tmp_path / "ball.mp4").frames == len(frames) == len(result.frames)


def test_the_nerf_occupancy_query_reads_its_grid_and_is_empty_outside_the_box():
    """`Renderable.occupied` (what the path fitter now asks) against the grid, cell by cell, worked out here."""
    from render.path_presets import occupancy_query
    from tests.support.guidance import tiny_scene

    scene = tiny_scene()
    generator = torch.Generator().manual_seed(0)
    res = scene.grid.resolution
    scene.grid.occupied = torch.rand(res**3, generator=generator) < 0.3
    renderable = scene.renderable()
    points = (torch.rand(5000, 3, generator=generator) - 0.5) * 3.0  # scene coordinates, inside and outside the box
    inside = (points.abs() <= 1.0).all(dim=-1)
    cell = ((points.clamp(-1, 1) + 1) / 2 * res).long().clamp(0, res - 1)
    expected = scene.grid.occupied.reshape(res, res, res)[cell[:, 0], cell[:, 1], cell[:, 2]] & inside
    got = renderable.occupied(points)
    assert got[~inside].sum() == 0 and 0.2 < got[inside].float().mean() < 0.4
    assert (got == expected).float().mean() > 0.99  # cell-boundary rounding aside
    world = points @ torch.linalg.inv(scene.scene_from_world[:3, :3]).T  # the same points in world coordinates
    world = world - (torch.linalg.inv(scene.scene_from_world[:3, :3]) @ scene.scene_from_world[:3, 3])
    assert (occupancy_query(renderable)(world.numpy()) == got.numpy()).mean() > 0.99
    assert set(renderable.state()) == {f"field.{k}" for k in scene.field.state_dict()} | {"occupancy.density"}


def test_the_occupancy_grid_updates_on_its_own_schedule():
    """nerfacc's update_every_n_steps: every n steps; all cells during warm-up, then a quarter of them at random
    plus as many occupied ones."""
    grid = OccupancyGrid(8, schedule=UpdateSchedule(update_every=4, warmup_steps=8, threshold=0.5))
    evaluated = []

    def opacity(u: torch.Tensor) -> torch.Tensor:
        evaluated.append(len(u))
        return (u[:, 0] < 0.5).float()  # the half of the cube with x < 0.5 is solid

    generator = torch.Generator().manual_seed(0)
    assert [grid.maybe_update(step, opacity, generator) for step in range(13)] == [s % 4 == 0 for s in range(13)]
    assert evaluated == [512, 512, 128 + 128, 128 + 128]
    assert grid.occupied_fraction == 0.5
    evaluated.clear()
    assert grid.maybe_update(0, opacity, generator, warm_up=False) and evaluated == [256]
