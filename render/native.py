"""Build and load Vista's small C kernels (`*.c` beside the Python module) with the system compiler, via ctypes.

Why C and not torch.utils.cpp_extension: the kernels need no torch headers, so each compiles in about a
second instead of a minute, and they load lazily, so Vista imports on a machine without a compiler. Every
kernel has a plain-PyTorch twin that runs, with a warning, where the kernel cannot be built.

VISTA_CACHE_DIR moves the build cache (default ~/.cache/vista).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger("vista")

# -ffp-contract=off: no fused multiply-add, so the kernels round exactly like their PyTorch twins.
FLAGS = ("-O3", "-fPIC", "-shared", "-fopenmp", "-ffp-contract=off", "-std=c11")


def cache_dir() -> Path:
    return Path(os.environ.get("VISTA_CACHE_DIR") or Path.home() / ".cache" / "vista")


def _build(source: Path, target: Path) -> None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (cc/gcc) on PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    # build beside the target and rename: concurrent processes never load a half-written library
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / target.name
        result = subprocess.run([compiler, *FLAGS, str(source), "-o", str(partial), "-lm"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {result.stderr.strip()[:500]}")
        os.replace(partial, target)


def build_library(source: Path) -> ctypes.CDLL:
    """Compile `source` once (cached by its content, the flags and the platform) and load it.

    Raises RuntimeError or OSError when it cannot be built or loaded."""
    key = hashlib.sha256(source.read_bytes() + " ".join(FLAGS).encode() + sys.platform.encode()).hexdigest()[:16]
    target = cache_dir() / f"{source.stem}-{key}.so"
    if not target.exists():
        _build(source, target)
    return ctypes.CDLL(str(target))


def ptr(tensor: torch.Tensor, kind):
    """A ctypes pointer to a contiguous tensor's data."""
    return ctypes.cast(tensor.data_ptr(), ctypes.POINTER(kind))


class Kernel:
    """A C kernel built and loaded on first use, or None (warned once) where it cannot be built.

    `env_var`=reference forces the PyTorch twin; `declare` sets the library's argtypes once it loads."""

    def __init__(self, source: Path, env_var: str, what: str, declare: Callable[[ctypes.CDLL], None]):
        self.source, self.env_var, self.what, self.declare = source, env_var, what, declare
        self._library: ctypes.CDLL | None = None
        self.unavailable: str | None = None

    def load(self) -> ctypes.CDLL | None:
        if self._library is not None or self.unavailable is not None:
            return self._library
        if os.environ.get(self.env_var) == "reference":
            self.unavailable = f"{self.env_var}=reference"
            return None
        try:
            library = build_library(self.source)
        except (OSError, RuntimeError) as error:
            self.unavailable = str(error)
            log.warning("%s unavailable (%s); using its plain PyTorch twin, which is slower", self.what, error)
            return None
        self.declare(library)
        self._library = library
        return library
