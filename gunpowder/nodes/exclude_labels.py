from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..geometry import Coordinate
from ..node import Node
from ..spec import ArrayKey, BatchRequest, ProviderSpec
from ..transforms import labels as kernels
from ._common import ask_for, spatial_array_spec
from ._labels import _context


class ExcludeLabels(Node):
    """Replace the ids in `exclude` by `background_value`; optionally create `ignore_mask`.

    For ground truth with objects that must not be learnt (e.g. badly traced ones): they are
    erased from `labels`, and the loss can ignore them through `ignore_mask`. `ignore_mask`
    (uint8, on the labels' grid) is 1 on kept labels and on excluded voxels within
    `ignore_mask_erode` of a kept label, 0 elsewhere. The node asks upstream for that much
    context so the mask does not depend on where a batch was cut.

    Args:
        labels: the ArrayKey of the label ids to change in place.
        exclude: the ids to remove (any iterable of ints).
        ignore_mask: optional ArrayKey to create with the mask described above. Default: no
            mask is created.
        ignore_mask_erode: by how much, in world units, the 0 region of `ignore_mask` is
            eroded from the kept labels into the excluded ones (default 0: the mask is 0 on
            exactly the excluded voxels).
        background_value: the id written where an excluded label was (default 0).

    Example::

        pipeline += gp.ExcludeLabels(gt_labels, exclude=[13, 42], ignore_mask=gt_ignore,
                                     ignore_mask_erode=40)
    """

    def __init__(
        self,
        labels: ArrayKey,
        exclude: Iterable[int],
        ignore_mask: ArrayKey | None = None,
        ignore_mask_erode: float = 0,
        background_value: int = 0,
    ) -> None:
        self.labels = labels
        self.exclude = {int(e) for e in exclude}
        self.ignore_mask = ignore_mask
        self.ignore_mask_erode = ignore_mask_erode
        self.background_value = background_value

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        labels = spatial_array_spec(self, upstream_spec, self.labels)
        spec = upstream_spec.copy()
        if self.ignore_mask is not None:
            spec[self.ignore_mask] = labels.replace(dtype=np.uint8, interpolatable=False)
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        mask_roi = None
        if self.ignore_mask is not None and self.ignore_mask in request:
            mask_roi = request[self.ignore_mask].roi
            del upstream[self.ignore_mask]
            vs = self.upstream_spec[self.labels].voxel_size
            margin = Coordinate(int(np.ceil(self.ignore_mask_erode / v)) for v in vs)
            context = _context(mask_roi, margin, margin, vs, self.upstream_spec[self.labels].roi)
            ask_for(upstream, self.labels, context, vs)
        return upstream, mask_roi

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if self.labels not in batch:
            return batch
        array = batch[self.labels]
        if ctx is not None:
            mask = kernels.include_mask(
                array.data, self.exclude, self.ignore_mask_erode, array.spec.voxel_size
            )
            spec = array.spec.replace(dtype=np.uint8, interpolatable=False)
            batch[self.ignore_mask] = Array(mask, spec)
        data = kernels.exclude_labels(array.data, self.exclude, self.background_value)
        batch[self.labels] = Array(data, array.spec, dict(array.attrs))
        return batch
