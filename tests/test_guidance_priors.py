"""Guidance without a learned model: uncertainty masks, the visibility loss, the depth-smoothness prior, and the
procedural scene the guidance benchmark measures on."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from guidance.masks import MaskConfig, covering_cameras, uncertainty_mask
from guidance.priors import (
    SupervisedRays,
    inverse_depth_roughness,
    inverse_z_depth,
    scene_from_field,
    uncontract,
    visibility_loss,
)
from guidance.views import RenderedView
from render.cameras import Cameras
from render.render import field_coords
from tests.support.guidance import camera_at_origin_looking_down_minus_z, tiny_scene

# ---------------------------------------------------------------- masks

def test_covering_cameras_counts_frustums_by_hand():
    camera = camera_at_origin_looking_down_minus_z()
    points = torch.tensor([[0.0, 0.0, -2.0],   # straight ahead: seen
                           [0.0, 0.0, 2.0],    # behind the camera
                           [50.0, 0.0, -1.0],  # far outside the 60 degree view
                           [0.2, -0.1, -1.0]])  # inside
    assert covering_cameras(points, camera).tolist() == [1, 0, 0, 1]
    two = Cameras.from_fov(torch.cat([camera.world_from_camera, camera.world_from_camera]), 60.0, 8, 6)
    assert covering_cameras(points, two).tolist() == [2, 0, 0, 2]


def test_uncertainty_mask_flags_holes_unseen_points_and_unstable_depth():
    camera = camera_at_origin_looking_down_minus_z(8, 6)
    depth = torch.full((6, 8), 2.0)
    opacity = torch.ones(6, 8)
    opacity[0, 0] = 0.2  # a hole
    jittered = depth.clone()
    jittered[5, 7] = 3.0  # depth jumps by a third when samples move: unstable
    view = RenderedView(torch.zeros(6, 8, 3), depth, opacity)
    config = MaskConfig(min_cameras=1, dilate_px=0, max_hole_area=1.0)  # one pixel is 2% of this tiny frame
    mask = uncertainty_mask(view, jittered, camera, 0, camera, config)
    assert mask.low_opacity[0, 0] and mask.low_opacity.sum() == 1
    assert mask.unstable[5, 7] and mask.unstable.sum() == 1
    assert not mask.uncovered.any()  # the capture camera is the camera itself: everything seen once
    assert mask.mask.sum() == 2
    # seen by one camera but two required: every opaque pixel is uncovered
    strict = uncertainty_mask(view, jittered, camera, 0, camera, dataclasses.replace(config, min_cameras=2))
    assert strict.uncovered.sum() == 47
    dilated = uncertainty_mask(view, jittered, camera, 0, camera, dataclasses.replace(config, dilate_px=1))
    assert dilated.mask.sum() == 4 + 4  # two corner pixels grow into 2x2 blocks
    holes_config = dataclasses.replace(config, cues=("holes",))
    holes_only = uncertainty_mask(view, jittered, camera, 0, camera, holes_config)
    assert holes_only.mask.sum() == 1 and holes_only.mask[0, 0]
    # Tier 1 skips the second render: without it the unstable cue is off, and asking for it is an error
    assert torch.equal(uncertainty_mask(view, None, camera, 0, camera, holes_config).mask, holes_only.mask)
    with pytest.raises(ValueError, match="second, shifted render"):
        uncertainty_mask(view, None, camera, 0, camera, config)
    # an object capture: a ray that meets nothing is right, not a hole
    empty_ok = uncertainty_mask(view, jittered, camera, 0, camera, config, empty_is_valid=True)
    assert not empty_ok.low_opacity.any() and empty_ok.mask.sum() == 1 and empty_ok.mask[5, 7]
    with pytest.raises(ValueError, match="mask cues"):
        MaskConfig(cues=("holes", "floaters"))


def test_a_low_opacity_region_larger_than_the_hole_limit_is_not_a_hole():
    camera = camera_at_origin_looking_down_minus_z(20, 10)
    opacity = torch.ones(10, 20)
    opacity[:, 10:] = 0.0  # half the frame: what no photo showed
    opacity[2, 3] = opacity[7, 6] = 0.1  # two pixel-sized gaps in a surface (1/200 of the frame each)
    view = RenderedView(torch.zeros(10, 20, 3), torch.full((10, 20), 2.0), opacity)
    config = MaskConfig(min_cameras=1, dilate_px=0, cues=("holes",), max_hole_area=0.02)
    mask = uncertainty_mask(view, None, camera, 0, camera, config).mask
    assert mask.sum() == 2 and mask[2, 3] and mask[7, 6]
    unlimited = uncertainty_mask(view, None, camera, 0, camera, dataclasses.replace(config, max_hole_area=1.0))
    assert unlimited.mask.sum() == 102
    with pytest.raises(ValueError, match="max_hole_area"):
        MaskConfig(max_hole_area=0.0)


# ---------------------------------------------------------------- priors

def test_uncontract_inverts_the_scene_contraction():
    points = torch.tensor([[0.3, -0.2, 0.1], [3.0, 0.5, -1.0], [-20.0, 4.0, 7.0]])
    u = field_coords(points, "unbounded")
    assert torch.allclose(scene_from_field(u, "unbounded"), points, rtol=1e-4, atol=1e-5)
    assert torch.allclose(uncontract(torch.tensor([[0.5, 0.0, 0.0]])), torch.tensor([[0.5, 0.0, 0.0]]))


def test_visibility_loss_pushes_density_out_of_unseen_space():
    scene = tiny_scene()
    renderable = scene.renderable()
    # a camera far away looking away from the box: nothing in the box is seen
    pose = torch.cat([torch.eye(3), torch.tensor([[0.0], [0.0], [-10.0]])], dim=1)[None]
    blind = Cameras.from_fov(pose, 30.0, 8, 8)
    generator = torch.Generator().manual_seed(0)
    term = visibility_loss(renderable, blind, 2048, generator)
    assert term.unseen_fraction == 1.0 and term.loss.item() > 0
    term.loss.backward()
    grads = [p.grad for p in scene.field.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    optimizer = torch.optim.Adam(scene.field.parameters(), lr=1e-2)
    first = term.loss.item()
    for _ in range(20):
        optimizer.zero_grad()
        loss = visibility_loss(renderable, blind, 2048, generator).loss
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    # a narrow camera just above the box sees a cone of it: some points unseen, not all
    seen = visibility_loss(renderable, Cameras.from_fov(torch.cat([torch.eye(3), torch.tensor([[0.], [0.], [1.5]])],
                                                                  1)[None], 30.0, 8, 8), 2048, generator)
    assert 0.0 < seen.unseen_fraction < 1.0


def test_only_supervised_pixels_of_pseudo_views_count_as_seen():
    camera = camera_at_origin_looking_down_minus_z(8, 6)
    supervised = torch.zeros(1, 6, 8, dtype=torch.bool)
    supervised[0, :, :4] = True  # the left half of the image (x < 0 in the camera)
    rays = SupervisedRays(camera, supervised)
    points = torch.tensor([[-0.3, 0.0, -2.0],  # left half: supervised
                           [0.3, 0.0, -2.0],   # right half: in the frustum, but nothing trains there
                           [-0.3, 0.0, 2.0],   # behind the camera
                           [-50.0, 0.0, -1.0]])  # outside the image
    assert rays.covers(points).tolist() == [True, False, False, False]
    # a point the capture never sees stops costing visibility once a supervised pixel covers it
    scene = tiny_scene()
    pose = torch.cat([torch.eye(3), torch.tensor([[0.0], [0.0], [-10.0]])], dim=1)[None]
    blind = Cameras.from_fov(pose, 30.0, 8, 8)
    above = Cameras.from_fov(torch.cat([torch.eye(3), torch.tensor([[0.], [0.], [1.5]])], 1)[None], 30.0, 8, 8)
    everywhere = SupervisedRays(above, torch.ones(1, 8, 8, dtype=torch.bool))
    nowhere = SupervisedRays(above, torch.zeros(1, 8, 8, dtype=torch.bool))
    alone = visibility_loss(scene.renderable(), blind, 2048, torch.Generator().manual_seed(0), also_seen=nowhere)
    helped = visibility_loss(scene.renderable(), blind, 2048, torch.Generator().manual_seed(0), also_seen=everywhere)
    assert alone.unseen_fraction == 1.0 and 0.0 < helped.unseen_fraction < 1.0


# ---------------------------------------------------------------- the procedural scene and the smoothness prior

def test_procedural_scene_has_exact_depth():
    from render.cameras import Rays
    from tests.support.procedural import LOOK_AT, cast, render_truth

    # straight down onto the ground from 2 units up (away from the objects): depth 2
    hit = cast(Rays(torch.tensor([[6.0, 6.0, 2.0]]), torch.tensor([[0.0, 0.0, -1.0]])))
    assert hit.depth.item() == pytest.approx(2.0)
    # up into the sky: no surface
    assert torch.isinf(cast(Rays(torch.tensor([[6.0, 6.0, 2.0]]), torch.tensor([[0.0, 0.0, 1.0]]))).depth).all()
    # toward the central box (half-depth 0.5 along x after its 20 degree yaw is at most 0.61 from its centre)
    hit = cast(Rays(torch.tensor([[4.0, 0.0, 0.5]]), torch.tensor([[-1.0, 0.0, 0.0]])))
    assert 3.3 < hit.depth.item() < 3.6
    assert LOOK_AT.shape == (3,)
    cameras = Cameras.from_fov(torch.cat([torch.eye(3), torch.tensor([[0.0], [-6.0], [1.0]])], 1)[None], 50.0, 8, 6)
    assert render_truth(cameras, 0).rgb.shape == (6, 8, 3)


def test_depth_roughness_spares_planes_at_any_slant_and_charges_fuzz():
    from render.cameras import image_rays
    from tests.support.procedural import cast, look_at

    def inverse_z(position: list[float], target: list[float]) -> torch.Tensor:
        pose = look_at(torch.tensor([position]), torch.tensor(target))
        camera = Cameras.from_fov(pose, 40.0, 16, 16)
        rays = image_rays(camera, 0)
        depth = cast(rays).depth
        assert torch.isfinite(depth).all()
        return depth, inverse_z_depth(depth, rays.directions, -pose[0, :3, 2])

    # the procedural ground (z = 0, away from the objects) seen from steep and from grazing angles
    for position, target in [([8.0, 8.0, 3.0], [8.5, 8.5, 0.0]), ([8.0, 8.0, 0.6], [9.0, 9.0, 0.0])]:
        depth, inv = inverse_z(position, target)
        assert depth.max() > 1.15 * depth.min()  # a slanted view: depth itself is far from constant
        assert inverse_depth_roughness(inv.reshape(16, 16)).item() < 1e-4
        # RegNeRF's first differences of depth would charge this plane; second differences of 1/z do not
        assert (depth.reshape(16, 16).diff(dim=0).abs().mean() / depth.mean()).item() > 0.01
    # the same ground with its depth shaken by 3% per pixel (a fuzzy layer) costs clearly more
    generator = torch.Generator().manual_seed(0)
    fuzzy = inv * (1 + 0.03 * torch.randn(inv.shape, generator=generator))
    assert inverse_depth_roughness(fuzzy.reshape(16, 16)).item() > 0.05
    # rays that hit nothing (an object's background: depth 0, so 1/z = 1000) do not count
    opacity = torch.ones(16, 16)
    opacity[:, :7] = 0.0
    empty = inv.reshape(16, 16).clone()
    empty[:, :7] = 1000.0
    assert inverse_depth_roughness(empty, opacity).item() < 1e-4
    assert inverse_depth_roughness(empty).item() > 0.02


def test_depth_roughness_leaves_real_edges_and_gentle_curvature_alone():
    y, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    # a box's face in front of a slanted plane: a clean step of 50% in 1/z
    step = (0.5 + 0.01 * y + 0.5 * (x >= 8)).requires_grad_(True)
    inverse_depth_roughness(step).backward()
    # beyond the cap the edge costs a constant: no gradient would flatten it (plain L1 would push on 2 columns)
    assert step.grad.abs().max().item() < 1e-6
    # a sphere-like bump bending 1/z by 0.2% per pixel^2 costs under 15% of what plain L1 charges it; 3% fuzz on the
    # same bump still costs over ten times as much
    bump = 1.0 + 0.001 * ((x - 7.5) ** 2 + (y - 7.5) ** 2)
    l1_bump = 2 * 0.002 / bump.mean()
    assert inverse_depth_roughness(bump).item() < 0.15 * l1_bump.item()
    generator = torch.Generator().manual_seed(0)
    fuzzy = bump * (1 + 0.03 * torch.randn(bump.shape, generator=generator))
    assert inverse_depth_roughness(fuzzy).item() > 10 * inverse_depth_roughness(bump).item()


