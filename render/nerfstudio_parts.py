"""The only module that imports nerfstudio: the parts of it Vista reuses.

nerfstudio supplies the maths whose conventions we want to share exactly (OpenCV distortion
inversion, mip-NeRF 360 scene contraction, spherical-harmonics direction encoding). Its framework
(DataManager/Pipeline/Trainer) is not used. Imports are lazy so `render` imports fast.
"""

from __future__ import annotations

import torch


def undistort_normalized(coords: torch.Tensor, distortion: torch.Tensor) -> torch.Tensor:
    """Invert OpenCV radial+tangential distortion on normalised image coords [..., 2].

    `distortion` is nerfstudio's [..., 6] = (k1, k2, k3, k4, p1, p2).
    """
    from nerfstudio.cameras.camera_utils import radial_and_tangential_undistort

    return radial_and_tangential_undistort(coords, distortion)


def contract(positions: torch.Tensor) -> torch.Tensor:
    """mip-NeRF 360 contraction with the L-inf norm (nerfstudio's recommendation for hash grids):
    the unit cube stays, everything else maps into the cube of side 4.

    nerfstudio's `SceneContraction(order=inf)` formula, with the norm taken as `abs().amax()` instead of
    `torch.linalg.norm(ord=inf)`: the same values bit for bit (tests/test_unbounded_sampler.py), ~3-8x faster on
    this CPU (measured on 393k points: 13-75 ms against 94-102 ms), and the proposal sampler contracts every one of
    its ~100 samples per ray."""
    mag = positions.abs().amax(dim=-1, keepdim=True)
    return torch.where(mag < 1, positions, (2 - 1 / mag) * (positions / mag))


def contract_nerfstudio(positions: torch.Tensor) -> torch.Tensor:
    """nerfstudio's own `SceneContraction(order=inf)`, which `contract` reproduces (the tests compare the two)."""
    from nerfstudio.field_components.spatial_distortions import SceneContraction

    return SceneContraction(order=float("inf"))(positions)


def spherical_harmonics(directions: torch.Tensor, degree: int) -> torch.Tensor:
    """Real SH basis up to `degree` (degree**2 components) of unit directions [..., 3]."""
    from nerfstudio.utils.math import components_from_spherical_harmonics

    return components_from_spherical_harmonics(degree, directions)


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    """exp with a clamped gradient (Instant-NGP's density activation), nerfstudio's implementation."""
    from nerfstudio.field_components.activations import trunc_exp as _trunc_exp

    return _trunc_exp(x)


def focus_of_attention(world_from_camera: torch.Tensor) -> torch.Tensor:
    """The point [3] nearest every camera's view axis, among the cameras that look towards it (nerfstudio's
    `focus_of_attention`, the same as multinerf's and LLFF's): where the photographer pointed the camera."""
    from nerfstudio.cameras.camera_utils import focus_of_attention as _focus

    poses = world_from_camera[:, :3, :4].float().cpu()
    return _focus(poses, poses[:, :, 3].mean(dim=0))


def exp_map_so3xr3(tangent: torch.Tensor) -> torch.Tensor:
    """[N, 6] (translation, axis-angle rotation) -> [N, 3, 4] (rotation | translation): nerfstudio's camera
    optimizer parametrisation (SO(3) x R^3, `nerfstudio.cameras.lie_groups.exp_map_SO3xR3`)."""
    from nerfstudio.cameras.lie_groups import exp_map_SO3xR3

    return exp_map_SO3xR3(tangent)


class ProposalSampler:
    """mip-NeRF 360's proposal sampling as nerfacto does it, with nerfstudio's own pieces: lin-disp bins
    (`UniformLinDispPiecewiseSampler`), then each proposal pass's weights resampled by inverse CDF (`PDFSampler`),
    then the NeRF's samples; the interlevel loss (`interlevel_loss`) trains the proposal densities to bound the
    NeRF's weights from above, and `distortion_loss` is mip-NeRF 360's on the final samples."""

    def __init__(self, proposal_samples: tuple[int, ...], nerf_samples: int):
        from nerfstudio.model_components.ray_samplers import ProposalNetworkSampler

        self.sampler = ProposalNetworkSampler(num_proposal_samples_per_ray=proposal_samples,
                                              num_nerf_samples_per_ray=nerf_samples,
                                              num_proposal_network_iterations=len(proposal_samples),
                                              single_jitter=True, update_sched=lambda step: 1)

    def sample(self, origins: torch.Tensor, directions: torch.Tensor, near: float, far: float, density_fns: list,
               stratified: bool, anneal: float = 1.0):
        """(nerfstudio RaySamples [R, S], proposal weights list, proposal RaySamples list); each pass's weights are
        raised to `anneal` before resampling (nerfacto's proposal weight annealing)."""
        from nerfstudio.cameras.rays import RayBundle

        n = origins.shape[0]
        bundle = RayBundle(origins=origins, directions=directions, pixel_area=origins.new_ones(n, 1),
                           nears=origins.new_full((n, 1), near), fars=origins.new_full((n, 1), far))
        self.sampler.train(stratified)
        self.sampler.set_anneal(anneal)
        return self.sampler.generate_ray_samples(bundle, density_fns=density_fns)


def sample_weights(ray_samples, density: torch.Tensor) -> torch.Tensor:
    """[R, S, 1] compositing weights of densities [R, S, 1] at `ray_samples` (nerfstudio's `get_weights`)."""
    return ray_samples.get_weights(density)


def interlevel_and_distortion(weights_list: list, samples_list: list) -> tuple[torch.Tensor, torch.Tensor]:
    """mip-NeRF 360's interlevel (proposal) loss and distortion loss, nerfstudio's implementations."""
    from nerfstudio.model_components.losses import distortion_loss, interlevel_loss

    return interlevel_loss(weights_list, samples_list), distortion_loss(weights_list, samples_list)
