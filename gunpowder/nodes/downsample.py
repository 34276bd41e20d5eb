from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..batch import Array
from ..geometry import Roi
from ..spec import ArrayKey, ArraySpec, ProviderSpec
from ..transforms import resample as kernels
from ._args import check_positive_ints
from ._common import spatial_array_spec
from ._resampler import _factor, _Resampler, _snap, check_resampler_args


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
        node = f"DownSample({source})"
        check_resampler_args(node, source, target)
        check_positive_ints(node, "factor", factor)
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
