"""Balls of voxels around points ("blobs"), optionally kept inside the object of their centre."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np


def ball_offsets(radius: float, voxel_size: Sequence[float]) -> np.ndarray:
    """(K, dims) int voxel offsets o with ||o * voxel_size|| <= radius (world units), raster order."""
    vs = np.asarray(voxel_size, dtype=np.float64)
    reach = [int(np.floor(radius / v)) if radius >= 0 else -1 for v in vs]
    if any(r < 0 for r in reach):
        return np.zeros((0, len(vs)), dtype=np.int64)
    grid = np.array(list(itertools.product(*[range(-r, r + 1) for r in reach])), dtype=np.int64)
    grid = grid.reshape(-1, len(vs))
    keep = np.sqrt(((grid * vs) ** 2).sum(axis=1)) <= radius + 1e-9
    return grid[keep]


def ball_voxels(
    centre: Sequence[int],
    offsets: np.ndarray,
    shape: Sequence[int],
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """The voxels centre + offsets inside `shape` (and, with `mask`, of the centre's object).

    Returns (M, dims) int indices; empty if `mask` is given and the centre lies outside.
    """
    centre_arr = np.asarray(centre, dtype=np.int64)
    shape_arr = np.asarray(shape, dtype=np.int64)
    voxels = centre_arr + offsets
    keep = np.all((voxels >= 0) & (voxels < shape_arr), axis=1)
    voxels = voxels[keep]
    if mask is not None:
        if np.any(centre_arr < 0) or np.any(centre_arr >= shape_arr):
            return voxels[:0]
        obj = mask[tuple(centre_arr)]
        voxels = voxels[mask[tuple(voxels.T)] == obj]
    return voxels


def place_blobs(
    shape: Sequence[int],
    centres: np.ndarray,
    values: Sequence[Any],
    radius: float,
    voxel_size: Sequence[float],
    mask: np.ndarray | None = None,
    dtype: Any = np.uint64,
) -> np.ndarray:
    """An array of `shape` that is values[i] on the ball of `radius` (world) around centres[i].

    `centres` are voxel indices (N, dims), possibly outside the array (their ball is clipped).
    With `mask` (same shape), a ball covers only voxels with the mask value of its centre, and
    a centre outside the array paints nothing. Later points overwrite earlier ones; 0 elsewhere.
    """
    out = np.zeros(tuple(shape), dtype=dtype)
    if mask is not None and np.shape(mask) != tuple(shape):
        raise ValueError(f"mask of shape {np.shape(mask)} does not match the shape {tuple(shape)}")
    offsets = ball_offsets(radius, voxel_size)
    for centre, value in zip(np.asarray(centres, dtype=np.int64).reshape(-1, len(shape)), values):
        voxels = ball_voxels(centre, offsets, shape, mask)
        out[tuple(voxels.T)] = value
    return out
