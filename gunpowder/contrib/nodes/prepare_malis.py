"""`PrepareMalis`: the component labels of two-phase MALIS training."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...batch import Array, Batch
from ...errors import PipelineSetupError
from ...nodes._common import array_in, ask_for, spatial_array_spec
from ...pipeline import Node
from ...spec import ArrayKey, BatchRequest, ProviderSpec
from ...transforms.malis import malis_components


class PrepareMalis(Node):
    """Create the component label array two-phase MALIS training needs.

    The created array has two channels on the labels' grid and dtype: channel 0 (negative
    pass) is the labels with every voxel where `ignore_array_key` is 0 set to one fresh id
    (the largest label in the batch + 1), channel 1 (positive pass) is the labels unchanged.
    Without an ignore mask both channels are the labels. The labels (and the ignore mask) are
    asked from upstream where the component array is requested.

    Args:
        labels_array_key: the ArrayKey of the label ids.
        malis_comp_array_key: the ArrayKey to create (shape (2, *spatial)).
        ignore_array_key: optional ArrayKey of a mask (same voxel size as the labels); 0 marks
            voxels to ignore in the negative pass. Default None: nothing is ignored.

    Example::

        pipeline += PrepareMalis(gt_labels, malis_components, ignore_array_key=gt_mask)
    """

    def __init__(
        self,
        labels_array_key: ArrayKey,
        malis_comp_array_key: ArrayKey,
        ignore_array_key: ArrayKey | None = None,
    ) -> None:
        for name, key in (
            ("labels_array_key", labels_array_key),
            ("malis_comp_array_key", malis_comp_array_key),
        ):
            if not isinstance(key, ArrayKey):
                raise ValueError(f"PrepareMalis: {name} must be an ArrayKey, got {key!r}")
        if ignore_array_key is not None and not isinstance(ignore_array_key, ArrayKey):
            raise ValueError(
                f"PrepareMalis: ignore_array_key must be an ArrayKey or None, got "
                f"{ignore_array_key!r}"
            )
        self.labels_array_key = labels_array_key
        self.malis_comp_array_key = malis_comp_array_key
        self.ignore_array_key = ignore_array_key

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        labels = spatial_array_spec(self, upstream_spec, self.labels_array_key)
        if self.ignore_array_key is not None:
            ignore = spatial_array_spec(self, upstream_spec, self.ignore_array_key)
            if ignore.voxel_size != labels.voxel_size:
                raise PipelineSetupError(
                    f"{self.name}: {self.ignore_array_key} has voxel size {ignore.voxel_size}, "
                    f"but {self.labels_array_key} has {labels.voxel_size}; they must match"
                )
        spec = upstream_spec.copy()
        spec[self.malis_comp_array_key] = labels.replace(interpolatable=False)
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        if self.malis_comp_array_key not in request:
            return upstream, None
        roi = request[self.malis_comp_array_key].roi
        del upstream[self.malis_comp_array_key]
        vs = self.upstream_spec[self.labels_array_key].voxel_size
        ask_for(upstream, self.labels_array_key, roi, vs)
        if self.ignore_array_key is not None:
            ask_for(upstream, self.ignore_array_key, roi, vs)
        return upstream, roi

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        labels = array_in(batch, self.labels_array_key, ctx)
        ignore = None
        if self.ignore_array_key is not None:
            ignore = array_in(batch, self.ignore_array_key, ctx).data
        data = malis_components(labels.data, ignore)
        spec = labels.spec.replace(roi=ctx, interpolatable=False, dtype=data.dtype)
        batch[self.malis_comp_array_key] = Array(data, spec)
        return batch


__all__ = ["PrepareMalis"]
