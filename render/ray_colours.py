"""Sample colours from their rays' view directions, encoding each ray's direction once.

Every sample of a ray sees it from the same direction, so a field whose colour splits into a direction encoding and a
head (`SplitColourField`: Vista's `scenes.field.NerfField` encodes directions with nerfstudio's spherical harmonics)
needs the encoding once per ray, not once per sample: on a 1280x720 frame of fox-small the per-sample encoding was
~0.8 of 11 s (24 samples a ray). Fields that only implement `color` (the `render.render.RadianceField` protocol) are
asked per sample, as before.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class SplitColourField(Protocol):
    """A radiance field whose `color(features, d)` is `color_encoded(features, encode_directions(d))`."""

    def encode_directions(self, directions: torch.Tensor) -> torch.Tensor:
        """Encoding [N, E] of unit view directions [N, 3]."""

    def color_encoded(self, features: torch.Tensor, encoded: torch.Tensor) -> torch.Tensor:
        """RGB [S, 3] in [0, 1] from geometry features [S, G] and encoded directions [S, E]."""


def ray_colours(field, features: torch.Tensor, ray_directions: torch.Tensor,
                ray_indices: torch.Tensor) -> torch.Tensor:
    """Colours [S, 3] of samples with features [S, G] on rays `ray_indices` [S] whose directions are
    `ray_directions` [R, 3]."""
    if isinstance(field, SplitColourField):
        return field.color_encoded(features, field.encode_directions(ray_directions)[ray_indices])
    return field.color(features, ray_directions[ray_indices])
