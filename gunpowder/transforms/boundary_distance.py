"""Distances to label boundaries measured between voxels, and their gradients.

A boundary lies *between* two face-adjacent voxels of different labels (the background, 0, is
a label like any other). Boundaries live on the doubled grid: voxel i of an axis sits at
doubled index 2i, the face between voxels i and i+1 at 2i+1, so an array of shape s has a
doubled grid of shape 2s-1 with spacing voxel_size/2. Spatial axes are the last axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def face_boundaries(labels: np.ndarray) -> np.ndarray:
    """Bool array on the doubled grid (shape 2s-1): True on faces between different labels.

    Positions that are odd along exactly one axis are faces; all others (voxels, edges and
    corners between voxels) are False.
    """
    labels = np.asarray(labels)
    shape = labels.shape
    out = np.zeros(tuple(2 * s - 1 for s in shape), dtype=bool)
    for axis in range(labels.ndim):
        if shape[axis] < 2:
            continue
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        differs = labels[tuple(lo)] != labels[tuple(hi)]
        target = [slice(0, None, 2)] * labels.ndim
        target[axis] = slice(1, None, 2)
        out[tuple(target)] = differs
    return out


def boundary_distance(labels: np.ndarray, voxel_size: Sequence[float]) -> np.ndarray:
    """float32: world distance of every voxel centre to the nearest face boundary.

    0 on background voxels (label 0), and 0 everywhere if `labels` has no boundary.
    """
    labels = np.asarray(labels)
    boundaries = face_boundaries(labels)
    if not boundaries.any():
        return np.zeros(labels.shape, dtype=np.float32)
    sampling = tuple(float(v) / 2 for v in voxel_size)
    doubled = ndimage.distance_transform_edt(~boundaries, sampling=sampling)
    distances = doubled[(slice(None, None, 2),) * labels.ndim].astype(np.float32)
    distances[labels == 0] = 0
    return distances


def distance_gradients(
    distances: np.ndarray, voxel_size: Sequence[float], labels: np.ndarray | None = None
) -> np.ndarray:
    """float32 (dims, *shape): the spatial gradient of `distances` (world units).

    Central differences inside, one-sided at the border, 0 along axes of size 1; 0 on the
    background voxels of `labels` when given.
    """
    dims = distances.ndim
    gradients = np.zeros((dims,) + distances.shape, dtype=np.float32)
    for axis in range(dims):
        if distances.shape[axis] > 1:
            gradients[axis] = np.gradient(distances, float(voxel_size[axis]), axis=axis)
    if labels is not None:
        gradients[:, np.asarray(labels) == 0] = 0
    return gradients


def normalize_vectors(vectors: np.ndarray, norm: str) -> np.ndarray:
    """Vectors (channels first) divided by their l1 or l2 norm; norms below 1e-5 count 1."""
    if norm == "l1":
        factors = np.abs(vectors).sum(axis=0)
    elif norm == "l2":
        factors = np.sqrt(np.square(vectors).sum(axis=0))
    else:
        raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
    factors = np.where(factors < 1e-5, 1, factors)
    return (vectors / factors).astype(vectors.dtype, copy=False)


def exp_scale(vectors: np.ndarray, distances: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Vectors scaled by beta * exp(-alpha * distance)."""
    factors = beta * np.exp(-alpha * distances.astype(np.float64))
    return (vectors * factors).astype(vectors.dtype, copy=False)


def doubled_boundary_map(labels: np.ndarray) -> np.ndarray:
    """uint8 boundary map on the doubled grid padded to shape 2s (1 = boundary face).

    The extra last plane along each axis (beyond the last voxel) is 0, so the map covers the
    labels' ROI exactly at half the voxel size.
    """
    boundaries = face_boundaries(labels)
    out = np.zeros(tuple(2 * s for s in np.shape(labels)), dtype=np.uint8)
    out[tuple(slice(0, s) for s in boundaries.shape)] = boundaries
    return out
