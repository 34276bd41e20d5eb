"""`ElasticAugment` (1.x, voxel units) and `DeformAugment` (world units): random smooth warps.

Both draw one `SpatialTransform` per request over the union of the requested ROIs (the
spec-to-spec half asks upstream for the bounding box of each array's source voxels) and warp
every array of the batch with it (the batch-to-batch half). The maths lives in
`gunpowder.transforms.elastic`; the transform travels in the context, so a graph node (or a
user) can map points with `ctx.transform.to_target(points)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..node import Node
from ..spec import ArrayKey, BatchRequest, GraphKey, ProviderSpec
from ..transforms.elastic import (
    SpatialTransform,
)


@dataclass(frozen=True)
class WarpPlan:
    """What `process` does: the transform and, per key, the ROI to deliver and how to sample."""

    transform: SpatialTransform
    arrays: dict = field(default_factory=dict)  # key -> (target roi, voxel size, interpolate)
    graphs: dict = field(default_factory=dict)  # key -> target roi
    fast_points: tuple | None = None  # (lookup voxel size, recompute missing) or None
    leading: int = 0  # leading axes of a graph-only request left unwarped (4D points)


def _last(values: Any, n: int, what: str, node: str) -> np.ndarray:
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if values.size == 1:
        return np.full(n, float(values[0]))
    if values.size < n:
        raise PipelineRequestError(
            f"{node}: {what} has {values.size} entries, but the request has {n} spatial dimensions"
        )
    return values[-n:]


def _graph_grid(node: str, grid: Any, dims: int) -> np.ndarray:
    """The voxel grid of a graph-only warp: `graph_raster_voxel_size` for the last axes."""
    given = np.atleast_1d(np.asarray(grid if grid is not None else 1, dtype=np.int64))
    if given.size == 1:
        return np.full(dims, int(given[0]), dtype=np.int64)
    if given.size > dims:
        raise PipelineRequestError(
            f"{node}: graph_raster_voxel_size has {given.size} entries, but the request has "
            f"{dims} spatial dimensions"
        )
    return np.concatenate([np.ones(dims - given.size, dtype=np.int64), given])


def _check_lengths(node: str, spacing: tuple, sigma: tuple) -> None:
    """control_point_spacing and jitter_sigma: one value, or one per axis alike."""
    if len(spacing) > 1 and len(sigma) > 1 and len(spacing) != len(sigma):
        raise ValueError(
            f"{node}: control_point_spacing {spacing} and jitter_sigma {sigma} must have the "
            "same number of entries (or one value)"
        )


class _Warp(Node):
    """Shared halves of the warping nodes; subclasses draw the transform (`_draw`)."""

    p: float = 1.0
    spatial_dims: int = 3
    subsample: int = 1
    use_fast_points_transform: bool = False
    recompute_missing_points: bool = True
    graph_raster_voxel_size: Any = None

    def _draw(
        self, rng: np.random.Generator, origin: np.ndarray, voxel_size: np.ndarray, shape: tuple
    ) -> SpatialTransform:
        raise NotImplementedError

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        dims = {
            s.roi.dims
            for s in upstream_spec.values()
            if s.roi is not None and not getattr(s, "nonspatial", False)
        }
        if len(dims) == 1:
            n = min(self.spatial_dims, dims.pop())
            for what in ("control_point_spacing", "jitter_sigma"):
                values = getattr(self, what)
                if 1 < len(values) < n:
                    raise PipelineSetupError(
                        f"{self.name}: {what} {tuple(values)} has {len(values)} entries, but "
                        f"the upstream data has {n} spatial dimensions to warp"
                    )
        return upstream_spec

    def _voxel_size(self, key: ArrayKey, spec: Any) -> Coordinate:
        vs = spec.voxel_size
        if vs is None and self.spec is not None and key in self.spec:
            vs = self.spec[key].voxel_size
        if vs is None:
            vs = Coordinate((1,) * spec.roi.dims)
        return Coordinate(vs)

    def _interpolatable(self, key: ArrayKey, spec: Any) -> bool:
        value = spec.interpolatable
        if value is None and self.spec is not None and key in self.spec:
            value = self.spec[key].interpolatable
        if value is None:
            dtype = (
                spec.dtype if spec.dtype is not None else getattr(self.spec.get(key), "dtype", None)
            )
            value = dtype is not None and np.issubdtype(dtype, np.floating)
        return bool(value)

    def _graph_only_grid(self, graphs: dict, dims: int) -> np.ndarray:
        """The voxel grid for a request of graphs only; ElasticAugment refuses one (1.x)."""
        raise PipelineRequestError(
            f"{self.name}: the request has only graphs ({', '.join(map(str, graphs))}); "
            "an array is needed to give the warp its voxel grid. Request an array too, "
            "e.g. a placeholder: request[key] = gp.ArraySpec(roi=..., placeholder=True)"
        )

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        if rng.random() >= self.p:
            return request, None
        arrays = {
            k: s
            for k, s in request.array_specs.items()
            if s.roi is not None and not s.nonspatial and not s.roi.unbounded
        }
        graphs = {k: s for k, s in request.graph_specs.items() if s.roi is not None}
        if not arrays and not graphs:
            return request, None
        rois = [s.roi for s in arrays.values()] + [s.roi for s in graphs.values()]
        dims = rois[0].dims
        lead = 0  # leading axes of graph-only requests (e.g. time in 4D points) stay as they are
        if not arrays and dims > 3 and self.spatial_dims in (2, 3):
            lead = dims - self.spatial_dims
        if any(r.dims != dims for r in rois) or dims - lead not in (2, 3):
            raise PipelineRequestError(
                f"{self.name}: all requested ROIs must be 2D or 3D alike, got "
                + ", ".join(f"{k}: {s.roi}" for k, s in {**arrays, **graphs}.items())
            )
        if any(r.unbounded for r in rois):
            raise PipelineRequestError(f"{self.name}: can not warp an unbounded request {rois}")
        voxel_sizes = {k: self._voxel_size(k, s) for k, s in arrays.items()}
        if voxel_sizes:
            master_vs = np.min(np.array(list(voxel_sizes.values()), dtype=np.int64), axis=0)
        else:
            master_vs = self._graph_only_grid(graphs, dims - lead)
        total = rois[0]
        for r in rois[1:]:
            total = total.union(r)
        origin = np.array(total.begin[lead:], dtype=np.float64)
        shape = tuple(int(s) for s in -(-np.array(total.shape[lead:]) // master_vs))
        transform = self._draw(rng, origin, master_vs.astype(np.float64), shape)

        upstream = request.copy()
        fast = None
        if self.use_fast_points_transform and graphs and not lead:
            grid = self.graph_raster_voxel_size
            if grid is None:
                grid = master_vs
            else:  # given for the augmented (last) axes, as 1.x: the others keep the arrays'
                given = np.atleast_1d(np.asarray(grid, dtype=np.int64))
                if given.size > dims:
                    raise PipelineRequestError(
                        f"{self.name}: graph_raster_voxel_size has {given.size} entries, but "
                        f"the request has {dims} spatial dimensions"
                    )
                grid = np.concatenate([master_vs[: dims - given.size], given[-dims:]])
                if given.size == 1:
                    grid = np.full(dims, int(given[0]))
            fast = (tuple(int(v) for v in grid), bool(self.recompute_missing_points))
        plan = WarpPlan(transform, fast_points=fast, leading=lead)
        for key, spec in arrays.items():
            vs = voxel_sizes[key]
            interpolate = self._interpolatable(key, spec)
            begin, end = transform.source_box(vs, spec.roi.offset, spec.roi.shape / vs, interpolate)
            source = Roi(begin, end - begin)
            have = self.upstream_spec[key].roi if key in self.upstream_spec else None
            check_source(self.name, key, spec.roi, source, have)
            upstream[key] = spec.replace(roi=source)
            plan.arrays[key] = (spec.roi, vs, interpolate)
        for key, spec in graphs.items():
            mvs = Coordinate(master_vs)
            offset, extent = Coordinate(spec.roi.offset[lead:]), Coordinate(spec.roi.shape[lead:])
            begin, end = transform.source_box(mvs, offset, extent / mvs, True)
            source = Roi(
                tuple(spec.roi.offset[:lead]) + tuple(begin),
                tuple(spec.roi.shape[:lead]) + tuple(end - begin),
            )
            upstream[key] = spec.replace(roi=source)
            plan.graphs[key] = spec.roi
        return upstream, plan

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        plan: WarpPlan = ctx
        cache: dict = {}
        for key, (roi, vs, interpolate) in plan.arrays.items():
            array = batch[key]
            data = plan.transform.warp(
                array.data,
                array.spec.roi.offset,
                vs,
                roi.offset,
                roi.shape / vs,
                interpolate,
                index_cache=cache,
            )
            batch[key] = Array(data, array.spec.replace(roi=roi), array.attrs)
        for key, roi in plan.graphs.items():
            mapping: Any = plan.transform
            if plan.leading:
                mapping = partial(_on_last_axes, plan.transform, plan.leading)
            elif plan.fast_points is not None:
                mapping = partial(_fast_to_target, plan.transform, roi, *plan.fast_points)
            batch[key] = move_graph(batch[key], mapping, roi, self.name, key)
        return batch


def _on_last_axes(transform: SpatialTransform, lead: int, points: np.ndarray) -> np.ndarray:
    """`points` with only their last axes (after `lead`) moved by `transform.to_target`."""
    out = np.array(points, dtype=np.float64, copy=True)
    if len(out):
        out[:, lead:] = transform.to_target(out[:, lead:])
    return out


def _fast_to_target(
    transform: SpatialTransform, roi: Roi, grid: tuple, recompute: bool, points: np.ndarray
) -> np.ndarray:
    """`transform.to_target(points)` by lookup on a `grid` over `roi` (1.x's
    use_fast_points_transform): points the lookup misses are mapped exactly if `recompute`,
    else dropped, as are points landing outside `roi` (placed beyond its end: the crop
    removes them)."""
    g = np.asarray(grid, dtype=np.int64)
    begin = np.asarray(roi.begin, dtype=np.int64) // g * g
    end = -(-np.asarray(roi.end, dtype=np.int64) // g) * g
    result = transform.to_target_lookup(points, g, begin, (end - begin) // g, fill_holes=recompute)
    if result is None:  # too large a grid for a lookup
        return transform.to_target(points)
    targets, status = result
    missed = np.flatnonzero(status == 0)
    if recompute and len(missed):
        targets[missed] = transform.to_target(points[missed])
    dropped = np.isnan(targets).any(axis=1)
    targets[dropped] = np.asarray(roi.end, dtype=np.float64) + 1.0
    return targets


def check_source(node: str, key: ArrayKey, roi: Roi, source: Roi, have: Roi | None) -> None:
    """Raise unless the upstream data `have` covers `source`, the region `node` must read to
    deliver `key` in `roi`: as in 1.x, a transform never makes up data beyond the provided
    ROI (that is Pad's job, which then provides it)."""
    if have is None or have.contains(source):
        return
    raise PipelineRequestError(
        f"{node}: to deliver {key} in {roi} it must read {key} in {source}, which is not "
        f"inside the provided ROI {have}. Add a Pad({key}, None) (or a large enough Pad) "
        f"upstream of {node} to fill the outside, or a RandomLocation so requests land inside "
        "the data."
    )


def move_graph(graph: Any, mapping: Any, roi: Roi, node: str, key: GraphKey) -> Any:
    """`graph` with every node moved by `mapping` ((N, dims) world → (N, dims) world, or a
    `SpatialTransform`, whose `to_target` is used) and cropped to `roi` (nodes outside drop).

    Uses `Graph.with_locations` and `crop` (gunpowder.graph); other graph types need nodes
    with a `location` and a `crop(roi)` method.
    """
    if isinstance(mapping, SpatialTransform):
        mapping = mapping.to_target
    if hasattr(graph, "with_locations") and hasattr(graph, "locations"):
        locations = graph.locations
        moved = mapping(locations) if len(locations) else locations
        return graph.with_locations(moved, roi=roi).crop(roi, exact=True)
    nodes = list(getattr(graph, "nodes", []))
    if nodes and not all(hasattr(n, "location") for n in nodes):
        raise PipelineRequestError(
            f"{node}: can not move graph {key}: its nodes have no `location` to transform"
        )
    if nodes:
        moved = mapping(np.array([n.location for n in nodes], dtype=np.float64))
        for n, location in zip(nodes, moved):
            n.location = location
    return graph.crop(roi, exact=True)
