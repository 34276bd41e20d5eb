"""Graph support for the spatial nodes: move, pad and store graphs; sample locations near points.

Plain functions, so location, padding, augmentation and snapshot nodes handle graphs with a
line each: `transform_graph` (any point mapping, e.g. an augmentation's
`SpatialTransform.to_target`), `shift_graph`, `section_shift_graph` (ShiftAugment),
`pad_graph_request`/`pad_graph` (Pad), `graph_datasets` (Snapshot), and for
`RandomLocation(ensure_nonempty=...)`: `point_index_for` (the upstream source's KD-tree, or one
built from a single read) and `shifts_near_points` (shifts that put a point in the request).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..geometry import Coordinate, Roi
from ..graph import Graph, inside_mask
from ..spec import ArraySpec, BatchRequest, GraphKey, GraphSpec
from ._graph_index import PointIndex

# ---------------------------------------------------------------------------------------------
# moving graphs


def shift_graph(graph: Graph, offset: Any) -> Graph:
    """A copy of `graph` with nodes and ROI moved by `offset` (world units, integers)."""
    return graph.copy().shift(offset)


def transform_graph(
    graph: Graph, mapping: Any, roi: Roi | None = None, trim: bool = False
) -> Graph:
    """A copy of `graph` with every node moved by `mapping` and cropped to `roi`.

    `mapping` maps world points (N, dims) → (N, dims): a callable, or an object with
    `to_target` (a `SpatialTransform`: points move exactly as the voxels they sit on).
    `roi` defaults to the graph's ROI; `trim` keeps edges leaving it (see `Graph.crop`).
    """
    fn: Callable = getattr(mapping, "to_target", mapping)
    locations = graph.locations
    moved = np.asarray(fn(locations), dtype=np.float64) if len(locations) else locations
    if moved.shape != locations.shape:
        raise ValueError(
            f"transform_graph: the mapping returned shape {moved.shape} for {locations.shape}"
        )
    roi = graph.spec.roi if roi is None else roi
    out = graph.with_locations(moved)
    return out if roi is None else out.crop(roi, trim=trim, exact=not trim)


def section_shift_graph(
    graph: Graph,
    roi: Roi,
    shift_axis: int,
    section_shifts: Any,
    section_size: int,
    trim: bool = False,
) -> Graph:
    """Move each node by the shift of its section (ShiftAugment) and crop to `roi`.

    Section i spans `roi.begin[shift_axis] + [i, i + 1) * section_size` along `shift_axis`;
    `section_shifts` (n_sections, dims) are world offsets (zero along `shift_axis`). Nodes in
    no section (outside `roi` along the axis) are dropped by the crop.
    """
    shifts = np.asarray(section_shifts, dtype=np.float64)
    locations = graph.locations
    if len(locations) == 0:
        return graph.crop(roi, exact=True)
    section = np.floor(
        (locations[:, shift_axis] - roi.begin[shift_axis]) / float(section_size)
    ).astype(np.int64)
    valid = (section >= 0) & (section < len(shifts))
    moved = locations.copy()
    moved[valid] += shifts[section[valid]]
    return graph.with_locations(moved).crop(roi, trim=trim, exact=not trim)


# ---------------------------------------------------------------------------------------------
# Pad


def pad_graph_request(wanted: Roi, provided: Roi | None) -> Roi:
    """The upstream ROI to read for a padded graph request: `wanted` within the data."""
    if provided is None:
        return wanted
    inner = wanted.intersect(provided)
    return inner if not inner.empty else Roi(provided.begin, (0,) * provided.dims)


def pad_graph(graph: Graph, wanted: Roi) -> Graph:
    """The graph read by `pad_graph_request`, declared over the padded ROI `wanted`."""
    return graph.crop(wanted, exact=True)


def pad_roi(roi: Roi, size: Coordinate | None) -> Roi:
    """`roi` grown by `size` (world units) on each side; an axis whose size (or `roi`'s
    begin) is None becomes unbounded, and so does every axis when `size` is None."""
    size = Coordinate((None,) * roi.dims) if size is None else Coordinate(size)
    begin: list[int | None] = []
    shape: list[int | None] = []
    for b, s, p in zip(roi.begin, roi.shape, size):
        if b is None or p is None:
            begin.append(None)
            shape.append(None)
        else:
            begin.append(b - p)
            shape.append(s + 2 * p)
    return Roi(begin, shape)


def pad_graph_spec(spec: GraphSpec, size: Coordinate | None) -> GraphSpec:
    """The spec of a graph padded by `size` (world units; None = without bound) per side."""
    return spec.replace(roi=pad_roi(spec.roi, size))


# ---------------------------------------------------------------------------------------------
# Snapshot


def graph_datasets(name: str, graph: Graph) -> dict[str, Array]:
    """Nonspatial arrays for writing a graph: `{name}-ids` (N,), `{name}-locations` (N, dims)
    in world units, `{name}-edges` (E, 2) node ids."""

    def nonspatial(data: np.ndarray) -> Array:
        return Array(data, ArraySpec(nonspatial=True, dtype=data.dtype))

    dims = graph.dims or 0
    return {
        f"{name}-ids": nonspatial(graph.node_ids),
        f"{name}-locations": nonspatial(graph.locations.reshape(-1, dims)),
        f"{name}-edges": nonspatial(graph.edge_array),
    }


# ---------------------------------------------------------------------------------------------
# RandomLocation(ensure_nonempty=...)


def point_index_for(pipeline: Any, key: GraphKey) -> PointIndex | None:
    """The `PointIndex` of `key` offered by a node upstream (`point_index(key)`), found by
    walking down `pipeline` along the branches that provide `key`; None if one offers none.

    Where several upstreams provide `key` (e.g. under a RandomProvider) the indices of all
    branches are joined, so candidate locations are near a point of some branch.
    Nodes on the way are assumed not to move points; `graph_nonempty` checks the batch.
    """
    offer = getattr(pipeline.node, "point_index", None)
    if callable(offer):
        index = offer(key)
        if index is not None:
            return index
    ups = [u for u in pipeline.upstream if u.node.spec is not None and key in u.node.spec]
    if not ups:
        return None
    indices = [point_index_for(u, key) for u in ups]
    if any(i is None for i in indices):
        return None
    if len(indices) == 1:
        return indices[0]
    return PointIndex(
        np.concatenate([i.locations for i in indices]), np.concatenate([i.ids for i in indices])
    )


def read_point_index(fetch: Callable[..., Batch], key: GraphKey, roi: Roi) -> PointIndex:
    """A `PointIndex` of all nodes of `key` in `roi`, read once through `fetch` (1.x way)."""
    request = BatchRequest({key: GraphSpec(roi=roi)}, random_seed=0)
    graph = fetch(request)[key]
    return PointIndex(graph.locations.reshape(-1, roi.dims), graph.node_ids)


def graph_nonempty(batch: Batch, key: GraphKey) -> bool:
    """True if the batch's graph `key` has a node inside its ROI."""
    graph = batch[key]
    roi = graph.spec.roi
    locations = graph.locations
    return bool(len(locations)) and (roi is None or bool(np.any(inside_mask(locations, roi))))


def _shift_range(
    lo: np.ndarray, hi: np.ndarray, point: np.ndarray, step: np.ndarray, k_lo, k_hi
) -> tuple[np.ndarray, np.ndarray]:
    """Grid indices k (shift = k * step) with lo + k*step <= point < hi + k*step, in [k_lo, k_hi]."""
    a = np.floor((point - hi) / step).astype(np.int64) + 1
    b = np.floor((point - lo) / step).astype(np.int64)
    return np.maximum(a, k_lo), np.minimum(b, k_hi)


def shifts_near_points(
    roi: Roi,
    index: PointIndex,
    k_lo: np.ndarray,
    k_hi: np.ndarray,
    step: Coordinate,
    rng: np.random.Generator,
    ensure_centered: bool = False,
    point_balance_radius: float = 1,
    max_misses: int = 1000,
) -> Iterator[Coordinate]:
    """Endless random shifts (multiples of `step`, grid index in [k_lo, k_hi]) that put a
    point of `index` into `roi` shifted — into its central voxel with `ensure_centered`.

    A point is drawn with weight 1 / (points within `point_balance_radius`), then a shift
    uniformly among those that contain it. Raises PipelineRequestError if no point can be
    reached at all.
    """
    if roi.unbounded:
        raise PipelineRequestError(f"can not place points into the unbounded ROI {roi}")
    step_arr = np.array(step, dtype=np.float64)
    k_lo = np.asarray(k_lo, dtype=np.int64)
    k_hi = np.asarray(k_hi, dtype=np.int64)
    begin = np.array(roi.begin, dtype=np.float64)
    end = np.array(roi.end, dtype=np.float64)
    if ensure_centered:
        center = np.array(roi.center, dtype=np.float64)
        begin = begin + np.floor((center - begin) / step_arr) * step_arr
        end = begin + step_arr
    reach = Roi(
        Coordinate(begin + k_lo * step_arr),
        Coordinate((end - begin) + (k_hi - k_lo) * step_arr),
    )
    candidates = index.query_box(reach)
    if len(candidates) == 0:
        raise PipelineRequestError(
            f"no point of the graph lies where the request {roi} can be placed "
            f"(reachable region {reach}); can not ensure a non-empty batch"
        )
    weights = index.balance_weights(point_balance_radius)[candidates]
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    misses = 0
    while True:
        pick = candidates[min(int(np.searchsorted(cdf, rng.random(), side="right")), len(cdf) - 1)]
        a, b = _shift_range(begin, end, index.locations[pick], step_arr, k_lo, k_hi)
        if np.any(a > b):  # the point falls between grid positions (ROI smaller than a step)
            misses += 1
            if misses >= max_misses:
                raise PipelineRequestError(
                    f"{misses} points in a row can not be placed into {roi} on the grid "
                    f"{tuple(step)}; can not ensure a non-empty batch"
                )
            continue
        misses = 0
        yield Coordinate(rng.integers(a, b + 1) * np.array(step, dtype=np.int64))


__all__ = [
    "shift_graph",
    "transform_graph",
    "section_shift_graph",
    "pad_graph_request",
    "pad_graph",
    "pad_graph_spec",
    "graph_datasets",
    "point_index_for",
    "read_point_index",
    "graph_nonempty",
    "shifts_near_points",
]
