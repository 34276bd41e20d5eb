"""Affinities between two different arrays: is a voxel of one on where its shifted partner in
the other is on?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def shifted_conjunction(
    a: np.ndarray, b: np.ndarray, offsets: Sequence[Sequence[int]], margin: Sequence[int]
) -> np.ndarray:
    """out[i, p] = a[p] AND b[p - offsets[i]] for p in the core of `a`.

    `a` and `b` cover the same region, the output region grown by `margin` voxels on each side
    (margin >= |offset| per axis); the output has shape (len(offsets), *(a.shape - 2*margin))
    and the dtype of `a`. Integer and bool arrays are combined bitwise (as gunpowder 1.x),
    other dtypes logically (1 where both are non-zero).
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"arrays of shapes {a.shape} and {b.shape} must have the same shape")
    margin = [int(m) for m in margin]
    core = tuple(s - 2 * m for s, m in zip(a.shape, margin))
    if any(c < 0 for c in core):
        raise ValueError(f"arrays of shape {a.shape} are smaller than twice the margin {margin}")
    bitwise = np.issubdtype(a.dtype, np.integer) or a.dtype == bool
    out = np.zeros((len(offsets),) + core, dtype=a.dtype)
    here = tuple(slice(m, m + c) for m, c in zip(margin, core))
    for i, offset in enumerate(offsets):
        if any(abs(int(o)) > m for o, m in zip(offset, margin)):
            raise ValueError(f"offset {tuple(offset)} is larger than the margin {margin}")
        there = tuple(slice(m - int(o), m - int(o) + c) for m, o, c in zip(margin, offset, core))
        if bitwise:
            out[i] = np.bitwise_and(a[here], b[there].astype(a.dtype, copy=False))
        else:
            out[i] = (a[here] != 0) & (b[there] != 0)
    return out
