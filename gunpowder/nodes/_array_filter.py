"""Element-wise and shape changes of arrays: `Normalize`, `IntensityScaleShift`, `AsType`,
`Squeeze`, `Unsqueeze`. Each declares the dtype it produces in `setup`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..node import Node
from ..spec import ArrayKey, BatchRequest, ProviderSpec


def _as_upstream(request: BatchRequest, key: ArrayKey, upstream_spec: ProviderSpec) -> None:
    """Ask upstream for `key` in its own dtype (the request carries the one offered here)."""
    if key in request:
        request[key] = request[key].replace(dtype=upstream_spec[key].dtype)


def default_factor(dtype: Any) -> float:
    """1 / the largest value of an integer dtype (1/255 for uint8); 1 for floats and bools."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return 1.0 / float(np.iinfo(dtype).max)
    return 1.0


class _ArrayFilter(Node):
    """A node that maps the data of one array to new data, with a declared output dtype."""

    key: ArrayKey

    def output_dtype(self, dtype: Any) -> Any:
        return dtype

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, self.key)
        spec = upstream_spec.copy()
        array = spec[self.key]
        array.dtype = self.output_dtype(array.dtype)
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        _as_upstream(upstream, self.key, self.upstream_spec)
        return upstream, None

    def transform(self, data: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if self.key in batch:
            array = batch[self.key]
            data = self.transform(np.asarray(array.data))
            batch[self.key] = Array(data, array.spec.replace(dtype=data.dtype), array.attrs)
        return batch


def _keys(arrays: Any) -> list[ArrayKey]:
    return [arrays] if isinstance(arrays, ArrayKey) else list(arrays)


def _channel_axes(key: ArrayKey, array: Array) -> int:
    """How many leading (non-spatial) axes the data of `array` has."""
    ndim = np.ndim(array.data)
    spec = array.spec
    if spec.nonspatial or spec.roi is None:
        return ndim
    return ndim - spec.roi.dims


class _ChangeAxes(Node):
    """Squeeze and Unsqueeze: apply `_change` to each of `arrays` present in the batch."""

    def __init__(self, arrays: Iterable[ArrayKey] | ArrayKey, axis: int = 0) -> None:
        self.arrays = _keys(arrays)
        self.axis = axis

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, *self.arrays)
        return upstream_spec

    def _change(self, key: ArrayKey, array: Array) -> np.ndarray:
        """The new data of `array` (stored under `key`)."""
        raise NotImplementedError

    def process(self, batch: Batch, ctx: Any) -> Batch:
        for key in self.arrays:
            if key in batch:
                array = batch[key]
                batch[key] = Array(self._change(key, array), array.spec, array.attrs)
        return batch
