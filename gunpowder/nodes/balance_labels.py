from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..node import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ..transforms import labels as kernels
from ._args import NodeArgumentError, bad_argument, probability
from ._common import array_in, ask_for, spatial_array_spec
from ._labels import _check_label_dtype, _common_roi, _masks_list, _same_grid


class BalanceLabels(Node):
    """Create `scales`: loss weights that balance the classes of `labels` within the masks.

    So that rare classes (often the foreground) weigh as much in the loss as frequent ones.
    Per slab, a voxel of class c gets 1 / (num_classes * clip(n_c / N, clipmin, clipmax)),
    where N counts the voxels inside all masks and n_c those of class c; voxels outside a mask
    get 0. `scales` is float32, on the labels' grid, over the intersection of the ROIs of
    `labels` and the masks. Labels inside the masks must lie in [0, num_classes).

    Args:
        labels: the ArrayKey of the class labels (e.g. binary affinities), values in
            [0, num_classes).
        scales: the ArrayKey to create with the per-voxel weights.
        mask: optional ArrayKey or list of ArrayKeys (same voxel size as `labels`); voxels
            where any mask is 0 get weight 0 and are not counted. Default: no mask.
        slab: the shape, in voxels, of the blocks balanced on their own; -1 is the full axis.
            Entries for all axes of the array (channels included) or for its spatial axes
            only (channels then count whole). Default None: the whole array is one block.
        num_classes: how many classes `labels` has (default 2).
        clipmin: lower clip of the class fractions n_c / N, bounding the largest weight
            (default 0.05; None for no lower clip).
        clipmax: upper clip of the class fractions (default 0.95; None for no upper clip).

    Example::

        pipeline += gp.BalanceLabels(gt_affs, affs_scale, mask=gt_affs_mask)
    """

    def __init__(
        self,
        labels: ArrayKey,
        scales: ArrayKey,
        mask: ArrayKey | Sequence[ArrayKey] | None = None,
        slab: Sequence[int] | None = None,
        num_classes: int = 2,
        clipmin: float | None = 0.05,
        clipmax: float | None = 0.95,
    ) -> None:
        node = "BalanceLabels"
        for arg, key in (("labels", labels), ("scales", scales)):
            if not isinstance(key, ArrayKey):
                raise bad_argument(node, arg, "an ArrayKey", key)
        masks = _masks_list(mask)
        if not all(isinstance(m, ArrayKey) for m in masks):
            raise bad_argument(node, "mask", "an ArrayKey, a list of them or None", mask)
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
            raise bad_argument(node, "num_classes", "an int >= 1", num_classes)
        if num_classes < 1:
            raise bad_argument(node, "num_classes", "an int >= 1", num_classes)
        for arg, value in (("clipmin", clipmin), ("clipmax", clipmax)):
            if value is not None:
                probability(node, arg, value)
        if clipmin is not None and clipmax is not None and clipmin > clipmax:
            raise NodeArgumentError(
                f"{node}: clipmin ({clipmin!r}) must not be larger than clipmax ({clipmax!r})"
            )
        if slab is not None:
            try:
                entries = [int(v) for v in slab]
            except (TypeError, ValueError):
                raise bad_argument(
                    node, "slab", "a sequence of ints (-1: whole axis)", slab
                ) from None
            if not entries or any(v == 0 or v < -1 for v in entries):
                raise bad_argument(node, "slab", "sizes > 0 or -1 (the whole axis)", slab)
        self.labels = labels
        self.scales = scales
        self.masks = masks
        self.slab = None if slab is None else tuple(int(v) for v in slab)
        self.num_classes = num_classes
        self.clipmin = clipmin
        self.clipmax = clipmax

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        labels = spatial_array_spec(self, upstream_spec, self.labels)
        for mask in self.masks:
            _same_grid(self, upstream_spec, self.labels, mask)
            _check_label_dtype(self, upstream_spec, mask, "a mask")
        _check_label_dtype(self, upstream_spec, self.labels, "class labels")
        spec = upstream_spec.copy()
        spec[self.scales] = labels.replace(
            roi=_common_roi(upstream_spec, [self.labels, *self.masks]),
            dtype=np.float32,
            interpolatable=True,
        )
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        if self.scales not in request:
            return upstream, None
        roi = request[self.scales].roi
        del upstream[self.scales]
        vs = self.upstream_spec[self.labels].voxel_size
        for key in [self.labels, *self.masks]:
            ask_for(upstream, key, roi, vs)
        return upstream, roi

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        roi = ctx
        labels = array_in(batch, self.labels, roi).data
        masks = [array_in(batch, m, roi).data for m in self.masks]
        slab = self.slab
        if slab is not None and len(slab) == roi.dims and labels.ndim > roi.dims:
            slab = (-1,) * (labels.ndim - roi.dims) + tuple(slab)
        try:
            scales = kernels.balance_weights(
                labels, masks, self.num_classes, self.clipmin, self.clipmax, slab
            )
        except ValueError as e:
            raise ValueError(f"{self.name} on {self.labels}: {e}") from None
        spec = ArraySpec(
            roi=roi,
            voxel_size=batch[self.labels].spec.voxel_size,
            interpolatable=True,
            dtype=np.float32,
        )
        batch[self.scales] = Array(scales, spec)
        return batch
