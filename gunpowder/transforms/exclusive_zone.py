"""Exclusive-zone masks: 0 in a shell around the ON regions of a binary map, 1 elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

#: relative slack at the radius (distances within it of the radius count as at the radius)
_AT_RADIUS = 1e-9


def exclusive_zone_mask(
    binary: np.ndarray, radius: Sequence[float], voxel_size: Sequence[float]
) -> np.ndarray:
    """1 everywhere except on OFF voxels within `radius` of an ON (non-zero) voxel: 0 there.

    Distances are between voxel centres in world units; `radius` and `voxel_size` have one
    entry per spatial axis (the last axes; an ellipsoid for unequal radii). Leading (channel)
    axes are treated one by one. Same dtype as `binary`.
    """
    binary = np.asarray(binary)
    dims = len(voxel_size)
    if len(radius) != dims or binary.ndim < dims:
        raise ValueError(
            f"radius {tuple(radius)} and voxel size {tuple(voxel_size)} must have one entry per "
            f"spatial axis of the array of shape {binary.shape}"
        )
    out = np.ones(binary.shape, dtype=binary.dtype)
    r = np.asarray(radius, dtype=np.float64)
    if np.any(r <= 0):
        return out
    sampling = np.asarray(voxel_size, dtype=np.float64) / r
    for index in np.ndindex(binary.shape[: binary.ndim - dims]):
        on = binary[index] != 0
        if not on.any() or on.all():
            continue
        scaled = ndimage.distance_transform_edt(~on, sampling=sampling)
        # a voxel at the radius is inside; the tolerance covers the rounding of the EDT's
        # scaled square root (2 voxels from a radius of 2.0 can come out as 1 + 2e-16)
        out[index][(~on) & (scaled <= 1.0 + _AT_RADIUS)] = 0
    return out
