"""Shared fixtures: paths to ../shared data (tests skip with a clear message if it is missing)."""

from __future__ import annotations

import os
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


# --- CI: a skip is a failure unless the machine really cannot run the test -------------------------------------

ALLOWED_CI_SKIPS = ("needs CUDA", "root ignores file permissions")
"""The only skips CI accepts (no GPU on CI; CI runs as root). Anything else a CI machine lacks (../shared, a C
compiler, chromium, a package) must fail the run, not pass it quietly."""
_skips: list[str] = []


def _record_skip(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not any(allowed in reason for allowed in ALLOWED_CI_SKIPS):
            _skips.append(f"{report.nodeid}: {reason}")


def pytest_runtest_logreport(report) -> None:
    _record_skip(report)


def pytest_collectreport(report) -> None:
    _record_skip(report)


def pytest_sessionfinish(session, exitstatus) -> None:
    if os.environ.get("CI") and _skips and exitstatus == 0:
        terminal = session.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(f"CI: {len(_skips)} test(s) skipped that CI must run:", red=True)
            for line in _skips:
                terminal.write_line(f"  {line}", red=True)
        session.exitstatus = 1
