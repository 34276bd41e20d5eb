"""Pure numpy kernels that change the voxel size of an array.

Down-sampling by slicing, up-sampling by repetition, and general resampling on voxel centres
(nearest, linear, or spline interpolation). Spatial axes are the last axes of an array; the
kernels work in voxel units, the nodes in `gunpowder.nodes.resample` do the world-unit maths.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def _spatial(data: np.ndarray, dims: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if data.ndim < dims:
        raise ValueError(f"array of shape {data.shape} has fewer than {dims} spatial axes")
    return data.shape[: data.ndim - dims], data.shape[data.ndim - dims :]


def downsample(data: np.ndarray, factor: Sequence[int]) -> np.ndarray:
    """Every `factor`-th voxel along the last len(factor) axes, starting with the first (1.x).

    Each output voxel takes the value of the first input voxel it covers; the spatial shape
    must be a multiple of `factor`.
    """
    factor = tuple(int(f) for f in factor)
    _, shape = _spatial(data, len(factor))
    if any(f < 1 for f in factor) or any(s % f for s, f in zip(shape, factor)):
        raise ValueError(f"spatial shape {shape} is not a positive multiple of factor {factor}")
    index = (Ellipsis,) + tuple(slice(None, None, f) for f in factor)
    return np.ascontiguousarray(data[index])


def upsample(data: np.ndarray, factor: Sequence[int]) -> np.ndarray:
    """Each voxel repeated `factor` times along the last len(factor) axes (nearest neighbour)."""
    factor = tuple(int(f) for f in factor)
    lead, shape = _spatial(data, len(factor))
    if any(f < 1 for f in factor):
        raise ValueError(f"up-sampling factors must be positive, got {factor}")
    # broadcast each spatial axis against a new axis of length f, then merge the two
    expanded_shape: list[int] = list(lead)
    index: list[object] = [slice(None)] * len(lead)
    for s, f in zip(shape, factor):
        expanded_shape += [s, f]
        index += [slice(None), None]
    view = np.broadcast_to(data[tuple(index)], expanded_shape)
    return np.ascontiguousarray(view).reshape(lead + tuple(s * f for s, f in zip(shape, factor)))


def source_coordinates(
    n_out: int, out_begin: float, out_step: float, in_begin: float, in_step: float
) -> np.ndarray:
    """Continuous input index (voxel i's centre is at i) of each output voxel's centre."""
    centres = out_begin + (np.arange(n_out, dtype=np.float64) + 0.5) * out_step
    return (centres - in_begin) / in_step - 0.5


def resample(
    data: np.ndarray,
    in_begin: Sequence[float],
    in_step: Sequence[float],
    out_begin: Sequence[float],
    out_step: Sequence[float],
    out_shape: Sequence[int],
    order: int = 1,
) -> np.ndarray:
    """Sample `data` (voxel size `in_step`, first voxel at `in_begin`) on another grid.

    The output grid starts at `out_begin` with voxel size `out_step` and has `out_shape`
    voxels (all world units, spatial axes last). Each output voxel takes the value at its
    centre: order 0 = the input voxel containing it, 1 = linear interpolation between input
    voxel centres, 2-5 = splines (scipy.ndimage); beyond the input, edge values repeat.
    Integer data is truncated back to its dtype (toward zero, as 1.x did).
    """
    dims = len(out_shape)
    lead, in_shape = _spatial(data, dims)
    coords = [
        source_coordinates(int(n), ob, os, ib, is_)
        for n, ob, os, ib, is_ in zip(out_shape, out_begin, out_step, in_begin, in_step)
    ]
    if order == 0:
        index = [
            np.clip(np.floor(c + 0.5).astype(np.intp), 0, s - 1) for c, s in zip(coords, in_shape)
        ]
        return np.ascontiguousarray(data[(Ellipsis,) + np.ix_(*index)])
    if order == 1:
        result = data.astype(np.float64 if data.dtype.itemsize > 4 else np.float32, copy=False)
        for axis, (c, s) in enumerate(zip(coords, in_shape)):
            ax = len(lead) + axis
            c = np.clip(c, 0, s - 1)
            lo = np.floor(c).astype(np.intp)
            hi = np.minimum(lo + 1, s - 1)
            w = (c - lo).astype(result.dtype)
            shape = [1] * result.ndim
            shape[ax] = len(c)
            w = w.reshape(shape)
            result = np.take(result, lo, axis=ax) * (1 - w) + np.take(result, hi, axis=ax) * w
        return _cast(result, data.dtype)
    if not 2 <= order <= 5:
        raise ValueError(f"interpolation order must be 0-5, got {order}")
    zoom = np.array([c[1] - c[0] if len(c) > 1 else 1.0 for c in coords])
    offset = np.array([c[0] if len(c) else 0.0 for c in coords])
    flat = data.reshape((-1,) + tuple(in_shape)).astype(np.float64, copy=False)
    out = np.stack(
        [
            ndimage.affine_transform(
                channel,
                zoom,
                offset=offset,
                output_shape=tuple(int(n) for n in out_shape),
                order=order,
                mode="nearest",
            )
            for channel in flat
        ]
    )
    return _cast(out.reshape(lead + tuple(int(n) for n in out_shape)), data.dtype)


# float error allowed when truncating interpolated values back to integers: 2.9999999 is 3
_TRUNCATE_SLACK = 1e-4


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Interpolated values back to `dtype`; integers are truncated toward zero, as 1.x's
    `astype` did (the mean of 31 and 32 becomes 31), after allowing for float error."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.trunc(values + np.copysign(_TRUNCATE_SLACK, values))
        return np.clip(values, info.min, info.max).astype(dtype)
    if dtype == np.bool_:
        return values >= 0.5
    return values.astype(dtype, copy=False)
