"""`ElasticAugment` (1.x, voxel units) and `DeformAugment` (world units): random smooth warps.

Both draw one `SpatialTransform` per request over the union of the requested ROIs (the
spec-to-spec half asks upstream for the bounding box of each array's source voxels) and warp
every array of the batch with it (the batch-to-batch half). The maths lives in
`gunpowder.transforms.elastic`; the transform travels in the context, so a graph node (or a
user) can map points with `ctx.transform.to_target(points)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..geometry import Coordinate, Roi
from ..node import Node
from ..spec import ArrayKey, BatchRequest, GraphKey
from ..transforms.elastic import (
    SpatialTransform,
)


@dataclass(frozen=True)
class WarpPlan:
    """What `process` does: the transform and, per key, the ROI to deliver and how to sample."""

    transform: SpatialTransform
    arrays: dict = field(default_factory=dict)  # key -> (target roi, voxel size, interpolate)
    graphs: dict = field(default_factory=dict)  # key -> target roi


def _last(values: Any, n: int, what: str, node: str) -> np.ndarray:
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if values.size == 1:
        return np.full(n, float(values[0]))
    if values.size < n:
        raise PipelineRequestError(
            f"{node}: {what} has {values.size} entries, but the request has {n} spatial dimensions"
        )
    return values[-n:]


class _Warp(Node):
    """Shared halves of the warping nodes; subclasses draw the transform (`_draw`)."""

    p: float = 1.0
    spatial_dims: int = 3
    subsample: int = 1

    def _draw(
        self, rng: np.random.Generator, origin: np.ndarray, voxel_size: np.ndarray, shape: tuple
    ) -> SpatialTransform:
        raise NotImplementedError

    def _check_subsample_and_p(self, node: str, subsample: Any, p: Any) -> None:
        """Constructor checks both warps share (`node`: the class name users know)."""
        if self.subsample < 1:
            raise ValueError(f"{node}: subsample must be >= 1, got {subsample}")
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"{node}: p must be in [0, 1], got {p}")

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
        if any(r.dims != dims for r in rois) or dims not in (2, 3):
            raise PipelineRequestError(
                f"{self.name}: all requested ROIs must be 2D or 3D alike, got "
                + ", ".join(f"{k}: {s.roi}" for k, s in {**arrays, **graphs}.items())
            )
        if any(r.unbounded for r in rois):
            raise PipelineRequestError(f"{self.name}: can not warp an unbounded request {rois}")
        voxel_sizes = {k: self._voxel_size(k, s) for k, s in arrays.items()}
        master_vs = (
            np.min(np.array(list(voxel_sizes.values()), dtype=np.int64), axis=0)
            if voxel_sizes
            else np.ones(dims, dtype=np.int64)
        )
        total = rois[0]
        for r in rois[1:]:
            total = total.union(r)
        origin = np.array(total.begin, dtype=np.float64)
        shape = tuple(int(s) for s in -(-np.array(total.shape) // master_vs))
        transform = self._draw(rng, origin, master_vs.astype(np.float64), shape)

        upstream = request.copy()
        plan = WarpPlan(transform)
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
            begin, end = transform.source_box(mvs, spec.roi.offset, spec.roi.shape / mvs, True)
            upstream[key] = spec.replace(roi=Roi(begin, end - begin))
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
            batch[key] = move_graph(batch[key], plan.transform, roi, self.name, key)
        return batch


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
        return graph.with_locations(moved, roi=roi).crop(roi)
    nodes = list(getattr(graph, "nodes", []))
    if nodes and not all(hasattr(n, "location") for n in nodes):
        raise PipelineRequestError(
            f"{node}: can not move graph {key}: its nodes have no `location` to transform"
        )
    if nodes:
        moved = mapping(np.array([n.location for n in nodes], dtype=np.float64))
        for n, location in zip(nodes, moved):
            n.location = location
    return graph.crop(roi)
