"""A shot's frames rendered on a Ray cluster (`vista render ... --ray ADDRESS|auto|local`); the one importer of `ray`.

The driver (the machine running `vista render`) does all but the rendering; steps of `render_frames_on_ray`:
1. open the shot's frame cache (render.frame_cache: the key names the scene hash, cameras and settings, so this
   is the same cache a local render of the same shot uses) and list the frames it lacks;
2. join the cluster, or start a local Ray instance, and put the scene folder's two files (scene.json and
   field.safetensors, hashed as the recipe hashes them) and the cameras in Ray's object store once;
3. submit the missing frames as contiguous chunks: one frame per worker slot first, which measures the frame cost,
   then chunks of ~`target_chunk_s` seconds, at least two per slot so the last ones balance (as Deadline does);
4. as chunks come back, check every frame's SHA-256 and write it into the frame cache (the driver writes it:
   workers need no shared storage, only a Vista install of the same version);
5. vista_api.render then encodes, labels, signs and writes the recipe once, locally, finding every frame cached,
   and checks the recipe's frame hashes against the workers' (`check_frame_hashes`).

Faults: a worker process killed mid-chunk loses that chunk, which Ray runs again (`max_retries`); a driver killed
mid-render leaves the chunks it received in the cache, and the next run submits only the missing frames. A worker refuses a chunk when its Vista code or package versions differ from the
driver's (which the recipe records), or when the scene it was given does not hash to the recipe's scene hash.

Frames are bit-identical to a local render: workers call `render.motion_blur.render_video_frame` as
render.frame_cache does, with `torch.set_num_threads(threads)` pinned per task (pixels do not depend on the count:
tests/test_farm.py checks 1-thread workers against a 2-thread local render).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import logging
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vista_core.errors import VistaError
from vista_core.progress import ProgressCallback, report

if TYPE_CHECKING:
    from render.cameras import Cameras
    from render.config import VideoConfig

log = logging.getLogger(__name__)

STAGE_RENDERING = "rendering frames"  # a local render's stage (render.frame_cache): bars show both alike
_CODE_PACKAGES, _VERSIONED = ("vista_core", "render", "scenes"), ("vista", "torch", "numpy")
"""The packages whose source, and those whose versions, decide a frame's pixels: a worker must match them."""


@dataclass(frozen=True)
class RayFarm:
    """Where and how to spread a render's frames (`--ray`, `--ray-threads`)."""

    address: str = "auto"
    """"auto": Ray's own choice (RAY_ADDRESS, else a cluster started on this machine, else a new local instance);
    "local": always a new local instance; else a cluster address (host:port, or ray://host:10001)."""
    threads: int = 1
    """Torch threads (and Ray CPUs) per task: one per core spreads frames best."""
    target_chunk_s: float = 20.0
    """Aimed seconds per chunk: long enough that per-task overhead is small, short enough that a lost chunk is cheap."""
    max_retries: int = 3
    """Times Ray runs a chunk again whose worker died."""

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or not self.address.strip():
            raise VistaError("--ray: give a cluster address (host:port or ray://host:10001), 'auto' or 'local'")
        if self.threads < 1:
            raise VistaError(f"--ray-threads {self.threads}: must be at least 1")
        if not self.target_chunk_s > 0 or self.max_retries < 0:
            raise VistaError(f"chunk time {self.target_chunk_s} must be positive, retries {self.max_retries} >= 0")


# --- what a worker must match ---------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def code_identity() -> dict[str, str]:
    """The package versions and a SHA-256 of the rendering code's source (.py and .c of `_CODE_PACKAGES`): two
    machines that agree on these render the same pixels. The version alone would not do: a checkout between
    releases keeps its version number."""
    identity = {}
    for name in _VERSIONED:
        try:
            identity[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            identity[name] = "missing"
    digest = hashlib.sha256()
    for package in _CODE_PACKAGES:
        folder = Path(importlib.import_module(package).__file__).parent
        for path in sorted(p for p in folder.rglob("*") if p.suffix in (".py", ".c") and "__pycache__" not in p.parts):
            digest.update(str(path.relative_to(folder.parent)).encode() + b"\0" + path.read_bytes())
    identity["code"] = digest.hexdigest()[:16]
    return identity


code_identity()  # now, as the code is imported: source edited on disk during a long render must not pass for it


def scene_files(scene_dir: Path) -> dict[str, bytes]:
    """The scene folder's files a worker needs, by name (what scenes.recipe.scene_content_hash hashes)."""
    from scenes.scene import SCENE_FILE, WEIGHTS_FILE

    files = {}
    for name in (SCENE_FILE, WEIGHTS_FILE):
        path = Path(scene_dir) / name
        try:
            files[name] = path.read_bytes()
        except OSError as error:
            raise VistaError(f"{path}: cannot read the scene ({error.strerror or error})") from error
    return files


def files_hash(files: dict[str, bytes]) -> str:
    """scenes.recipe.scene_content_hash of a folder holding `files`, computed from the bytes themselves."""
    from scenes.scene import SCENE_FILE, WEIGHTS_FILE

    digest = hashlib.sha256()
    for name in (SCENE_FILE, WEIGHTS_FILE):
        digest.update(name.encode() + b"\0")
        digest.update(files[name])
    return "sha256:" + digest.hexdigest()


# --- the task a worker runs -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChunkSpec:
    """One task: contiguous frames of a shot, and what the worker must match to render them."""

    frames: tuple[int, ...]
    scene_hash: str
    identity: dict[str, str]  # the driver's `code_identity()`
    config: VideoConfig
    """The render settings; a frame is rendered from them as render.frame_cache renders it."""
    threads: int
    float_color: bool = False
    """Return each frame's float colour too (formats with alpha keep it in the cache: render.frame_cache)."""


@dataclass
class RenderedFrame:
    index: int
    rgb: np.ndarray
    """uint8 [H, W, 3], as render.frame_cache saves it."""
    depth: np.ndarray
    opacity: np.ndarray
    color: np.ndarray | None
    sha256: str
    """Of `rgb`'s bytes, as the worker rendered them (render.video hashes frames the same way)."""


@dataclass
class ChunkResult:
    frames: list[RenderedFrame]
    seconds: float
    """Wall time the worker spent rendering (loading excluded), to size the next chunks."""
    worker: str  # host:pid, for the log


_loaded: dict[str, Any] = {}
"""Per worker process: the scene last loaded, by hash (Ray reuses workers: later chunks skip the load)."""


class WorkerRefused(VistaError):
    """A worker cannot render the chunk as the recipe needs (another Vista, another scene)."""


def check_worker(spec: ChunkSpec, files: dict[str, bytes]) -> None:
    """Refuse (WorkerRefused) unless this process runs the driver's code and was given the recipe's scene."""
    mine = code_identity()
    host = socket.gethostname()
    differ = [f"{key} {mine.get(key)} (driver {value})" for key, value in spec.identity.items() if mine.get(key) != value]
    if differ:
        raise WorkerRefused(f"Ray worker on {host} refused the shot: its " + ", ".join(differ) + " differ from the "
                            "driver's; install the same Vista on every node")
    got = files_hash(files)
    if got != spec.scene_hash:
        raise WorkerRefused(f"Ray worker on {host} refused the shot: the scene it was given hashes to {got}, the "
                            f"recipe's scene is {spec.scene_hash}")


def _scene_for(spec: ChunkSpec, files: dict[str, bytes]):
    from scenes.scene import load_scene

    if spec.scene_hash not in _loaded:
        _loaded.clear()
        with tempfile.TemporaryDirectory(prefix="vista-farm-") as folder:
            for name, data in files.items():
                Path(folder, name).write_bytes(data)
            _loaded[spec.scene_hash] = load_scene(Path(folder)).renderable()
    return _loaded[spec.scene_hash]


def render_chunk(spec: ChunkSpec, files: dict[str, bytes], cameras: Cameras) -> ChunkResult:
    """A worker's task: check it may, then render `spec.frames` as render.frame_cache.render_to_cache does."""
    import torch

    from render.bands import to_uint8
    from render.motion_blur import render_video_frame

    check_worker(spec, files)
    torch.set_num_threads(spec.threads)
    renderable = _scene_for(spec, files)
    start = time.perf_counter()
    out = []
    for index in spec.frames:
        # the call render.frame_cache.render_to_cache makes for a frame: keep the two the same (bit-identical frames)
        image = render_video_frame(renderable, cameras, index, spec.config)
        rgb = to_uint8(image.rgb)
        color = image.rgb.cpu().numpy() if spec.float_color else None
        out.append(RenderedFrame(index, rgb, image.depth.cpu().numpy(), image.opacity.cpu().numpy(), color,
                                 hashlib.sha256(rgb.tobytes()).hexdigest()))
    return ChunkResult(out, time.perf_counter() - start, f"{socket.gethostname()}:{os.getpid()}")


# --- the driver -----------------------------------------------------------------------------------------------

@dataclass
class FarmRun:
    """What the cluster did for one shot."""

    rendered: int
    """Frames rendered on the cluster in this run (the rest were in the cache)."""
    seconds: float
    """Wall time from the first submission to the last frame written."""
    frame_sha256: dict[int, str] = field(default_factory=dict)
    """The workers' hash of each frame they rendered, by camera index."""
    chunks: int = 0
    worker_slots: int = 0
    workers: set[str] = field(default_factory=set)  # host:pid of each worker process that returned a chunk
    busy_seconds: float = 0.0
    """Rendering time summed over workers (seconds minus this spread over the slots is Ray's overhead)."""
    store_seconds: float = 0.0
    """Time the driver spent checking and writing frames into the cache (serial: it bounds a large farm)."""


def contiguous_chunks(frames: list[int], size: int) -> list[tuple[int, ...]]:
    """`frames` (in video order) cut into runs of at most `size`."""
    return [tuple(frames[k:k + size]) for k in range(0, len(frames), size)]


def chunk_size(frame_s: float, remaining: int, slots: int, target_chunk_s: float) -> int:
    """Frames per task: about `target_chunk_s` of work, but at least two tasks per worker slot."""
    by_time = max(1, round(target_chunk_s / max(frame_s, 1e-6)))
    balanced = max(1, math.ceil(remaining / (2 * slots)))
    return min(by_time, balanced)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse an address nothing answers at within `timeout_s`: Ray itself retries for minutes, then aborts."""
    host_port = address.removeprefix("ray://")
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise VistaError(f"--ray {address}: expected HOST:PORT, ray://HOST:PORT, 'auto' or 'local'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise VistaError(f"--ray {address}: no Ray cluster answers there ({error.strerror or error}); start one with "
                         "`ray start --head`, or pass --ray local") from error


def _connect(farm: RayFarm) -> bool:
    """Join or start Ray; True when this call started it (so the driver shuts it down after)."""
    import ray

    if ray.is_initialized():
        return False
    try:
        if farm.address == "local":
            ray.init(address="local", include_dashboard=False, log_to_driver=False)
        elif farm.address == "auto":
            ray.init(include_dashboard=False)
        else:
            _check_reachable(farm.address)
            ray.init(address=farm.address)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise VistaError(f"--ray {farm.address}: cannot join the Ray cluster ({str(error).splitlines()[0]}); "
                         "start one with `ray start --head` or pass --ray local") from error
    return True


def render_frames_on_ray(farm: RayFarm, scene_dir: Path, scene_hash: str, cameras: Cameras, indices: list[int],
                         config: VideoConfig, cache_dir: Path, out: Path,
                         progress: ProgressCallback | None = None,
                         task: Callable[..., ChunkResult] = render_chunk, float_color: bool = False) -> FarmRun:
    """Render the frames `indices` missing from the frame cache in `cache_dir` on Ray (steps 1-4 above). `task` is
    the worker function (tests wrap it to kill a worker). A `Cancelled` from `progress` cancels the chunks in flight;
    the frames received so far stay in the cache."""
    try:
        import ray
    except ImportError as error:
        raise VistaError("--ray needs the Ray package: pip install -e '.[farm]'") from error
    from render.frame_cache import FrameCache, frame_cache_key

    # 1. the frame cache a local render of this shot would use
    cache = FrameCache(cache_dir, frame_cache_key(scene_hash, cameras, config), float_color=float_color)
    with cache.locked(out):
        cache.open()
        todo = [i for i in indices if not cache.has(i)]
        if not todo:
            return FarmRun(rendered=0, seconds=0.0)
        if len(todo) < len(indices):
            log.info("resuming: %d of %d frames already rendered in %s", len(indices) - len(todo), len(indices),
                     cache.directory)
        started_ray = _connect(farm)
        try:
            # 2. the scene and cameras go to the object store once; every task reads the same objects
            files = scene_files(scene_dir)
            if files_hash(files) != scene_hash:
                raise VistaError(f"{scene_dir}: the scene changed while the render started; render again")
            cpus = int(ray.cluster_resources().get("CPU", 0))
            if cpus < farm.threads:
                raise VistaError(f"--ray-threads {farm.threads}: the cluster has only {cpus} CPUs")
            remote = ray.remote(num_cpus=farm.threads, max_retries=farm.max_retries)(task)
            refs = ray.put(files), ray.put(cameras)
            spec = ChunkSpec((), scene_hash, code_identity(), config, farm.threads, float_color)
            return _run_chunks(lambda frames: remote.remote(replace(spec, frames=frames), *refs), todo, len(indices),
                               cache, farm, cpus // farm.threads, progress)
        finally:
            if started_ray:
                ray.shutdown()


def _run_chunks(submit: Callable, todo: list[int], total: int, cache, farm: RayFarm, slots: int,
                progress: ProgressCallback | None) -> FarmRun:
    """Steps 3 and 4: submit, collect, write into the cache, report; cancel what is in flight on any exit but success."""
    import ray

    run = FarmRun(rendered=0, seconds=0.0, worker_slots=slots)
    rest = todo[slots:]
    pending = [submit((i,)) for i in todo[:slots]]  # the first wave measures the frame cost
    run.chunks = len(pending)
    done, start = total - len(todo), time.perf_counter()
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            result = _get(ready[0])
            _store(result, cache, run)
            done += len(result.frames)
            if rest:
                size = chunk_size(result.seconds / len(result.frames), len(rest), slots, farm.target_chunk_s)
                chunks = contiguous_chunks(rest, size)
                log.info("Ray: %.2f s a frame; %d frames left in %d chunks of %d on %d worker slots",
                         result.seconds / len(result.frames), len(rest), len(chunks), size, slots)
                pending += [submit(chunk) for chunk in chunks]
                run.chunks += len(chunks)
                rest = []
            elapsed = time.perf_counter() - start
            report(progress, STAGE_RENDERING, done, total, eta_s=elapsed / run.rendered * (total - done),
                   metrics={"frames_per_s": run.rendered / elapsed if elapsed > 0 else 0.0})
    except BaseException:
        for ref in pending:  # a cancelled or failed driver leaves no work queued on the cluster
            ray.cancel(ref)  # not force: a killed worker process would cost the next run a restart
        raise
    run.seconds = time.perf_counter() - start
    return run


def _get(ref) -> ChunkResult:
    """A finished chunk; a worker's VistaError (a refusal) becomes the driver's one line."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        if isinstance(getattr(error, "cause", None), VistaError):
            raise VistaError(str(error.cause)) from None
        raise
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError) as error:  # after max_retries
        raise VistaError(f"Ray workers died rendering a chunk ({type(error).__name__}) more often than it was "
                         "retried; the frames received are kept in the cache: run again to resume") from None


def _store(result: ChunkResult, cache, run: FarmRun) -> None:
    """Step 4: each frame checked against the worker's hash, then written into the cache by the driver."""
    start = time.perf_counter()
    for frame in result.frames:
        if hashlib.sha256(frame.rgb.tobytes()).hexdigest() != frame.sha256:
            raise VistaError(f"frame {frame.index} from Ray worker {result.worker} arrived altered")
        cache.save(frame.index, frame.rgb, frame.depth, frame.opacity, frame.color)
        run.frame_sha256[frame.index] = frame.sha256
    run.rendered += len(result.frames)
    run.busy_seconds += result.seconds
    run.workers.add(result.worker)
    run.store_seconds += time.perf_counter() - start


def check_frame_hashes(run: FarmRun, indices: list[int], recipe_hashes: list[str]) -> None:
    """Step 5: the frames the encoder read back from the cache are the ones the workers rendered."""
    for index, recorded in zip(indices, recipe_hashes):
        expected = run.frame_sha256.get(index)
        if expected is not None and expected != recorded:
            raise VistaError(f"frame {index}: the encoded frame's SHA-256 differs from the Ray worker's; the frame "
                             "cache was changed during the render; render again")
