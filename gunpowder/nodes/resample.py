"""Nodes that create an array at another voxel size: DownSample, UpSample, Resample.

All ROI arithmetic is in world units, so one request may mix the voxel sizes of source and
target. Grids are anchored at the world origin: a ROI on a voxel size's grid begins and ends
at multiples of it. Kernels live in `gunpowder.transforms.resample`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..pipeline import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ..transforms import resample as kernels
from ._common import array_in, ask_for, spatial_array_spec


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
        return upstream, (roi, source_roi)

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        roi, source_roi = ctx
        source = array_in(batch, self.source, source_roi)
        out = self._compute(source, roi)
        batch[self.target] = Array(out, source.spec.replace(roi=roi, voxel_size=self._target_vs))
        return batch


class DownSample(_Resampler):
    """Create `target` from `source` keeping every `factor`-th voxel (1.x: no averaging).

    For a coarser copy of an array, e.g. a context input or labels at the output's voxel
    size. The target's voxel size is the source's times `factor`; each target voxel takes the
    value of the first source voxel it covers (so labels stay labels). The provided ROI is the
    source's ROI shrunk to the target's grid; dtype and interpolatability are kept.

    Args:
        source: the ArrayKey to read.
        factor: the down-sampling factor, in voxels: one int for all spatial axes or one per
            axis (positive ints).
        target: the ArrayKey to create.

    Example::

        pipeline += gp.DownSample(gt_labels, (1, 2, 2), gt_labels_coarse)
    """

    def __init__(self, source: ArrayKey, factor: int | Sequence[int], target: ArrayKey) -> None:
        self.source = source
        self.factor = factor
        self.target = target

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        source = spatial_array_spec(self, upstream_spec, self.source)
        self._factor = _factor(self, self.factor, source.voxel_size.dims)
        self._target_vs = voxel_size = source.voxel_size * self._factor
        spec = upstream_spec.copy()
        spec[self.target] = source.replace(
            roi=_snap(source.roi, voxel_size, "shrink"), voxel_size=voxel_size
        )
        return spec

    def _plan(self, roi: Roi, provided: ArraySpec) -> tuple[Roi, Roi]:
        return roi, roi

    def _compute(self, source: Array, roi: Roi) -> np.ndarray:
        return kernels.downsample(source.data, self._factor)


class UpSample(_Resampler):
    """Create `target` from `source` by repeating each voxel `factor` times per axis.

    For a finer copy of an array (nearest neighbour, so labels stay labels). The target's
    voxel size is the source's divided by `factor`, which must divide it; ROI, dtype and
    interpolatability are kept.

    Args:
        source: the ArrayKey to read.
        factor: the up-sampling factor, in voxels: one int for all spatial axes or one per
            axis (positive ints dividing the source's voxel size).
        target: the ArrayKey to create.

    Example::

        pipeline += gp.UpSample(raw_coarse, 2, raw_fine)
    """

    def __init__(self, source: ArrayKey, factor: int | Sequence[int], target: ArrayKey) -> None:
        self.source = source
        self.factor = factor
        self.target = target

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        source = spatial_array_spec(self, upstream_spec, self.source)
        self._factor = _factor(self, self.factor, source.voxel_size.dims)
        if not source.voxel_size.is_multiple_of(self._factor):
            raise PipelineSetupError(
                f"{self.name}: voxel size {source.voxel_size} of {self.source} is not divisible "
                f"by factor {self._factor}"
            )
        self._target_vs = source.voxel_size // self._factor
        spec = upstream_spec.copy()
        spec[self.target] = source.replace(voxel_size=self._target_vs)
        return spec

    def _plan(self, roi: Roi, provided: ArraySpec) -> tuple[Roi, Roi]:
        grown = roi.snap_to_grid(provided.voxel_size, mode="grow")
        return grown, grown

    def _compute(self, source: Array, roi: Roi) -> np.ndarray:
        return kernels.upsample(source.data, self._factor)


class Resample(_Resampler):
    """Create `target` from `source` at another voxel size, sampled at voxel centres.

    For arrays whose voxel size is not an integer multiple or divisor of the one wanted (for
    those, DownSample/UpSample are exact and cheaper). The node asks upstream for the source
    voxels the interpolation needs; at the source's edge, edge values repeat. The provided
    ROI is the source's ROI shrunk to the target's grid; dtype is kept.

    Args:
        source: the ArrayKey to read.
        voxel_size: the target's voxel size, in world units: one entry per spatial axis, or
            per resampled axis with `ndim` (then the leading axes keep the source's).
            Required (here or as `target_voxel_size`).
        target: the ArrayKey to create (required).
        ndim: resample only the last `ndim` spatial axes; the others keep the source's voxel
            size (default: all axes).
        interp_order: 0 = nearest (the source voxel containing the centre), 1 = linear,
            2-5 = splines. Default: 1 for interpolatable arrays, 0 for others (labels).
        target_voxel_size: keyword-only alias of `voxel_size` (give one of the two).

    Example::

        pipeline += gp.Resample(raw, gp.Coordinate((40, 8, 8)), raw_resampled)
    """

    def __init__(
        self,
        source: ArrayKey,
        voxel_size: Sequence[int] | None = None,
        target: ArrayKey | None = None,
        ndim: int | None = None,
        interp_order: int | None = None,
        *,
        target_voxel_size: Sequence[int] | None = None,
    ) -> None:
        if (voxel_size is None) == (target_voxel_size is None):
            raise TypeError(
                "Resample needs the new voxel_size (also accepted as target_voxel_size)"
            )
        if target is None:
            raise TypeError("Resample needs a target ArrayKey to store the resampled array")
        self.source = source
        self.voxel_size = Coordinate(voxel_size if voxel_size is not None else target_voxel_size)
        self.target_voxel_size = self.voxel_size
        self.target = target
        self.ndim = ndim
        self.interp_order = interp_order
        if interp_order is not None and not 0 <= interp_order <= 5:
            raise ValueError(f"Resample: interp_order must be 0-5, got {interp_order!r}")

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        source = spatial_array_spec(self, upstream_spec, self.source)
        vs = source.voxel_size
        ndim = vs.dims if self.ndim is None else self.ndim
        if not 1 <= ndim <= vs.dims:
            raise PipelineSetupError(f"{self.name}: ndim must be in 1..{vs.dims}, got {self.ndim}")
        target_vs = self.target_voxel_size
        if target_vs.dims == ndim < vs.dims:
            target_vs = Coordinate(tuple(vs[: vs.dims - ndim]) + tuple(target_vs))
        if target_vs.dims != vs.dims or any(v is None or v < 1 for v in target_vs):
            raise PipelineSetupError(
                f"{self.name}: target_voxel_size {self.target_voxel_size} does not fit {self.source} "
                f"with voxel size {vs}"
            )
        if tuple(target_vs[: vs.dims - ndim]) != tuple(vs[: vs.dims - ndim]):
            raise PipelineSetupError(
                f"{self.name}: with ndim={ndim}, the first {vs.dims - ndim} entries of "
                f"target_voxel_size {target_vs} must equal the source's voxel size {vs}"
            )
        self._target_vs = target_vs
        if self.interp_order is not None:
            self._order = self.interp_order
        else:
            self._order = 1 if source.interpolatable else 0
        spec = upstream_spec.copy()
        spec[self.target] = source.replace(
            roi=_snap(source.roi, target_vs, "shrink"), voxel_size=target_vs
        )
        return spec

    def _plan(self, roi: Roi, provided: ArraySpec) -> tuple[Roi, Roi]:
        vs = provided.voxel_size
        margin = vs * self._order
        context = roi.grow(margin, margin).snap_to_grid(vs, mode="grow")
        if provided.roi is not None:
            context = context.intersect(provided.roi.snap_to_grid(vs, mode="shrink"))
        return roi, context

    def _compute(self, source: Array, roi: Roi) -> np.ndarray:
        return kernels.resample(
            source.data,
            in_begin=source.spec.roi.begin,
            in_step=source.spec.voxel_size,
            out_begin=roi.begin,
            out_step=self._target_vs,
            out_shape=roi.shape / self._target_vs,
            order=self._order,
        )


__all__ = ["DownSample", "UpSample", "Resample"]
