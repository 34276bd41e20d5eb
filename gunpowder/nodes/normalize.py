from __future__ import annotations

from typing import Any

import numpy as np

from ..spec import ArrayKey
from ._args import bad_argument, numpy_dtype
from ._array_filter import _ArrayFilter, cast, default_factor


class Normalize(_ArrayFilter):
    """Scale `array` by `factor` and cast it to `dtype` (float32 by default).

    Networks and intensity augmentations want floats in [0, 1]; sources usually provide
    integers. Without a factor: 1/255 for uint8, 1/65535 for uint16 (1 / the dtype's largest
    value for any integer type), 1 for floats, from the dtype upstream declares (or else the
    data's). The provided spec declares `dtype`. Into an integer `dtype`, values are scaled
    in float64 and then cast (truncated); NaN, inf or values outside the dtype's range are
    an error naming the node and key.

    Args:
        array: the ArrayKey to change in place.
        factor: the multiplier (default None: derived from the input dtype as above).
        dtype: the output dtype (default numpy.float32).

    Example::

        pipeline += gp.Normalize(raw)  # uint8 -> float32 in [0, 1]
    """

    def __init__(self, array: ArrayKey, factor: float | None = None, dtype: Any = np.float32):
        node = f"Normalize({array})"
        if not isinstance(array, ArrayKey):
            raise TypeError(f"{node}: array must be an ArrayKey, got {array!r}")
        if factor is not None:
            try:
                factor = float(factor)
            except (TypeError, ValueError):
                raise bad_argument(node, "factor", "None or a number", factor) from None
            if not np.isfinite(factor):
                raise bad_argument(node, "factor", "a finite number", factor)
        self.array = array
        self.key = array
        self.factor = factor
        self.dtype = numpy_dtype(node, "dtype", dtype)

    @property
    def name(self) -> str:
        return f"Normalize({self.array})"

    def output_dtype(self, dtype: Any) -> Any:
        return self.dtype

    def transform(self, data: np.ndarray) -> np.ndarray:
        factor = self.factor
        if factor is None:
            declared = self.upstream_spec[self.key].dtype
            factor = default_factor(declared if declared is not None else data.dtype)
        if np.issubdtype(self.dtype, np.integer):
            # scale in floats, then check what is cast (NaN, range) into the integer dtype
            scaled = data.astype(np.float64) * factor
            return cast(self.name, self.key, scaled, self.dtype)
        if np.result_type(self.dtype, factor) == self.dtype:
            # one pass (cast and multiply per buffer, no full-size temporary): the same
            # values as `data.astype(dtype) * factor`, computed in `dtype`
            out = np.empty(data.shape, dtype=self.dtype)
            return np.multiply(data, factor, out=out, dtype=self.dtype, casting="unsafe")
        return (data.astype(self.dtype) * factor).astype(self.dtype, copy=False)
