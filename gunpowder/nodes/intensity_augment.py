from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..spec import ArrayKey
from ..transforms.augment_intensity import (
    count_slabs,
    scale_shift_range,
)
from ._intensity import _check_p, _check_range, _float_data, _OneArray


class IntensityAugment(_OneArray):
    """Randomly scale and shift intensities (1.x): `a = mean + (a - mean) * scale + shift`.

    Makes a network robust to contrast and brightness changes between (and within) volumes.
    scale ~ U(scale_min, scale_max) and shift ~ U(shift_min, shift_max) are drawn per slab,
    and `mean` is that slab's mean. The array must hold floats (e.g. after Normalize); key,
    spec and dtype are kept.

    Args:
        array: the ArrayKey of the intensities to change in place.
        scale_min: lower bound of the contrast factor.
        scale_max: upper bound of the contrast factor.
        shift_min: lower bound of the brightness shift (in intensity units, e.g. of [0, 1]).
        shift_max: upper bound of the brightness shift.
        z_section_wise: draw scale and shift for every z section (first spatial axis of a 3D
            array) on its own (default False); not together with `slab`.
        clip: the input must lie in [0, 1] and the result is clipped to it (default True).
        p: probability of augmenting a request at all (default 1.0).
        slab: the shape, in voxels, of the blocks that get their own scale and shift, for the
            array's trailing axes; -1 is a whole axis (default None: the whole array).

    Example::

        pipeline += gp.IntensityAugment(raw, scale_min=0.9, scale_max=1.1,
                                        shift_min=-0.1, shift_max=0.1, z_section_wise=True)
    """

    def __init__(
        self,
        array: ArrayKey,
        scale_min: float,
        scale_max: float,
        shift_min: float,
        shift_max: float,
        z_section_wise: bool = False,
        clip: bool = True,
        p: float = 1.0,
        slab: Sequence[int] | None = None,
    ) -> None:
        self.array = array
        self.scale_min = float(scale_min)
        self.scale_max = float(scale_max)
        self.shift_min = float(shift_min)
        self.shift_max = float(shift_max)
        self.z_section_wise = bool(z_section_wise)
        self.clip = bool(clip)
        self.p = _check_p("IntensityAugment", p)
        self.slab = None if slab is None else tuple(int(s) for s in slab)
        if self.z_section_wise and self.slab is not None:
            raise ValueError("IntensityAugment: give z_section_wise or slab, not both")

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:
            return batch
        array = batch[self.array]
        data = _float_data(self.name, self.array, array)
        slab = self.slab
        if self.z_section_wise:
            dims = array.spec.roi.dims if array.spec.roi is not None else data.ndim
            if dims != 3:
                raise PipelineRequestError(
                    f"{self.name}: z_section_wise needs a 3D array, {self.array} is {dims}D"
                )
            slab = (1, -1, -1)
        n = count_slabs(data.shape, slab)
        scales = ctx.uniform(self.scale_min, self.scale_max, n)
        shifts = ctx.uniform(self.shift_min, self.shift_max, n)
        out, value = scale_shift_range(data, scales, shifts, slab, self.clip)
        if self.clip:
            _check_range(self.name, self.array, data, value=value)
        batch[self.array] = Array(out, array.spec, array.attrs)
        return batch
