from __future__ import annotations

from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..node import Node
from ..spec import ArrayKey, BatchRequest, ProviderSpec
from ..transforms import labels as kernels
from ._args import bad_argument
from ._common import array_in, ask_for, spatial_array_spec
from ._labels import (
    _check_label_dtype,
    _check_label_values,
    _common_roi,
    _context,
    _one_channel,
    _same_grid,
)


def _whole(value: Any) -> bool:
    """Whether `value` is a whole number (an int, or a float without fraction; not a bool)."""
    if isinstance(value, bool):
        return False
    try:
        return float(value) == int(value)
    except (TypeError, ValueError, OverflowError):
        return False


class GrowBoundary(Node):
    """Write `background` where two labels come within `steps` voxels of each other.

    Thickens the boundaries between touching objects so that a network learns to keep them
    apart. Boundaries grow between different labels (background included) but not towards
    regions that `mask` marks unknown (0), nor at the array border. The node asks upstream for
    `steps` voxels of context (within what upstream provides), so the result does not depend on
    where a batch was cut. `labels` keeps its key, spec and dtype.

    Args:
        labels: the ArrayKey of the label ids to change in place (integers; shape
            (*spatial) or (1, *spatial)).
        mask: optional ArrayKey (same voxel size as `labels`); 0 marks unknown regions, which
            are left as they are and never count as another label. Default: all known.
        steps: how far, in voxels (L1 distance), boundaries grow into each object; a whole
            number >= 0 (default 1; 0 changes nothing).
        background: the id written into the grown boundary (default 0).
        only_xy: grow along the last two spatial axes only, not across sections (default
            False: all axes).

    Example::

        pipeline += gp.GrowBoundary(gt_labels, mask=gt_mask, steps=1, only_xy=True)
    """

    def __init__(
        self,
        labels: ArrayKey,
        mask: ArrayKey | None = None,
        steps: int = 1,
        background: int = 0,
        only_xy: bool = False,
    ) -> None:
        if not isinstance(labels, ArrayKey):
            raise bad_argument("GrowBoundary", "labels", "an ArrayKey", labels)
        if mask is not None and not isinstance(mask, ArrayKey):
            raise bad_argument("GrowBoundary", "mask", "an ArrayKey or None", mask)
        if not _whole(steps) or steps < 0:
            raise bad_argument("GrowBoundary", "steps", "a whole number >= 0", steps)
        if not _whole(background):
            raise bad_argument("GrowBoundary", "background", "a label id (an int)", background)
        self.labels = labels
        self.mask = mask
        self.steps = int(steps)
        self.background = background
        self.only_xy = only_xy

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        labels = spatial_array_spec(self, upstream_spec, self.labels)
        _same_grid(self, upstream_spec, self.labels, self.mask)
        _check_label_dtype(self, upstream_spec, self.labels, "label ids")
        _check_label_dtype(self, upstream_spec, self.mask, "a mask")
        if self.only_xy and labels.voxel_size.dims < 2:
            raise PipelineSetupError(f"{self.name}: only_xy needs at least 2D {self.labels}")
        return upstream_spec

    def _grown_axes(self, dims: int) -> list[int]:
        return list(range(dims - 2, dims)) if self.only_xy else list(range(dims))

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        if self.labels not in request or request[self.labels].roi is None:
            return upstream, None
        roi = request[self.labels].roi
        vs = self.upstream_spec[self.labels].voxel_size
        grow = [self.steps if d in self._grown_axes(vs.dims) else 0 for d in range(vs.dims)]
        provided = _common_roi(self.upstream_spec, [self.labels, self.mask])
        context = _context(roi, grow, grow, vs, provided)
        ask_for(upstream, self.labels, context, vs)
        if self.mask is not None:
            ask_for(upstream, self.mask, context, vs)
        return upstream, context

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        context = ctx
        array = batch[self.labels]
        cropped = array_in(batch, self.labels, context)
        labels = _one_channel(self, self.labels, cropped, "label ids")
        _check_label_values(self, self.labels, labels, "label ids")
        mask = None
        if self.mask is not None:
            mask = _one_channel(self, self.mask, array_in(batch, self.mask, context), "a mask")
        axes = self._grown_axes(context.dims)
        grown = kernels.grow_boundary(labels, self.steps, self.background, mask, axes)
        grown = grown.reshape(cropped.data.shape)  # a dropped channel axis comes back
        batch[self.labels] = Array(grown, array.spec.replace(roi=context), dict(array.attrs))
        return batch
