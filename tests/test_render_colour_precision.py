"""A render's colour MLP in bfloat16 where the CPU has it natively and the fused fp32 kernel does not run
(render.proposal.colour_precision)."""

from __future__ import annotations

import contextlib

import torch

from render import proposal
from render.render import render_rays
from scenes.field import NerfField
from tests.test_proposal_bake import perturbed
from tests.test_proposal_sampler import random_rays, unbounded_scene


def _render(monkeypatch, bf16: bool, fused: bool = False) -> torch.Tensor:
    monkeypatch.setattr(proposal, "_bf16_colours", lambda: bf16)
    monkeypatch.setattr(NerfField, "fused_colours", fused)
    representation = perturbed(unbounded_scene()).renderable()
    representation.train(False)
    with torch.no_grad():
        return render_rays(representation, random_rays(64, seed=5)).rgb


def test_bf16_colours_stay_within_an_8_bit_level_of_fp32(monkeypatch):
    exact, fast = _render(monkeypatch, False), _render(monkeypatch, True)
    difference = (exact - fast).abs().max()
    assert 0 < difference < 1 / 255  # the bf16 path ran, and no pixel moves by a level


def test_a_fused_colour_mlp_keeps_fp32(monkeypatch):
    fused = _render(monkeypatch, True, fused=True)
    assert torch.equal(fused, _render(monkeypatch, False, fused=True))
    assert not torch.equal(fused, _render(monkeypatch, True, fused=False))


def test_vista_colour_fp32_forces_fp32(monkeypatch):
    monkeypatch.setenv("VISTA_COLOUR", "fp32")
    proposal._bf16_colours.cache_clear()
    try:
        assert isinstance(proposal.colour_precision(torch.device("cpu")), contextlib.nullcontext)
    finally:
        monkeypatch.delenv("VISTA_COLOUR")
        proposal._bf16_colours.cache_clear()
    assert isinstance(proposal.colour_precision(torch.device("meta")), contextlib.nullcontext)
