"""`RasterizeGraph`: draw a graph's nodes (balls or peaks) and edges (tubes) into a new array.

Radii are world units per axis (anisotropic voxels welcome). As 1.x, a node is drawn at the
centre of the voxel containing it (that voxel is always painted) and edges along the voxels
between their ends. The graph is requested in the array's ROI grown by the radius and a voxel,
so points just outside still paint their part of a ball. See `gunpowder.transforms.rasterize`
for the exact convention.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate
from ..node import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, GraphKey, GraphSpec, ProviderSpec
from ..transforms.rasterize import PEAK_TRUNCATE, rasterize


class RasterizationSettings:
    """How to rasterise a graph (gunpowder 1.x); passed to RasterizeGraph.

    Args:
        radius: ball/tube radius, or the sigma of peaks, in world units (a number or one per
            spatial axis, >= 0).
        mode: "ball" (fg_value inside the radius) or "peak" (a Gaussian in [0, 1], the
            maximum over nodes) (default "ball").
        mask: optional ArrayKey of labels (same voxel size as the rasterised array); each node
            paints only inside the object it lies in. Default None: no mask.
        inner_radius_fraction: if set (in [0, 1)), balls are hollow inside this fraction of
            the radius (default None: solid).
        fg_value: the value painted (default 1).
        bg_value: the value everywhere else (default 0).
        edges: also draw the graph's edges as tubes of the same radius (default True).
        color_attr: paint each node/edge with this attribute instead of fg_value ("ball"
            only; nodes and edges without it are skipped). Default None.

    Example::

        settings = gp.RasterizationSettings(radius=(40, 40, 40), mode="peak")
    """

    def __init__(
        self,
        radius: Any,
        mode: str = "ball",
        mask: ArrayKey | None = None,
        inner_radius_fraction: float | None = None,
        fg_value: Any = 1,
        bg_value: Any = 0,
        edges: bool = True,
        color_attr: str | None = None,
    ) -> None:
        if mode not in ("ball", "peak"):
            raise ValueError(f"RasterizationSettings: mode must be 'ball' or 'peak', got {mode!r}")
        if inner_radius_fraction is not None and not 0 <= inner_radius_fraction < 1:
            raise ValueError(
                f"RasterizationSettings: inner_radius_fraction must be in [0, 1), got "
                f"{inner_radius_fraction}"
            )
        if color_attr is not None and mode != "ball":
            raise ValueError("RasterizationSettings: color_attr works only in 'ball' mode")
        self.radius = radius
        self.mode = mode
        self.mask = mask
        self.inner_radius_fraction = inner_radius_fraction
        self.fg_value = fg_value
        self.bg_value = bg_value
        self.edges = edges
        self.color_attr = color_attr

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"RasterizationSettings({fields})"


class RasterizeGraph(Node):
    """Create `array` from `graph`: nodes as balls (or peaks), edges as tubes.

    Turns annotations such as skeletons or synapse points into a dense training target. The
    graph is requested in the array's ROI grown by the radius (peaks: by their truncation
    width), so nodes just outside still paint their part of a ball. `RasterizePoints` is the
    same class under its 1.x name.

    Args:
        graph: the GraphKey to read (node locations in world units).
        array: the ArrayKey to create.
        array_spec: optional ArraySpec of `array`: its voxel size (default 1 per axis), dtype
            (default uint8, float32 for peaks), interpolatable (default: only for peaks) and
            ROI (default: the graph's ROI, shrunk to the voxel grid).
        settings: a RasterizationSettings (default: balls of radius 1 world unit, with
            edges, painted 1 on 0).

    Example::

        pipeline += gp.RasterizeGraph(
            skeletons,
            skeleton_mask,
            array_spec=gp.ArraySpec(voxel_size=(40, 4, 4)),
            settings=gp.RasterizationSettings(radius=(40, 40, 40)),
        )
    """

    def __init__(
        self,
        graph: GraphKey,
        array: ArrayKey,
        array_spec: ArraySpec | None = None,
        settings: RasterizationSettings | None = None,
    ) -> None:
        self.graph = graph
        self.array = array
        self.array_spec = ArraySpec() if array_spec is None else array_spec.copy()
        self.settings = RasterizationSettings(1) if settings is None else settings

    @property
    def name(self) -> str:
        return f"RasterizeGraph({self.graph} -> {self.array})"

    def _radius(self, dims: int) -> np.ndarray:
        radius = np.asarray(self.settings.radius, dtype=np.float64).reshape(-1)
        if radius.size == 1:
            radius = np.full(dims, float(radius[0]))
        if radius.size != dims or np.any(radius < 0):
            raise PipelineSetupError(
                f"{self.name}: radius {self.settings.radius!r} must be >= 0, one value or "
                f"{dims} (one per axis of {self.graph})"
            )
        return radius

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, self.graph, self.settings.mask)
        graph_spec = upstream_spec[self.graph]
        if not isinstance(graph_spec, GraphSpec) or graph_spec.roi is None:
            raise PipelineSetupError(f"{self.name}: {self.graph} must be a graph with a ROI")
        dims = graph_spec.roi.dims
        self._radius(dims)
        spec = self.array_spec.copy()
        if spec.voxel_size is None:
            spec.voxel_size = Coordinate((1,) * dims)
        if spec.voxel_size.dims != dims:
            raise PipelineSetupError(
                f"{self.name}: voxel size {spec.voxel_size} does not match the {dims}D graph"
            )
        if spec.roi is None:
            roi = graph_spec.roi
            spec.roi = roi if roi.unbounded else roi.snap_to_grid(spec.voxel_size, mode="shrink")
        if spec.dtype is None:
            spec.dtype = np.float32 if self.settings.mode == "peak" else np.uint8
        if spec.interpolatable is None:
            spec.interpolatable = self.settings.mode == "peak"
        mask = self.settings.mask
        if mask is not None and upstream_spec[mask].voxel_size != spec.voxel_size:
            raise PipelineSetupError(
                f"{self.name}: mask {mask} has voxel size {upstream_spec[mask].voxel_size}, "
                f"the rasterised array {spec.voxel_size}; they must agree"
            )
        provided = upstream_spec.copy()
        provided[self.array] = spec
        return provided

    def _reach(self, dims: int, voxel_size: Coordinate) -> Coordinate:
        """How far outside the array a node can paint into it: the radius (peaks: their
        truncation) plus a voxel (a node is drawn at the centre of its voxel)."""
        factor = PEAK_TRUNCATE if self.settings.mode == "peak" else 1.0
        return Coordinate(
            math.ceil(r * factor) + int(v) for r, v in zip(self._radius(dims), voxel_size)
        )

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        if self.array not in upstream:
            return upstream, None
        spec = upstream.pop(self.array)
        roi = spec.roi
        if roi is None or roi.unbounded:
            raise PipelineRequestError(f"{self.name}: {self.array} needs a bounded ROI, got {roi}")
        provided = self.upstream_spec[self.graph].roi
        reach = self._reach(roi.dims, self.spec[self.array].voxel_size)
        context = roi.grow(reach, reach).intersect(provided)
        if self.graph in upstream and upstream[self.graph].roi is not None:
            context = context.union(upstream[self.graph].roi)
        upstream[self.graph] = GraphSpec(roi=context)
        mask_roi = None
        mask = self.settings.mask
        if mask is not None:
            mask_spec = self.upstream_spec[mask]
            mask_roi = context.snap_to_grid(mask_spec.voxel_size, "grow")
            mask_roi = mask_roi.intersect(mask_spec.roi).union(roi)
            if mask in upstream and upstream[mask].roi is not None:
                mask_roi = mask_roi.union(upstream[mask].roi)
            upstream[mask] = ArraySpec(roi=mask_roi, voxel_size=mask_spec.voxel_size)
        out_spec = self.spec[self.array].replace(roi=roi)
        return upstream, out_spec

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        out_spec: ArraySpec = ctx
        graph = batch[self.graph]
        settings = self.settings
        roi = out_spec.roi
        vs = out_spec.voxel_size
        locations = graph.locations.reshape(-1, roi.dims)
        edges = graph.edge_index() if settings.edges else None
        node_values = edge_values = None
        if settings.color_attr is not None:
            node_values = _attr_values(graph.nodes, settings.color_attr)
            edge_values = _attr_values(graph.edges, settings.color_attr)
        else:
            node_values = _constant(len(locations), settings.fg_value)
            edge_values = _constant(0 if edges is None else len(edges), settings.fg_value)
        mask_data = node_labels = edge_labels = None
        if settings.mask is not None:
            mask_data, node_labels, edge_labels, node_values, edge_values = self._mask_inputs(
                batch, roi, locations, edges, node_values, edge_values
            )
        data = rasterize(
            shape=roi.shape / vs,
            offset=roi.offset,
            voxel_size=vs,
            locations=locations,
            radius=self._radius(roi.dims),
            edges=edges,
            mode=settings.mode,
            inner_radius_fraction=settings.inner_radius_fraction,
            node_values=node_values,
            edge_values=edge_values,
            bg_value=settings.bg_value,
            dtype=out_spec.dtype,
            mask=mask_data,
            node_mask_labels=node_labels,
            edge_mask_labels=edge_labels,
        )
        batch[self.array] = Array(data, out_spec)
        return batch

    def _mask_inputs(self, batch, roi, locations, edges, node_values, edge_values):
        """Mask data over the output ROI and the label each node/edge may paint in."""
        mask = batch[self.settings.mask]
        mroi, mvs = mask.spec.roi, mask.spec.voxel_size
        index = np.floor((locations - np.asarray(mroi.offset)) / np.asarray(mvs)).astype(np.int64)
        shape = np.asarray(mroi.shape / mvs)
        inside = np.all((index >= 0) & (index < shape), axis=1)
        labels = np.zeros(len(locations), dtype=mask.data.dtype)
        if np.any(inside):
            labels[inside] = mask.data[(Ellipsis,) + tuple(index[inside].T)]
        node_values = np.where(inside, node_values, None)
        edge_labels = None
        if edges is not None and len(edges):
            both_out = ~inside[edges[:, 0]] & ~inside[edges[:, 1]]
            edge_values = np.where(both_out, None, edge_values)
            edge_labels = [[labels[i] for i in (u, v) if inside[i]] for u, v in edges.tolist()]
        data = mask.crop(roi, copy=False).data
        return data, labels, edge_labels, node_values, edge_values


def _attr_values(items: list, attr: str) -> np.ndarray:
    """Per item its `attr` (None where missing: skipped), exact (object array)."""
    values = np.empty(len(items), dtype=object)
    values[:] = [item.attrs.get(attr) for item in items]
    return values


def _constant(n: int, value: Any) -> np.ndarray:
    values = np.empty(n, dtype=object)
    values[:] = [value] * n
    return values


RasterizePoints = RasterizeGraph

__all__ = ["RasterizeGraph", "RasterizationSettings", "RasterizePoints"]
