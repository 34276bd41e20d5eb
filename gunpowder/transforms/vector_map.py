"""Vector maps: around each source point, every voxel holds the vector to a partner point.

World units throughout; voxel index v of an array stands for the world position
origin + v * voxel_size (its lower corner, as gunpowder 1.x). Channels first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .blobs import ball_offsets, ball_voxels

CRITERIA = ("min_distance", "all")


def nearest(points: np.ndarray, to: np.ndarray) -> int:
    """Index of the row of `points` nearest to `to` (the first on ties)."""
    return int(np.argmin(np.linalg.norm(points - to, axis=1)))


def split_among_partners(
    positions: np.ndarray, source: np.ndarray, partners: np.ndarray
) -> np.ndarray:
    """Assign each of `positions` (M, dims) a partner index, in near-equal shares.

    Partners take their share from the positions still free in order of decreasing distance
    to `source`, each taking the free positions nearest to itself; shares differ by at most
    one, the larger ones going to the partners nearest to `source`.
    """
    m, p = len(positions), len(partners)
    order = np.argsort(-np.linalg.norm(partners - source, axis=1), kind="stable")
    quotas = np.full(p, m // p)
    quotas[order[p - m % p :]] += 1
    assigned = np.full(m, -1)
    for j in order:
        free = np.flatnonzero(assigned < 0)
        if quotas[j] == 0 or len(free) == 0:
            continue
        d = np.linalg.norm(positions[free] - partners[j], axis=1)
        assigned[free[np.argsort(d, kind="stable")[: quotas[j]]]] = j
    return assigned


def vector_map(
    shape: Sequence[int],
    origin: Sequence[float],
    voxel_size: Sequence[float],
    sources: np.ndarray,
    partners: Sequence[np.ndarray],
    radius: float,
    criterion: str = "min_distance",
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """float32 (dims, *shape): vectors from voxels near sources[k] to partners of source k.

    A voxel v is near source k if ||(v - c_k) * voxel_size|| <= radius, where c_k is the
    voxel containing the source, and (with `mask`, labels of `shape`) mask[v] == mask[c_k]; a
    voxel near several sources belongs to the nearest (the first on ties), and sources without
    partners claim nothing. Its value is partner - (origin + v * voxel_size), for the partner
    nearest to the source (`criterion` "min_distance") or, for "all", for one partner per
    voxel such that the source's voxels are split in near-equal shares among its partners
    (`split_among_partners`). 0 on voxels near no source.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    shape = tuple(int(s) for s in shape)
    dims = len(shape)
    origin_arr = np.asarray(origin, dtype=np.float64)
    vs = np.asarray(voxel_size, dtype=np.float64)
    sources = np.asarray(sources, dtype=np.float64).reshape(-1, dims)
    out = np.zeros((dims,) + shape, dtype=np.float32)
    offsets = ball_offsets(radius, vs)
    best = np.full(shape, np.inf)
    owner = np.full(shape, -1, dtype=np.int64)
    for k, loc in enumerate(sources):
        if len(partners[k]) == 0:
            continue
        centre = np.floor((loc - origin_arr) / vs).astype(np.int64)
        voxels = ball_voxels(centre, offsets, shape, mask)
        if len(voxels) == 0:
            continue
        d = np.linalg.norm((voxels - centre) * vs, axis=1)
        index = tuple(voxels.T)
        closer = d < best[index]
        won = tuple(axis[closer] for axis in index)
        best[won] = d[closer]
        owner[won] = k
    flat_owner = owner.ravel()
    claimed = np.flatnonzero(flat_owner >= 0)
    if len(claimed) == 0:
        return out
    claimed = claimed[np.argsort(flat_owner[claimed], kind="stable")]
    bounds = np.searchsorted(flat_owner[claimed], np.arange(len(sources) + 1))
    for k in range(len(sources)):
        flat = claimed[bounds[k] : bounds[k + 1]]
        if len(flat) == 0:
            continue
        voxels = np.stack(np.unravel_index(flat, shape), axis=1)
        positions = origin_arr + voxels * vs
        ps = np.asarray(partners[k], dtype=np.float64).reshape(-1, dims)
        if criterion == "min_distance" or len(ps) == 1:
            targets = np.broadcast_to(ps[nearest(ps, sources[k])], positions.shape)
        else:
            targets = ps[split_among_partners(positions, sources[k], ps)]
        vectors = (targets - positions).astype(np.float32)
        for axis in range(dims):
            out[axis].flat[flat] = vectors[:, axis]
    return out
