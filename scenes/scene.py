"""A trained scene and its folder: `scene.json` (strict JSON) + `field.safetensors` (weights).

No pickle anywhere: weights are safetensors, everything else JSON. The backend that trained the
field is recorded and the scene loads with it: the torch and tcnn hash grids share one layout, but
tiny-cuda-nn's fused MLPs store their weights their own way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from render.cameras import Cameras
from render.configio import config_from_dict, config_to_dict
from render.occupancy import OccupancyGrid, UpdateSchedule
from render.proposal import Proposals
from render.render import Renderable, SceneKind
from scenes.backends import resolve_backend
from scenes.config import TrainConfig
from scenes.corrections import PhotoCorrections
from scenes.field import NerfField
from scenes.proposal_field import make_proposals
from vista_core.errors import VistaError
from vista_core.files import atomic_write_bytes, atomic_write_json, read_json

SCHEMA_VERSION = 1
SCENE_FILE = "scene.json"
WEIGHTS_FILE = "field.safetensors"
RETIRED_CONFIG_KEYS = frozenset({"eval_every"})
"""TrainConfig fields that no longer exist; older scene files still carry them and must still load."""


@dataclass
class Scene:
    field: NerfField
    grid: OccupancyGrid
    kind: SceneKind
    scene_from_world: torch.Tensor  # [4, 4]
    background: tuple[float, float, float]
    config: TrainConfig
    backend: str
    capture: Cameras  # the training cameras, world coordinates (for path presets and coverage)
    capture_names: list[str]
    data_source: str
    step: int = 0
    metrics: dict = field(default_factory=dict)
    folder: Path | None = None
    """The folder this scene was last loaded from or saved to (None until it is saved); render recipes name it
    by its content hash, so the scene in memory must be as saved there."""
    data_hash: str | None = None
    """`scenes.data.dataset_hash` of the dataset it was trained on (None: a scene from before it was recorded)."""
    heldout_names: list[str] | None = None
    """The dataset's held-out views when it was trained (None: not recorded)."""
    corrections: PhotoCorrections | None = None
    """Per-training-photo appearance and pose corrections, as the config switches them on (`scenes.corrections`):
    training uses them, new views do not (neutral appearance); the weights file keeps them."""
    proposals: Proposals | None = None
    """The proposal density fields of an unbounded scene trained with the "proposal" sampler (`render.proposal`)."""

    def renderable(self) -> Renderable:
        """The scene as a `render.representation.SceneRepresentation`: what rendering, training and path fitting
        use (the hash-grid NeRF; the one place a scene chooses its representation)."""
        background = torch.tensor(self.background, device=self.grid.device)
        return Renderable(self.field, self.grid, self.kind, self.scene_from_world, background, self.config.sampling,
                          self.proposals)


def new_scene(config: TrainConfig, backend: str, kind: SceneKind, scene_from_world: torch.Tensor,
              background: tuple[float, float, float], capture: Cameras, capture_names: list[str],
              data_source: str) -> Scene:
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # nn.Linear initialises from the global generator
    field_module = NerfField(config.field, backend, generator)
    grid = OccupancyGrid(config.sampling.grid_resolution, schedule=UpdateSchedule.from_sampling(config.sampling))
    proposals = (make_proposals(config.sampling, backend, generator)
                 if kind == "unbounded" and config.sampling.unbounded_sampler == "proposal" else None)
    return Scene(field_module, grid, kind, scene_from_world, background, config, backend, capture, capture_names,
                 data_source, corrections=PhotoCorrections(config, len(capture_names)), proposals=proposals)


def scene_state(scene: Scene) -> dict[str, torch.Tensor]:
    extra = {} if scene.corrections is None else scene.corrections.state()
    return {**scene.renderable().state(), **extra}


def scene_metadata(scene: Scene) -> dict:
    return {
        "format": "vista-scene",
        "schema_version": SCHEMA_VERSION,
        "step": scene.step,
        "backend": scene.backend,
        "kind": scene.kind,
        "background": list(scene.background),
        "scene_from_world": scene.scene_from_world.tolist(),
        "occupancy": {"resolution": scene.grid.resolution, "threshold": scene.grid.threshold},
        "data_source": scene.data_source,
        "config": config_to_dict(scene.config),
        # pinhole: the capture serves path presets and coverage, which ignore lens distortion
        "capture": {"names": scene.capture_names, **scene.capture.pinhole().to_dict()},
        "metrics": scene.metrics,
        **({} if scene.data_hash is None else {"data_hash": scene.data_hash}),
        **({} if scene.heldout_names is None else {"heldout_names": scene.heldout_names}),
    }


def save_scene(scene: Scene, directory: Path) -> None:
    """Write the weights, then the JSON that points at them; both carry the step so a torn pair is detected."""
    directory = Path(directory)
    atomic_write_bytes(directory / WEIGHTS_FILE, save(scene_state(scene), metadata={"step": str(scene.step)}))
    atomic_write_json(directory / SCENE_FILE, scene_metadata(scene))
    scene.folder = directory


def load_scene(directory: Path, backend: str = "auto") -> Scene:
    """Load a scene folder; any problem is a VistaError naming the file."""
    directory = Path(directory)
    meta_path = directory / SCENE_FILE
    weights_path = directory / WEIGHTS_FILE
    if not directory.is_dir():
        raise VistaError(f"{directory}: scene folder not found")
    if not meta_path.is_file():
        raise VistaError(f"{meta_path}: not found; is {directory} a Vista scene folder (made by `vista train`)?")
    meta = read_json(meta_path, "scene file")
    if not isinstance(meta, dict) or meta.get("format") != "vista-scene":
        raise VistaError(f"{meta_path}: not a Vista scene file")
    version = meta.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise VistaError(f"{meta_path}: scene schema version {version!r} is newer than this Vista understands "
                         f"({SCHEMA_VERSION}); upgrade Vista")
    config = config_from_dict(TrainConfig, _without_retired_keys(meta.get("config")), f"{meta_path}: config")
    try:
        state = load_file(str(weights_path))
    except FileNotFoundError as error:
        raise VistaError(f"{weights_path}: weights file not found") from error
    except (SafetensorError, OSError, ValueError) as error:
        raise VistaError(f"{weights_path}: weights file is corrupt or truncated ({error})") from error
    with open(weights_path, "rb") as handle:
        header_len = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(header_len))
    step = int(header.get("__metadata__", {}).get("step", -1))
    if step != meta.get("step"):
        raise VistaError(f"{directory}: {WEIGHTS_FILE} (step {step}) and {SCENE_FILE} (step {meta.get('step')}) "
                         "do not match; the folder was written by an interrupted run: resume training")
    trained_with = meta.get("backend", "torch")
    # The grids share one layout, but tiny-cuda-nn's fused MLPs store their weights their own way
    # (no biases, padded), so a scene renders with the backend that trained it.
    if backend not in ("auto", trained_with):
        raise VistaError(f"{meta_path}: this scene was trained with the {trained_with!r} backend and cannot be "
                         f"loaded with {backend!r} (the MLP weights differ between backends)")
    chosen = resolve_backend(trained_with)
    capture_data = meta.get("capture", {})
    capture = Cameras.from_dict(capture_data, f"{meta_path}: 'capture'")
    names = capture_data.get("names")
    if not isinstance(names, list):
        raise VistaError(f"{meta_path}: 'capture' cameras are malformed (no 'names' list)")
    try:
        scene_from_world = torch.tensor(meta["scene_from_world"], dtype=torch.float32)
        scene = new_scene(config, chosen, meta["kind"], scene_from_world, tuple(meta["background"]), capture, names,
                          str(meta.get("data_source", "")))
        field_state = {k[len("field."):]: v for k, v in state.items() if k.startswith("field.")}
        scene.field.load_state_dict(field_state)
        if scene.proposals is not None:
            scene.proposals.load(state)
        occ = meta.get("occupancy", {})
        density = _occupancy_density(state, scene.grid.resolution, weights_path)
        seen = state.get("occupancy.seen")
        if seen is not None:  # scenes from before the mask have none: every cell can be occupied
            scene.grid.restrict_to(seen.bool())
        scene.grid.restore(density, float(occ.get("threshold") or config.sampling.occupancy_threshold))
        scene.corrections.load(state, str(weights_path))
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        raise VistaError(f"{directory}: scene files are inconsistent ({error})") from error
    scene.step = step
    scene.metrics = meta.get("metrics", {})
    scene.data_hash, scene.heldout_names = _recorded_dataset(meta, meta_path)
    scene.folder = directory
    scene.field.eval()
    return scene


def _occupancy_density(state: dict[str, torch.Tensor], resolution: int, weights_path: Path) -> torch.Tensor:
    """The saved occupancy grid, if it has exactly resolution^3 finite cells (the config's grid_resolution)."""
    density = state.get("occupancy.density")
    if density is None:
        raise VistaError(f"{weights_path}: no occupancy grid ('occupancy.density') in the weights file")
    if density.numel() != resolution**3:
        raise VistaError(f"{weights_path}: the occupancy grid has {density.numel()} cells, but the scene's "
                         f"grid_resolution {resolution} needs {resolution**3}")
    if not density.is_floating_point() or not bool(torch.isfinite(density).all()):
        raise VistaError(f"{weights_path}: the occupancy grid holds NaN, infinity or non-numbers")
    return density


def _without_retired_keys(recorded: object) -> object:
    if not isinstance(recorded, dict):
        return recorded  # config_from_dict names the problem
    config = {k: v for k, v in recorded.items() if k not in RETIRED_CONFIG_KEYS}
    sampling = config.get("sampling")
    if isinstance(sampling, dict) and "unbounded_schedule" not in sampling:
        # scenes from before render/unbounded.py's "contracted" schedule: their occupancy grid was thresholded for
        # the former one, so they keep rendering with it
        config["sampling"] = {**sampling, "unbounded_schedule": "disparity"}
        sampling = config["sampling"]
    if isinstance(sampling, dict) and "unbounded_sampler" not in sampling:
        # scenes from before the proposal sampler: their weights hold no proposal fields
        config["sampling"] = {**sampling, "unbounded_sampler": "occupancy"}
        sampling = config["sampling"]
    if isinstance(sampling, dict) and "far_weight_penalty" not in sampling:
        # proposal scenes from before the far-weight prior keep training as they started
        config["sampling"] = {**sampling, "far_weight_penalty": 0.0}
    return config


def _recorded_dataset(meta: dict, meta_path: Path) -> tuple[str | None, list[str] | None]:
    """The optional 'data_hash' and 'heldout_names' keys (older scene files have neither)."""
    data_hash, heldout = meta.get("data_hash"), meta.get("heldout_names")
    if data_hash is not None and not (isinstance(data_hash, str) and len(data_hash) == 64
                                      and all(c in "0123456789abcdef" for c in data_hash)):
        raise VistaError(f"{meta_path}: 'data_hash' must be a sha256 hex digest")
    if heldout is not None and not (isinstance(heldout, list) and all(isinstance(n, str) for n in heldout)):
        raise VistaError(f"{meta_path}: 'heldout_names' must be a list of file names")
    return data_hash, heldout
