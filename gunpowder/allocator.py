"""Keep freed batch-sized buffers in the process instead of returning them to the OS.

A batch allocates arrays of tens of MB (a CREMI raw region in float32 is ~50 MB) and frees
them when the next one is made. glibc serves allocations above its mmap threshold (at most
32 MiB, dynamically) with fresh memory maps and unmaps them on free, so every batch pays for
page faults and for the kernel zeroing every page again: measured here, 20–30% of the CREMI
workload's time. Raising the mmap and trim thresholds (`mallopt`) lets freed buffers be
reused. What it costs: memory freed by the pipeline stays mapped in the process (up to
`TRIM_THRESHOLD` of it), so the resident size stays near the peak of one batch's working set.

Applied once per process when a pipeline is built (`Pipeline.setup`), and in workers, on
glibc only. `GUNPOWDER_MALLOC=system` leaves the allocator as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "configure_allocator"]

#: allocations up to this size come from the heap (larger ones are still mapped on their own)
MMAP_THRESHOLD = 512 << 20
#: free memory at the top of the heap kept for reuse before it is returned to the OS
TRIM_THRESHOLD = 1 << 30

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_lock = threading.Lock()
_configured_pid: int | None = None


def configure_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds in this process (once); whether it applied.

    Not applied (False) off Linux, without glibc, or with `GUNPOWDER_MALLOC=system`.

    >>> isinstance(configure_allocator(), bool)
    True
    """
    global _configured_pid
    with _lock:
        if _configured_pid == os.getpid():
            return True
        if os.environ.get("GUNPOWDER_MALLOC", "").lower() == "system":
            return False
        if not sys.platform.startswith("linux"):
            return False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # musl and others: no mallopt
            return False
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
        ok = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and ok
        if ok:
            _configured_pid = os.getpid()
        return ok
