from __future__ import annotations

import numpy as np

from ..batch import Array
from ..errors import PipelineRequestError
from ..spec import ArrayKey
from ._array_filter import _ChangeAxes, _channel_axes


class Unsqueeze(_ChangeAxes):
    """Insert a length-1 axis at `axis` (among the channel axes, before the spatial ones)
    into each of `arrays`.

    E.g. to add the batch and channel axes a network expects. The specs are unchanged; a key
    missing from a batch is skipped.

    Args:
        arrays: one ArrayKey or a list of them, changed in place.
        axis: where the new axis goes, as in numpy.expand_dims (negative from the end); it
            must come before the spatial axes (default 0).

    Example::

        pipeline += gp.Unsqueeze([raw])  # (z, y, x) -> (1, z, y, x)
        pipeline += gp.Unsqueeze([raw])  # -> (1, 1, z, y, x)
    """

    def _change(self, key: ArrayKey, array: Array) -> np.ndarray:
        ndim = np.ndim(array.data)
        channels = _channel_axes(key, array)
        axis = self.axis + ndim + 1 if self.axis < 0 else self.axis
        if not 0 <= axis <= channels:
            raise PipelineRequestError(
                f"{self.name}: can not insert axis {self.axis} into {key} (shape "
                f"{np.shape(array.data)}): a new axis must come before the spatial axes"
            )
        return np.expand_dims(array.data, axis)
