"""Nodes that derive training targets from label arrays (gunpowder 1.x names and arguments).

Each node maps keys and ROIs onto a kernel of `gunpowder.transforms.labels`; nodes whose
result near a voxel depends on its surroundings ask upstream for exactly that context, and the
engine crops what they return to the downstream request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import PipelineSetupError
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
