"""Sampling a glTF 2.0 animation (for render.gltf_camera): buffers (GLB chunk, data: URI, or a file beside the
.gltf, confined to its folder), accessors (float or normalized integers, strided), samplers (LINEAR, STEP,
CUBICSPLINE as the glTF 2.0 spec's Appendix C writes them) and each node's local T * R * S per frame. It works on
pygltflib's objects without importing pygltflib (render.gltf_camera is its one importer).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vista_core.errors import VistaError

POINTER_EXTENSION = "KHR_animation_pointer"
_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
# componentType -> (numpy dtype, divisor of a normalized integer; glTF 2.0 spec, "Animations")
_COMPONENT_TYPES = {5126: (np.float32, None), 5120: (np.int8, 127.0), 5121: (np.uint8, 255.0),
                    5122: (np.int16, 32767.0), 5123: (np.uint16, 65535.0), 5125: (np.uint32, None)}


class Buffers:
    """The bytes of each buffer: the GLB's binary chunk, a data: URI, or a file beside a .gltf (confined to its
    folder: a glTF is a user file and must not read elsewhere)."""

    def __init__(self, gltf, file: Path):
        self.gltf, self.file, self.cache = gltf, file, {}

    def get(self, index: int) -> bytes:
        if index not in self.cache:
            self.cache[index] = self._read(index)
        return self.cache[index]

    def _read(self, index: int) -> bytes:
        buffers = self.gltf.buffers or []
        if not 0 <= index < len(buffers):
            raise VistaError(f"{self.file}: buffer {index} does not exist")
        uri = buffers[index].uri
        if uri is None:
            blob = self.gltf.binary_blob()
            if blob is None:
                raise VistaError(f"{self.file}: buffer {index} has no data (no GLB binary chunk)")
            return bytes(blob)
        if uri.startswith("data:"):
            try:
                return base64.b64decode(uri.split(",", 1)[1], validate=True)
            except (ValueError, IndexError) as error:
                raise VistaError(f"{self.file}: buffer {index}'s data URI is not base64") from error
        folder = self.file.resolve().parent
        target = (folder / uri).resolve()
        if "://" in uri or not target.is_relative_to(folder):
            raise VistaError(f"{self.file}: buffer {index} points outside the file's folder ({uri!r}); "
                             "Vista reads only files beside the .gltf")
        try:
            return target.read_bytes()
        except OSError as error:
            raise VistaError(f"{self.file}: buffer {index} ({uri}) is unreadable: {error.strerror}") from error


def _accessor(gltf, index: int, buffers: Buffers, where: str) -> np.ndarray:
    """Accessor `index` as float64 [count, components] (normalized integers scaled to [-1, 1] / [0, 1])."""
    accessors = gltf.accessors or []
    if not isinstance(index, int) or not 0 <= index < len(accessors):
        raise VistaError(f"{where}: accessor {index} does not exist")
    acc = accessors[index]
    at = f"{where}: accessor {index}"
    if acc.sparse is not None:
        raise VistaError(f"{at}: sparse accessors are not supported in camera animations")
    if acc.componentType not in _COMPONENT_TYPES or acc.type not in _COMPONENTS:
        raise VistaError(f"{at}: unsupported component type {acc.componentType} / type {acc.type}")
    dtype, divisor = _COMPONENT_TYPES[acc.componentType]
    components, count = _COMPONENTS[acc.type], int(acc.count or 0)
    if acc.bufferView is None:
        return np.zeros((count, components))
    views = gltf.bufferViews or []
    if not 0 <= acc.bufferView < len(views):
        raise VistaError(f"{at}: buffer view {acc.bufferView} does not exist")
    view = views[acc.bufferView]
    data = buffers.get(view.buffer)
    item = np.dtype(dtype).itemsize
    element = components * item
    stride = view.byteStride or element
    offset = (view.byteOffset or 0) + (acc.byteOffset or 0)
    end_of_view = (view.byteOffset or 0) + (view.byteLength or 0)
    if count < 1 or offset + stride * (count - 1) + element > min(end_of_view, len(data)):
        raise VistaError(f"{at}: its {count} elements run past the end of their buffer (truncated file?)")
    values = np.ndarray((count, components), dtype=np.dtype(dtype).newbyteorder("<"), buffer=data, offset=offset,
                        strides=(stride, item)).astype(np.float64)
    if divisor is not None and acc.normalized:
        values = np.maximum(values / divisor, -1.0)
    if not np.all(np.isfinite(values)):
        raise VistaError(f"{at}: holds NaN or infinity")
    return values


@dataclass(frozen=True)
class _Channel:
    times: np.ndarray  # [K] seconds, increasing
    values: np.ndarray  # [K, C], or [K, 3, C] for CUBICSPLINE (in-tangent, value, out-tangent)
    interpolation: str
    rotation: bool

    def sample(self, t: np.ndarray) -> np.ndarray:
        """The channel at times `t` [T] -> [T, C] (held constant before the first and after the last key)."""
        times, values = self.times, self.values
        if self.interpolation == "CUBICSPLINE":
            keys = values[:, 1]
        else:
            keys = values
        if len(times) == 1:
            return np.repeat(keys[:1], len(t), axis=0)
        t = np.clip(t, times[0], times[-1])
        # a frame time that is a key time up to float32 rounding (keys are float32 in the file) takes that key
        # exactly, instead of a 1e-7 blend with its neighbour
        nearest = np.clip(np.searchsorted(times, t), 0, len(times) - 1)
        nearest = np.where(np.abs(times[nearest - 1] - t) < np.abs(times[nearest] - t), nearest - 1, nearest)
        t = np.where(np.abs(times[nearest] - t) <= 1e-6 * np.maximum(1.0, np.abs(t)), times[nearest], t)
        if self.interpolation == "STEP":
            return keys[np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)]
        k = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
        dt = times[k + 1] - times[k]
        s = ((t - times[k]) / dt)[:, None]
        if self.interpolation == "CUBICSPLINE":  # glTF 2.0 spec, Appendix C: cubic Hermite with scaled tangents
            s2, s3 = s * s, s * s * s
            out = ((2 * s3 - 3 * s2 + 1) * keys[k] + (s3 - 2 * s2 + s) * dt[:, None] * values[k, 2]
                   + (-2 * s3 + 3 * s2) * keys[k + 1] + (s3 - s2) * dt[:, None] * values[k + 1, 0])
        elif self.rotation:
            out = _slerp(keys[k], keys[k + 1], s)
        else:
            out = (1 - s) * keys[k] + s * keys[k + 1]
        if self.rotation:
            out = out / np.linalg.norm(out, axis=1, keepdims=True)
        return out


def _slerp(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions [T, 4] along the shorter arc."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    dot = np.sum(a * b, axis=1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    angle = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(angle)
    near = sin < 1e-9
    wa = np.where(near, 1 - s, np.sin((1 - s) * angle) / np.where(near, 1, sin))
    wb = np.where(near, s, np.sin(s * angle) / np.where(near, 1, sin))
    return wa * a + wb * b


_PATH_SIZES = {"translation": 3, "rotation": 4, "scale": 3}


def camera_channels(gltf, chain: set[int], camera_index: int, buffers: Buffers,
              where: str) -> tuple[dict[tuple[int, str], _Channel], _Channel | None]:
    """Channels moving a node of the camera's chain, by (node, path), and the camera's yfov pointer channel."""
    pointer = f"/cameras/{camera_index}/perspective/yfov"
    found: dict[tuple[int, str], _Channel] = {}
    fov = None
    for a, animation in enumerate(gltf.animations or []):
        for channel in animation.channels or []:
            target = channel.target
            if target is None:
                continue
            ext = (target.extensions or {}).get(POINTER_EXTENSION) if target.path == "pointer" else None
            if ext is not None and ext.get("pointer") == pointer:
                key = None
            elif target.node in chain and target.path in _PATH_SIZES:
                key = (target.node, target.path)
            else:
                continue  # another object's animation, or a property Vista has no use for (weights, ...)
            name = f"{where}: animation {animation.name or a}"
            parsed = _sampler(gltf, animation, channel.sampler, buffers, name,
                              rotation=key is not None and key[1] == "rotation",
                              size=1 if key is None else _PATH_SIZES[key[1]])
            if key is None:
                fov = parsed
            elif key in found:
                raise VistaError(f"{where}: two animations move node {key[0]}'s {key[1]}; keep one animation "
                                 "(export only the active action)")
            else:
                found[key] = parsed
    return found, fov


def _sampler(gltf, animation, index, buffers: Buffers, where: str, *, rotation: bool, size: int) -> _Channel:
    samplers = animation.samplers or []
    if not isinstance(index, int) or not 0 <= index < len(samplers):
        raise VistaError(f"{where}: sampler {index} does not exist")
    sampler = samplers[index]
    interpolation = sampler.interpolation or "LINEAR"
    if interpolation not in ("LINEAR", "STEP", "CUBICSPLINE"):
        raise VistaError(f"{where}: unknown interpolation {interpolation!r}")
    times = _accessor(gltf, sampler.input, buffers, where)[:, 0]
    values = _accessor(gltf, sampler.output, buffers, where)
    if values.shape[1] != size:
        raise VistaError(f"{where}: sampler {index} gives {values.shape[1]} numbers per key, expected {size}")
    per_key = 3 if interpolation == "CUBICSPLINE" else 1
    if len(values) != per_key * len(times):
        raise VistaError(f"{where}: sampler {index} has {len(times)} key times but {len(values)} values")
    if np.any(np.diff(times) <= 0):
        raise VistaError(f"{where}: sampler {index}'s key times do not increase")
    if per_key == 3:
        values = values.reshape(len(times), 3, size)
    return _Channel(times, values, interpolation, rotation)


def local_matrices(node, index: int, channels: dict[tuple[int, str], _Channel], times: np.ndarray,
                    where: str) -> np.ndarray:
    """The node's local transform [T, 4, 4] at each time (glTF: T * R * S, or its static `matrix`)."""
    from scipy.spatial.transform import Rotation

    count = len(times)
    animated = {path: channels[(index, path)] for path in _PATH_SIZES if (index, path) in channels}
    if node.matrix is not None and list(node.matrix) != list(np.eye(4).reshape(-1)):
        if animated:
            raise VistaError(f"{where}: node {index} has a 'matrix' and an animation; glTF forbids both")
        m = np.asarray(node.matrix, np.float64).reshape(4, 4).T  # glTF matrices are column-major
        return np.broadcast_to(m, (count, 4, 4))

    def value(path: str, default) -> np.ndarray:
        if path in animated:
            return animated[path].sample(times)
        static = getattr(node, path)
        return np.broadcast_to(np.asarray(default if static is None else static, np.float64), (count, len(default)))

    translation = value("translation", [0.0, 0.0, 0.0])
    rotation = value("rotation", [0.0, 0.0, 0.0, 1.0])
    scale = value("scale", [1.0, 1.0, 1.0])
    norms = np.linalg.norm(rotation, axis=1)
    if np.any(norms < 1e-6):
        raise VistaError(f"{where}: node {index} has a zero rotation quaternion")
    out = np.zeros((count, 4, 4))
    out[:, :3, :3] = Rotation.from_quat(rotation / norms[:, None]).as_matrix() * scale[:, None, :]
    out[:, :3, 3] = translation
    out[:, 3, 3] = 1.0
    return out
