"""`ZeroOutConstSections`: set blank (constant) sections of an intensity array to 0 (1.x node).

A missing EM section is constant; normalised to [-1, 1] it would read as "black" (-1), the
most extreme input to a network, where 0 ("grey") says less.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..node import Node
from ..spec import ArrayKey, ProviderSpec


def zero_const_sections(data: np.ndarray, dims: int) -> np.ndarray:
    """A copy of `data` (channels first, `dims` spatial axes last) where every section along
    the first spatial axis that is constant, channel by channel, is set to 0."""
    data = np.array(data)
    if dims < 2 or data.size == 0:
        return data
    sections = data.shape[data.ndim - dims]
    flat = data.reshape((-1, sections, int(np.prod(data.shape[data.ndim - dims + 1 :]))))
    constant = np.all(flat == flat[:, :, :1], axis=2)  # (channels, sections)
    flat[constant] = 0
    return flat.reshape(data.shape)


class ZeroOutConstSections(Node):
    """Set every section (a slice along the first spatial axis, e.g. a z-section) of
    `intensities` that holds a single value to 0; each channel is judged on its own.

    A missing EM section is constant; normalised to [-1, 1] it would read as "black" (-1),
    the darkest possible input to a network, where 0 ("grey") says less. Constant means
    constant within the requested ROI. Needs at least 2 spatial dimensions; key and spec
    are kept.

    Args:
        intensities: the ArrayKey of the (normalised) intensities to change in place.

    Example::

        pipeline += gp.IntensityScaleShift(raw, 2, -1)
        pipeline += gp.ZeroOutConstSections(raw)
    """

    def __init__(self, intensities: ArrayKey) -> None:
        self.intensities = intensities

    @property
    def name(self) -> str:
        return f"ZeroOutConstSections({self.intensities})"

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, self.intensities)
        spec = upstream_spec[self.intensities]
        if getattr(spec, "nonspatial", False) or (spec.roi is not None and spec.roi.dims < 2):
            dims = "nonspatial" if spec.nonspatial else f"{spec.roi.dims}D"
            raise PipelineSetupError(
                f"{self.name}: needs an array with at least 2 spatial dimensions to have "
                f"sections, but {self.intensities} is {dims}"
            )
        return upstream_spec

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if self.intensities in batch:
            array = batch[self.intensities]
            data = zero_const_sections(np.asarray(array.data), array.spec.roi.dims)
            batch[self.intensities] = Array(data, array.spec, array.attrs)
        return batch


__all__ = ["ZeroOutConstSections", "zero_const_sections"]
