"""The refine's own check along the path (guidance.check), the inpaint-only fixer, the real-photo benchmark's split
and path (bench/guidance_real.py), and procedural seeds that are different scenes."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

from render.cameras import Cameras
from render.config import SamplingConfig
from render.occupancy import OccupancyGrid
from render.render import Renderable

REPO = Path(__file__).resolve().parents[1]


class SlabField:
    """An opaque wall at scene z in [-0.1, 0.1] and, optionally, a faint fog layer at z in [0.4, 0.6] in front of
    it (field coordinates u = (scene + 1) / 2): a floater of known weight."""

    def __init__(self, fog_density: float):
        self.fog_density = fog_density

    def density_and_features(self, u):
        z = u[:, 2] * 2 - 1
        sigma = torch.where(z.abs() <= 0.1, torch.full_like(z, 300.0), torch.zeros_like(z))
        sigma = sigma + torch.where((z >= 0.4) & (z <= 0.6), torch.full_like(z, self.fog_density), torch.zeros_like(z))
        return sigma, u

    def color(self, features, directions):
        return features


def slab_scene(fog_density: float) -> Renderable:
    return Renderable(SlabField(fog_density), OccupancyGrid(16), "object", torch.eye(4), torch.ones(3),
                      SamplingConfig(grid_resolution=16, max_samples_per_ray=512))


def camera_above() -> Cameras:
    """8x8 pixels at z = 3 looking down -z (OpenGL), narrow enough that every ray meets the wall inside the box."""
    pose = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 3]])[None]
    return Cameras.from_fov(pose, 10.0, 8, 8)


def test_floater_share_is_the_weight_in_front_of_the_surface_worked_by_hand():
    from guidance.check import floater_share

    clean = floater_share(slab_scene(0.0), camera_above(), 0)
    # a fog layer 0.2 thick holding 20% of the light: 1 - exp(-sigma * 0.2) = 0.2
    foggy = floater_share(slab_scene(-math.log(0.8) / 0.2), camera_above(), 0)
    assert clean is not None and clean < 0.01
    assert foggy == pytest.approx(0.2, abs=0.03)


def test_floater_share_is_none_where_no_ray_meets_a_surface():
    from guidance.check import floater_share

    class Empty(SlabField):
        def density_and_features(self, u):
            return torch.zeros(len(u)), u

    scene = Renderable(Empty(0.0), OccupancyGrid(16), "object", torch.eye(4), torch.ones(3),
                       SamplingConfig(grid_resolution=16, max_samples_per_ray=64))
    assert floater_share(scene, camera_above(), 0) is None


def test_the_inpaint_fixer_fills_only_holes_without_a_model():
    from guidance.fixers import FIXERS, FixerRequest, build_fixer

    method = FIXERS["inpaint"]
    assert method.default_mask.cues == ("holes",) == FIXERS["prior"].default_mask.cues
    fix = build_fixer("inpaint", FixerRequest()).fix  # no photos, no prior: nothing to train
    generator = torch.Generator().manual_seed(0)
    rgb = torch.rand(24, 32, 3, generator=generator) * 0.1 + 0.5
    mask = torch.zeros(24, 32, dtype=torch.bool)
    mask[8:14, 10:20] = True
    holed = torch.where(mask[..., None], torch.zeros_like(rgb), rgb)
    out = fix(holed, mask, 7)
    assert torch.equal(out[~mask], holed[~mask])
    assert (out[mask] - 0.55).abs().max() < 0.1  # filled from the surroundings, not left black
    assert torch.equal(fix(holed, mask, 8), out)  # deterministic


def test_refine_defaults_come_from_one_config_object():
    import argparse

    import vista.refine
    from guidance.config import RefineConfig
    from guidance.patch_prior import PriorConfig
    from vista_api.refine import RefineRequest

    parser = argparse.ArgumentParser()
    vista.refine.register(parser.add_subparsers())
    args = parser.parse_args(["refine", "scene", "--out", "new"])
    request = RefineRequest(Path("scene"), Path("new"))
    assert (args.steps, args.prior_steps, args.rounds, args.keyframes) == \
        (request.steps, request.prior_steps, request.rounds, request.keyframes) == \
        (RefineConfig.steps, PriorConfig.steps, RefineConfig.rounds, RefineConfig.keyframes)
    config = request.config("prior")
    assert (config.steps, config.keyframes, config.rounds) == (RefineConfig.steps, RefineConfig.keyframes,
                                                               RefineConfig.rounds)


# --- bench/guidance_real.py: the split by where the cameras are, the path through the held-out poses ----------

def _bench():
    """bench/guidance_real.py as a module (bench/ is scripts, not a package)."""
    name = "bench_guidance_real"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "bench" / "guidance_real.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file runs
        spec.loader.exec_module(module)
    return sys.modules[name]


def _arc_data(n: int = 20, span_deg: float = 200.0):
    """Cameras on an arc around the origin, named out of order (so name order is not azimuth order)."""
    from scenes.data import PosedImages, normalize_unbounded
    from tests.support.procedural import look_at

    azimuth = torch.deg2rad(torch.linspace(-span_deg / 2, span_deg / 2, n))
    positions = torch.stack([3 * torch.cos(azimuth), 3 * torch.sin(azimuth), torch.full((n,), 1.0)], -1)
    cameras = Cameras.from_fov(look_at(positions, torch.zeros(3)), 50.0, 16, 12)
    names = [f"img_{(7 * i) % n:02d}" for i in range(n)]
    images = torch.zeros(n, 12, 16, 3, dtype=torch.uint8)
    return PosedImages(cameras, images, names, list(range(n)), [], "unbounded", normalize_unbounded(cameras),
                       (0.0, 0.0, 0.0), "arc"), azimuth


def test_the_benchmark_holds_out_one_contiguous_side_of_the_capture():
    bench = _bench()
    data, azimuth = _arc_data()
    split = bench.split_by_position(data, 0.3, "azimuth", "end")
    assert len(split.path) == 6 and sorted(split.train + split.path) == list(range(20))
    # one contiguous block at one end of the arc, in order along it
    assert split.path in (list(range(14, 20)), list(range(5, -1, -1)))
    middle = bench.split_by_position(data, 0.3, "azimuth", "middle")
    assert sorted(middle.path) == list(range(7, 13))
    by_name = bench.split_by_position(data, 0.3, "capture", "end")
    assert [data.names[i] for i in by_name.path] == sorted(data.names)[-6:]


def test_the_benchmark_path_passes_through_the_held_out_poses_only():
    bench = _bench()
    data, _ = _arc_data()
    held = data.cameras[[14, 15, 16]]
    path = bench.path_through(held, inbetweens=2)
    assert len(path) == 7
    for k in range(3):  # every held-out pose is on the path, the in-betweens lie between them
        assert torch.allclose(path.world_from_camera[3 * k], held.world_from_camera[k], atol=1e-5)
    between = path.positions[1]
    assert (between - held.positions[0]).norm() < (held.positions[1] - held.positions[0]).norm()


# --- the procedural benchmark: each seed its own scene ---------------------------------------------------

def test_procedural_seeds_are_different_scenes_and_seed_0_is_the_fixed_one():
    from tests.support import procedural

    assert procedural.procedural_world(0) is procedural.DEFAULT_WORLD
    worlds = [procedural.procedural_world(seed) for seed in (1, 2, 3)]
    assert procedural.procedural_world(1).boxes == worlds[0].boxes  # deterministic
    for a, b in ((worlds[0], worlds[1]), (worlds[1], worlds[2]), (procedural.DEFAULT_WORLD, worlds[0])):
        assert a.boxes != b.boxes and a.spheres != b.spheres
        assert not torch.allclose(a.texture, b.texture)
    # the same cameras see different pictures: the scene changed, not only the camera wobble
    cameras = procedural.hand_held_arc(2, 24, 18, seed=0)
    truth = [procedural.render_truth(cameras, 0, world=w) for w in (procedural.DEFAULT_WORLD, worlds[0])]
    assert (truth[0].rgb - truth[1].rgb).abs().mean() > 0.05


def _report():
    from bench import guidance_real_report

    return guidance_real_report


def _run(seeds: list[int], offset: float = 0.0, split: str = "a") -> dict:
    """A bench/guidance_real.py result with base, none and inpaint rows per seed (inpaint +1 dB over none)."""
    rows = []
    for seed in seeds:
        for variant, gain in (("base", -0.1), ("none", 0.0), ("inpaint", 1.0)):
            rows.append({"seed": seed, "variant": variant, "path_psnr": 20.0 + gain + offset + seed * 0.1,
                         "path_ssim": 0.7, "floaters": 0.2 - 0.1 * (variant == "inpaint"), "floaters_own": 0.1,
                         "flicker": 0.02, "flicker_compared": 0.5, "train_psnr": 32.0, "seconds": 10.0})
    return {"dataset": "d", "content_hash": "h", "settings": {"steps": 1}, "refine": {"steps": 3},
            "split": {"path": [split]}, "skipped": {}, "rows": rows, "command": f"--seeds {seeds}", "minutes": 1.0}


def test_runs_of_different_seeds_merge_into_one_result_with_means_over_all():
    merged, lines = _report().merge([_run([0]), _run([1, 2])])
    assert sorted({r["seed"] for r in merged["rows"]}) == [0, 1, 2]
    assert merged["means"]["none"]["path_psnr"] == pytest.approx(20.1)  # 20.0, 20.1, 20.2
    assert merged["gate"]["inpaint"]["mean"]["path_psnr"] == pytest.approx(1.0)
    assert merged["gate"]["inpaint"]["mean"]["floaters"] == pytest.approx(-0.5)
    assert [run["command"] for run in merged["runs"]] == ["--seeds [0]", "--seeds [1, 2]"] and merged["minutes"] == 2.0
    assert any("inpaint vs none: path +1.00 dB" in line for line in lines)


def test_runs_that_differ_in_split_or_repeat_a_seed_are_not_merged():
    with pytest.raises(SystemExit, match="split"):
        _report().merge([_run([0]), _run([1], split="b")])
    with pytest.raises(SystemExit, match="seed appears twice"):
        _report().merge([_run([0, 1]), _run([1])])


def test_the_cpu_default_tier_is_geometric_the_best_measured_on_real_photos(monkeypatch):
    from vista_api.refine import GEOMETRIC, TIERS, RefineRequest

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert RefineRequest("scene", "out").resolved_tier() == GEOMETRIC
    assert RefineRequest("scene", "out", model_dir=Path("m")).resolved_tier() == GEOMETRIC  # no CUDA here
    assert RefineRequest("scene", "out", tier="prior").resolved_tier() == "prior"
    assert TIERS == ("auto", "geometric", "inpaint", "prior", "pipeline")
    # the geometric tier is the priors without a fixer, as bench/guidance_real.py's "geometric" variant runs it
    config = RefineRequest("scene", "out").config(GEOMETRIC)
    assert config.fixer == "none" and config.geometric
    # its own weights: no visibility loss (it cost the training views), the smoothness prior at half the fixer tiers'
    fixer_tier = RefineRequest("scene", "out").config("prior")
    assert config.visibility_weight == 0.0 and 0 < config.smoothness_weight < fixer_tier.smoothness_weight
    assert RefineRequest("scene", "out", smoothness_weight=0.01).config(GEOMETRIC).smoothness_weight == 0.01
    # the seen-direction prior: in the geometric tier only (measured there), and the flag overrides it
    assert config.seen_direction_weight > 0 and fixer_tier.seen_direction_weight == 0
    assert RefineRequest("scene", "out", seen_direction_weight=0).config(GEOMETRIC).seen_direction_weight == 0
    from vista_core.errors import VistaError

    with pytest.raises(VistaError, match="seen-direction-weight"):
        RefineRequest("scene", "out", seen_direction_weight=-1)
    assert RefineRequest("scene", "out").config("inpaint").visibility_weight > 0
