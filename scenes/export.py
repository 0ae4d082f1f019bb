"""Scene -> mesh (render.meshes): a coloured mesh of a trained scene, or the capture's sparse point cloud.

The mesh is marching cubes (scikit-image's `measure.marching_cubes`, Lorensen & Cline) over the field's
density sampled on a grid that covers the occupied part of the scene box — for unbounded captures only
the inner, uncontracted cube [-1, 1]^3, where the cameras look. Density outside occupied cells of the
occupancy grid counts as empty, as it does in rendering. Each vertex takes the colour the field gives
it seen head-on (view direction against the surface normal). Vertices are written in world
coordinates, the dataset's own (transforms.json's), so mesh, point cloud and cameras line up.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from render.meshes import coloured_mesh, write_geometry
from render.render import field_coords
from scenes.scene import Scene
from vista_core.errors import VistaError

MAX_RESOLUTION = 512
SURFACE_OPACITY = 0.5  # default iso-surface: where one voxel of the default grid is this opaque
_CHUNK = 1 << 16


def occupied_bounds(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Scene-coordinate box [lo, hi] around the occupied occupancy cells inside [-1, 1]^3 (one cell of margin)."""
    grid = scene.grid
    r = grid.resolution
    cells = torch.nonzero(grid.occupied).squeeze(1)
    if cells.numel() == 0:
        raise VistaError("the scene's occupancy grid is empty: nothing to mesh (was it trained?)")
    ijk = torch.stack([cells // (r * r), (cells // r) % r, cells % r], dim=-1).float()
    lo_u, hi_u = ijk.amin(0) / r, (ijk.amax(0) + 1) / r
    # invert field_coords: object u = (x + 1) / 2; unbounded inner cube u = (x + 2) / 4
    scale, offset = (2.0, -1.0) if scene.kind == "object" else (4.0, -2.0)
    margin = scale / r
    lo = torch.clamp(lo_u * scale + offset - margin, -1.0, 1.0).numpy()
    hi = torch.clamp(hi_u * scale + offset + margin, -1.0, 1.0).numpy()
    if np.any(hi <= lo):
        raise VistaError("the scene's occupied cells lie outside the inner box [-1, 1]^3: nothing to mesh")
    return lo, hi


def default_level(voxel: float) -> float:
    """Density (scene units) at which a ray crossing one voxel is SURFACE_OPACITY opaque: -ln(1 - a) / voxel."""
    return -math.log(1.0 - SURFACE_OPACITY) / voxel


@torch.no_grad()
def _density_grid(scene: Scene, axes: list[np.ndarray]) -> np.ndarray:
    xs, ys, zs = np.meshgrid(*axes, indexing="ij")
    points = torch.from_numpy(np.stack([xs, ys, zs], -1).reshape(-1, 3)).float()
    density = torch.zeros(len(points))
    for start in range(0, len(points), _CHUNK):
        u = field_coords(points[start:start + _CHUNK], scene.kind)
        occupied = scene.grid.query(u)
        if occupied.any():
            density[start:start + _CHUNK][occupied] = scene.field.density(u[occupied]).float()
    return density.reshape(xs.shape).numpy()


@torch.no_grad()
def _vertex_colors(scene: Scene, vertices_scene: np.ndarray, normals: np.ndarray) -> np.ndarray:
    colors = []
    v = torch.from_numpy(np.ascontiguousarray(vertices_scene)).float()
    # skimage's normals point down the density gradient (outwards); look along the inward normal
    d = -torch.from_numpy(np.ascontiguousarray(normals)).float()
    d = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    for start in range(0, len(v), _CHUNK):
        u = field_coords(v[start:start + _CHUNK], scene.kind)
        _, features = scene.field.density_and_features(u)
        colors.append(scene.field.color(features, d[start:start + _CHUNK]))
    rgb = torch.cat(colors).clamp(0, 1).numpy() if colors else np.zeros((0, 3))
    return (rgb * 255 + 0.5).astype(np.uint8)


def mesh_from_scene(scene: Scene, resolution: int = 192, level: float | None = None):
    """A mesh of the scene's surface (render.meshes), in world coordinates, with vertex colours."""
    from skimage import measure

    if not 16 <= resolution <= MAX_RESOLUTION:
        raise VistaError(f"mesh resolution {resolution} must be between 16 and {MAX_RESOLUTION}")
    lo, hi = occupied_bounds(scene)
    voxel = float((hi - lo).max()) / resolution
    counts = [max(2, int(math.ceil((high - low) / voxel)) + 1) for low, high in zip(lo, hi)]
    axes = [np.linspace(low, low + (n - 1) * voxel, n) for low, n in zip(lo, counts)]
    density = _density_grid(scene, axes)
    level = default_level(voxel) if level is None else level
    if not level > 0:
        raise VistaError(f"mesh level {level} must be a positive density")
    if density.max() <= level:
        raise VistaError(f"no density reaches the iso-level {level:.3g} (the densest point is {density.max():.3g}); "
                         "pass a lower --level")
    vertices, faces, normals, _ = measure.marching_cubes(density, level=level, spacing=(voxel, voxel, voxel))
    vertices_scene = vertices + lo
    colors = _vertex_colors(scene, vertices_scene, normals)
    world_from_scene = torch.linalg.inv(scene.scene_from_world.double()).numpy()
    vertices_world = vertices_scene @ world_from_scene[:3, :3].T + world_from_scene[:3, 3]
    alpha = np.full((len(colors), 1), 255, np.uint8)
    # marching_cubes winds faces so normals point down the gradient (outwards); keep that orientation
    return coloured_mesh(vertices_world, faces[:, ::-1], np.concatenate([colors, alpha], 1))


def export_mesh(scene_dir: Path, out: Path, resolution: int = 192, level: float | None = None) -> str:
    """Mesh a scene folder into `out` (.glb/.ply); returns a one-line summary."""
    from scenes.scene import load_scene

    scene = load_scene(scene_dir)
    mesh = mesh_from_scene(scene, resolution, level)
    write_geometry(mesh, out)
    return f"{out}: {len(mesh.vertices):,} vertices, {len(mesh.faces):,} faces"


def sparse_points_path(path: Path) -> Path:
    """The sparse_pc.ply of a dataset folder, or of the dataset a scene folder was trained on."""
    path = Path(path)
    candidates = [path / "sparse_pc.ply"]
    if (path / "scene.json").is_file():
        from scenes.scene import load_scene

        candidates.append(Path(load_scene(path).data_source) / "sparse_pc.ply")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise VistaError(f"{path}: no sparse point cloud (sparse_pc.ply) here or in the scene's dataset; it comes from "
                     "`vista poses` or `vista import`; for a trained scene use --mesh")


def export_points(path: Path, out: Path) -> str:
    """Copy a dataset's (or a scene's dataset's) sparse point cloud into `out` as PLY or GLB."""
    from render.meshes import read_point_cloud, write_point_cloud

    xyz, rgb = read_point_cloud(sparse_points_path(path))
    write_point_cloud(xyz, rgb, out)
    return f"{out}: {len(xyz):,} points"
