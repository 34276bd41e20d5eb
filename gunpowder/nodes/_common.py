"""Small helpers several node modules share: checking an upstream array spec, widening a
request for a key, and reading a key's data over a ROI."""

from __future__ import annotations

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..node import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec


def spatial_array_spec(node: Node, spec: ProviderSpec, key: ArrayKey) -> ArraySpec:
    """The upstream spec of `key`, which must be a spatial array with a voxel size."""
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
