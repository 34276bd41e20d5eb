from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..batch import Array
from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..spec import ArrayKey, ArraySpec, ProviderSpec
from ..transforms import resample as kernels
from ._args import bad_argument, check_positive_ints
from ._common import spatial_array_spec
from ._resampler import _Resampler, _snap, check_resampler_args


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
            2-5 = splines. Default: 0 for arrays whose spec says `interpolatable=False`
            (labels) or of dtype bool, else 1 (also when `interpolatable` is unknown, as in
            1.x). Interpolated integers are truncated toward zero (1.x).
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
        node = f"Resample({source})"
        if (voxel_size is None) == (target_voxel_size is None):
            raise TypeError(
                f"{node} needs the new voxel_size once (also accepted as target_voxel_size)"
            )
        if target is None:
            raise TypeError(f"{node} needs a target ArrayKey to store the resampled array")
        check_resampler_args(node, source, target)
        arg = "voxel_size" if voxel_size is not None else "target_voxel_size"
        vs = check_positive_ints(
            node, arg, voxel_size if voxel_size is not None else target_voxel_size
        )
        if ndim is not None and (
            isinstance(ndim, bool) or not isinstance(ndim, (int, np.integer)) or ndim < 1
        ):
            raise bad_argument(node, "ndim", "None or a positive int", ndim)
        if ndim is not None and len(vs) < ndim:
            raise bad_argument(node, arg, f"at least ndim={ndim} entries", tuple(vs))
        if interp_order is not None and (
            isinstance(interp_order, bool)
            or not isinstance(interp_order, (int, np.integer))
            or not 0 <= interp_order <= 5
        ):
            raise bad_argument(node, "interp_order", "None or an int in 0..5", interp_order)
        self.source = source
        self.voxel_size = Coordinate(vs)
        self.target_voxel_size = self.voxel_size
        self.target = target
        self.ndim = ndim
        self.interp_order = interp_order

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
            # as 1.x: nearest only for arrays known not to be interpolatable (or bool)
            known_labels = source.interpolatable is False or source.dtype == np.bool_
            self._order = 0 if known_labels else 1
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
