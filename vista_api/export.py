"""A trained scene's geometry as files (`vista export`): a marching-cubes mesh with vertex colours, or the
sparse point cloud from structure from motion."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vista_core.errors import VistaError

MESH_SUFFIXES = (".glb", ".ply")


@dataclass(frozen=True)
class MeshRequest:
    scene_dir: Path
    out: Path
    """.glb or .ply; the format follows the suffix."""
    resolution: int = 192
    """Marching-cubes grid cells along the longest side."""
    level: float | None = None
    """Density iso-level in scene units (None: where a ray crossing one grid cell is 50% opaque)."""

    def __post_init__(self) -> None:
        from scenes.export import MAX_RESOLUTION

        if not 16 <= self.resolution <= MAX_RESOLUTION:
            raise VistaError(f"mesh resolution {self.resolution} must be between 16 and {MAX_RESOLUTION}")
        if self.level is not None and not self.level > 0:
            raise VistaError(f"mesh level {self.level} must be a positive density")
        if Path(self.out).suffix.lower() not in MESH_SUFFIXES:  # checked before meshing, not after
            raise VistaError(f"{self.out}: write .glb or .ply (the format follows the suffix)")


@dataclass(frozen=True)
class PointsRequest:
    source: Path
    """A scene folder or a dataset (its sparse_pc.ply)."""
    out: Path
    """.ply or .glb."""


@dataclass(frozen=True)
class ExportResult:
    out: Path
    summary: str
    """What was written, in one line."""


def export_mesh(request: MeshRequest) -> ExportResult:
    from scenes.export import export_mesh as write_mesh

    summary = write_mesh(Path(request.scene_dir), Path(request.out), resolution=request.resolution,
                         level=request.level)
    return ExportResult(Path(request.out), summary)


def export_points(request: PointsRequest) -> ExportResult:
    from scenes.export import export_points as write_points

    return ExportResult(Path(request.out), write_points(Path(request.source), Path(request.out)))
