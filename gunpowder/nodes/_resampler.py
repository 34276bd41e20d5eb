"""Nodes that create an array at another voxel size: DownSample, UpSample, Resample.

All ROI arithmetic is in world units, so one request may mix the voxel sizes of source and
target. Grids are anchored at the world origin: a ROI on a voxel size's grid begins and ends
at multiples of it. Kernels live in `gunpowder.transforms.resample`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..node import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest
from ._args import NodeArgumentError
from ._common import array_in, ask_for


class ResampleContext(NamedTuple):
    """What a resampler hands from prepare to process."""

    roi: Any  # the target ROI
    source_roi: Any  # what is read of the source


def _factor(node: Node, factor: Any, dims: int) -> Coordinate:
    f = (
        Coordinate((factor,) * dims)
        if isinstance(factor, (int, np.integer))
        else Coordinate(factor)
    )
    if f.dims != dims or any(v is None or v < 1 for v in f):
        raise PipelineSetupError(
            f"{node.name}: factor must be a positive int or {dims} positive ints, got {factor!r}"
        )
    return f


def check_resampler_args(node: str, source: Any, target: Any) -> None:
    """`source` and `target` are different ArrayKeys (TypeError/NodeArgumentError)."""
    for arg, key in (("source", source), ("target", target)):
        if not isinstance(key, ArrayKey):
            raise TypeError(f"{node}: {arg} must be an ArrayKey, got {key!r}")
    if source == target:
        raise NodeArgumentError(
            f"{node}: target must be a new ArrayKey, not the source {source} itself"
        )


def _snap(roi: Roi | None, voxel_size: Coordinate, mode: str) -> Roi | None:
    return None if roi is None else roi.snap_to_grid(voxel_size, mode=mode)


class _Resampler(Node):
    """What the three nodes share: a request for `target` becomes one for `source` over the
    ROI `_plan` says, and `_compute` turns that source data into the target's data."""

    source: ArrayKey
    target: ArrayKey
    _target_vs: Coordinate

    def _plan(self, roi: Roi, provided: ArraySpec) -> tuple[Roi, Roi]:
        """(target ROI to make, source ROI it needs) for a requested target `roi`."""
        raise NotImplementedError

    def _compute(self, source: Array, roi: Roi) -> np.ndarray:
        """The target's data over `roi` from `source` (cropped to the planned source ROI)."""
        raise NotImplementedError

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        if self.target not in request:
            return upstream, None
        del upstream[self.target]
        provided = self.upstream_spec[self.source]
        roi, source_roi = self._plan(request[self.target].roi, provided)
        ask_for(upstream, self.source, source_roi, provided.voxel_size)
        return upstream, ResampleContext(roi, source_roi)

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        roi, source_roi = ctx
        source = array_in(batch, self.source, source_roi)
        out = self._compute(source, roi)
        batch[self.target] = Array(out, source.spec.replace(roi=roi, voxel_size=self._target_vs))
        return batch
