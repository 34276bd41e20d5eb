"""Element-wise and shape changes of arrays: `Normalize`, `IntensityScaleShift`, `AsType`,
`Squeeze`, `Unsqueeze`. Each declares the dtype it produces in `setup`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..node import Node
from ..spec import ArrayKey, BatchRequest, ProviderSpec
from ._args import bad_argument


def _as_upstream(request: BatchRequest, key: ArrayKey, upstream_spec: ProviderSpec) -> None:
    """Ask upstream for `key` in its own dtype (the request carries the one offered here)."""
    if key in request:
        request[key] = request[key].replace(dtype=upstream_spec[key].dtype)


def cast(node: str, key: ArrayKey, data: np.ndarray, dtype: Any) -> np.ndarray:
    """`data` as `dtype`; floats into an integer dtype must be finite and in its range.

    numpy turns NaN, inf and out-of-range floats into arbitrary integers without a word; this
    raises a PipelineRequestError naming `node` and `key` instead.
    """
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer) and np.issubdtype(data.dtype, np.inexact) and data.size:
        if np.iscomplexobj(data):
            raise PipelineRequestError(
                f"{node}: {key} holds complex values, which can not be cast to {dtype}"
            )
        finite = np.isfinite(data)
        if not finite.all():
            what = "NaN" if np.isnan(data).any() else "inf"
            raise PipelineRequestError(
                f"{node}: {key} holds {what} ({int((~finite).sum())} of {data.size} values); "
                f"casting {what} into an integer dtype ({dtype}) has no defined result. "
                "Replace or mask them first (e.g. np.nan_to_num in a lift'ed function)"
            )
        info = np.iinfo(dtype)
        lo, hi = float(data.min()), float(data.max())
        if lo < info.min or hi >= float(info.max) + 1:
            raise PipelineRequestError(
                f"{node}: {key} holds values in [{lo:g}, {hi:g}], outside the range "
                f"[{info.min}, {info.max}] of {dtype}; casting them has no defined result"
            )
    return data.astype(dtype, copy=False)


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
        node = type(self).__name__
        try:
            keys = _keys(arrays)
        except TypeError:
            raise TypeError(
                f"{node}: arrays must be an ArrayKey or a list of ArrayKeys, got {arrays!r}"
            ) from None
        bad = [k for k in keys if not isinstance(k, ArrayKey)]
        if bad:
            raise TypeError(f"{node}: arrays must be ArrayKeys, got {bad!r}")
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise bad_argument(node, "axis", "an int", axis)
        self.arrays = keys
        self.axis = int(axis)

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
