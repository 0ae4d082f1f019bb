"""Build and load Vista's small C kernels (`*.c` beside the Python module) with the system compiler, via ctypes.

Why C and not torch.utils.cpp_extension: the kernels need no torch headers, so each compiles in about a
second instead of a minute, and they load lazily, so Vista imports on a machine without a compiler. Every
kernel has a plain-PyTorch twin that runs, with a warning, where the kernel cannot be built.

VISTA_CACHE_DIR moves the build cache (default ~/.cache/vista). The cache is created 0700 and must be ours and
writable by nobody else; each library's sha256 is recorded beside it when built and checked before loading.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from vista_core.errors import VistaError
from vista_core.files import atomic_write_text

log = logging.getLogger("vista")

# -ffp-contract=off: no fused multiply-add, so the kernels round exactly like their PyTorch twins.
FLAGS = ("-O3", "-fPIC", "-shared", "-fopenmp", "-ffp-contract=off", "-std=c11")


def cache_dir() -> Path:
    return Path(os.environ.get("VISTA_CACHE_DIR") or Path.home() / ".cache" / "vista")


_PRIVATE: dict[str, Path] = {}
"""The checked cache directory of each configured path, resolved once per process (one warning at most)."""


def private_cache_dir() -> Path:
    """The build cache, created 0700, if it is ours and nobody else can write to it; else a fresh private temp dir.

    A cache anyone else can write to lets them plant a library that every Vista run then loads. Falling back to
    a private temp dir (rather than refusing) keeps the fast kernels and costs a ~1 s rebuild per process; the
    cache is not the user's data, so there is nothing to ask them, but the warning says how to fix it."""
    configured = cache_dir()
    key = str(configured)
    if key not in _PRIVATE:
        problem = _cache_dir_problem(configured)
        if problem is None:
            _PRIVATE[key] = configured
        else:
            fallback = Path(tempfile.mkdtemp(prefix="vista-kernels-"))  # 0700, a name nobody can predict
            atexit.register(shutil.rmtree, fallback, ignore_errors=True)
            log.warning("kernel cache %s %s; building the kernels in %s instead (make it yours and chmod 700 it, "
                        "or set VISTA_CACHE_DIR)", configured, problem, fallback)
            _PRIVATE[key] = fallback
    return _PRIVATE[key]


def _cache_dir_problem(directory: Path) -> str | None:
    """Why `directory` is unsafe to load code from (None: it is safe); creates it 0700 when missing."""
    try:
        if not directory.exists():
            directory.parent.mkdir(parents=True, exist_ok=True)
            directory.mkdir(mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask
        info = directory.stat()
    except OSError as error:
        return f"cannot be created ({error.strerror or error})"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if info.st_uid != os.getuid():
        return f"is owned by another user (uid {info.st_uid})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(target: Path) -> Path:
    """Where the sha256 of a library we built is recorded."""
    return target.with_name(target.name + ".sha256")


def _build(source: Path, target: Path) -> None:
    """Compile `source` to a temp name beside `target`, rename it into place, then record its sha256."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (cc/gcc) on PATH")
    # build beside the target and rename: concurrent processes never load a half-written library
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / target.name
        result = subprocess.run([compiler, *FLAGS, str(source), "-o", str(partial), "-lm"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {result.stderr.strip()[:500]}")
        digest = _sha256(partial)
        with open(partial, "rb") as handle:  # on disk before its name and record are: no truncated library after
            os.fsync(handle.fileno())        # a power cut (loading one can crash the process with SIGBUS)
        os.replace(partial, target)
    try:
        atomic_write_text(_record(target), digest + "\n")
    except VistaError as error:  # a full disk here costs the fast kernel, not the user's command
        raise RuntimeError(str(error)) from error


def _unverified(target: Path) -> str | None:
    """Why `target` must not be loaded (None: its bytes hash to the sha256 we recorded when we built it)."""
    try:
        recorded = _record(target).read_text().strip()
    except OSError:
        return "has no recorded sha256"
    if _sha256(target) != recorded:
        return "does not match its recorded sha256"
    return None


def library_path(source: Path) -> Path:
    """Where `source`'s library is cached: named by the source's content, the flags and the platform."""
    key = hashlib.sha256(source.read_bytes() + " ".join(FLAGS).encode() + sys.platform.encode()).hexdigest()[:16]
    return private_cache_dir() / f"{source.stem}-{key}.so"


def build_library(source: Path) -> ctypes.CDLL:
    """Compile `source` once (cached by its content, the flags and the platform), verify and load it.

    A cached library whose sha256 is not the one recorded when it was built (planted, or truncated: loading a
    truncated library can crash with SIGBUS, so only verified bytes are loaded), or that fails to load, is rebuilt,
    with one log line; nothing is loaded that we did not build. Raises RuntimeError or OSError when
    it cannot be built or loaded."""
    target = library_path(source)
    if not target.exists():
        _build(source, target)
    else:
        problem = _unverified(target)
        if problem is not None:
            log.warning("rebuilding %s: it %s", target, problem)
            _build(source, target)
    try:
        return ctypes.CDLL(str(target))
    except OSError as error:  # verified but unloadable: truncated when recorded, or a changed system library
        log.warning("rebuilding %s: it failed to load (%s)", target, error)
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
