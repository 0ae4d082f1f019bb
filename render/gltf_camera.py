"""Camera animations as glTF 2.0 (.glb / .gltf): a Vista camera path out to Blender, Nuke or three.js, and a camera
move made there back in as one camera per frame. pygltflib parses and writes the files; this module is its only
importer (an import-linter contract); the sampling and the axes are ours.

Axes. Vista's world is the dataset's own (transforms.json's: Z-up for nerfstudio and Blender data), and its cameras
use OpenGL axes (+x right, +y up, looking along -z), which are also glTF's and Blender's camera axes. glTF's world
is Y-up, so a file is written the way Blender's glTF exporter writes a Z-up scene: glTF = GLTF_FROM_WORLD @ world,
the rotation -90 deg about x, (x, y, z) -> (x, z, -y). Blender's importer applies the inverse, so an imported
camera has exactly Vista's world coordinates in Blender, in the scene's units (a mesh from
`vista export --mesh scene.ply` lines up with it; PLY keeps its coordinates as they are). Any other tool sees
the scene turned Y-up, as it sees every Blender export. Reading applies the inverse again.

What is written: one node with a perspective camera (yfov of the first frame, aspectRatio = width / height,
znear; no zfar, i.e. infinite) and one animation with a key per frame at time frame / fps: translation and
rotation, LINEAR. When the field of view changes along the path, a third channel animates
/cameras/0/perspective/yfov through KHR_animation_pointer (listed in extensionsUsed, not required, so a viewer
without it still plays the move). The asset's extras hold {"vista": {fps, width, height, seconds, path}} so that a
file read back gives the exact frame rate, render size and editable keyframes; a file edited elsewhere loses
nothing by ignoring them (the keyframes are used only when they still give the animated frames).

What is read: the camera node (the only one, or the one named), its whole parent chain composed per frame
(each node's translation/rotation/scale, animated or static, as Blender writes a camera parented to an empty),
every animation channel on that chain, LINEAR, STEP or CUBICSPLINE, and a KHR_animation_pointer channel on the
camera's yfov. Frames are sampled at the frame rate from the first key to the last, so a Blender export whose
keys were thinned ("optimize animation size") or start at frame 1 (time 1/fps) still gives every frame from 0.
The frame rate is the one given, else the file's Vista extras, else 1 / the smallest key interval (snapped to a
whole or NTSC rate when within 1e-4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from render.gltf_animation import POINTER_EXTENSION, Buffers, camera_channels, local_matrices
from render.keyframes import MAX_FOV_DEG, MIN_FOV_DEG
from render.paths import MAX_FRAMES, CameraPath
from vista_core.errors import VistaError

GLTF_FROM_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Vista (Z-up world, as Blender's) -> glTF (Y-up): what Blender's exporter applies and its importer undoes."""
VISTA_EXTRAS = "vista"
FORMAT = "vista-camera-animation"
FORMAT_VERSION = 1
DEFAULT_HEIGHT = 360  # a file without Vista's extras gives its aspect ratio only
DEFAULT_ZNEAR = 0.01  # world units; only a hint to the importing tool (Vista's renderer has its own near plane)

_FLOAT, _VEC3, _VEC4, _SCALAR = 5126, "VEC3", "VEC4", "SCALAR"
_NTSC_RATES = (24000 / 1001, 30000 / 1001, 60000 / 1001)


@dataclass(frozen=True)
class CameraAnimation:
    """One camera per frame, in Vista world coordinates."""

    world_from_camera: np.ndarray  # [F, 3, 4] float64, OpenGL camera axes
    fov_y_deg: np.ndarray  # [F]
    fps: float
    width: int
    height: int
    path: CameraPath | None = None
    """The Vista keyframes the frames came from, when the file carries them and they still match."""

    @property
    def seconds(self) -> float:
        """Length of the shot as a video: frames / fps (nerfstudio's and Vista's rule)."""
        return len(self.fov_y_deg) / self.fps


# ---------------------------------------------------------------------------------------------
# writing


def path_camera_glb(path: CameraPath, width: int, height: int, znear: float = DEFAULT_ZNEAR) -> bytes:
    """GLB bytes of `path`'s frames as an animated camera (module docstring), with its keyframes in the extras."""
    world_from_camera, fov = path.evaluate(path.frame_times())
    return camera_glb(world_from_camera, fov, path.fps, width, height, znear=znear, path=path)


def camera_glb(world_from_camera: np.ndarray, fov_y_deg: np.ndarray, fps: float, width: int, height: int, *,
               znear: float = DEFAULT_ZNEAR, path: CameraPath | None = None) -> bytes:
    """GLB bytes of an animated perspective camera: frame k at time k / fps."""
    import pygltflib as g
    from scipy.spatial.transform import Rotation

    world_from_camera = np.asarray(world_from_camera, np.float64)
    fov_y_deg = np.asarray(fov_y_deg, np.float64).reshape(-1)
    n = len(fov_y_deg)
    if world_from_camera.shape != (n, 3, 4) or n < 1:
        raise VistaError(f"camera animation: expected [F, 3, 4] cameras and [F] fields of view, got "
                         f"{world_from_camera.shape} and {fov_y_deg.shape}")
    if width < 1 or height < 1 or not (math.isfinite(fps) and fps > 0):
        raise VistaError(f"camera animation: size {width}x{height} and fps {fps} must be positive")
    times = (np.arange(n) / fps).astype(np.float32)
    translation = (world_from_camera[:, :, 3] @ GLTF_FROM_WORLD.T).astype(np.float32)
    rotation = _continuous(Rotation.from_matrix(GLTF_FROM_WORLD @ world_from_camera[:, :, :3]).as_quat())
    yfov = np.radians(fov_y_deg).astype(np.float32)
    arrays = [times, translation, rotation.astype(np.float32)]
    animated_fov = n > 1 and float(np.ptp(fov_y_deg)) > 1e-9
    if animated_fov:
        arrays.append(yfov)
    blob, views, accessors = b"", [], []
    for array in arrays:
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        views.append(g.BufferView(buffer=0, byteOffset=len(blob), byteLength=len(data)))
        shape = array.shape[1] if array.ndim == 2 else 1
        accessors.append(g.Accessor(bufferView=len(views) - 1, componentType=_FLOAT, count=len(array),
                                    type={1: _SCALAR, 3: _VEC3, 4: _VEC4}[shape],
                                    min=np.min(array.reshape(len(array), -1), 0).tolist(),
                                    max=np.max(array.reshape(len(array), -1), 0).tolist()))
        blob += data  # float32 arrays keep every view 4-byte aligned
    samplers = [g.AnimationSampler(input=0, output=k, interpolation="LINEAR") for k in range(1, len(arrays))]
    channels = [g.AnimationChannel(sampler=0, target=g.AnimationChannelTarget(node=0, path="translation")),
                g.AnimationChannel(sampler=1, target=g.AnimationChannelTarget(node=0, path="rotation"))]
    if animated_fov:
        channels.append(g.AnimationChannel(sampler=2, target=g.AnimationChannelTarget(
            path="pointer", extensions={POINTER_EXTENSION: {"pointer": "/cameras/0/perspective/yfov"}})))
    extras = {"format": FORMAT, "version": FORMAT_VERSION, "fps": float(fps), "width": int(width),
              "height": int(height), "seconds": n / float(fps), "path": None if path is None else path.to_dict()}
    gltf = g.GLTF2(
        asset=g.Asset(version="2.0", generator="Vista", extras={VISTA_EXTRAS: extras}),
        scene=0, scenes=[g.Scene(nodes=[0])],
        nodes=[g.Node(name="VistaCamera", camera=0, translation=translation[0].tolist(),
                      rotation=rotation[0].astype(np.float32).tolist())],
        cameras=[g.Camera(name="VistaCamera", type="perspective", perspective=g.Perspective(
            yfov=float(yfov[0]), aspectRatio=width / height, znear=znear))],
        animations=[g.Animation(name="VistaCameraPath", samplers=samplers, channels=channels)],
        accessors=accessors, bufferViews=views, buffers=[g.Buffer(byteLength=len(blob))],
        extensionsUsed=[POINTER_EXTENSION] if animated_fov else [])
    gltf.set_binary_blob(blob)
    return b"".join(gltf.save_to_bytes())


def _continuous(quaternions: np.ndarray) -> np.ndarray:
    """Flip signs so consecutive quaternions lie in one hemisphere: LINEAR slerps then take the short way."""
    q = np.array(quaternions, dtype=np.float64)
    for k in range(1, len(q)):
        if np.dot(q[k], q[k - 1]) < 0:
            q[k] = -q[k]
    return q


# ---------------------------------------------------------------------------------------------
# reading (render.gltf_animation samples the channels)


def read_camera_gltf(file: Path, *, camera: str | None = None, fps: float | None = None) -> CameraAnimation:
    """The animated camera of a .glb/.gltf as one camera per frame (module docstring); VistaError if the file
    is not glTF 2.0, has no (or several unnamed) perspective camera, or its animation cannot be sampled."""
    file = Path(file)
    gltf = _load(file)
    where = str(file)
    node_index = _camera_node(gltf, camera, where)
    camera_index = gltf.nodes[node_index].camera
    perspective = _perspective(gltf, camera_index, where)
    chain = _parent_chain(gltf, node_index, where)
    buffers = Buffers(gltf, file)
    channels, fov_channel = camera_channels(gltf, set(chain), camera_index, buffers, where)
    key_times = [c.times for c in channels.values()] + ([fov_channel.times] if fov_channel else [])
    if not key_times or all(len(t) < 2 for t in key_times):
        raise VistaError(f"{where}: the camera is not animated (no keys on it or its parents); a path needs "
                         "at least 2 frames")
    extras = _vista_extras(gltf)
    fps = _frame_rate(fps, extras, np.concatenate(key_times), where)
    start, end = min(float(t[0]) for t in key_times), max(float(t[-1]) for t in key_times)
    count = int(round((end - start) * fps)) + 1
    if count > MAX_FRAMES:
        raise VistaError(f"{where}: {end - start:g} s at {fps:g} fps is {count:,} frames; Vista renders at most "
                         f"{MAX_FRAMES:,}")
    times = start + np.arange(count) / fps
    world = np.broadcast_to(np.eye(4), (count, 4, 4)).copy()
    for index in chain:  # root first
        world = world @ local_matrices(gltf.nodes[index], index, channels, times, where)
    world_from_camera = _vista_cameras(world, where)
    if fov_channel is not None:
        fov = np.degrees(fov_channel.sample(times)[:, 0])
    else:
        fov = np.full(count, math.degrees(perspective.yfov))
    bad = ~((fov > MIN_FOV_DEG) & (fov < MAX_FOV_DEG))
    if bad.any():
        raise VistaError(f"{where}: yfov {fov[bad][0]:g} degrees is outside ({MIN_FOV_DEG:g}, {MAX_FOV_DEG:g})")
    width, height = _size(extras, perspective)
    path = _matching_path(extras, world_from_camera, fov)
    return CameraAnimation(world_from_camera, fov, fps, width, height, path)


def _load(file: Path):
    import pygltflib

    if not file.is_file():
        raise VistaError(f"{file}: not found")
    try:
        if file.suffix.lower() == ".glb":
            gltf = pygltflib.GLTF2.load_from_bytes(file.read_bytes())
        else:
            gltf = pygltflib.GLTF2.gltf_from_json(file.read_text(encoding="utf-8"))
    except Exception as error:  # pygltflib raises anything from struct.error to KeyError on a broken file
        raise VistaError(f"{file}: not a readable glTF 2.0 file ({type(error).__name__}: {error})") from error
    if gltf is None or gltf.asset is None or not str(gltf.asset.version or "").startswith("2"):
        raise VistaError(f"{file}: not a glTF 2.0 file (asset.version is "
                         f"{getattr(getattr(gltf, 'asset', None), 'version', None)!r})")
    return gltf


def _camera_node(gltf, name: str | None, where: str) -> int:
    nodes = [i for i, node in enumerate(gltf.nodes or []) if node.camera is not None]
    if name is not None:
        named = [i for i in nodes if gltf.nodes[i].name == name]
        if not named:
            raise VistaError(f"{where}: no camera node named {name!r} (camera nodes: "
                             f"{[gltf.nodes[i].name for i in nodes]})")
        return named[0]
    if not nodes:
        raise VistaError(f"{where}: holds no camera (no node with a 'camera'); export the camera object too")
    if len(nodes) > 1:
        raise VistaError(f"{where}: holds {len(nodes)} cameras ({[gltf.nodes[i].name for i in nodes]}); export "
                         "only the shot's camera (Blender: Include > Selected Objects)")
    return nodes[0]


def _perspective(gltf, index: int, where: str):
    cameras = gltf.cameras or []
    if not 0 <= index < len(cameras):
        raise VistaError(f"{where}: the camera node points at camera {index}, which does not exist")
    cam = cameras[index]
    if cam.type != "perspective" or cam.perspective is None or cam.perspective.yfov is None:
        raise VistaError(f"{where}: camera {index} is {cam.type!r}; Vista renders perspective cameras")
    if not (isinstance(cam.perspective.yfov, (int, float)) and math.isfinite(cam.perspective.yfov)):
        raise VistaError(f"{where}: camera {index} has no finite yfov")
    return cam.perspective


def _parent_chain(gltf, node: int, where: str) -> list[int]:
    """Node indices from the root down to `node`."""
    parent: dict[int, int] = {}
    for i, n in enumerate(gltf.nodes):
        for child in n.children or []:
            if child in parent or not 0 <= child < len(gltf.nodes):
                raise VistaError(f"{where}: node {child} has two parents or does not exist; not a node tree")
            parent[child] = i
    chain = [node]
    while chain[-1] in parent:
        chain.append(parent[chain[-1]])
        if len(chain) > len(gltf.nodes):
            raise VistaError(f"{where}: the node hierarchy has a cycle")
    return chain[::-1]


def _vista_cameras(world: np.ndarray, where: str) -> np.ndarray:
    """glTF world matrices of the camera node [F, 4, 4] -> Vista world_from_camera [F, 3, 4]. A uniform scale on
    the chain does not change the view and is dropped (the nearest rotation, by SVD); a mirror is refused."""
    rotation = GLTF_FROM_WORLD.T @ world[:, :3, :3]
    u, singular, vt = np.linalg.svd(rotation)
    if np.any(singular[:, -1] < 1e-9) or np.any(np.linalg.det(rotation) < 0):
        raise VistaError(f"{where}: the camera's transform is mirrored or flattened (a negative or zero scale "
                         "on it or a parent); Vista cameras are rotations")
    out = np.empty((len(world), 3, 4))
    out[:, :, :3] = u @ vt
    out[:, :, 3] = world[:, :3, 3] @ GLTF_FROM_WORLD  # = GLTF_FROM_WORLD.T @ t
    return out


def _vista_extras(gltf) -> dict:
    extras = gltf.asset.extras if isinstance(gltf.asset.extras, dict) else {}
    vista = extras.get(VISTA_EXTRAS)
    return vista if isinstance(vista, dict) and vista.get("format") == FORMAT else {}


def _frame_rate(given: float | None, extras: dict, key_times: np.ndarray, where: str) -> float:
    if given is not None:
        fps = float(given)
    elif isinstance(extras.get("fps"), (int, float)):
        fps = float(extras["fps"])
    else:
        steps = np.diff(np.unique(key_times))
        steps = steps[steps > 1e-6]
        fps = _snap_rate(1.0 / float(steps.min())) if len(steps) else math.nan
    if not (math.isfinite(fps) and 1 <= fps <= 240):
        raise VistaError(f"{where}: cannot tell the frame rate from the key times (1 / the shortest interval is "
                         f"{fps:g} fps, outside [1, 240]); export the animation sampled at every frame (Blender: "
                         "Animation > Always Sample Animations)")
    return fps


def _snap_rate(rate: float) -> float:
    """A rate within 1e-4 (relative) of a whole number or an NTSC rate is that rate (key times are float32)."""
    for candidate in (round(rate), *_NTSC_RATES):
        if candidate > 0 and abs(rate - candidate) <= 1e-4 * candidate:
            return float(candidate)
    return rate


def _size(extras: dict, perspective) -> tuple[int, int]:
    width, height = extras.get("width"), extras.get("height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return width, height
    aspect = perspective.aspectRatio
    if isinstance(aspect, (int, float)) and math.isfinite(aspect) and 0.05 < aspect < 20:
        return max(2, 2 * round(DEFAULT_HEIGHT * aspect / 2)), DEFAULT_HEIGHT
    return 640, DEFAULT_HEIGHT


def _matching_path(extras: dict, world_from_camera: np.ndarray, fov: np.ndarray) -> CameraPath | None:
    """The extras' keyframes if they still give these frames (not if the move was edited after export)."""
    if not isinstance(extras.get("path"), dict):
        return None
    try:
        path = CameraPath.from_dict(extras["path"], "glTF extras: vista.path")
        if path.n_frames != len(fov):
            return None
        w, f = path.evaluate(path.frame_times())
    except VistaError:
        return None
    scale = max(1.0, float(np.abs(w[:, :, 3]).max()))
    if np.abs(w - world_from_camera).max() > 1e-5 * scale or np.abs(f - fov).max() > 1e-4:
        return None
    return path


def write_camera_glb(out: Path, path: CameraPath, width: int, height: int) -> None:
    """`path` as a glTF 2.0 camera animation (`path_camera_glb`), written atomically."""
    from vista_core.files import atomic_write_bytes

    if width < 1 or height < 1:
        raise VistaError(f"render size must be positive, got {width}x{height}")
    atomic_write_bytes(out, path_camera_glb(path, width, height))
