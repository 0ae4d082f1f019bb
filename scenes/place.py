"""A trained place's geometry for camera paths (`render.path_geometry`), built once per scene and cached.

Rendering the photos' depth takes seconds to a minute on a CPU, and every preset, map and click needs it, so the
summary is saved next to the scene as `path_geometry.safetensors`, keyed by the scene's content hash
(`scenes.recipe.scene_content_hash`) and the geometry settings: retraining or changing a setting rebuilds it.
A folder that cannot be written (a shared library) just goes without the cache.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save

from render.path_geometry import GeometryConfig, PathGeometry, build_path_geometry, nerf_views
from scenes.recipe import scene_content_hash
from scenes.scene import Scene
from vista_core.errors import VistaError
from vista_core.files import atomic_write_bytes

GEOMETRY_FILE = "path_geometry.safetensors"
GEOMETRY_VERSION = "1"
RENDER_FIELDS = ("depth_width", "max_views", "min_opacity")
"""The GeometryConfig fields the cached depth maps depend on."""


def place_geometry(scene: Scene, config: GeometryConfig = GeometryConfig()) -> PathGeometry:
    """The scene's path geometry: from the cache in its folder when it is of this scene and settings, else built
    by rendering the photos' depth (and cached)."""
    key = _cache_key(scene, config)
    if key is not None:
        cached = _read_cache(Path(scene.folder) / GEOMETRY_FILE, key, scene, config)
        if cached is not None:
            return cached
    geometry = build_path_geometry(scene.capture, nerf_views(scene.renderable()), config)
    cache_geometry(scene, geometry)
    return geometry


def cache_geometry(scene: Scene, geometry: PathGeometry) -> bool:
    """Save `geometry` as the saved scene's path geometry (False if the folder cannot hold it)."""
    key = _cache_key(scene, geometry.config)
    if key is None:
        return False
    try:
        atomic_write_bytes(Path(scene.folder) / GEOMETRY_FILE, save(geometry.arrays(), metadata={"key": key}))
    except (OSError, VistaError):
        return False  # a read-only scene folder or a full disk: rebuilt next time
    return True


def _cache_key(scene: Scene, config: GeometryConfig) -> str | None:
    if scene.folder is None:
        return None
    try:
        content = scene_content_hash(Path(scene.folder))
    except VistaError:  # a half-written folder just has no cache
        return None
    # only what the rendering depends on: the rest is worked out from the cached depth again on every load
    rendering = {k: v for k, v in asdict(config).items() if k in RENDER_FIELDS}
    return json.dumps({"version": GEOMETRY_VERSION, "scene": content, "rendering": rendering}, sort_keys=True)


def _read_cache(file: Path, key: str, scene: Scene, config: GeometryConfig) -> PathGeometry | None:
    if not file.is_file():
        return None
    try:
        with open(file, "rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        if header.get("__metadata__", {}).get("key") != key:
            return None
        return PathGeometry.from_arrays(load_file(str(file)), scene.capture, config)
    except (OSError, ValueError, KeyError, SafetensorError):
        return None  # stale or damaged: rebuilt and overwritten
