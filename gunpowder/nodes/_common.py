"""Small helpers several node modules share: checking an upstream spec, widening a request for
a key (arrays and graphs), reading a key's data over a ROI, and context sizes in voxels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..node import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, GraphKey, GraphSpec, ProviderSpec


def spatial_array_spec(node: Node, spec: ProviderSpec, key: ArrayKey) -> ArraySpec:
    """The upstream spec of `key`, which must be a spatial array with a voxel size."""
    if not isinstance(key, ArrayKey):
        raise PipelineSetupError(f"{node.name}: {key!r} must be an ArrayKey")
    node.require(spec, key)
    s = spec[key]
    if s.nonspatial or s.voxel_size is None:
        raise PipelineSetupError(
            f"{node.name}: {key} must be a spatial array with a voxel size, got {s}"
        )
    return s


def ask_for(upstream: BatchRequest, key: ArrayKey, roi: Roi, voxel_size: Coordinate) -> None:
    """Request `key` covering `roi`, on top of whatever was already requested for it."""
    if key in upstream and upstream[key].roi is not None:
        upstream[key] = upstream[key].replace(roi=upstream[key].roi.union(roi))
    else:
        upstream[key] = ArraySpec(roi=roi, voxel_size=voxel_size)


def array_in(batch: Batch, key: ArrayKey, roi: Roi) -> Array:
    """`batch[key]` cropped to `roi` (a view; the array itself when it already is `roi`)."""
    array = batch[key]
    return array if array.spec.roi == roi else array.crop(roi, copy=False)


def graph_spec_of(node: Node, spec: ProviderSpec, key: GraphKey) -> GraphSpec:
    """The upstream spec of the graph `key`."""
    if not isinstance(key, GraphKey):
        raise PipelineSetupError(f"{node.name}: {key!r} must be a GraphKey")
    node.require(spec, key)
    return spec[key]


def clip_to(roi: Roi, within: Roi | None) -> Roi:
    """`roi` inside `within` (what upstream provides); `roi` itself if `within` is None."""
    return roi if within is None else roi.intersect(within)


def ask_graph(upstream: BatchRequest, key: GraphKey, roi: Roi) -> None:
    """Request graph `key` covering `roi`, on top of whatever was already requested for it."""
    if key in upstream and upstream[key].roi is not None:
        upstream[key] = upstream[key].replace(roi=upstream[key].roi.union(roi))
    else:
        upstream[key] = GraphSpec(roi=roi)


def margin_voxels(extent: float | Sequence[float], voxel_size: Coordinate) -> Coordinate:
    """How many whole voxels per axis cover `extent` world units (one number or per axis)."""
    if isinstance(extent, (int, float)):
        extent = [extent] * voxel_size.dims
    if len(extent) != voxel_size.dims:
        raise ValueError(f"extent {tuple(extent)} does not match the {voxel_size.dims}D voxels")
    return Coordinate(int(math.ceil(float(e) / v)) for e, v in zip(extent, voxel_size))


def grown(roi: Roi, voxels: Sequence[int], voxel_size: Coordinate) -> Roi:
    """`roi` grown by `voxels` whole voxels on every side."""
    amount = Coordinate(voxels) * voxel_size
    return roi.grow(amount, amount)


def check_keys_dict(node: str, name: str, value: Any, key_type: type, value_ok: Any) -> None:
    """Raise ValueError unless `value` is a dict from `key_type` keys to accepted values."""
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{node}: {name} must be a non-empty dict, got {value!r}")
    for k, v in value.items():
        if not isinstance(k, key_type):
            raise ValueError(f"{node}: the keys of {name} must be {key_type.__name__}s, got {k!r}")
        if not value_ok(v):
            raise ValueError(f"{node}: {name}[{k}] is not valid: {v!r}")
