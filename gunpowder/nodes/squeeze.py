from __future__ import annotations

import numpy as np

from ..batch import Array
from ..errors import PipelineRequestError
from ..spec import ArrayKey
from ._array_filter import _ChangeAxes, _channel_axes


class Squeeze(_ChangeAxes):
    """Remove the length-1 axis `axis` (a channel axis, before the spatial ones) of each of
    `arrays`.

    E.g. to drop a batch or channel axis a network produced. The specs are unchanged (the
    spatial axes are never touched); a key missing from a batch is skipped.

    Args:
        arrays: one ArrayKey or a list of them, changed in place.
        axis: the data axis to remove, counted over all axes (negative from the end); it must
            be one of the leading non-spatial axes and have length 1 (default 0).

    Example::

        pipeline += gp.Squeeze([pred], axis=0)  # (1, c, z, y, x) -> (c, z, y, x)
    """

    def _change(self, key: ArrayKey, array: Array) -> np.ndarray:
        shape = np.shape(array.data)
        channels = _channel_axes(key, array)
        axis = self.axis + len(shape) if self.axis < 0 else self.axis
        if not 0 <= axis < channels:
            raise PipelineRequestError(
                f"{self.name}: can not squeeze axis {self.axis} of {key} (shape {shape}): "
                f"only its {channels} leading non-spatial axes can be squeezed"
            )
        if shape[axis] != 1:
            raise PipelineRequestError(
                f"{self.name}: axis {self.axis} of {key} has length {shape[axis]}, not 1 "
                f"(shape {shape})"
            )
        return np.squeeze(array.data, axis=axis)
