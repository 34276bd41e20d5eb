"""AddLocalShapeDescriptor: local shape descriptors as a training target (lsds' node and
arguments), on the kernel of `gunpowder.transforms.local_shape_descriptor`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..pipeline import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ..transforms import local_shape_descriptor as kernels
from ._common import array_in, ask_for, spatial_array_spec


class DescriptorContext(NamedTuple):
    """Where the descriptors go, their grid, the labels read and the mask ROI."""

    roi: Any
    grid: Any
    available: Any
    mask_roi: Any


class AddLocalShapeDescriptor(Node):
    """Create `descriptor`: the local shape descriptors of `segmentation` (Sheridan et al. 2022).

    An auxiliary training target that makes boundary networks see object shape: per voxel,
    statistics of its own segment within a window of size `sigma` around it — mean offset to
    the window's centre of mass, variances and correlations of the offsets, and the window
    mass (10 channels in 3D: 012 offsets, 345 variances, 678 correlations of zy, zx, yx, 9
    size; 6 in 2D), normalised to [0, 1], 0 on background. `descriptor` is float32, channels
    first, on the segmentation's grid; values match lsds' `AddLocalShapeDescriptor` (within
    lsds' own float32 rounding, a few 1e-5).

    The node asks upstream for the segmentation grown by the window's full reach (within
    what upstream provides), so a descriptor never depends on where a batch was cut. lsds
    differs here, and these are its faults that this node does not copy: it grows the
    request by 3 sigma rounded down to the voxel grid while its Gaussian reaches
    int(3 sigma / voxel + 0.5) voxels, so voxels near the batch border can see padding (e.g.
    sigma 5 nm at 4 nm voxels: 3 voxels of context, a 4-voxel window); with `downsample` it
    samples the grid from the start of whatever it was given, so the phase follows the cut
    (here the grid is fixed in world coordinates: multiples of downsample * voxel size); and
    it fails unless the segmentation itself is requested. Its Gaussian is truncated at 3
    sigma (a uniform region has variance 0.988 sigma^2, not sigma^2): `truncate` follows the
    paper's untruncated window more closely at 4 or more. Its sphere mode uses a ball that is
    one voxel off-centre, a size channel that is 1 on every labelled voxel, and offsets
    scaled twice as much as in Gaussian mode: `lsds_compatible=False` fixes all three.

    Args:
        segmentation: the ArrayKey of the label ids (0 = background), 2D or 3D.
        descriptor: the ArrayKey to create: float32, (channels, *spatial).
        lsds_mask: optional ArrayKey to create with a loss mask of the descriptor's shape
            (float32): 1 where `labels_mask` is non-zero (without `labels_mask`: where the
            segmentation is not background), times `unlabelled` != 0. Default: none.
        labels_mask: optional ArrayKey (same voxel size); where it is 0, `lsds_mask` is 0.
        unlabelled: optional ArrayKey (same voxel size); 0 marks unlabelled voxels, where
            `lsds_mask` is 0.
        sigma: the window size in world units, one value or one per axis: the Gaussian's
            standard deviation, or the sphere's radius (default 5.0).
        mode: "gaussian" (a Gaussian-weighted window, default) or "sphere" (a ball).
        components: which channels to create, lsds' string of ascending indices (e.g.
            "0129": offsets and size in 3D, "345" variances) or None for all.
        downsample: compute on every `downsample`-th voxel with a correspondingly larger
            voxel size and give each voxel its segment's statistics at the sample at or
            before it (faster for large sigma; default 1).
        truncate: the Gaussian is cut at truncate * sigma (default 3.0, as lsds).
        lsds_compatible: sphere mode only; see above (default True: lsds' values).

    Example::

        pipeline += gp.AddLocalShapeDescriptor(
            gt_labels, gt_lsds, lsds_mask=lsds_weights, sigma=80, downsample=2
        )
    """

    def __init__(
        self,
        segmentation: ArrayKey,
        descriptor: ArrayKey,
        lsds_mask: ArrayKey | None = None,
        labels_mask: ArrayKey | None = None,
        unlabelled: ArrayKey | None = None,
        sigma: float | Sequence[float] = 5.0,
        mode: str = "gaussian",
        components: str | Sequence[int] | None = None,
        downsample: int = 1,
        truncate: float = 3.0,
        lsds_compatible: bool = True,
    ) -> None:
        if mode not in ("gaussian", "sphere"):
            raise ValueError(
                f"AddLocalShapeDescriptor: mode must be gaussian or sphere, got {mode!r}"
            )
        if int(downsample) != downsample or downsample < 1:
            raise ValueError(
                f"AddLocalShapeDescriptor: downsample must be an integer >= 1, got {downsample!r}"
            )
        self.segmentation = segmentation
        self.descriptor = descriptor
        self.lsds_mask = lsds_mask
        self.labels_mask = labels_mask
        self.unlabelled = unlabelled
        self.sigma = sigma
        self.mode = mode
        self.components = components
        self.downsample = int(downsample)
        self.truncate = truncate
        self.lsds_compatible = lsds_compatible

    # --------------------------------------------------------------------------------------
    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        seg = spatial_array_spec(self, upstream_spec, self.segmentation)
        dims = seg.voxel_size.dims
        if dims not in (2, 3):
            raise PipelineSetupError(f"{self.name}: {self.segmentation} must be 2D or 3D")
        self.channels = kernels.parse_components(self.components, dims)
        for key in (self.labels_mask, self.unlabelled):
            if key is None:
                continue
            other = spatial_array_spec(self, upstream_spec, key)
            if other.voxel_size != seg.voxel_size:
                raise PipelineSetupError(
                    f"{self.name}: {key} has voxel size {other.voxel_size}, but "
                    f"{self.segmentation} has {seg.voxel_size}; they must match"
                )
        before, after = kernels.window_radius(
            self.sigma,
            seg.voxel_size,
            self.mode,
            self.downsample,
            self.truncate,
            self.lsds_compatible,
        )
        self._reach = (Coordinate(before), Coordinate(after))
        spec = upstream_spec.copy()
        out = seg.replace(dtype=np.float32, interpolatable=True)
        spec[self.descriptor] = out
        if self.lsds_mask is not None:
            roi = seg.roi
            for key in (self.labels_mask, self.unlabelled):
                if key is not None and roi is not None and upstream_spec[key].roi is not None:
                    roi = roi.intersect(upstream_spec[key].roi)
            spec[self.lsds_mask] = out.replace(roi=roi)
        return spec

    def context(self, roi: Roi) -> tuple[Roi, Roi]:
        """The segmentation `roi`'s descriptors need: (on the downsampling grid, available).

        The first is `roi` grown by the window's reach and aligned to the grid of
        downsample * voxel size; the second is its part that upstream provides.
        """
        vs = self.upstream_spec[self.segmentation].voxel_size
        before, after = self._reach
        grown = roi.grow(before * vs, after * vs).snap_to_grid(vs * self.downsample)
        provided = self.upstream_spec[self.segmentation].roi
        available = grown if provided is None else grown.intersect(provided)
        return grown, available

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        wanted = [k for k in (self.descriptor, self.lsds_mask) if k is not None and k in request]
        if not wanted:
            return upstream, None
        for key in wanted:
            del upstream[key]
        vs = self.upstream_spec[self.segmentation].voxel_size
        mask_roi = request[self.lsds_mask].roi if self.lsds_mask in wanted else None
        if self.descriptor in wanted:
            roi = request[self.descriptor].roi
            grid, available = self.context(roi)
            ask_for(upstream, self.segmentation, available, vs)
        else:
            roi = grid = available = None
        if mask_roi is not None:
            base = self.segmentation if self.labels_mask is None else self.labels_mask
            for key in (base, self.unlabelled):
                if key is not None:
                    ask_for(upstream, key, mask_roi, vs)
        return upstream, DescriptorContext(roi, grid, available, mask_roi)

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        roi, grid, available, mask_roi = ctx
        vs = batch[self.segmentation].spec.voxel_size
        if roi is not None:
            seg = array_in(batch, self.segmentation, available).data
            if grid != available:
                pad = [
                    ((a - g) // v, (ge - ae) // v)
                    for g, a, ge, ae, v in zip(
                        grid.begin, available.begin, grid.end, available.end, vs
                    )
                ]
                seg = np.pad(seg, pad)
            where = ((roi - grid.offset) / vs).to_slices()
            data = kernels.local_shape_descriptor(
                seg,
                self.sigma,
                tuple(vs),
                self.channels,
                self.downsample,
                self.mode,
                roi=where,
                truncate=self.truncate,
                lsds_compatible=self.lsds_compatible,
            )
            spec = ArraySpec(roi=roi, voxel_size=vs, interpolatable=True, dtype=np.float32)
            batch[self.descriptor] = Array(data, spec)
        if mask_roi is not None:
            mroi = mask_roi
            if self.labels_mask is not None:
                mask = array_in(batch, self.labels_mask, mroi).data != 0
            else:
                mask = array_in(batch, self.segmentation, mroi).data != 0
            if self.unlabelled is not None:
                mask = mask & (array_in(batch, self.unlabelled, mroi).data != 0)
            data = np.broadcast_to(mask.astype(np.float32), (len(self.channels),) + mask.shape)
            spec = ArraySpec(roi=mroi, voxel_size=vs, interpolatable=True, dtype=np.float32)
            batch[self.lsds_mask] = Array(np.ascontiguousarray(data), spec)
        return batch


__all__ = ["AddLocalShapeDescriptor"]
