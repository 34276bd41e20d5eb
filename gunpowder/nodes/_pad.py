"""`Pad` (offer an array beyond its data, filled by a value or numpy pad mode) and `Crop`
(offer less of an array than upstream has).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..geometry import Coordinate

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


def check_pad_size(size: Any, node: str) -> Coordinate:
    """`size` as a Coordinate of non-negative values (None: unbounded in that axis)."""
    try:
        coord = Coordinate(size)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{node}: argument size must be None or one int (or None) per spatial axis, "
            f"got {size!r}"
        ) from e
    negative = [v for v in coord if v is not None and v < 0]
    if negative:
        raise ValueError(
            f"{node}: argument size must be >= 0 in every axis (None: unbounded), got {size!r}"
        )
    return coord


def _contiguous(index: np.ndarray) -> slice | None:
    """`index` as a slice if it counts up by one, else None."""
    n = len(index)
    if n and int(index[-1]) - int(index[0]) == n - 1 and (n < 2 or np.all(np.diff(index) == 1)):
        return slice(int(index[0]), int(index[0]) + n)
    return None


def gather(data: np.ndarray, indices: list[np.ndarray]) -> np.ndarray:
    """`data[..., i0, i1, ...]` for per-axis index arrays on the last axes (an outer product):
    slices where an index counts up by one (a view if all do), one `take` per other axis."""
    dims = len(indices)
    first = data.ndim - dims
    slices = [_contiguous(i) for i in indices]
    out = data[(Ellipsis,) + tuple(s if s is not None else slice(None) for s in slices)]
    for d, (index, s) in enumerate(zip(indices, slices)):
        if s is None:
            out = np.take(out, index, axis=first + d)
    return out


def pad_constant(
    data: np.ndarray, indices: list[np.ndarray], inside: list[np.ndarray], value: np.ndarray
) -> np.ndarray:
    """The padded array: `value` everywhere, the data where `inside` (per axis) holds.

    `indices[d][inside[d]]` is a run of consecutive data indices on axis d, so the data is
    copied once, as one block (no per-voxel indexing). A value of all-zero bytes (0, 0.0,
    False) is never written: `np.zeros` of a large array maps fresh zero pages from the OS,
    so only the pages the data is copied into are touched, and the margins (e.g. the bounding
    box of a rotated request reaching far beyond the volume, of which a warp then samples a
    fraction) cost neither time nor memory until something writes them."""
    dims = len(indices)
    shape = data.shape[: data.ndim - dims] + tuple(len(i) for i in indices)
    value = np.asarray(value, dtype=data.dtype)
    zeros = value.tobytes() == bytes(value.nbytes)
    out = np.zeros(shape, dtype=data.dtype) if zeros else np.empty(shape, dtype=data.dtype)
    dst, src = [], []
    for index, mask in zip(indices, inside):
        where = np.flatnonzero(mask)
        if where.size == 0:
            if not zeros:
                out[...] = value
            return out
        a, b = int(where[0]), int(where[-1]) + 1
        dst.append(slice(a, b))
        src.append(slice(int(index[a]), int(index[a]) + b - a))
    inner = (Ellipsis,) + tuple(dst)
    out[inner] = data[(Ellipsis,) + tuple(src)]
    if zeros:
        return out
    for d, s in enumerate(dst):  # fill the margins only
        axis = data.ndim - dims + d
        before = [slice(None)] * out.ndim
        before[axis] = slice(0, s.start)
        out[tuple(before)] = value
        after = [slice(None)] * out.ndim
        after[axis] = slice(s.stop, None)
        out[tuple(after)] = value
    return out
