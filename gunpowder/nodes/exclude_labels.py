from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..geometry import Coordinate
from ..node import Node
from ..spec import ArrayKey, BatchRequest, ProviderSpec
from ..transforms import labels as kernels
from ._args import bad_argument
from ._common import ask_for, spatial_array_spec
from ._labels import _check_label_dtype, _check_label_values, _context, _one_channel


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
        if not isinstance(labels, ArrayKey):
            raise bad_argument("ExcludeLabels", "labels", "an ArrayKey", labels)
        if ignore_mask is not None and not isinstance(ignore_mask, ArrayKey):
            raise bad_argument("ExcludeLabels", "ignore_mask", "an ArrayKey or None", ignore_mask)
        try:
            ids = list(exclude)
            excluded = {int(e) for e in ids}
        except (TypeError, ValueError):
            raise bad_argument(
                "ExcludeLabels", "exclude", "an iterable of label ids", exclude
            ) from None
        if any(isinstance(e, bool) or float(e) != int(e) for e in ids):
            raise bad_argument("ExcludeLabels", "exclude", "whole numbers (label ids)", exclude)
        try:
            erode_ok = bool(np.isfinite(ignore_mask_erode) and ignore_mask_erode >= 0)
        except TypeError:
            erode_ok = False
        if not erode_ok:
            raise bad_argument(
                "ExcludeLabels",
                "ignore_mask_erode",
                "a number >= 0 (world units)",
                ignore_mask_erode,
            )
        self.labels = labels
        self.exclude = excluded
        self.ignore_mask = ignore_mask
        self.ignore_mask_erode = ignore_mask_erode
        self.background_value = background_value

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        labels = spatial_array_spec(self, upstream_spec, self.labels)
        _check_label_dtype(self, upstream_spec, self.labels, "label ids")
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
        _check_label_values(self, self.labels, array.data, "label ids")
        if ctx is not None:
            labels = _one_channel(self, self.labels, array, "label ids")  # eroded in space
            mask = kernels.include_mask(
                labels, self.exclude, self.ignore_mask_erode, array.spec.voxel_size
            ).reshape(array.data.shape)
            spec = array.spec.replace(dtype=np.uint8, interpolatable=False)
            batch[self.ignore_mask] = Array(mask, spec)
        data = kernels.exclude_labels(array.data, self.exclude, self.background_value)
        batch[self.labels] = Array(data, array.spec, dict(array.attrs))
        return batch
