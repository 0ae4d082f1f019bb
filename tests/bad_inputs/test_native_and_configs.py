"""The native-code cache, non-finite inputs into the C kernels, config ranges and loaded buffers (issue 23, item 5).

A planted, truncated or foreign-writable kernel library is never loaded; NaN and infinity reach the kernels as
"outside" (no undefined behaviour), exactly as in their PyTorch twins; a scene.json whose config is out of range,
or whose occupancy buffer has the wrong size, is refused with one line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file

from render import march_native, native
from render.cameras import Rays
from render.config import SamplingConfig, VideoConfig
from render.render import march, render_rays
from scenes import hashgrid_fused
from scenes.config import FieldConfig, HashGridConfig, TrainConfig
from scenes.hashgrid import grid_layout, hash_encode_reference, init_table
from tests.bad_inputs.conftest import assert_unchanged, edit_json, refuses, run_vista, snapshot
from tests.test_march import random_rays, scene_with, structured_grid
from vista_core.errors import VistaError

HASHGRID_SOURCE = hashgrid_fused._SOURCE
MARCH_SOURCE = march_native._SOURCE


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh VISTA_CACHE_DIR (not yet created) for this test only."""
    folder = tmp_path / "kernel-cache"
    monkeypatch.setenv("VISTA_CACHE_DIR", str(folder))
    return folder


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the kernel cache --------------------------------------------------------------------------------------


def test_the_cache_folder_is_created_private(cache):
    native.build_library(HASHGRID_SOURCE)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    target = native.library_path(HASHGRID_SOURCE)
    assert (cache / (target.name + ".sha256")).read_text().strip() == _sha256(target)


@pytest.mark.parametrize("record", ["none", "another-hash"])
def test_a_planted_library_is_not_loaded_but_rebuilt(cache, tmp_path, monkeypatch, caplog, record):
    # a real, loadable library of the wrong kernel, planted under the name Vista would load
    monkeypatch.setenv("VISTA_CACHE_DIR", str(tmp_path / "elsewhere"))
    planted = native.library_path(MARCH_SOURCE)
    native.build_library(MARCH_SOURCE)
    monkeypatch.setenv("VISTA_CACHE_DIR", str(cache))
    cache.mkdir(mode=0o700)
    target = native.library_path(HASHGRID_SOURCE)
    shutil.copy(planted, target)
    if record == "another-hash":
        (cache / (target.name + ".sha256")).write_text("0" * 64 + "\n")
    with caplog.at_level(logging.WARNING, logger="vista"):
        library = native.build_library(HASHGRID_SOURCE)
    assert hasattr(library, "hashgrid_forward")  # the genuine kernel, not the planted marcher
    assert target.read_bytes() != planted.read_bytes()
    assert (cache / (target.name + ".sha256")).read_text().strip() == _sha256(target)
    rebuilt = [r.getMessage() for r in caplog.records if "rebuilding" in r.getMessage()]
    assert len(rebuilt) == 1 and target.name in rebuilt[0]


@pytest.mark.parametrize("how", ["hash-mismatch", "recorded-but-unloadable"])
def test_a_truncated_library_is_rebuilt(cache, caplog, how):
    """Truncated after it was recorded (caught by the hash: loading a library cut mid-segment can crash the process
    with SIGBUS, so it must never be tried), or recorded truncated (cut inside its ELF header, so the loader
    refuses it cleanly)."""
    cache.mkdir(mode=0o700)
    target = native.library_path(HASHGRID_SOURCE)
    native._build(HASHGRID_SOURCE, target)  # built and recorded, never loaded by this process
    whole = target.read_bytes()
    target.write_bytes(whole[: len(whole) // 3] if how == "hash-mismatch" else whole[:40])
    if how == "recorded-but-unloadable":
        (cache / (target.name + ".sha256")).write_text(_sha256(target) + "\n")
    with caplog.at_level(logging.WARNING, logger="vista"):
        library = native.build_library(HASHGRID_SOURCE)
    assert hasattr(library, "hashgrid_forward")
    assert len(target.read_bytes()) == len(whole)
    assert (cache / (target.name + ".sha256")).read_text().strip() == _sha256(target)
    expected = "does not match its recorded sha256" if how == "hash-mismatch" else "failed to load"
    assert [r.getMessage() for r in caplog.records if "rebuilding" in r.getMessage()][0].count(expected) == 1


def test_a_cache_folder_others_can_write_to_is_not_used(cache, caplog):
    cache.mkdir()
    cache.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="vista"):
        library = native.build_library(HASHGRID_SOURCE)
    assert hasattr(library, "hashgrid_forward")
    assert list(cache.iterdir()) == []  # nothing built, recorded or loaded from there
    used = native.library_path(HASHGRID_SOURCE).parent
    assert used != cache and stat.S_IMODE(used.stat().st_mode) == 0o700
    warned = [r.getMessage() for r in caplog.records if str(cache) in r.getMessage()]
    assert len(warned) == 1 and "writable by group or others" in warned[0]


# --- non-finite inputs into the C kernels --------------------------------------------------------------------

needs_hashgrid = pytest.mark.skipif(not hashgrid_fused.fused_available(), reason="fused hash grid not built here")
needs_marcher = pytest.mark.skipif(march_native.load() is None, reason="the C marcher could not be built here")


@needs_hashgrid
def test_nan_and_infinite_positions_into_the_hash_grid_kernel():
    config = HashGridConfig(n_levels=6, n_features_per_level=2, log2_hashmap_size=12, base_resolution=4,
                            per_level_scale=2.0)  # dense and hashed levels
    layout = grid_layout(config)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, generator=g)
    bad = [float("nan"), float("inf"), -float("inf"), 3e38, -1e30]
    for i, value in enumerate(bad):
        x[i, i % 3] = value
    table = init_table(layout, 2, g)
    fused_table, plain_table = table.clone().requires_grad_(), table.clone().requires_grad_()
    fused = hashgrid_fused.hash_encode(x, fused_table, layout)
    plain = hash_encode_reference(x, plain_table, layout)
    assert torch.isfinite(fused).all() and torch.isfinite(plain).all()
    # as tests/test_hashgrid.py: equal up to the summation order (the kernel accumulates corner by corner)
    torch.testing.assert_close(fused, plain, rtol=1e-6, atol=1e-6)
    assert (fused[: len(bad)] == 0).all() and (plain[: len(bad)] == 0).all()  # outside at every level
    grad = torch.randn(fused.shape, generator=g)
    fused.backward(grad)
    plain.backward(grad)
    assert torch.isfinite(fused_table.grad).all()
    torch.testing.assert_close(fused_table.grad, plain_table.grad, rtol=1e-5, atol=1e-5)
    # the finite points are encoded exactly as without the bad ones beside them
    assert torch.equal(hashgrid_fused.hash_encode(x[len(bad):], table, layout), fused[len(bad):].detach())


def _rays_with_nan(g: torch.Generator) -> Rays:
    rays = random_rays(400, g)
    origins, directions = rays.origins.clone(), rays.directions.clone()
    origins[0, 0] = float("nan")
    directions[1, 2] = float("nan")
    origins[2] = float("inf")
    directions[3] = torch.tensor([float("inf"), 0.0, 0.0])
    origins[4, 1] = 1e38  # finite, but its box interval overflows
    return Rays(origins, directions)


@needs_marcher
def test_nan_rays_into_the_marcher_match_the_twin(monkeypatch):
    g = torch.Generator().manual_seed(5)
    scene = scene_with(structured_grid(64, g), g)
    rays = _rays_with_nan(g)
    shift = torch.rand(len(rays), generator=g)
    shift[5] = float("nan")
    native_samples = march(scene, rays, shift)
    monkeypatch.setattr(march_native, "load", lambda: None)
    plain = march(scene, rays, shift)
    for a, b in [(native_samples.ray_indices, plain.ray_indices), (native_samples.t_starts, plain.t_starts),
                 (native_samples.t_ends, plain.t_ends), (native_samples.u, plain.u)]:
        assert torch.equal(a, b)
    assert native_samples.u.shape[0] > 1000 and torch.isfinite(native_samples.u).all()
    assert not (native_samples.ray_indices < 6).any()  # the bad rays keep no samples
    with torch.no_grad():
        out = render_rays(scene, rays)
    assert torch.isfinite(out.rgb).all() and torch.isfinite(out.depth).all()


@needs_marcher
def test_the_c_marcher_itself_skips_rays_with_non_finite_inputs():
    """Called directly with steps to take (the caller's guard bypassed), a bad ray still keeps nothing."""
    g = torch.Generator().manual_seed(6)
    grid = structured_grid(64, g)
    grid.occupied = torch.ones_like(grid.occupied)
    n = 6
    origins = torch.full((n, 3), -2.0)
    directions = torch.tensor([[1.0, 0.0, 0.0]]).repeat(n, 1)
    t_near, t_far = torch.full((n,), 1.0), torch.full((n,), 3.0)
    shift, n_steps = torch.full((n,), 0.5), torch.full((n,), 50, dtype=torch.int64)
    origins[0, 0] = float("nan")
    directions[1, 1] = float("inf")
    t_near[2] = float("nan")
    t_far[3] = float("inf")
    shift[4] = float("nan")
    ray, starts, ends, u = march_native.march_object_native(origins, directions, t_near, t_far, shift, n_steps,
                                                            grid, 2.0 / 50)
    assert set(ray.tolist()) == {5}  # only the clean ray
    assert torch.isfinite(u).all() and torch.isfinite(starts).all() and torch.isfinite(ends).all()


# --- config ranges -------------------------------------------------------------------------------------------

CONFIG_CASES = {
    "update-every-0": (lambda: SamplingConfig(update_every=0), "update_every"),
    "grid-resolution-huge": (lambda: SamplingConfig(grid_resolution=100_000), "grid_resolution"),
    "max-samples-0": (lambda: SamplingConfig(max_samples_per_ray=0), "max_samples_per_ray"),
    "threshold-nan": (lambda: SamplingConfig(occupancy_threshold=float("nan")), "occupancy_threshold"),
    "hashmap-too-big": (lambda: HashGridConfig(log2_hashmap_size=40), "log2_hashmap_size"),
    "finest-level-huge": (lambda: HashGridConfig(n_levels=32, per_level_scale=4.0), "per_level_scale"),
    "width-huge": (lambda: FieldConfig(hidden_dim=1 << 20), "hidden_dim"),
    "learning-rate-0": (lambda: TrainConfig(learning_rate=0.0), "learning_rate"),
    "checkpoint-every-0": (lambda: TrainConfig(checkpoint_every=0), "checkpoint_every"),
    "x264-preset-typo": (lambda: VideoConfig(x264_preset="fastest"), "x264_preset"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_out_of_range(case):
    build, field = CONFIG_CASES[case]
    with pytest.raises(VistaError, match=field) as raised:
        build()
    assert "\n" not in str(raised.value)


def test_update_every_zero_in_a_scene_json(scene_copy):
    edit_json(scene_copy / "scene.json", lambda m: m["config"]["sampling"].update(update_every=0))
    before = snapshot(scene_copy)
    result = run_vista("info", scene_copy, real_process=True)
    assert result.returncode == 2 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "scene.json" in lines[0] and "update_every" in lines[0], result.stderr
    assert_unchanged(before)


def test_a_huge_grid_resolution_in_a_scene_json(scene_copy):
    edit_json(scene_copy / "scene.json", lambda m: m["config"]["sampling"].update(grid_resolution=1 << 20))
    stderr = refuses("info", scene_copy, needles=("scene.json", "grid_resolution"), protect=(scene_copy,))
    assert len(stderr.strip().splitlines()) == 1


# --- loaded buffers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["wrong-size", "nan", "missing"])
def test_a_bad_occupancy_buffer_in_the_weights_file(scene_copy, damage):
    weights = scene_copy / "field.safetensors"
    state = load_file(str(weights))
    with open(weights, "rb") as handle:  # keep the step, so only the buffer is wrong
        header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
    density = state["occupancy.density"]
    if damage == "wrong-size":
        state["occupancy.density"] = torch.zeros(density.numel() // 8)
    elif damage == "nan":
        state["occupancy.density"] = torch.full_like(density, float("nan"))
    else:
        del state["occupancy.density"]
    save_file(state, str(weights), metadata=header["__metadata__"])
    stderr = refuses("info", scene_copy, needles=("field.safetensors", "occupancy"), protect=(scene_copy,))
    assert len(stderr.strip().splitlines()) == 1
