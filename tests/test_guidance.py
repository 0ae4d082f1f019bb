"""Guidance (issue 6): masks, priors, the Tier-1 patch prior, the Tier-2 pipeline loader, the refine loop and CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch

from guidance.masks import MaskConfig, covering_cameras, uncertainty_mask
from guidance.patch_prior import (PriorConfig, fix_masked, load_patch_prior, save_patch_prior, score_gradient,
                                  train_patch_prior)
from guidance.priors import (SupervisedRays, inverse_depth_roughness, inverse_z_depth, scene_from_field, uncontract,
                             visibility_loss)
from guidance.views import RenderedView
from render.cameras import Cameras
from vista_core.errors import VistaError
from render.render import field_coords

TINY_PRIOR = PriorConfig(steps=4, batch_size=4, block_out_channels=(16, 32), seed=0)


def _camera_at_origin_looking_down_minus_z(width=8, height=6) -> Cameras:
    pose = torch.cat([torch.eye(3), torch.zeros(3, 1)], dim=1)[None]
    return Cameras.from_fov(pose, 60.0, width, height)


# ---------------------------------------------------------------- masks

def test_covering_cameras_counts_frustums_by_hand():
    camera = _camera_at_origin_looking_down_minus_z()
    points = torch.tensor([[0.0, 0.0, -2.0],   # straight ahead: seen
                           [0.0, 0.0, 2.0],    # behind the camera
                           [50.0, 0.0, -1.0],  # far outside the 60 degree view
                           [0.2, -0.1, -1.0]])  # inside
    assert covering_cameras(points, camera).tolist() == [1, 0, 0, 1]
    two = Cameras.from_fov(torch.cat([camera.world_from_camera, camera.world_from_camera]), 60.0, 8, 6)
    assert covering_cameras(points, two).tolist() == [2, 0, 0, 2]


def test_uncertainty_mask_flags_holes_unseen_points_and_unstable_depth():
    camera = _camera_at_origin_looking_down_minus_z(8, 6)
    depth = torch.full((6, 8), 2.0)
    opacity = torch.ones(6, 8)
    opacity[0, 0] = 0.2  # a hole
    jittered = depth.clone()
    jittered[5, 7] = 3.0  # depth jumps by a third when samples move: unstable
    view = RenderedView(torch.zeros(6, 8, 3), depth, opacity)
    config = MaskConfig(min_cameras=1, dilate_px=0)
    mask = uncertainty_mask(view, jittered, camera, 0, camera, config)
    assert mask.low_opacity[0, 0] and mask.low_opacity.sum() == 1
    assert mask.unstable[5, 7] and mask.unstable.sum() == 1
    assert not mask.uncovered.any()  # the capture camera is the camera itself: everything seen once
    assert mask.mask.sum() == 2
    # seen by one camera but two required: every opaque pixel is uncovered
    strict = uncertainty_mask(view, jittered, camera, 0, camera, dataclasses.replace(config, min_cameras=2))
    assert strict.uncovered.sum() == 47
    dilated = uncertainty_mask(view, jittered, camera, 0, camera, dataclasses.replace(config, dilate_px=1))
    assert dilated.mask.sum() == 4 + 4  # two corner pixels grow into 2x2 blocks
    holes_config = dataclasses.replace(config, cues=("holes",))
    holes_only = uncertainty_mask(view, jittered, camera, 0, camera, holes_config)
    assert holes_only.mask.sum() == 1 and holes_only.mask[0, 0]
    # Tier 1 skips the second render: without it the unstable cue is off, and asking for it is an error
    assert torch.equal(uncertainty_mask(view, None, camera, 0, camera, holes_config).mask, holes_only.mask)
    with pytest.raises(ValueError, match="second, shifted render"):
        uncertainty_mask(view, None, camera, 0, camera, config)
    # an object capture: a ray that meets nothing is right, not a hole
    empty_ok = uncertainty_mask(view, jittered, camera, 0, camera, config, empty_is_valid=True)
    assert not empty_ok.low_opacity.any() and empty_ok.mask.sum() == 1 and empty_ok.mask[5, 7]
    with pytest.raises(ValueError, match="mask cues"):
        MaskConfig(cues=("holes", "floaters"))


# ---------------------------------------------------------------- priors

def test_uncontract_inverts_the_scene_contraction():
    points = torch.tensor([[0.3, -0.2, 0.1], [3.0, 0.5, -1.0], [-20.0, 4.0, 7.0]])
    u = field_coords(points, "unbounded")
    assert torch.allclose(scene_from_field(u, "unbounded"), points, rtol=1e-4, atol=1e-5)
    assert torch.allclose(uncontract(torch.tensor([[0.5, 0.0, 0.0]])), torch.tensor([[0.5, 0.0, 0.0]]))


def _tiny_scene(kind="object"):
    from scenes.config import preset_config
    from scenes.scene import new_scene

    config = preset_config("test", seed=0)
    camera = _camera_at_origin_looking_down_minus_z()
    return new_scene(config, "torch", kind, torch.eye(4), (1.0, 1.0, 1.0), camera, ["a"], "test")


def test_visibility_loss_pushes_density_out_of_unseen_space():
    scene = _tiny_scene()
    renderable = scene.renderable()
    # a camera far away looking away from the box: nothing in the box is seen
    pose = torch.cat([torch.eye(3), torch.tensor([[0.0], [0.0], [-10.0]])], dim=1)[None]
    blind = Cameras.from_fov(pose, 30.0, 8, 8)
    generator = torch.Generator().manual_seed(0)
    term = visibility_loss(renderable, blind, 2048, generator)
    assert term.unseen_fraction == 1.0 and term.loss.item() > 0
    term.loss.backward()
    grads = [p.grad for p in scene.field.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    optimizer = torch.optim.Adam(scene.field.parameters(), lr=1e-2)
    first = term.loss.item()
    for _ in range(20):
        optimizer.zero_grad()
        loss = visibility_loss(renderable, blind, 2048, generator).loss
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    # a narrow camera just above the box sees a cone of it: some points unseen, not all
    seen = visibility_loss(renderable, Cameras.from_fov(torch.cat([torch.eye(3), torch.tensor([[0.], [0.], [1.5]])],
                                                                  1)[None], 30.0, 8, 8), 2048, generator)
    assert 0.0 < seen.unseen_fraction < 1.0


def test_only_supervised_pixels_of_pseudo_views_count_as_seen():
    camera = _camera_at_origin_looking_down_minus_z(8, 6)
    supervised = torch.zeros(1, 6, 8, dtype=torch.bool)
    supervised[0, :, :4] = True  # the left half of the image (x < 0 in the camera)
    rays = SupervisedRays(camera, supervised)
    points = torch.tensor([[-0.3, 0.0, -2.0],  # left half: supervised
                           [0.3, 0.0, -2.0],   # right half: in the frustum, but nothing trains there
                           [-0.3, 0.0, 2.0],   # behind the camera
                           [-50.0, 0.0, -1.0]])  # outside the image
    assert rays.covers(points).tolist() == [True, False, False, False]
    # a point the capture never sees stops costing visibility once a supervised pixel covers it
    scene = _tiny_scene()
    pose = torch.cat([torch.eye(3), torch.tensor([[0.0], [0.0], [-10.0]])], dim=1)[None]
    blind = Cameras.from_fov(pose, 30.0, 8, 8)
    above = Cameras.from_fov(torch.cat([torch.eye(3), torch.tensor([[0.], [0.], [1.5]])], 1)[None], 30.0, 8, 8)
    everywhere = SupervisedRays(above, torch.ones(1, 8, 8, dtype=torch.bool))
    nowhere = SupervisedRays(above, torch.zeros(1, 8, 8, dtype=torch.bool))
    alone = visibility_loss(scene.renderable(), blind, 2048, torch.Generator().manual_seed(0), also_seen=nowhere)
    helped = visibility_loss(scene.renderable(), blind, 2048, torch.Generator().manual_seed(0), also_seen=everywhere)
    assert alone.unseen_fraction == 1.0 and 0.0 < helped.unseen_fraction < 1.0


# ---------------------------------------------------------------- Tier 1: the patch prior

@pytest.fixture(scope="module")
def photos():
    generator = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(5, 3, 6, 8, generator=generator), size=(36, 48),
                                             mode="bilinear", align_corners=False)
    return (smooth.permute(0, 2, 3, 1) * 255).to(torch.uint8)


@pytest.fixture(scope="module")
def tiny_prior(photos):
    torch.set_num_threads(1)
    return train_patch_prior(photos, TINY_PRIOR)


def test_patch_prior_trains_and_refuses_too_few_photos(photos, tiny_prior):
    assert tiny_prior.info["photos"] == 5 and tiny_prior.info["final_loss"] < 2.0
    with pytest.raises(VistaError, match="at least 4 photos"):
        train_patch_prior(photos[:2], TINY_PRIOR, source="two.png")
    with pytest.raises(VistaError, match="32x32"):
        train_patch_prior(photos[:, :16, :16], TINY_PRIOR)


def test_a_default_patch_prior_has_about_a_million_parameters():
    from guidance.patch_prior import _make_unet

    n = sum(p.numel() for p in _make_unet(PriorConfig()).parameters())
    assert 0.8e6 < n < 1.3e6


def test_fixer_changes_only_masked_pixels_and_is_deterministic(tiny_prior, tmp_path):
    generator = torch.Generator().manual_seed(1)
    rgb = torch.rand(36, 48, 3, generator=generator)
    mask = torch.zeros(36, 48, dtype=torch.bool)
    mask[5:15, 20:40] = True
    fixed = fix_masked(tiny_prior, rgb, mask, timestep=200, seed=3)
    assert torch.equal(fixed[~mask], rgb[~mask])
    assert (fixed[mask] - rgb[mask]).abs().mean() > 1e-3
    assert torch.equal(fixed, fix_masked(tiny_prior, rgb, mask, timestep=200, seed=3))
    assert torch.equal(fix_masked(tiny_prior, rgb, torch.zeros_like(mask)), rgb)
    save_patch_prior(tiny_prior, tmp_path / "prior")
    loaded = load_patch_prior(tmp_path / "prior")
    assert torch.equal(fix_masked(loaded, rgb, mask, timestep=200, seed=3), fixed)
    (tmp_path / "prior" / "unet.safetensors").write_bytes(b"junk")
    with pytest.raises(VistaError, match="unet.safetensors"):
        load_patch_prior(tmp_path / "prior")


def test_score_gradient_reaches_rendered_pixels(tiny_prior):
    patch = torch.rand(2, 3, 32, 32, requires_grad=True)
    gradient = score_gradient(tiny_prior, patch, torch.Generator().manual_seed(0))
    assert gradient.shape == patch.shape and torch.isfinite(gradient).all()
    (gradient * patch).sum().backward()
    assert torch.allclose(patch.grad, gradient)


# ---------------------------------------------------------------- Tier 2: a tiny random img2img pipeline

def build_tiny_pipeline(folder: Path, text_to_image: bool = True) -> Path:
    """A random-weight Stable Diffusion pipeline from configs, tokenizer written locally (as diffusers' tests do,
    minus the download of their tiny tokenizer)."""
    from diffusers import (AutoencoderKL, PNDMScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    tokens = folder / "tokenizer-source"
    tokens.mkdir(parents=True)
    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    (tokens / "vocab.json").write_text(json.dumps(vocab))
    (tokens / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(tokens / "vocab.json"), str(tokens / "merges.txt"), model_max_length=77)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=[16, 32], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        norm_num_groups=8)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"],
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, vocab_size=len(vocab),
        max_position_embeddings=77))
    cls = StableDiffusionPipeline if text_to_image else StableDiffusionImg2ImgPipeline
    pipe = cls(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
               scheduler=PNDMScheduler(skip_prk_steps=True), safety_checker=None, feature_extractor=None,
               requires_safety_checker=False)
    out = folder / "pipeline"
    pipe.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def tiny_pipeline_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return build_tiny_pipeline(tmp_path_factory.mktemp("pipe"))


def test_tier2_loads_a_local_pipeline_and_fixes_only_masked_pixels(tiny_pipeline_dir):
    from guidance.pipeline import load_img2img_pipeline, pipeline_fixer

    pipe = load_img2img_pipeline(tiny_pipeline_dir, device="cpu")  # text-to-image folder, img2img pipeline
    assert type(pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    fix = pipeline_fixer(pipe, strength=0.5, num_inference_steps=4)
    rgb = torch.rand(36, 48, 3, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(36, 48, dtype=torch.bool)
    mask[10:20, 10:30] = True
    fixed = fix(rgb, mask, 7)
    assert torch.equal(fixed[~mask], rgb[~mask])
    assert (fixed[mask] - rgb[mask]).abs().mean() > 1e-3
    assert torch.equal(fix(rgb, mask, 7), fixed)  # fixed seed per keyframe


def test_tier2_bad_model_folders_are_clear_errors(tiny_pipeline_dir, tmp_path):
    import shutil

    from guidance.pipeline import check_model_folder, load_img2img_pipeline, require_cuda

    with pytest.raises(VistaError, match="model folder not found"):
        check_model_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VistaError, match="no model_index.json"):
        check_model_folder(tmp_path / "empty")
    incomplete = tmp_path / "incomplete"
    shutil.copytree(tiny_pipeline_dir, incomplete)
    shutil.rmtree(incomplete / "unet")
    with pytest.raises(VistaError, match="missing component folder.*unet"):
        load_img2img_pipeline(incomplete, device="cpu")
    wrong = tmp_path / "wrong"
    shutil.copytree(tiny_pipeline_dir, wrong)
    index = json.loads((wrong / "model_index.json").read_text())
    index["_class_name"] = "DDPMPipeline"  # an unconditional pipeline: no image-to-image variant
    (wrong / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(VistaError, match="no image-to-image variant"):
        load_img2img_pipeline(wrong, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(VistaError, match="needs a CUDA GPU"):
            require_cuda()


# ---------------------------------------------------------------- the loop, on the procedural scene

def test_procedural_scene_has_exact_depth():
    from tests.support.procedural import LOOK_AT, cast, render_truth
    from render.cameras import Rays

    # straight down onto the ground from 2 units up (away from the objects): depth 2
    hit = cast(Rays(torch.tensor([[6.0, 6.0, 2.0]]), torch.tensor([[0.0, 0.0, -1.0]])))
    assert hit.depth.item() == pytest.approx(2.0)
    # up into the sky: no surface
    assert torch.isinf(cast(Rays(torch.tensor([[6.0, 6.0, 2.0]]), torch.tensor([[0.0, 0.0, 1.0]]))).depth).all()
    # toward the central box (half-depth 0.5 along x after its 20 degree yaw is at most 0.61 from its centre)
    hit = cast(Rays(torch.tensor([[4.0, 0.0, 0.5]]), torch.tensor([[-1.0, 0.0, 0.0]])))
    assert 3.3 < hit.depth.item() < 3.6
    assert LOOK_AT.shape == (3,)
    cameras = Cameras.from_fov(torch.cat([torch.eye(3), torch.tensor([[0.0], [-6.0], [1.0]])], 1)[None], 50.0, 8, 6)
    assert render_truth(cameras, 0).rgb.shape == (6, 8, 3)


def test_depth_roughness_spares_planes_at_any_slant_and_charges_fuzz():
    from tests.support.procedural import cast, look_at
    from render.cameras import image_rays

    def inverse_z(position: list[float], target: list[float]) -> torch.Tensor:
        pose = look_at(torch.tensor([position]), torch.tensor(target))
        camera = Cameras.from_fov(pose, 40.0, 16, 16)
        rays = image_rays(camera, 0)
        depth = cast(rays).depth
        assert torch.isfinite(depth).all()
        return depth, inverse_z_depth(depth, rays.directions, -pose[0, :3, 2])

    # the procedural ground (z = 0, away from the objects) seen from steep and from grazing angles
    for position, target in [([8.0, 8.0, 3.0], [8.5, 8.5, 0.0]), ([8.0, 8.0, 0.6], [9.0, 9.0, 0.0])]:
        depth, inv = inverse_z(position, target)
        assert depth.max() > 1.15 * depth.min()  # a slanted view: depth itself is far from constant
        assert inverse_depth_roughness(inv.reshape(16, 16)).item() < 1e-4
        # RegNeRF's first differences of depth would charge this plane; second differences of 1/z do not
        assert (depth.reshape(16, 16).diff(dim=0).abs().mean() / depth.mean()).item() > 0.01
    # the same ground with its depth shaken by 3% per pixel (a fuzzy layer) costs clearly more
    generator = torch.Generator().manual_seed(0)
    fuzzy = inv * (1 + 0.03 * torch.randn(inv.shape, generator=generator))
    assert inverse_depth_roughness(fuzzy.reshape(16, 16)).item() > 0.05
    # rays that hit nothing (an object's background: depth 0, so 1/z = 1000) do not count
    opacity = torch.ones(16, 16)
    opacity[:, :7] = 0.0
    empty = inv.reshape(16, 16).clone()
    empty[:, :7] = 1000.0
    assert inverse_depth_roughness(empty, opacity).item() < 1e-4
    assert inverse_depth_roughness(empty).item() > 0.02


def test_depth_roughness_leaves_real_edges_and_gentle_curvature_alone():
    y, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    # a box's face in front of a slanted plane: a clean step of 50% in 1/z
    step = (0.5 + 0.01 * y + 0.5 * (x >= 8)).requires_grad_(True)
    inverse_depth_roughness(step).backward()
    # beyond the cap the edge costs a constant: no gradient would flatten it (plain L1 would push on 2 columns)
    assert step.grad.abs().max().item() < 1e-6
    # a sphere-like bump bending 1/z by 0.2% per pixel^2 costs under 15% of what plain L1 charges it; 3% fuzz on the
    # same bump still costs over ten times as much
    bump = 1.0 + 0.001 * ((x - 7.5) ** 2 + (y - 7.5) ** 2)
    l1_bump = 2 * 0.002 / bump.mean()
    assert inverse_depth_roughness(bump).item() < 0.15 * l1_bump.item()
    generator = torch.Generator().manual_seed(0)
    fuzzy = bump * (1 + 0.03 * torch.randn(bump.shape, generator=generator))
    assert inverse_depth_roughness(fuzzy).item() > 10 * inverse_depth_roughness(bump).item()


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """A base scene trained briefly on the procedural arc (shared by the loop and CLI tests)."""
    from tests.support.procedural import synthetic_capture
    from scenes.config import preset_config
    from scenes.train import train_scene

    torch.set_num_threads(1)
    capture = synthetic_capture(n_train=8, width=40, height=32, n_path=4)
    base = preset_config("test", steps=120, seed=0)
    config = dataclasses.replace(base, rays_per_step=512, checkpoint_every=10**6,
                                 sampling=dataclasses.replace(base.sampling, max_samples_per_ray=64,
                                                              grid_resolution=32, warmup_steps=32))
    folder = tmp_path_factory.mktemp("guidance") / "base"
    scene = train_scene(capture.data, folder, config, show_progress=False)
    return capture, scene, folder


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*")) if p.is_file()}


def test_refine_loop_smoke_masks_fixes_and_never_touches_the_original(small_world, tiny_prior, tmp_path):
    from guidance.refine import RefineConfig, refine_scene
    from guidance.views import render_view
    from scenes.evaluate import psnr
    from scenes.scene import load_scene

    capture, scene, folder = small_world
    before = _digest(folder)
    weights_before = {k: v.clone() for k, v in scene.field.state_dict().items()}
    # all three cues, so that the fixer has pixels to fix after only 12 steps (the Tier-1 default fixes holes)
    config = RefineConfig(steps=12, rounds=2, keyframes=2, score_weight=0.02, score_every=6, pseudo_rays=256,
                          visibility_points=1024, mask=MaskConfig())
    fixer_calls = []

    def fixer(rgb, mask, seed):
        fixer_calls.append(float(mask.float().mean()))
        return fix_masked(tiny_prior, rgb, mask, seed=seed)

    refined, report = refine_scene(scene, capture.data, capture.path, config, tmp_path / "refined",
                                   fixer=fixer, prior=tiny_prior, source_dir=folder, show_progress=False)
    assert _digest(folder) == before
    assert all(torch.equal(v, weights_before[k]) for k, v in scene.field.state_dict().items())
    assert len(fixer_calls) == 4 and len(report.rounds) == 2
    # the pulled-back views show ground no arc photo saw: the mask must find it
    assert max(fixer_calls) > 0.01
    assert refined.step == scene.step + 12
    reloaded = load_scene(tmp_path / "refined")
    assert json.loads((tmp_path / "refined" / "refine.json").read_text())["config"]["steps"] == 12
    last = len(capture.path) - 1
    image = render_view(reloaded.renderable(), capture.path, last).rgb
    assert torch.isfinite(image).all()
    # 12 steps cannot make it much better, but they must not wreck it
    base_psnr = psnr(render_view(scene.renderable(), capture.path, last).rgb, capture.path_truth[last].rgb)
    assert psnr(image, capture.path_truth[last].rgb) > base_psnr - 1.0
    with pytest.raises(VistaError, match="already holds a scene"):
        refine_scene(scene, capture.data, capture.path, config, tmp_path / "refined", fixer=fixer, prior=tiny_prior)


def test_a_stopped_refine_writes_nothing(small_world, tmp_path):
    """The app's Cancel raises from the step callback: the new folder is never written, the original is kept."""
    from guidance.refine import RefineConfig, refine_scene

    capture, scene, folder = small_world
    before = _digest(folder)
    calls = []

    class Stop(Exception):
        pass

    def on_step(done: int, total: int) -> None:
        calls.append((done, total))
        if done == 3:
            raise Stop

    config = RefineConfig(steps=6, rounds=2, keyframes=1, fixer="none", visibility_points=256)
    with pytest.raises(Stop):
        refine_scene(scene, capture.data, capture.path, config, tmp_path / "refined", source_dir=folder,
                     show_progress=False, on_step=on_step)
    assert calls == [(1, 6), (2, 6), (3, 6)]
    assert not (tmp_path / "refined").exists()
    assert _digest(folder) == before


def test_vista_refine_cli_and_its_bad_input(small_world, tmp_path, capsys):
    import vista

    capture, scene, folder = small_world
    before = _digest(folder)
    # the refined scene may not replace the original
    assert vista.main(["refine", str(folder), "--out", str(folder), "--steps", "3"]) == 2
    assert "new folder" in capsys.readouterr().err
    # GPU tier without a model folder / without CUDA
    assert vista.main(["refine", str(folder), "--out", str(tmp_path / "a"), "--tier", "pipeline"]) == 2
    assert "--model-dir" in capsys.readouterr().err
    assert vista.main(["refine", str(folder), "--out", str(tmp_path / "b"), "--tier", "pipeline",
                       "--model-dir", str(tmp_path / "missing")]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # a path file that is not there
    assert vista.main(["refine", str(folder), "--out", str(tmp_path / "c"), "--path", str(tmp_path / "p.json")]) == 2
    assert "path file not found" in capsys.readouterr().err
    assert _digest(folder) == before


@pytest.mark.slow
def test_vista_refine_runs_end_to_end_on_a_dataset(tmp_path, capsys):
    """lego-100, a scene trained for a few steps, the CPU tier with a few prior steps: a new scene folder."""
    from tests.conftest import shared_dataset

    import vista

    data = shared_dataset("lego-100")
    scene_dir = tmp_path / "scene"
    assert vista.main(["train", str(data), "--out", str(scene_dir), "--preset", "test", "--steps", "20",
                       "--no-eval"]) == 0
    before = _digest(scene_dir)
    out = tmp_path / "refined"
    code = vista.main(["refine", str(scene_dir), "--out", str(out), "--steps", "4", "--prior-steps", "2",
                       "--rounds", "2", "--keyframes", "1"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "no --path given: guiding along the capture trajectory" in text
    assert (out / "scene.json").is_file() and (out / "patch-prior" / "prior.json").is_file()
    assert _digest(scene_dir) == before


def test_the_polish_steps_train_on_the_photos_and_the_visibility_loss_alone(small_world, monkeypatch):
    import guidance.refine as refine
    from guidance.refine import RefineConfig, refine_scene

    capture, scene, _ = small_world
    calls = {"smoothness": 0, "visibility": 0}
    smoothness, visibility = refine.smoothness_patch_loss, refine.visibility_loss

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(refine, "smoothness_patch_loss", counted("smoothness", smoothness))
    monkeypatch.setattr(refine, "visibility_loss", counted("visibility", visibility))
    config = RefineConfig(steps=8, rounds=2, keyframes=1, fixer="none", visibility_points=256, polish_fraction=0.25)
    refine_scene(scene, capture.data, capture.path, config, None, show_progress=False)
    assert calls == {"smoothness": 6, "visibility": 8}
    with pytest.raises(ValueError, match="polish_fraction"):
        RefineConfig(polish_fraction=1.0)
