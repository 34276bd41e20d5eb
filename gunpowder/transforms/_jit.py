"""`njit` for the kernels: numba's, with its on-disk cache kept where it can be written.

On a read-only install (a shared cluster environment) without a writable home directory,
numba's `cache=True` fails at import ("cannot cache function ... no locator available").
Before the first kernel is compiled, this module picks the first writable place among
NUMBA_CACHE_DIR, the package folder, the user cache folder and the temporary folder, and
compiles without a cache when none is writable.

numba compiles a kernel at its first call (about ten seconds for the warp and intensity
kernels together); `python -m gunpowder.warmup` (gunpowder/warmup.py) fills this cache after
installing, so that no training run pays it at its first batch.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import numba
from numba import njit as _numba_njit

__all__ = ["cache_dir", "njit"]


def _writable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".gp-probe-", delete=True)
        probe.close()
        return True
    except OSError:
        return False


def _choose_cache_dir() -> str | None:
    """Where numba may cache compiled kernels ('' = next to the sources), None: nowhere."""
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured and _writable(configured):
        return configured
    here = os.path.join(os.path.dirname(__file__), "__pycache__")
    if _writable(here):
        return ""
    home = os.path.expanduser("~")
    candidates = []
    if home and home != "~":
        candidates.append(os.path.join(home, ".cache", "gunpowder", "numba"))
    candidates.append(os.path.join(tempfile.gettempdir(), f"gunpowder-numba-{os.getuid()}"))
    for path in candidates:
        if _writable(path):
            return path
    return None


_CACHE_DIR = _choose_cache_dir()
if _CACHE_DIR:
    numba.config.CACHE_DIR = _CACHE_DIR


def cache_dir() -> str | None:
    """The folder numba caches kernels in ('' beside the sources; None: no caching)."""
    return _CACHE_DIR


def njit(*args: Any, **kwargs: Any) -> Callable:
    """`numba.njit`, with `cache=True` dropped when no cache location is writable."""
    if _CACHE_DIR is None:
        kwargs.pop("cache", None)
    return _numba_njit(*args, **kwargs)
