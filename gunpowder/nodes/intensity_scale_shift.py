from __future__ import annotations

from typing import Any

import numpy as np

from ..spec import ArrayKey
from ._array_filter import _ArrayFilter


class IntensityScaleShift(_ArrayFilter):
    """`array * scale + shift`, with numpy's result dtype (declared at setup).

    Typically maps normalised intensities from [0, 1] to [-1, 1] for a network.

    Args:
        array: the ArrayKey to change in place.
        scale: the multiplier.
        shift: the value added after scaling.

    Example::

        pipeline += gp.IntensityScaleShift(raw, 2, -1)  # [0, 1] -> [-1, 1]
    """

    def __init__(self, array: ArrayKey, scale: float, shift: float) -> None:
        self.array = array
        self.key = array
        self.scale = scale
        self.shift = shift

    @property
    def name(self) -> str:
        return f"IntensityScaleShift({self.array})"

    def output_dtype(self, dtype: Any) -> Any:
        if dtype is None:
            return None
        return (np.zeros(1, dtype) * self.scale + self.shift).dtype

    def transform(self, data: np.ndarray) -> np.ndarray:
        return data * self.scale + self.shift
