from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..batch import Array
from ..errors import PipelineSetupError
from ..geometry import Roi
from ..spec import ArrayKey, ArraySpec, ProviderSpec
from ..transforms import resample as kernels
from ._args import check_positive_ints
from ._common import spatial_array_spec
from ._resampler import _factor, _Resampler, check_resampler_args


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
        node = f"UpSample({source})"
        check_resampler_args(node, source, target)
        check_positive_ints(node, "factor", factor)
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
