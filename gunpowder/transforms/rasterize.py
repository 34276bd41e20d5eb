"""Rasterise points and line segments into a voxel grid (balls, hollow balls, Gaussian peaks).

Convention (gunpowder 1.x's): voxel `i` of an array starting at world `offset` has its centre
at `offset + (i + 0.5) * voxel_size`; a point is drawn at the centre `s` of the voxel that
contains it (floor), so that voxel is always painted. With radius r (per axis, world units) a
point *covers* voxel i when its centre c satisfies d**2 = sum(((c - s) / r)**2) <= 1. An edge
covers the voxels within that (scaled) distance of the segment between its end points (a tube
with rounded ends) plus every voxel holding a point of the segment (`segment_voxels`), so thin
edges have no gaps (1.x: the voxels of a line, grown by the radius). Edges are not snapped:
a piece of an edge cut at a border (`Graph.trim`) paints what the whole edge paints there, so
the result does not depend on where a batch was cut. An axis with radius 0 covers only the
voxel that contains the point along it. Hollow balls (inner fraction f) cover the voxels
whose distance to the *nearest* point or edge is in [f, 1] (1.x: a distance transform from
all of them). Peaks are exp(-d**2 / 2) with the radius as sigma, cut at `PEAK_TRUNCATE`
sigmas, combined by maximum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

PEAK_TRUNCATE = 4.0  # sigmas: peak values beyond are below exp(-8) and left at background


def _per_axis(value: Any, dims: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.full(dims, float(arr[0]))
    if arr.size != dims or np.any(arr < 0) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a non-negative number or {dims} of them, got {value!r}")
    return arr


class _Grid:
    """An output grid: world `offset`, `voxel_size`, `shape`; finds voxel boxes and centres."""

    def __init__(self, shape: Sequence[int], offset: Any, voxel_size: Any) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dims = len(self.shape)
        self.offset = np.asarray(offset, dtype=np.float64).reshape(-1)
        self.voxel_size = np.asarray(voxel_size, dtype=np.float64).reshape(-1)

    def centre_range(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Voxel index range [a, b) holding the centres inside [lo, hi] (one voxel of slack
        against rounding; callers test the exact distance), clipped to the grid."""
        a = np.ceil((lo - self.offset) / self.voxel_size - 0.5).astype(np.int64) - 1
        b = np.floor((hi - self.offset) / self.voxel_size - 0.5).astype(np.int64) + 2
        shape = np.array(self.shape)
        return np.clip(a, 0, shape), np.clip(b, 0, shape)

    def containing(self, p: np.ndarray) -> np.ndarray:
        """Index of the voxel containing world position p (may be outside the grid)."""
        return np.floor((p - self.offset) / self.voxel_size).astype(np.int64)

    def snap(self, p: np.ndarray) -> np.ndarray:
        """The centre of the voxel containing world position p."""
        return self.offset + (self.containing(p) + 0.5) * self.voxel_size

    def centres(self, a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
        """Open-grid (broadcastable) world centre coordinates of the box [a, b)."""
        out = []
        for axis in range(self.dims):
            c = self.offset[axis] + (np.arange(a[axis], b[axis]) + 0.5) * self.voxel_size[axis]
            view = [1] * self.dims
            view[axis] = -1
            out.append(c.reshape(view))
        return out


def _box(
    grid: _Grid, lo: np.ndarray, hi: np.ndarray, reach: np.ndarray, anchor: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The voxel box [a, b) a primitive spanning [lo, hi] with `reach` can touch; axes with
    zero reach are restricted to the voxel containing `anchor`."""
    a, b = grid.centre_range(lo - reach, hi + reach)
    flat = reach == 0
    if np.any(flat):
        idx = grid.containing(anchor)
        a = np.where(flat, idx, a)
        b = np.where(flat, idx + 1, b)
        if np.any((a < 0) | (b > np.array(grid.shape))):
            return None
    if np.any(b <= a):
        return None
    return a, b


def _point_d2(grid: _Grid, a, b, p: np.ndarray, radius: np.ndarray) -> np.ndarray:
    d2 = np.zeros(tuple(b - a))
    for axis, c in enumerate(grid.centres(a, b)):
        if radius[axis] > 0:
            d2 = d2 + ((c - p[axis]) / radius[axis]) ** 2
    return d2


def _segment_d2(grid: _Grid, a, b, p: np.ndarray, q: np.ndarray, radius: np.ndarray) -> np.ndarray:
    centres = grid.centres(a, b)
    w = (q - p) / radius
    ww = float(w @ w)
    u = [(c - p[axis]) / radius[axis] for axis, c in enumerate(centres)]
    if ww == 0:
        t = 0.0
    else:
        t = np.clip(sum(u[axis] * w[axis] for axis in range(grid.dims)) / ww, 0.0, 1.0)
    d2 = np.zeros(tuple(b - a))
    for axis in range(grid.dims):
        d2 = d2 + (u[axis] - t * w[axis]) ** 2
    return d2


def segment_voxels(
    shape: Sequence[int], offset: Any, voxel_size: Any, p: Any, q: Any
) -> np.ndarray:
    """The voxels (K, dims) of the grid holding a point of the segment p→q (half-open voxels,
    as `containing`), sorted: the voxels of the pieces between the segment's crossings of
    voxel faces, plus those of the crossing points and ends themselves."""
    grid = _Grid(shape, offset, voxel_size)
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    d = q - p
    lo = grid.offset
    hi = grid.offset + np.array(grid.shape) * grid.voxel_size
    ts = [np.array([0.0, 1.0])]
    for axis in range(grid.dims):
        a, b = sorted((p[axis], q[axis]))
        a, b = max(a, lo[axis]), min(b, hi[axis])
        if a > b:
            return np.zeros((0, grid.dims), dtype=np.int64)  # misses the grid
        if d[axis] == 0:
            continue
        k0 = math.ceil((a - lo[axis]) / grid.voxel_size[axis])
        k1 = math.floor((b - lo[axis]) / grid.voxel_size[axis])
        faces = lo[axis] + np.arange(k0, k1 + 1) * grid.voxel_size[axis]
        ts.append((faces - p[axis]) / d[axis])
    t = np.unique(np.clip(np.concatenate(ts), 0.0, 1.0))
    t = np.concatenate([t, (t[:-1] + t[1:]) / 2])
    index = grid.containing(p + t[:, None] * d)
    index = index[np.all((index >= 0) & (index < np.array(grid.shape)), axis=1)]
    return np.unique(index, axis=0).reshape(-1, grid.dims)


def _segment_samples(p: np.ndarray, q: np.ndarray, voxel_size: np.ndarray) -> np.ndarray:
    """Points along p→q at most half a voxel apart (for radii with zero axes)."""
    steps = int(np.ceil(np.max(np.abs(q - p) / (0.5 * voxel_size)))) if np.any(q != p) else 0
    t = np.linspace(0.0, 1.0, steps + 1)[:, None]
    return p + t * (q - p)


def rasterize(
    shape: Sequence[int],
    offset: Any,
    voxel_size: Any,
    locations: Any,
    radius: Any,
    edges: Any = None,
    mode: str = "ball",
    inner_radius_fraction: float | None = None,
    node_values: Any = None,
    edge_values: Any = None,
    bg_value: Any = 0,
    dtype: Any = np.uint8,
    mask: np.ndarray | None = None,
    node_mask_labels: Any = None,
    edge_mask_labels: Any = None,
) -> np.ndarray:
    """An array of `shape` (grid at world `offset`, `voxel_size`) with balls/peaks at
    `locations` (N, dims, world) and tubes along `edges` (E, 2 row indices).

    `node_values`/`edge_values` (per primitive; NaN = skip) are painted in "ball" mode, later
    primitives over earlier ones; "peak" mode paints max(exp(-d^2/2)) (values in [0, 1]).
    `inner_radius_fraction` f makes balls hollow (covered: f <= d <= 1). With `mask` (same
    shape), a primitive only paints voxels whose mask equals its `*_mask_labels` entry
    (for an edge, a sequence of accepted labels).
    """
    grid = _Grid(shape, offset, voxel_size)
    dims = grid.dims
    if mode not in ("ball", "peak"):
        raise ValueError(f"rasterization mode must be 'ball' or 'peak', got {mode!r}")
    locations = np.asarray(locations, dtype=np.float64).reshape(-1, dims)
    radius = _per_axis(radius, dims, "radius")
    edges = np.zeros((0, 2), np.int64) if edges is None else np.asarray(edges, np.int64)
    edges = edges.reshape(-1, 2)
    node_values = np.ones(len(locations)) if node_values is None else np.asarray(node_values)
    edge_values = np.ones(len(edges)) if edge_values is None else np.asarray(edge_values)
    if mask is not None and tuple(mask.shape) != grid.shape:
        raise ValueError(f"mask of shape {mask.shape} does not match the output shape {grid.shape}")
    peak = mode == "peak"
    if peak and not np.issubdtype(np.dtype(dtype), np.floating):
        raise ValueError(f"'peak' rasterization needs a float dtype, got {np.dtype(dtype)}")
    out = np.full(grid.shape, bg_value, dtype=dtype)
    reach = radius * (PEAK_TRUNCATE if peak else 1.0)
    inner2 = None if not inner_radius_fraction else float(inner_radius_fraction) ** 2
    hollow = None if inner2 is None else np.zeros(grid.shape, dtype=bool)
    shape = np.array(grid.shape)

    def paint(a, b, d2, value, labels) -> None:
        region = tuple(slice(int(a[i]), int(b[i])) for i in range(dims))
        if peak:
            covered = d2 <= PEAK_TRUNCATE**2
            values = np.where(covered, np.exp(-0.5 * d2), 0.0)
        else:
            covered = d2 <= 1.0
        own = None if labels is None else np.isin(mask[region], labels)
        if own is not None:
            covered = covered & own
        target = out[region]
        if peak:
            np.copyto(target, np.maximum(target, values.astype(dtype)), where=covered)
        else:
            target[covered] = value
        if hollow is not None:  # inside some primitive's inner radius: cleared at the end
            inner = d2 < inner2
            hollow[region] |= inner if own is None else inner & own

    def voxels(index: np.ndarray, value: Any, labels: Any) -> None:
        """Paint whole voxels (K, dims) as at distance 0: the voxels an edge runs through."""
        index = index[np.all((index >= 0) & (index < shape), axis=1)]
        if len(index) == 0:
            return
        where = tuple(index.T)
        if labels is not None:
            index = index[np.isin(mask[where], labels)]
            where = tuple(index.T)
        if peak:
            out[where] = np.maximum(out[where], np.asarray(1.0, dtype=dtype))
        else:
            out[where] = value
        if hollow is not None:
            hollow[where] = True

    def point(p: np.ndarray, value: Any, labels: Any, snap: bool = True) -> None:
        s = grid.snap(p) if snap else p
        box = _box(grid, s, s, reach, s)
        if box is not None:
            a, b = box
            paint(a, b, _point_d2(grid, a, b, s, radius), value, labels)

    for i, p in enumerate(locations):
        if _skip(node_values[i]):
            continue
        point(p, node_values[i], None if node_mask_labels is None else [node_mask_labels[i]])
    flat = np.any(radius == 0)
    for k, (i, j) in enumerate(edges.tolist()):
        if _skip(edge_values[k]):
            continue
        labels = None if edge_mask_labels is None else list(edge_mask_labels[k])
        p, q = locations[i], locations[j]
        if flat:
            for s in _segment_samples(p, q, grid.voxel_size):
                point(s, edge_values[k], labels, snap=False)
        else:
            # long segments in pieces about a radius long: boxes hug the tube (same voxels)
            pieces = max(1, int(np.ceil(np.linalg.norm((q - p) / reach))))
            ends = p + np.linspace(0.0, 1.0, pieces + 1)[:, None] * (q - p)
            for s0, s1 in zip(ends[:-1], ends[1:]):
                box = _box(grid, np.minimum(s0, s1), np.maximum(s0, s1), reach, s0)
                if box is not None:
                    a, b = box
                    d2 = _segment_d2(grid, a, b, s0, s1, radius)
                    paint(a, b, d2, edge_values[k], labels)
        voxels(
            segment_voxels(grid.shape, grid.offset, grid.voxel_size, p, q), edge_values[k], labels
        )
    if hollow is not None:
        out[hollow] = bg_value
    return out


def _skip(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and np.isnan(value))


__all__ = ["rasterize", "segment_voxels", "PEAK_TRUNCATE"]
