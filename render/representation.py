"""The seam between a scene and everything that renders, trains or fits paths to it.

A scene representation is anything that turns scene-space rays into colour, depth and opacity, says which
points are occupied, and hands its trainable parameters and saved state to the training code. The hash-grid
NeRF with its occupancy grid (`render.render.Renderable`) is the first; a second (Gaussian splats from a .ply,
a GPU marcher) is one new class implementing `SceneRepresentation`, not edits to paths, video or the studio.

Coordinates: "world" is the capture's frame; "scene" is world mapped by the similarity `scene_from_world` so that
an object fills the box [-1, 1]^3 (unbounded captures are centred and scaled the same way). Rays handed to
`render_rays` are in scene coordinates, with unit directions; depth comes back in scene units along the ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from render.cameras import Rays

SceneKind = Literal["object", "unbounded"]

ParameterGroups = dict[str, list[torch.nn.Parameter]]
"""Named groups of trainable parameters, in a fixed order (the optimizer's state is saved by group index)."""


@dataclass
class RayBundleOutput:
    rgb: torch.Tensor  # [R, 3]
    depth: torch.Tensor  # [R] in scene units along the ray (0 where nothing was hit)
    opacity: torch.Tensor  # [R]
    n_samples: int
    distortion: torch.Tensor | None = None
    regularizer: torch.Tensor | None = None
    """The representation's own training term, added to the loss as is (the proposal sampler's interlevel loss)."""


@dataclass
class Image:
    rgb: torch.Tensor  # [H, W, 3] in [0, 1]
    depth: torch.Tensor  # [H, W] in world units along the ray
    opacity: torch.Tensor  # [H, W]


class SceneRepresentation(Protocol):
    """What a scene must do for rendering, coverage, path fitting and training."""

    kind: SceneKind
    scene_from_world: torch.Tensor  # [4, 4] similarity: scale * rotation, translation
    background: torch.Tensor  # [3], composited behind what the rays do not hit

    @property
    def scale(self) -> float:
        """Scene units per world unit."""

    def render_rays(self, rays_scene: Rays, *, jitter: torch.Tensor | None = None,
                    background: torch.Tensor | None = None, with_distortion: bool = False) -> RayBundleOutput:
        """Render rays in scene coordinates; differentiable when gradients are enabled.

        `jitter` [R] in [0, 1) shifts each ray's samples (stratified sampling in training; None when rendering);
        `background` [R, 3] or [3] replaces the scene's own."""

    def occupied(self, points_scene: torch.Tensor) -> torch.Tensor:
        """[P] bool: may anything be at these scene points [P, 3]? Conservative (never False at a surface)."""

    def occupied_depth(self, rays_scene: Rays) -> torch.Tensor:
        """[R] distance along each ray (scene units) to the first point `occupied` may call full; +inf if none."""

    @property
    def occupancy_cell(self) -> float:
        """How finely `occupied` answers: the edge of one of its cells, in scene units."""

    @property
    def max_samples_per_ray(self) -> int:
        """The most samples one ray can take (bounds a render's memory)."""

    @property
    def fixed_samples_per_ray(self) -> bool:
        """True when every ray takes the same number of samples (proposal sampling), False when the count follows
        what the scene holds (marching an occupancy grid): training caps a step's rays by its samples only then."""

    def preview_points(self, max_points: int, seed: int,
                       view_direction_scene: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points [P, 3] in scene coordinates where the scene holds something, with their colours [P, 3] in [0, 1]
        seen along `view_direction_scene` [3] (unit): a top-down map or a 3D preview draws them."""

    def parameter_groups(self) -> ParameterGroups:
        """The trainable parameters, by group name (the optimizer gives each group its own settings)."""

    def refresh(self, step: int, generator: torch.Generator, *, warm_up: bool = True) -> None:
        """Upkeep before training step `step` (the NeRF updates its occupancy grid on its own schedule)."""

    def settle(self, seed: int) -> None:
        """Bring what only answers queries after training (`occupied`) up to date with the field, before a save;
        `seed` makes it repeatable without drawing on the training's random stream."""

    def train(self, mode: bool = True) -> None:
        """Switch between training and rendering behaviour."""

    def state(self) -> dict[str, torch.Tensor]:
        """Everything that must be saved to render the scene again (safetensors-ready, contiguous)."""
