"""Keep freed memory in the process for the next tensor of the same size (glibc only).

Every training or fitting step allocates and frees the same few activation tensors of several MB. glibc's
malloc hands such blocks back to the kernel when they are freed (``mmap``/``munmap`` above its threshold,
heap trimming below it), so each step takes them anew and pays one page fault per 4 KiB touched: the default
DeepSDF step on this project's 2-core machine took ~1,500 page faults (~7 ms of system time in a ~40 ms step), a
test-time latent fit step up to ~15,000 (bench/RESULTS.md "main_job_budget"). Raising both thresholds keeps the freed
blocks for reuse. The cost: memory freed below the process's peak is not returned to the system (at most
``TRIM_THRESHOLD`` beyond what is in use).

Called once when the ``shapelab`` package is imported. ``SHAPELAB_KEEP_FREED_MEMORY=0`` leaves malloc's
defaults; other C libraries (macOS, musl) are left alone.
"""
from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1  # mallopt parameters, <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # blocks up to 256 MiB come from (and return to) the heap
TRIM_THRESHOLD = 1 << 30  # free memory kept at the top of the heap before it is returned


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; True when they were set."""
    if os.environ.get("SHAPELAB_KEEP_FREED_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    # the trim threshold only after the mmap one: set alone it turns off glibc's adaptive mmap threshold and every
    # large block is mapped anew (measured: more faults than the defaults)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
