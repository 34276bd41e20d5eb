"""`ElasticAugment` (1.x, voxel units) and `DeformAugment` (world units): random smooth warps.

Both draw one `SpatialTransform` per request over the union of the requested ROIs (the
spec-to-spec half asks upstream for the bounding box of each array's source voxels) and warp
every array of the batch with it (the batch-to-batch half). The maths lives in
`gunpowder.transforms.elastic`; the transform travels in the context, so a graph node (or a
user) can map points with `ctx.transform.to_target(points)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..geometry import Coordinate, Roi
from ..pipeline import Node
from ..spec import ArrayKey, BatchRequest, GraphKey
from ..transforms.elastic import (
    SpatialTransform,
    build_transform,
    draw_jitter,
    draw_misalignment,
    random_rotation,
    rotation_2d,
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


class ElasticAugment(_Warp):
    """Elastically deform a batch (1.x): jitter on a control-point grid, rotation, scaling, and
    EM section slips/shifts, all in voxels of the arrays.

    Augments training data with plausible tissue deformations. One transform is drawn per
    request and applied to every array and graph of the batch; the node asks upstream for the
    region each requested ROI is read from. Control points every `control_point_spacing`
    voxels are moved by N(0, `jitter_sigma`) voxels and interpolated with cubic splines; an
    angle from `rotation_interval` rotates the last two spatial axes, a factor from
    `scale_interval` zooms; section slips and shifts apply to 3D requests only.
    Interpolatable arrays are interpolated linearly, others (labels) by nearest neighbour.
    Arrays of different voxel sizes share one transform (voxel counts then refer to the
    finest voxel size of the request). As in 1.x, no data is made up beyond the provided
    ROI: add a Pad or RandomLocation upstream.

    Args:
        control_point_spacing: distance between control points, in voxels, per spatial axis
            (one value for all, or one per axis; with more entries the last ones are used).
        jitter_sigma: standard deviation of the control-point displacements, in voxels, per
            spatial axis (0 for an axis not to jitter).
        rotation_interval: (start, end) of the uniformly drawn rotation angle, in radians, of
            the last two spatial axes; (0, 0) for no rotation.
        scale_interval: (start, end) of the uniformly drawn zoom; > 1 magnifies (default
            (1.0, 1.0): no scaling).
        prob_slip: per section, the probability that it alone is moved in (y, x) (default 0).
        prob_shift: per section, the probability that it and all following sections are moved
            (default 0).
        max_misalign: the largest slip/shift, in voxels; offsets are uniform in
            [-max_misalign, max_misalign] (default 0).
        subsample: compute the transform exactly every `subsample` voxels and linearly in
            between, for speed (default 1: every voxel).
        spatial_dims: how many trailing spatial axes to warp; 2 warps each section of a 3D
            array in 2D with the same transform, without mixing sections (default 3).
        use_fast_points_transform: accepted for 1.x compatibility; points are always mapped
            exactly.
        recompute_missing_points: accepted for 1.x compatibility (no effect).
        p: probability of augmenting a request at all (default 1.0).

    Example::

        pipeline += gp.ElasticAugment(
            control_point_spacing=[4, 40, 40],
            jitter_sigma=[0, 2, 2],
            rotation_interval=[0, math.pi / 2],
            prob_slip=0.05,
            prob_shift=0.05,
            max_misalign=10,
            subsample=8,
        )
    """

    def __init__(
        self,
        control_point_spacing: Sequence[int],
        jitter_sigma: Sequence[float],
        rotation_interval: Sequence[float],
        scale_interval: Sequence[float] = (1.0, 1.0),
        prob_slip: float = 0,
        prob_shift: float = 0,
        max_misalign: int = 0,
        subsample: int = 1,
        spatial_dims: int = 3,
        use_fast_points_transform: bool = False,
        recompute_missing_points: bool = True,
        p: float = 1.0,
    ) -> None:
        self.control_point_spacing = tuple(control_point_spacing)
        self.jitter_sigma = tuple(jitter_sigma)
        self.rotation_interval = tuple(rotation_interval)
        self.scale_interval = tuple(scale_interval)
        self.prob_slip = float(prob_slip)
        self.prob_shift = float(prob_shift)
        self.max_misalign = max_misalign
        self.subsample = int(subsample)
        self.spatial_dims = int(spatial_dims)
        self.use_fast_points_transform = use_fast_points_transform
        self.recompute_missing_points = recompute_missing_points
        self.p = float(p)
        if len(self.rotation_interval) != 2 or len(self.scale_interval) != 2:
            raise ValueError("ElasticAugment: rotation_interval and scale_interval need 2 values")
        self._check_subsample_and_p("ElasticAugment", subsample, p)

    def _draw(self, rng, origin, voxel_size, shape):  # type: ignore[override]
        dims = len(shape)
        sd = min(self.spatial_dims, dims)
        warped = shape[dims - sd :]
        spacing = _last(self.control_point_spacing, sd, "control_point_spacing", self.name)
        sigma = _last(self.jitter_sigma, sd, "jitter_sigma", self.name)
        jitter = draw_jitter(rng, warped, spacing, sigma)
        r0, r1 = self.rotation_interval
        angle = r0 + rng.random() * (r1 - r0)
        s0, s1 = self.scale_interval
        scale = s0 + rng.random() * (s1 - s0)
        affine = np.eye(sd)
        if sd >= 2:
            affine[-2:, -2:] = rotation_2d(angle)
        affine /= scale
        shifts = None
        if dims == 3 and self.prob_slip + self.prob_shift > 0:
            shifts = draw_misalignment(
                rng, shape[0], self.prob_slip, self.prob_shift, self.max_misalign
            )
        return build_transform(
            origin,
            voxel_size,
            shape,
            affine=affine,
            jitter=jitter,
            section_shifts=shifts,
            subsample=self.subsample,
            spatial_dims=sd,
        )


class DeformAugment(_Warp):
    """Elastically deform a batch with spacing and jitter in world units and full rotations.

    The successor of ElasticAugment for anisotropic data: one physical transform is drawn
    per request and warps every array (whatever its voxel size) and graph of the batch; the
    node asks upstream for the region each requested ROI is read from. Control points every
    `control_point_spacing` are jittered by N(0, `jitter_sigma`) and interpolated with cubic
    splines, then zoomed and rotated. Interpolatable arrays are interpolated linearly, others
    (labels) by nearest neighbour. No data is made up beyond the provided ROI: add a Pad or
    RandomLocation upstream.

    Args:
        control_point_spacing: distance between control points, in world units, per spatial
            axis (one value for all, or one per axis).
        jitter_sigma: standard deviation of the control-point displacements, in world units,
            per spatial axis (0 for an axis not to jitter).
        scale_interval: (start, end) of the uniformly drawn zoom; > 1 magnifies (default
            (1.0, 1.0): no scaling).
        rotate: apply a uniformly random rotation in world space (default True).
        subsample: compute the transform exactly every `subsample` voxels and linearly in
            between, for speed (default 1: every voxel).
        spatial_dims: how many trailing spatial axes to warp; 2 warps each section of a 3D
            array in 2D (default 3).
        use_fast_points_transform: accepted for 1.x compatibility; points are always mapped
            exactly.
        recompute_missing_points: accepted for 1.x compatibility (no effect).
        transform_key: not supported; must be None (anything else raises
            NotImplementedError).
        graph_raster_voxel_size: accepted for 1.x compatibility (no effect: graphs are moved
            exactly, not rasterised).
        p: probability of augmenting a request at all (default 1.0).
        rotation_axes: indices of the warped spatial axes the rotation mixes, e.g. (1, 2) to
            rotate in-plane only (default None: all of them).

    Example::

        pipeline += gp.DeformAugment(
            control_point_spacing=(400, 400, 400),
            jitter_sigma=(20, 20, 20),
            scale_interval=(0.9, 1.1),
            rotation_axes=(1, 2),
            subsample=4,
        )
    """

    def __init__(
        self,
        control_point_spacing: Sequence[int],
        jitter_sigma: Sequence[float],
        scale_interval: Sequence[float] = (1.0, 1.0),
        rotate: bool = True,
        subsample: int = 1,
        spatial_dims: int = 3,
        use_fast_points_transform: bool = False,
        recompute_missing_points: bool = True,
        transform_key: ArrayKey | None = None,
        graph_raster_voxel_size: Sequence[int] | None = None,
        p: float = 1.0,
        rotation_axes: Sequence[int] | None = None,
    ) -> None:
        self.control_point_spacing = Coordinate(control_point_spacing)
        self.jitter_sigma = tuple(float(s) for s in jitter_sigma)
        self.scale_interval = tuple(scale_interval)
        self.rotate = bool(rotate)
        self.subsample = int(subsample)
        self.spatial_dims = int(spatial_dims)
        self.use_fast_points_transform = use_fast_points_transform
        self.recompute_missing_points = recompute_missing_points
        self.transform_key = transform_key
        self.graph_raster_voxel_size = graph_raster_voxel_size
        self.p = float(p)
        self.rotation_axes = None if rotation_axes is None else tuple(int(a) for a in rotation_axes)
        if transform_key is not None:
            raise NotImplementedError("DeformAugment: transform_key is not supported")
        self._check_subsample_and_p("DeformAugment", subsample, p)

    def _draw(self, rng, origin, voxel_size, shape):  # type: ignore[override]
        dims = len(shape)
        sd = min(self.spatial_dims, dims)
        warped = shape[dims - sd :]
        vs = voxel_size[dims - sd :]
        spacing = _last(self.control_point_spacing, sd, "control_point_spacing", self.name) / vs
        sigma = _last(self.jitter_sigma, sd, "jitter_sigma", self.name) / vs
        jitter = draw_jitter(rng, warped, spacing, sigma)
        s0, s1 = self.scale_interval
        scale = s0 + rng.random() * (s1 - s0)
        rotation = np.eye(sd)
        if self.rotate:
            axes = tuple(range(sd)) if self.rotation_axes is None else self.rotation_axes
            if any(a < 0 or a >= sd for a in axes) or len(set(axes)) != len(axes):
                raise PipelineRequestError(
                    f"{self.name}: rotation_axes {axes} must be distinct spatial axes < {sd}"
                )
            if len(axes) >= 2:
                sub = random_rotation(rng, len(axes))
                rotation[np.ix_(axes, axes)] = sub
        # a rotation in world space, expressed in (anisotropic) voxels
        affine = (rotation * vs[None, :] / vs[:, None]) / scale
        return build_transform(
            origin,
            voxel_size,
            shape,
            affine=affine,
            jitter=jitter,
            subsample=self.subsample,
            spatial_dims=sd,
        )


__all__ = ["DeformAugment", "ElasticAugment", "WarpPlan", "move_graph"]
