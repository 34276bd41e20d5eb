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
from ._args import NodeArgumentError, bad_argument, check_interval, probability
from ._intensity import _check_range, _float_data, _OneArray


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
        node = f"IntensityAugment({array})"
        if not isinstance(array, ArrayKey):
            raise TypeError(f"{node}: array must be an ArrayKey, got {array!r}")
        self.array = array
        self.scale_min, self.scale_max = check_interval(
            node, "scale_min", scale_min, "scale_max", scale_max
        )
        self.shift_min, self.shift_max = check_interval(
            node, "shift_min", shift_min, "shift_max", shift_max
        )
        self.z_section_wise = bool(z_section_wise)
        self.clip = bool(clip)
        self.p = probability(node, "p", p)
        if slab is not None:
            try:
                slab = tuple(int(s) for s in slab)
            except (TypeError, ValueError):
                raise bad_argument(
                    node, "slab", "a sequence of ints (-1: whole axis)", slab
                ) from None
            if not slab or any(s == 0 or s < -1 for s in slab):
                raise bad_argument(node, "slab", "positive ints or -1 (whole axis)", slab)
        self.slab = slab
        if self.z_section_wise and self.slab is not None:
            # an AssertionError too, as in 1.x
            raise NodeArgumentError(f"{node}: give z_section_wise or slab, not both")

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
