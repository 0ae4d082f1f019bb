"""Keep freed memory in the process for the next training step or frame, instead of handing it back to the kernel.

glibc serves allocations above its mmap threshold (at most 32 MB with the default dynamic threshold) with fresh
mmaps and unmaps them when freed, so every step of training re-faults its largest tensors (the hash grid's 67 MB
gradient, the colour MLP's saved activations) page by page. Raising the mmap and trim thresholds to 1 GiB keeps such
blocks in the heap for reuse: training alone went 1.06-1.10x faster with it (fox-small, skull-66, lego-200;
bench/results/mlp-fused.json, variant "kept memory"), 1.06-1.10x on top of the fused MLP. The cost: the process
keeps its peak heap after a peak (its peak itself is unchanged), which suits a training or render process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import sys

log = logging.getLogger("vista")

_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; False (and nothing changed) off glibc, or with
    VISTA_ALLOCATOR=default (for comparisons)."""
    if not sys.platform.startswith("linux") or os.environ.get("VISTA_ALLOCATOR") == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, THRESHOLD_BYTES) == 1 and mallopt(_M_TRIM_THRESHOLD, THRESHOLD_BYTES) == 1
    log.debug("allocator: freed blocks up to %d MB stay in the heap: %s", THRESHOLD_BYTES >> 20, done)
    return done
