from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate
from ..node import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ..transforms import labels as kernels
from ._args import NodeArgumentError, bad_argument, numpy_dtype
from ._common import array_in, ask_for, spatial_array_spec
from ._labels import (
    _check_label_dtype,
    _check_label_values,
    _common_roi,
    _context,
    _one_channel,
    _same_grid,
)


class AffinitiesContext(NamedTuple):
    """What AddAffinities.prepare hands to process."""

    roi: Any  # where the affinities are delivered
    context: Any  # the labels read around it
    with_mask: bool


def _neighborhood(node: str, neighborhood: Any) -> np.ndarray:
    """The offsets as an (n, dims) int array, else an error naming `node` and the argument."""
    try:
        nh = kernels.as_neighborhood(neighborhood)
    except (TypeError, ValueError) as e:
        raise NodeArgumentError(f"{node}: affinity_neighborhood: {e}") from None
    return nh


class AddAffinities(Node):
    """Affinities from labels: channel i at p is 1 iff labels[p] == labels[p+n_i] != 0.

    Affinities (does a voxel belong to the same object as its neighbour?) are the usual
    training target for boundary-predicting networks. The node asks upstream for the labels
    (and masks) grown by exactly the context the offsets need, and provides `affinities` (and
    `affinities_mask`) on the labels' grid with one channel per offset; the provided ROI is the
    labels' ROI shrunk by that context. Affinities touching an unlabelled voxel are 0 (known
    negatives), as in 1.x.

    Args:
        affinity_neighborhood: the offsets n_i, in voxels, one per output channel (a list of
            offsets of equal length, one entry per spatial axis). 1.x's nearest neighbours
            `[[-1, 0, 0], [0, -1, 0], [0, 0, -1]]` compare each voxel with its predecessor along
            z, y and x; positive and long-range offsets work the same way.
        labels: the ArrayKey of the label ids to read: integers (or whole-numbered floats),
            shape (*spatial) or (1, *spatial); a single channel axis is dropped.
        affinities: the ArrayKey to create (channels first: (len(offsets), *spatial)).
        labels_mask: optional ArrayKey (same voxel size as `labels`); an affinity is masked out
            (0 in `affinities_mask`) where either end has `labels_mask` == 0. Default: no mask.
        unlabelled: optional ArrayKey (same voxel size); 0 marks voxels whose label is unknown.
            Affinities touching such a voxel are 0, and masked out where both ends are
            unlabelled. Default: every voxel is labelled.
        affinities_mask: optional ArrayKey to create with the mask described above (1 = use
            this affinity in the loss). Default: no mask is created.
        dtype: dtype of `affinities` and `affinities_mask` (default numpy.uint8).

    Example::

        pipeline += gp.AddAffinities(
            affinity_neighborhood=[[-1, 0, 0], [0, -1, 0], [0, 0, -1]],
            labels=gt_labels,
            affinities=gt_affs,
            labels_mask=gt_mask,
            affinities_mask=gt_affs_mask,
        )
    """

    def __init__(
        self,
        affinity_neighborhood: Any,
        labels: ArrayKey,
        affinities: ArrayKey,
        labels_mask: ArrayKey | None = None,
        unlabelled: ArrayKey | None = None,
        affinities_mask: ArrayKey | None = None,
        dtype: Any = np.uint8,
    ) -> None:
        self.affinity_neighborhood = _neighborhood("AddAffinities", affinity_neighborhood)
        for arg, key in (("labels", labels), ("affinities", affinities)):
            if not isinstance(key, ArrayKey):
                raise bad_argument("AddAffinities", arg, "an ArrayKey", key)
        self.labels = labels
        self.unlabelled = unlabelled
        self.labels_mask = labels_mask
        self.affinities = affinities
        self.affinities_mask = affinities_mask
        self.dtype = numpy_dtype("AddAffinities", "dtype", dtype)
        if self.dtype.kind not in "biuf":
            raise bad_argument("AddAffinities", "dtype", "a numeric numpy dtype", dtype)
        neg, pos = kernels.affinity_context(self.affinity_neighborhood)
        self.context_neg = Coordinate(neg)
        self.context_pos = Coordinate(pos)

    def _inputs(self) -> list[ArrayKey]:
        return [k for k in (self.labels, self.labels_mask, self.unlabelled) if k is not None]

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        labels = spatial_array_spec(self, upstream_spec, self.labels)
        for key in self._inputs():
            _same_grid(self, upstream_spec, self.labels, key)
        _check_label_dtype(self, upstream_spec, self.labels, "label ids")
        _check_label_dtype(self, upstream_spec, self.labels_mask, "a mask")
        _check_label_dtype(self, upstream_spec, self.unlabelled, "a mask")
        dims = labels.voxel_size.dims
        if self.affinity_neighborhood.shape[1] != dims:
            raise PipelineSetupError(
                f"{self.name}: offsets of the affinity neighborhood have "
                f"{self.affinity_neighborhood.shape[1]} dimensions, {self.labels} has {dims}"
            )
        vs = labels.voxel_size
        roi = _common_roi(upstream_spec, self._inputs())
        if roi is not None:
            try:
                roi = roi.grow(-self.context_neg * vs, -self.context_pos * vs)
            except ValueError:
                raise PipelineSetupError(
                    f"{self.name}: {self.labels} (ROI {roi}) is smaller than the context the "
                    f"affinity neighborhood needs ({self.context_neg}, {self.context_pos} voxels)"
                ) from None
        out = ArraySpec(roi=roi, voxel_size=vs, interpolatable=False, dtype=self.dtype)
        spec = upstream_spec.copy()
        spec[self.affinities] = out
        if self.affinities_mask is not None:
            spec[self.affinities_mask] = out
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        wanted = [k for k in (self.affinities, self.affinities_mask) if k is not None]
        wanted = [k for k in wanted if k in request]
        for key in wanted:
            del upstream[key]
        if not wanted:
            return upstream, None
        roi = None
        for key in wanted:
            r = request[key].roi
            roi = r if roi is None else roi.union(r)
        vs = self.upstream_spec[self.labels].voxel_size
        context = _context(roi, self.context_neg, self.context_pos, vs, None)
        with_mask = self.affinities_mask in wanted
        for key in self._inputs():
            if key == self.labels_mask and not with_mask:
                continue
            ask_for(upstream, key, context, vs)
        return upstream, AffinitiesContext(roi, context, with_mask)

    def _spatial(self, batch: Batch, key: ArrayKey, roi: Any, what: str) -> np.ndarray:
        return _one_channel(self, key, array_in(batch, key, roi), what)

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        roi, context, with_mask = ctx
        labels = self._spatial(batch, self.labels, context, "label ids")
        _check_label_values(self, self.labels, labels, "label ids")
        labels_mask = None
        if with_mask and self.labels_mask is not None:
            labels_mask = self._spatial(batch, self.labels_mask, context, "a mask")
        unlabelled = None
        if self.unlabelled is not None:
            unlabelled = self._spatial(batch, self.unlabelled, context, "a mask")
        affs, mask = kernels.compute_affinities(
            labels,
            self.affinity_neighborhood,
            labels_mask=labels_mask,
            unlabelled=unlabelled,
            dtype=self.dtype,
            with_mask=with_mask,
        )
        vs = batch[self.labels].spec.voxel_size
        spec = ArraySpec(roi=roi, voxel_size=vs, interpolatable=False, dtype=self.dtype)
        batch[self.affinities] = Array(affs, spec)
        if with_mask:
            batch[self.affinities_mask] = Array(mask, spec)
        batch.affinity_neighborhood = self.affinity_neighborhood
        return batch
