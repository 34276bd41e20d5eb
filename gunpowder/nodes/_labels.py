"""Nodes that derive training targets from label arrays (gunpowder 1.x names and arguments).

Each node maps keys and ROIs onto a kernel of `gunpowder.transforms.labels`; nodes whose
result near a voxel depends on its surroundings ask upstream for exactly that context, and the
engine crops what they return to the downstream request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..batch import Array
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..node import Node
from ..spec import ArrayKey, ProviderSpec
from ._common import spatial_array_spec


def _same_grid(node: Node, spec: ProviderSpec, key: ArrayKey, other: ArrayKey | None) -> None:
    if other is None:
        return
    a, b = spatial_array_spec(node, spec, key), spatial_array_spec(node, spec, other)
    if a.voxel_size != b.voxel_size:
        raise PipelineSetupError(
            f"{node.name}: {other} has voxel size {b.voxel_size}, but {key} has "
            f"{a.voxel_size}; they must match"
        )


def _common_roi(spec: ProviderSpec, keys: Iterable[ArrayKey | None]) -> Roi | None:
    roi = None
    for key in keys:
        if key is None or spec[key].roi is None:
            continue
        roi = spec[key].roi if roi is None else roi.intersect(spec[key].roi)
    return roi


def _context(
    roi: Roi, neg: Sequence[int], pos: Sequence[int], voxel_size: Coordinate, within: Roi | None
) -> Roi:
    """`roi` grown by neg/pos voxels, kept inside `within` (what upstream can provide)."""
    grown = roi.grow(Coordinate(neg) * voxel_size, Coordinate(pos) * voxel_size)
    return grown if within is None else grown.intersect(within)


def _masks_list(mask: Any) -> list[ArrayKey]:
    if mask is None:
        return []
    if isinstance(mask, ArrayKey):
        return [mask]
    return list(mask)


def _check_label_dtype(node: Node, spec: ProviderSpec, key: ArrayKey | None, what: str) -> None:
    """At setup: `key`, where its dtype is known, must be numeric (labels/masks are ids)."""
    if key is None:
        return
    dtype = spec[key].dtype
    if dtype is not None and np.dtype(dtype).kind not in "biuf":
        raise PipelineSetupError(
            f"{node.name}: {key} must hold {what} (integers), but its dtype is {np.dtype(dtype)}"
        )


def _one_channel(node: Node, key: ArrayKey, array: Array, what: str) -> np.ndarray:
    """`array`'s data with its spatial axes only: a single channel axis, (1, *spatial), is
    dropped; more channels, or other leading axes, are an error naming node and key."""
    data = array.data
    dims = array.spec.roi.dims
    if data.ndim == dims:
        return data
    if data.ndim == dims + 1 and data.shape[0] == 1:
        return data[0]
    raise PipelineRequestError(
        f"{node.name}: {key} must hold one channel of {what}: shape (*spatial) or "
        f"(1, *spatial) with {dims} spatial axes, but it has shape {data.shape}"
    )


def _check_label_values(node: Node, key: ArrayKey, data: np.ndarray, what: str) -> None:
    """Per batch: ids must be integers; float data must hold whole, finite numbers."""
    kind = data.dtype.kind
    if kind in "biu":
        return
    if kind != "f":
        raise PipelineRequestError(
            f"{node.name}: {key} must hold {what} (integers), but its dtype is {data.dtype}"
        )
    if data.size and not (np.isfinite(data).all() and np.array_equal(np.trunc(data), data)):
        bad = "NaN or infinite values" if not np.isfinite(data).all() else "fractional values"
        raise PipelineRequestError(
            f"{node.name}: {key} must hold {what} (whole numbers), but its {data.dtype} data "
            f"has {bad}; convert it with AsType or fix the source"
        )
