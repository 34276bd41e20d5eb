"""Nodes that derive training targets from label arrays (gunpowder 1.x names and arguments).

Each node maps keys and ROIs onto a kernel of `gunpowder.transforms.labels`; nodes whose
result near a voxel depends on its surroundings ask upstream for exactly that context, and the
engine crops what they return to the downstream request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..pipeline import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ..transforms import labels as kernels
from ._common import array_in, ask_for, spatial_array_spec

# ------------------------------------------------------------------------------------------
# helpers shared by the nodes of this module


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


# ------------------------------------------------------------------------------------------
# affinities


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
        labels: the ArrayKey of the label ids to read.
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
        self.affinity_neighborhood = kernels.as_neighborhood(affinity_neighborhood)
        self.labels = labels
        self.unlabelled = unlabelled
        self.labels_mask = labels_mask
        self.affinities = affinities
        self.affinities_mask = affinities_mask
        self.dtype = np.dtype(dtype)
        neg, pos = kernels.affinity_context(self.affinity_neighborhood)
        self.context_neg = Coordinate(neg)
        self.context_pos = Coordinate(pos)

    def _inputs(self) -> list[ArrayKey]:
        return [k for k in (self.labels, self.labels_mask, self.unlabelled) if k is not None]

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        labels = spatial_array_spec(self, upstream_spec, self.labels)
        for key in self._inputs():
            _same_grid(self, upstream_spec, self.labels, key)
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
        return upstream, (roi, context, with_mask)

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        roi, context, with_mask = ctx
        labels = array_in(batch, self.labels, context).data
        labels_mask = None
        if with_mask and self.labels_mask is not None:
            labels_mask = array_in(batch, self.labels_mask, context).data
        unlabelled = None
        if self.unlabelled is not None:
            unlabelled = array_in(batch, self.unlabelled, context).data
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


# ------------------------------------------------------------------------------------------
# boundaries


class GrowBoundary(Node):
    """Write `background` where two labels come within `steps` voxels of each other.

    Thickens the boundaries between touching objects so that a network learns to keep them
    apart. Boundaries grow between different labels (background included) but not towards
    regions that `mask` marks unknown (0), nor at the array border. The node asks upstream for
    `steps` voxels of context (within what upstream provides), so the result does not depend on
    where a batch was cut. `labels` keeps its key, spec and dtype.

    Args:
        labels: the ArrayKey of the label ids to change in place.
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
        if int(steps) != steps or steps < 0:
            raise ValueError(f"GrowBoundary: steps must be a whole number >= 0, got {steps!r}")
        self.labels = labels
        self.mask = mask
        self.steps = int(steps)
        self.background = background
        self.only_xy = only_xy

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        labels = spatial_array_spec(self, upstream_spec, self.labels)
        _same_grid(self, upstream_spec, self.labels, self.mask)
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
        labels = array_in(batch, self.labels, context).data
        mask = None if self.mask is None else array_in(batch, self.mask, context).data
        dims = context.dims
        lead = labels.ndim - dims
        axes = [lead + a for a in self._grown_axes(dims)]
        grown = kernels.grow_boundary(labels, self.steps, self.background, mask, axes)
        batch[self.labels] = Array(grown, array.spec.replace(roi=context), dict(array.attrs))
        return batch


# ------------------------------------------------------------------------------------------
# balancing


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
        self.labels = labels
        self.scales = scales
        self.masks = _masks_list(mask)
        self.slab = None if slab is None else tuple(slab)
        self.num_classes = num_classes
        self.clipmin = clipmin
        self.clipmax = clipmax

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        labels = spatial_array_spec(self, upstream_spec, self.labels)
        for mask in self.masks:
            _same_grid(self, upstream_spec, self.labels, mask)
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


# ------------------------------------------------------------------------------------------
# excluding and relabelling


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


class RenumberConnectedComponents(Node):
    """Give every face-connected region of one non-zero id in `labels` its own id (1..N).

    After a crop or an augmentation one object can fall apart into pieces that no longer
    touch; this makes them separate objects. Ids are assigned in raster order per batch; 0
    stays 0. `labels` keeps its key and spec.

    Args:
        labels: the ArrayKey of the label ids to renumber in place.

    Example::

        pipeline += gp.RenumberConnectedComponents(gt_labels)
    """

    def __init__(self, labels: ArrayKey) -> None:
        self.labels = labels

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        spatial_array_spec(self, upstream_spec, self.labels)
        return upstream_spec

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if self.labels not in batch:
            return batch
        array = batch[self.labels]
        try:
            data = kernels.relabel_connected_components(array.data)
        except ValueError as e:
            raise ValueError(f"{self.name} on {self.labels}: {e}") from None
        batch[self.labels] = Array(data, array.spec, dict(array.attrs))
        return batch


# ------------------------------------------------------------------------------------------
# distances


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
        if max_distance is None or max_distance <= 0:
            raise ValueError(
                f"AddBoundaryDistance: max_distance must be positive, got {max_distance!r}"
            )
        self.labels = labels
        self.distance = distance
        self.max_distance = max_distance
        self.background = background

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        labels = spatial_array_spec(self, upstream_spec, self.labels)
        if not 1 <= labels.voxel_size.dims <= 3:
            raise PipelineSetupError(f"{self.name}: {self.labels} must be 1-3D")
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
        labels = array_in(batch, self.labels, context).data
        vs = batch[self.labels].spec.voxel_size
        distance = kernels.signed_boundary_distance(labels, vs, self.max_distance, self.background)
        spec = ArraySpec(roi=context, voxel_size=vs, interpolatable=True, dtype=np.float32)
        batch[self.distance] = Array(distance, spec)
        return batch


__all__ = [
    "AddAffinities",
    "GrowBoundary",
    "BalanceLabels",
    "ExcludeLabels",
    "RenumberConnectedComponents",
    "AddBoundaryDistance",
]
