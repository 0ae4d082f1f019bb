"""Meshes, point clouds and GLB scenes through trimesh: the only module that imports trimesh.

Point clouds (`sparse_pc.ply`, `vista export --points`), marching-cubes meshes (`vista export --mesh`) and the
path previews' GLB (lines as GL_LINES, points as GL_POINTS) are all trimesh objects; the rest of Vista
holds them as opaque values and writes them through these functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vista_core.errors import VistaError
from vista_core.files import atomic_write_bytes

Geometry = Any
"""A trimesh object (Trimesh, PointCloud, Path3D or Scene); only this module looks inside."""


def coloured_mesh(vertices: np.ndarray, faces: np.ndarray, vertex_rgba: np.ndarray) -> Geometry:
    """A triangle mesh with per-vertex RGBA colours, taken as given (no merging or re-winding)."""
    import trimesh

    return trimesh.Trimesh(vertices, faces, vertex_colors=vertex_rgba, process=False)


def write_geometry(geometry: Geometry, path: Path) -> None:
    """A mesh or scene as .glb or .ply (the format follows the suffix), written atomically."""
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("glb", "ply"):
        raise VistaError(f"{path}: write .glb or .ply (the format follows the suffix)")
    atomic_write_bytes(path, geometry.export(file_type=kind))


def point_cloud(xyz: np.ndarray, rgba: np.ndarray | None = None) -> Geometry:
    import trimesh

    return trimesh.PointCloud(xyz, colors=rgba)


def write_point_cloud(xyz: np.ndarray, rgb: np.ndarray, path: Path) -> None:
    """A coloured point cloud as PLY or GLB (by suffix)."""
    import trimesh

    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("ply", "glb"):
        raise VistaError(f"{path}: point clouds are written as .ply or .glb")
    colors = np.concatenate([np.asarray(rgb, np.uint8), np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    cloud = trimesh.PointCloud(np.asarray(xyz, np.float64), colors=colors)
    data = cloud.export(file_type=kind) if kind == "ply" else trimesh.Scene(cloud).export(file_type="glb")
    atomic_write_bytes(path, data)


def read_point_cloud(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Points [P, 3] and colours [P, 3] uint8 of a PLY/GLB point cloud."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise VistaError(f"{path}: point cloud not found")
    try:
        loaded = trimesh.load(path)
    except Exception as error:  # noqa: BLE001 - trimesh raises many types for malformed files
        raise VistaError(f"{path}: not a readable point cloud ({error})") from error
    if isinstance(loaded, trimesh.Scene):
        geometries = list(loaded.geometry.values())
        if not geometries:
            raise VistaError(f"{path}: holds no geometry")
        loaded = geometries[0]
    xyz = np.asarray(loaded.vertices, np.float64)
    colors = getattr(loaded, "colors", None)
    if colors is None or len(colors) != len(xyz):
        colors = getattr(getattr(loaded, "visual", None), "vertex_colors", None)
    rgb = np.asarray(colors, np.uint8)[:, :3] if colors is not None and len(colors) == len(xyz) \
        else np.full((len(xyz), 3), 200, np.uint8)
    return xyz, rgb


def line_segments(segments: np.ndarray, colour: tuple[int, int, int]) -> Geometry:
    """Line segments [L, 2, 3] of one colour, drawn as GL_LINES in a GLB."""
    import trimesh
    from trimesh.path.entities import Line

    vertices = segments.reshape(-1, 3)
    entities = [Line(points=[2 * i, 2 * i + 1], color=(*colour, 255)) for i in range(len(segments))]
    return trimesh.path.Path3D(entities=entities, vertices=vertices)


def glb_bytes(named: list[tuple[str, Geometry]]) -> bytes:
    """One GLB scene of named geometries, in the order given."""
    import trimesh

    scene = trimesh.Scene()
    for name, geometry in named:
        scene.add_geometry(geometry, node_name=name)
    return scene.export(file_type="glb")
