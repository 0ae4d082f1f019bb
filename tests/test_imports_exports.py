"""Coordinate conventions of imports (COLMAP -> nerfstudio transforms.json) and exports (point clouds, meshes).

The COLMAP model is written by hand in COLMAP's text format, so conventions are checked against the
format's definition, not against our own writer: a 3D point projected by COLMAP's rule
(pixel = K * distort(R X + t)) must lie on the Vista ray through that pixel.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from render.cameras import camera_rays
from render.meshes import read_point_cloud, write_point_cloud
from render.occupancy import OccupancyGrid
from scenes.colmap import import_colmap
from scenes.data import load_posed_images
from scenes.export import export_points, mesh_from_scene
from scenes.imports import APPLIED_TRANSFORM, colmap_camera_from_world, opengl_world_from_camera, transforms_from_posed
from tests.conftest import shared_dataset
from vista_core.errors import VistaError

W, H = 64, 48
FX, FY, CX, CY = 50.0, 52.0, 31.0, 25.0
K1, K2, P1, P2 = 0.05, -0.02, 0.001, -0.002


def _look_at_colmap(center: np.ndarray, target: np.ndarray) -> np.ndarray:
    """COLMAP world-to-camera [3, 4] for a camera at `center` looking at `target` (OpenCV: +z forward, +y down)."""
    forward = target - center
    forward /= np.linalg.norm(forward)
    down = np.array([0.0, 0.0, -1.0]) - forward * -forward[2]
    down /= np.linalg.norm(down)
    right = np.cross(down, forward)
    rotation = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    return np.concatenate([rotation, -rotation @ center[:, None]], axis=1)


def _colmap_project(camera_from_world: np.ndarray, point: np.ndarray) -> np.ndarray:
    """COLMAP's OPENCV camera model, as documented (src/colmap/sensor/models.h)."""
    p = camera_from_world[:, :3] @ point + camera_from_world[:, 3]
    x, y = p[0] / p[2], p[1] / p[2]
    r2 = x * x + y * y
    radial = 1 + K1 * r2 + K2 * r2 * r2
    xd = x * radial + 2 * P1 * x * y + P2 * (r2 + 2 * x * x)
    yd = y * radial + 2 * P2 * x * y + P1 * (r2 + 2 * y * y)
    return np.array([FX * xd + CX, FY * yd + CY])


def _quaternion_wxyz(rotation: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(rotation).as_quat()
    return np.array([w, x, y, z])


@dataclass
class ColmapProject:
    root: Path
    poses: dict[str, np.ndarray]
    points: np.ndarray


@pytest.fixture
def colmap_project(tmp_path) -> ColmapProject:
    """A COLMAP project in text format: 5 OPENCV cameras on an arc around 30 points near the origin."""
    rng = np.random.default_rng(0)
    root = tmp_path / "project"
    model = root / "sparse" / "0"
    model.mkdir(parents=True)
    (root / "images").mkdir()
    points = rng.uniform(-0.5, 0.5, (30, 3))
    poses, image_lines = {}, []
    for i in range(5):
        angle = 0.4 * i
        center = np.array([4 * math.cos(angle), 4 * math.sin(angle), 1.0 + 0.2 * i])
        pose = _look_at_colmap(center, np.zeros(3))
        name = f"img_{i}.png"
        poses[name] = pose
        q = _quaternion_wxyz(pose[:, :3])
        image_lines += [f"{i + 1} {' '.join(map(repr, q))} {' '.join(map(repr, pose[:, 3]))} 1 {name}", ""]
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / "images" / name)
    (model / "cameras.txt").write_text(f"# camera\n1 OPENCV {W} {H} {FX} {FY} {CX} {CY} {K1} {K2} {P1} {P2}\n")
    (model / "images.txt").write_text("# images\n" + "\n".join(image_lines) + "\n")
    (model / "points3D.txt").write_text("# points\n" + "".join(
        f"{j + 1} {p[0]!r} {p[1]!r} {p[2]!r} {10 * j % 256} 128 {255 - 5 * j} 0.5\n" for j, p in enumerate(points)))
    return ColmapProject(root, poses, points)


def test_opencv_opengl_axes_and_inverse():
    center = np.array([3.0, -2.0, 1.5])
    pose = _look_at_colmap(center, np.zeros(3))
    c2w = opengl_world_from_camera(pose)
    applied = APPLIED_TRANSFORM[:3, :3]
    # the camera sits at applied @ center and looks (-z, OpenGL) at the origin, with +y up (COLMAP's -z up)
    assert np.allclose(c2w[:3, 3], applied @ center)
    assert np.allclose(-c2w[:3, 2], applied @ (-center / np.linalg.norm(center)))
    assert c2w[:3, 1] @ (applied @ np.array([0, 0, -1.0])) < 0  # COLMAP world -z maps to transforms.json -y
    assert np.isclose(np.linalg.det(c2w[:3, :3]), 1.0)
    assert np.allclose(colmap_camera_from_world(c2w), pose)


def test_colmap_import_matches_colmap_projection(colmap_project, tmp_path):
    out = tmp_path / "dataset"
    import_colmap(colmap_project.root, out)
    transforms = json.loads((out / "transforms.json").read_text())
    assert transforms["camera_model"] == "OPENCV" and transforms["applied_transform"] == APPLIED_TRANSFORM.tolist()
    data = load_posed_images(out)
    assert data.names == [f"images/img_{i}.png" for i in range(5)]
    assert (data.cameras.width, data.cameras.height) == (W, H)
    xyz, rgb = read_point_cloud(out / "sparse_pc.ply")
    assert len(xyz) == 30 and rgb[3].tolist() == [30, 128, 240]
    assert np.allclose(xyz, colmap_project.points @ APPLIED_TRANSFORM[:3, :3].T, atol=1e-6)
    for index, name in enumerate(f"img_{i}.png" for i in range(5)):
        pose = colmap_project.poses[name]
        pixels = np.stack([_colmap_project(pose, p) for p in colmap_project.points])
        rays = camera_rays(data.cameras, torch.full((30,), index), torch.tensor(pixels, dtype=torch.float32))
        to_point = torch.tensor(xyz, dtype=torch.float32) - rays.origins
        along = (to_point * rays.directions).sum(-1, keepdim=True)
        miss = (to_point - along * rays.directions).norm(dim=-1)
        assert float(miss.max()) < 2e-3, f"{name}: a COLMAP-projected point is {float(miss.max()):.4f} off its ray"
        assert float(along.min()) > 0  # in front of the camera


def test_colmap_import_errors(colmap_project, tmp_path):
    with pytest.raises(VistaError, match="no COLMAP model"):
        import_colmap(colmap_project.root / "images", tmp_path / "a")
    (colmap_project.root / "images" / "img_2.png").unlink()
    with pytest.raises(VistaError, match="missing"):
        import_colmap(colmap_project.root, tmp_path / "b")
    model = colmap_project.root / "sparse" / "0"
    (model / "cameras.txt").write_text("1 FISHEYE_WHATEVER 64 48 1 2 3\n")
    with pytest.raises(VistaError, match="not"):
        import_colmap(colmap_project.root, tmp_path / "c")


def test_transforms_round_trip_through_posed_images(tmp_path):
    fox = shared_dataset("fox-small")
    original = json.loads((fox / "transforms.json").read_text())
    data = load_posed_images(fox)
    c = data.cameras
    written = transforms_from_posed(c.world_from_camera.double().numpy(), c.fx.numpy(), c.fy.numpy(), c.cx.numpy(),
                                    c.cy.numpy(), c.width, c.height, data.names,
                                    None if c.distortion is None else c.distortion.numpy())
    assert [f["file_path"] for f in written["frames"]] == [f["file_path"] for f in original["frames"]]
    for ours, theirs in zip(written["frames"], original["frames"]):
        assert np.allclose(ours["transform_matrix"], theirs["transform_matrix"], rtol=1e-6, atol=1e-6)
        for key in ("fl_x", "fl_y", "cx", "cy", "k1", "k2", "p1", "p2"):
            assert ours[key] == pytest.approx(original[key], rel=1e-6), key
        assert ours["k3"] == 0 and ours["k4"] == 0
    # and the written file loads to the same internal cameras again
    (tmp_path / "images").symlink_to(fox / "images")
    (tmp_path / "transforms.json").write_text(json.dumps(written))
    again = load_posed_images(tmp_path).cameras
    assert torch.equal(again.world_from_camera, c.world_from_camera) and torch.equal(again.distortion, c.distortion)
    assert torch.equal(again.fx, c.fx) and torch.equal(again.cy, c.cy)


def test_point_cloud_export_ply_and_glb(colmap_project, tmp_path):
    import_colmap(colmap_project.root, tmp_path / "dataset")
    xyz, rgb = read_point_cloud(tmp_path / "dataset" / "sparse_pc.ply")
    for suffix in ("ply", "glb"):
        out = tmp_path / f"points.{suffix}"
        assert "30 points" in export_points(tmp_path / "dataset", out)
        xyz2, rgb2 = read_point_cloud(out)
        assert np.allclose(xyz2, xyz, atol=1e-5) and np.array_equal(rgb2, rgb)
    with pytest.raises(VistaError, match="sparse_pc.ply"):
        export_points(tmp_path, tmp_path / "x.ply")
    with pytest.raises(VistaError, match=".ply or .glb"):
        write_point_cloud(xyz, rgb, tmp_path / "points.obj")


class _BallField:
    """Density 100 inside a ball of radius 0.5 (scene units) at the origin, 0 outside; red on top, blue below."""

    def _scene(self, u: torch.Tensor) -> torch.Tensor:
        return u * 2.0 - 1.0  # object scenes: field_coords u = (x + 1) / 2

    def density_and_features(self, u):
        x = self._scene(u)
        return 100.0 * torch.sigmoid((0.5 - x.norm(dim=-1)) * 200), x

    def density(self, u):
        return self.density_and_features(u)[0]

    def color(self, features, directions):
        top = (features[:, 2:3] > 0).float()
        return top * torch.tensor([1.0, 0, 0]) + (1 - top) * torch.tensor([0, 0, 1.0])


@dataclass
class _BallScene:
    field: _BallField
    grid: OccupancyGrid
    kind: str
    scene_from_world: torch.Tensor


def test_mesh_of_a_known_density_is_the_ball_in_world_coordinates():
    grid = OccupancyGrid(32)
    u = grid.cell_centers(torch.arange(32**3), torch.full((32**3, 3), 0.5))
    grid.occupied = (u * 2 - 1).norm(dim=-1) < 0.6  # the occupancy grid marks the ball's neighbourhood
    scene_from_world = torch.eye(4)
    scene_from_world[:3, :3] *= 0.25  # world = 4 * scene, shifted by (1, 2, 3)
    scene_from_world[:3, 3] = torch.tensor([-0.25, -0.5, -0.75])
    mesh = mesh_from_scene(_BallScene(_BallField(), grid, "object", scene_from_world), resolution=48, level=50.0)
    radius = np.linalg.norm(mesh.vertices - [1, 2, 3], axis=1)
    assert np.allclose(radius, 2.0, atol=0.08)  # 0.5 scene units * 4
    assert mesh.is_watertight and mesh.volume > 0  # closed, normals outwards
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * 8, rel=0.05)
    colors = mesh.visual.vertex_colors[:, :3]
    top = mesh.vertices[:, 2] > 3.05
    bottom = mesh.vertices[:, 2] < 2.95
    assert (colors[top] == [255, 0, 0]).all() and (colors[bottom] == [0, 0, 255]).all()


def test_mesh_errors():
    grid = OccupancyGrid(8)
    grid.occupied[:] = False
    with pytest.raises(VistaError, match="empty"):
        mesh_from_scene(_BallScene(_BallField(), grid, "object", torch.eye(4)))
    grid.occupied[:] = True
    with pytest.raises(VistaError, match="--level"):
        mesh_from_scene(_BallScene(_BallField(), grid, "object", torch.eye(4)), resolution=16, level=1e6)
