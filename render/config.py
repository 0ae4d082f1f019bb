"""Configs of the render package (ray marching); frozen dataclasses saved as strict JSON."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingConfig:
    """Ray marching with an occupancy grid (empty-space skipping as in Instant-NGP / nerfacc)."""

    grid_resolution: int = 128
    """Cells per side of the occupancy grid."""
    max_samples_per_ray: int = 512
    """Candidate steps across the scene box (before skipping empty space)."""
    occupancy_threshold: float = 0.01
    """A cell is occupied if its opacity over one step exceeds this."""
    update_every: int = 16
    """Steps between occupancy-grid updates."""
    warmup_steps: int = 256
    """Steps during which every cell is re-evaluated on each update."""
    early_stop_transmittance: float = 1e-3
    """Stop marching a ray once its transmittance falls below this."""
    min_alpha: float = 1e-4
    """Samples contributing less opacity than this are dropped before the gradient pass."""
