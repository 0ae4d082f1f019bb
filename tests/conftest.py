"""Shared fixtures: paths to ../shared data (tests skip with a clear message if it is missing)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_dataset(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"shared dataset {path} is missing (see ../shared/README.md)")
    return path


@pytest.fixture(autouse=True)
def _quiet_threads():
    # tests are small: keep torch from oversubscribing the 2 cores when pytest runs alongside other work
    torch.set_num_threads(2)
    yield
