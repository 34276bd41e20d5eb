"""`Pad` (offer an array beyond its data, filled by a value or numpy pad mode) and `Crop`
(offer less of an array than upstream has).
"""

from __future__ import annotations

import numpy as np

PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def source_index(index: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Where voxel `index` (relative to the data start, may lie outside [0, n)) reads from.

    The same conventions as `numpy.pad`; "constant" clips (the caller overwrites outside).
    """
    if mode in ("constant", "edge"):
        return np.clip(index, 0, n - 1)
    if mode == "wrap":
        return np.mod(index, n)
    if mode == "reflect":
        if n == 1:
            return np.zeros_like(index)
        period = 2 * n - 2
        m = np.mod(index, period)
        return np.where(m < n, m, period - m)
    if mode == "symmetric":
        period = 2 * n
        m = np.mod(index, period)
        return np.where(m < n, m, period - 1 - m)
    raise ValueError(f"unknown pad mode {mode!r}; use one of {PAD_MODES}")
