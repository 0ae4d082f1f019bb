"""Packaging: a wheel of the project carries the C kernel sources, and an installed (non-editable) copy compiles
and uses them, not the slower PyTorch twins.

The wheel is built from a copy of the checkout (so the build's `build/` and `*.egg-info` never land in the
repository) and installed with pip into a fresh virtual environment (`python -m venv`), as a user installs it.
Its dependencies (torch, ...) are not downloaded: a `.pth` file in the new environment appends this environment's
site-packages after its own (`--system-site-packages` would give the base interpreter's, which has no torch;
nested `.pth` files such as the checkout's editable install are not processed from an appended folder). The new
environment's Python and its `vista` script then run outside the repository, with a private VISTA_CACHE_DIR so
the kernels are compiled from the installed sources.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

_COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", "build", "*.egg-info", "outputs",
                                      "runs", "test-output", "bench", "tests", ".pytest_cache", ".vista-cache")

_CHECK_INSTALLED = """
import json, sys
from pathlib import Path
import render, scenes
from render import march_native
from scenes import hashgrid_fused
print(json.dumps({
    "render": render.__file__, "scenes": scenes.__file__,
    "hashgrid_source": str(hashgrid_fused._SOURCE), "march_source": str(march_native._SOURCE),
    "hashgrid_fused": hashgrid_fused.fused_available(),
    "march_fused": march_native.load() is not None,
    "hashgrid_unavailable": hashgrid_fused._KERNEL.unavailable,
    "march_unavailable": march_native._KERNEL.unavailable,
}))
"""


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=240, **kwargs)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.mark.slow
def test_installed_wheel_ships_the_c_kernels_and_uses_them_not_the_twins(tmp_path):
    if shutil.which(os.environ.get("CC") or "cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler (cc/gcc) on PATH")
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=_COPY_IGNORE)
    wheels, cache = tmp_path / "wheels", tmp_path / "kernel-cache"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(wheels), str(source)], cwd=tmp_path)
    [wheel] = wheels.glob("vista-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for kernel in ("scenes/hashgrid_fused.c", "render/march_fused.c"):
        assert kernel in names, f"{kernel} is not in the wheel: pyproject.toml's package-data must ship it"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    [venv_site] = (venv / "lib").glob("python3*/site-packages")
    (venv_site / "zz-vista-test-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VISTA_HASHGRID", "VISTA_MARCH", "PYTHONSTARTUP", "VIRTUAL_ENV")}
    env.update(VISTA_CACHE_DIR=str(cache), PYTHONNOUSERSITE="1")
    # -P: no script folder or cwd on sys.path either, so only the installed copy can be imported
    report = json.loads(_run([str(python), "-P", "-c", _CHECK_INSTALLED], cwd=outside, env=env)
                        .stdout.strip().splitlines()[-1])
    for key in ("render", "scenes", "hashgrid_source", "march_source"):
        assert Path(report[key]).resolve().is_relative_to(venv_site.resolve()), f"{key} came from {report[key]}"
    assert report["hashgrid_fused"], f"installed copy runs the hash-grid twin: {report['hashgrid_unavailable']}"
    assert report["march_fused"], f"installed copy runs the marcher twin: {report['march_unavailable']}"
    assert list(cache.rglob("*.so")), "the kernels were not compiled into the private VISTA_CACHE_DIR"
    # the console script pip wrote runs the installed copy too
    assert "usage: vista" in _run([str(venv / "bin" / "vista"), "--help"], cwd=outside, env=env).stdout
