"""vista_core.memory: glibc's thresholds raised (a large block then comes from the heap), not with
VISTA_ALLOCATOR=default."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHECK = """
import ctypes
from vista_core.memory import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
kept = keep_freed_memory()
block = libc.malloc(64 << 20)
mapped = libc.mallinfo2().hblkhd >= 64 << 20  # served by its own mmap, unmapped again when freed
libc.free(block)
print(kept, mapped)
"""


def _run(env_value: str | None) -> str:
    env = {"PATH": "/usr/bin:/bin"} if env_value is None else {"PATH": "/usr/bin:/bin", "VISTA_ALLOCATOR": env_value}
    return subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, check=True,
                          cwd=REPO).stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_a_64_mb_block_comes_from_the_heap_once_raised():
    assert _run(None) == "True False"
    assert _run("default") == "False True"
