"""Many positioned reads in one compiled loop: `pread(2)` per row, called from numba.

A read of a narrow region of a wide contiguous HDF5 dataset (labels of 107 columns in
sections of 1250, uint64) copies ~10x the bytes it needs when it reads whole sections, and
pays ~3 us of Python per call when it reads row by row from Python. Here the rows are read
from a compiled loop (~1 us a row, the system call itself), straight into the output.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from ..transforms._jit import njit

__all__ = ["ROW_CALL_SECONDS", "read_rows"]

#: the cost of one row read from the compiled loop (the `pread` system call), for the cost model
ROW_CALL_SECONDS = 1e-6


def _libc_pread() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        pread = libc.pread
    except (OSError, AttributeError):
        return None
    pread.restype = ctypes.c_ssize_t
    pread.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64]
    return pread


_PREAD = _libc_pread()


@njit(cache=True, nogil=True)
def _pread_rows(pread, fd, out_address, row_bytes, starts):  # pragma: no cover - compiled
    """Read `row_bytes` at each byte offset in `starts` into consecutive rows at
    `out_address`; the number of rows read in full (fewer: a short read or an error)."""
    for i in range(starts.shape[0]):
        if pread(fd, out_address + i * row_bytes, row_bytes, starts[i]) != row_bytes:
            return i
    return starts.shape[0]


def read_rows(fd: int, out: np.ndarray, starts: np.ndarray) -> int | None:
    """Fill the C-contiguous `out` (rows of `out.shape[-1]` items) from the byte offsets
    `starts` (one per row) of `fd`; the rows read in full, or None where there is no libc
    `pread` (the caller reads otherwise)."""
    if _PREAD is None:
        return None
    assert out.flags.c_contiguous and starts.dtype == np.int64
    row_bytes = out.shape[-1] * out.itemsize
    return int(_pread_rows(_PREAD, fd, out.ctypes.data, row_bytes, starts.reshape(-1)))
