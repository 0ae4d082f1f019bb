"""Camera conventions: OpenGL axes, pixel centres, distortion."""

import pytest
import torch

from render.cameras import Cameras, camera_rays, image_rays
from vista_core.errors import VistaError


def _camera(distortion=None):
    pose = torch.eye(4)[:3].unsqueeze(0).clone()
    pose[0, :, 3] = torch.tensor([1.0, 2.0, 3.0])
    return Cameras(pose, torch.tensor([100.0]), torch.tensor([100.0]), torch.tensor([32.0]), torch.tensor([24.0]),
                   64, 48, distortion)


def test_principal_ray_looks_down_minus_z_from_the_camera_centre():
    rays = camera_rays(_camera(), torch.tensor([0]), torch.tensor([[32.0, 24.0]]))
    torch.testing.assert_close(rays.origins, torch.tensor([[1.0, 2.0, 3.0]]))
    torch.testing.assert_close(rays.directions, torch.tensor([[0.0, 0.0, -1.0]]))


def test_image_up_is_world_up_and_right_is_right():
    rays = camera_rays(_camera(), torch.tensor([0, 0]), torch.tensor([[32.0, 0.0], [64.0, 24.0]]))
    assert rays.directions[0, 1] > 0  # top row of the image looks up (+y)
    assert rays.directions[1, 0] > 0  # right column looks right (+x)


def test_image_rays_are_row_major_pixel_centres():
    rays = image_rays(_camera(), 0)
    assert len(rays) == 64 * 48
    d = rays.directions[1] / -rays.directions[1, 2]
    torch.testing.assert_close(d[:2], torch.tensor([(1.5 - 32) / 100, -(0.5 - 24) / 100]))


def test_zero_distortion_equals_pinhole_and_distortion_bends_rays():
    pixels = torch.tensor([[5.0, 5.0]])
    plain = camera_rays(_camera(), torch.tensor([0]), pixels)
    zero = camera_rays(_camera(torch.zeros(1, 6)), torch.tensor([0]), pixels)
    torch.testing.assert_close(plain.directions, zero.directions)
    bent = camera_rays(_camera(torch.tensor([[0.1, 0.0, 0.0, 0.0, 0.0, 0.0]])), torch.tensor([0]), pixels)
    assert (bent.directions - plain.directions).abs().max() > 1e-3


def test_from_fov_gives_the_requested_vertical_field_of_view():
    cams = Cameras.from_fov(torch.eye(4)[:3].unsqueeze(0), 60.0, 320, 180)
    torch.testing.assert_close(cams.fov_y_deg, torch.tensor([60.0]))


def test_joined_cameras_keep_order_and_refuse_other_sizes():
    a = _camera()
    b = _camera(torch.ones(1, 6))
    b = Cameras(b.world_from_camera + 1.0, b.fx * 2, b.fy, b.cx, b.cy, b.width, b.height, b.distortion)
    both = a.concat(b)
    assert len(both) == 2 and torch.equal(both[1].world_from_camera, b.world_from_camera)
    assert torch.equal(both.fx, torch.cat([a.fx, b.fx]))
    assert torch.equal(both.distortion, torch.cat([torch.zeros(1, 6), torch.ones(1, 6)]))
    assert a.concat(a).distortion is None
    with pytest.raises(VistaError, match="cannot join"):
        a.concat(a.scaled(2.0))


def test_projection_inverts_the_rays_through_pixels():
    cams = _camera().concat(Cameras.from_fov(torch.eye(4)[:3].unsqueeze(0), 40.0, 64, 48))
    pixels = torch.tensor([[32.0, 24.0], [0.5, 0.5], [63.5, 10.0]])
    rays = camera_rays(cams, torch.zeros(3, dtype=torch.long), pixels)
    points = rays.origins + 2.0 * rays.directions
    seen = cams.project(points)  # [2 cameras, 3 points]
    assert seen.pixels.shape == (2, 3, 2) and seen.in_front[0].all()
    assert not seen.in_front[1].any(), "the second camera, at the origin looking along -z, has them behind it"
    torch.testing.assert_close(seen.pixels[0], pixels)
    torch.testing.assert_close(seen.depth[0], -2.0 * rays.directions[:, 2])  # along the optical axis, not the ray
    one = cams.project(points, 0)  # [3 points]
    torch.testing.assert_close(one.pixels, seen.pixels[0])
    behind = cams.project(torch.tensor([[1.0, 2.0, 4.0]]), 0)  # the camera at z = 3 looks along -z
    assert not behind.in_front.any() and behind.depth.item() == pytest.approx(-1.0)


def test_cameras_survive_json_exactly_and_malformed_json_names_its_place():
    import json

    cams = Cameras.from_fov(torch.randn(3, 3, 4), torch.tensor([30.0, 45.0, 60.1]), 64, 48)
    back = Cameras.from_dict(json.loads(json.dumps(cams.to_dict())), "x")
    for name in ("world_from_camera", "fx", "fy", "cx", "cy"):
        assert torch.equal(getattr(back, name), getattr(cams, name))
    assert (back.width, back.height, back.distortion) == (64, 48, None)
    assert len(Cameras.from_dict({"names": ["a", "b", "c"], **cams.to_dict()}, "x")) == 3  # scene.json's capture
    with pytest.raises(VistaError, match="lens distortion"):
        _camera(torch.zeros(1, 6)).to_dict()
    assert _camera(torch.zeros(1, 6)).pinhole().to_dict()["fx"] == [100.0]
    with pytest.raises(VistaError, match="scene.json: 'capture': cameras are malformed"):
        Cameras.from_dict({"fx": [1.0]}, "scene.json: 'capture'")


def _mixed_cameras() -> Cameras:
    """Three cameras at the origin looking along -z: portrait 48x64, landscape 64x48 (twice), own intrinsics."""
    poses = torch.eye(4)[:3].unsqueeze(0).repeat(3, 1, 1)
    return Cameras.sized(poses, torch.tensor([50.0, 60.0, 60.0]), torch.tensor([51.0, 61.0, 61.0]),
                         torch.tensor([24.0, 32.5, 31.0]), torch.tensor([32.0, 24.0, 23.5]),
                         torch.tensor([48, 64, 64]), torch.tensor([64, 48, 48]))


def test_cameras_of_several_sizes_keep_each_size_and_the_most_common_one():
    cams = _mixed_cameras()
    assert cams.mixed_sizes and (cams.width, cams.height) == (64, 48)  # the most common size
    assert cams.size_of(0) == (48, 64) and cams.size_of(2) == (64, 48)
    one = cams[0]
    assert not one.mixed_sizes and (one.width, one.height) == (48, 64), "one camera has its own size"
    assert not cams[[1, 2]].mixed_sizes and cams[[0, 1]].mixed_sizes
    assert len(image_rays(cams, 0)) == 48 * 64 and len(image_rays(cams, 1)) == 64 * 48
    torch.testing.assert_close(cams.fov_y_deg[0], torch.rad2deg(2 * torch.atan(torch.tensor(64 / 102.0))))
    with pytest.raises(VistaError, match="cannot join"):
        cams.concat(cams)
    uniform = Cameras.sized(cams.world_from_camera[1:], cams.fx[1:], cams.fy[1:], cams.cx[1:], cams.cy[1:],
                            torch.tensor([64, 64]), torch.tensor([48, 48]))
    assert not uniform.mixed_sizes and uniform.widths is None


def test_per_camera_sizes_survive_json_and_scaling():
    import json

    cams = _mixed_cameras()
    back = Cameras.from_dict(json.loads(json.dumps(cams.to_dict())), "x")
    assert torch.equal(back.widths, cams.widths) and torch.equal(back.heights, cams.heights)
    assert Cameras.from_dict(json.loads(json.dumps(cams[[1, 2]].to_dict())), "x").widths is None
    with pytest.raises(VistaError, match="malformed"):
        Cameras.from_dict({**cams.to_dict(), "widths": [48.5, 64, 64]}, "x")
    half = cams.scaled(0.5)
    assert half.size_of(0) == (24, 32) and half.size_of(1) == (32, 24) and (half.width, half.height) == (32, 24)


@pytest.mark.parametrize("factor", [0.5, 1 / 3, 0.37])
def test_scaled_intrinsics_move_every_point_with_the_resized_image(factor):
    """Pixel centres at u + 0.5: resizing W -> W' maps continuous image coordinates by exactly W'/W (x) and
    H'/H (y), whatever the rounding of W', so a 3D point projects to the scaled spot of the resized image."""
    cams = _mixed_cameras()
    small = cams.scaled(factor)
    points = torch.tensor([[0.3, -0.2, -2.0], [-0.5, 0.4, -3.0], [0.0, 0.0, -1.0]])
    for i in range(len(cams)):
        (w, h), (w2, h2) = cams.size_of(i), small.size_of(i)
        assert (w2, h2) == (round(w * factor), round(h * factor))
        full, scaled = cams.project(points, i).pixels, small.project(points, i).pixels
        torch.testing.assert_close(scaled, full * torch.tensor([w2 / w, h2 / h]), atol=1e-5, rtol=1e-6)
