from __future__ import annotations

from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate
from ..node import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ..transforms import labels as kernels
from ._args import bad_argument
from ._common import array_in, ask_for, spatial_array_spec
from ._labels import _check_label_dtype, _check_label_values, _context, _one_channel


class AddBoundaryDistance(Node):
    """Create `distance`: signed distance (world units) to the nearest boundary, clipped.

    A smooth regression target for boundary detection. Positive inside objects (distance to
    the nearest voxel of another id, background included), negative in the background
    (distance to the nearest object), centre to centre, clipped to
    [-max_distance, max_distance]; float32, on the labels' grid, 1-3D. The node asks
    upstream for `max_distance` of context (within what upstream provides), so values are
    exact wherever the labels around a voxel are known; the edge of the provided labels is
    not a boundary.

    Args:
        labels: the ArrayKey of the label ids to read.
        distance: the ArrayKey to create.
        max_distance: the clip value and context to read, in world units (> 0).
        background: the id of the background (default 0).

    Example::

        pipeline += gp.AddBoundaryDistance(gt_labels, gt_distance, max_distance=80)
    """

    def __init__(
        self,
        labels: ArrayKey,
        distance: ArrayKey,
        max_distance: float,
        background: int = 0,
    ) -> None:
        for arg, key in (("labels", labels), ("distance", distance)):
            if not isinstance(key, ArrayKey):
                raise bad_argument("AddBoundaryDistance", arg, "an ArrayKey", key)
        try:
            positive = bool(np.isfinite(max_distance) and max_distance > 0)
        except TypeError:
            positive = False
        if not positive:
            raise bad_argument(
                "AddBoundaryDistance",
                "max_distance",
                "a positive number (world units)",
                max_distance,
            )
        self.labels = labels
        self.distance = distance
        self.max_distance = max_distance
        self.background = background

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        labels = spatial_array_spec(self, upstream_spec, self.labels)
        if not 1 <= labels.voxel_size.dims <= 3:
            raise PipelineSetupError(
                f"{self.name}: {self.labels} must be 1-3D, but it has "
                f"{labels.voxel_size.dims} spatial dimensions"
            )
        _check_label_dtype(self, upstream_spec, self.labels, "label ids")
        spec = upstream_spec.copy()
        spec[self.distance] = labels.replace(dtype=np.float32, interpolatable=True)
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        if self.distance not in request:
            return upstream, None
        roi = request[self.distance].roi
        del upstream[self.distance]
        vs = self.upstream_spec[self.labels].voxel_size
        margin = Coordinate(int(np.ceil(self.max_distance / v)) for v in vs)
        context = _context(roi, margin, margin, vs, self.upstream_spec[self.labels].roi)
        ask_for(upstream, self.labels, context, vs)
        return upstream, context

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        context = ctx
        labels = _one_channel(self, self.labels, array_in(batch, self.labels, context), "label ids")
        _check_label_values(self, self.labels, labels, "label ids")
        vs = batch[self.labels].spec.voxel_size
        distance = kernels.signed_boundary_distance(labels, vs, self.max_distance, self.background)
        spec = ArraySpec(roi=context, voxel_size=vs, interpolatable=True, dtype=np.float32)
        batch[self.distance] = Array(distance, spec)
        return batch
