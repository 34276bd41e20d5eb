"""Element-wise and shape changes of arrays: `Normalize`, `IntensityScaleShift`, `AsType`,
`Squeeze`, `Unsqueeze`. Each declares the dtype it produces in `setup`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..pipeline import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec


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


class Normalize(_ArrayFilter):
    """Scale `array` by `factor` and cast it to `dtype` (float32 by default).

    Networks and intensity augmentations want floats in [0, 1]; sources usually provide
    integers. Without a factor: 1/255 for uint8, 1/65535 for uint16 (1 / the dtype's largest
    value for any integer type), 1 for floats, from the dtype upstream declares (or else the
    data's). The provided spec declares `dtype`.

    Args:
        array: the ArrayKey to change in place.
        factor: the multiplier (default None: derived from the input dtype as above).
        dtype: the output dtype (default numpy.float32).

    Example::

        pipeline += gp.Normalize(raw)  # uint8 -> float32 in [0, 1]
    """

    def __init__(self, array: ArrayKey, factor: float | None = None, dtype: Any = np.float32):
        self.array = array
        self.key = array
        self.factor = factor
        self.dtype = np.dtype(dtype)

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
        return (data.astype(self.dtype) * factor).astype(self.dtype, copy=False)


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


class AsType(Node):
    """Cast `source` to `target_dtype`, in place or into a new key `target` (same ROI and spec).

    For dtypes a later node or a network needs (e.g. int64 labels for a loss, uint8 for
    storage); values are converted with numpy's `astype` (no scaling: see Normalize).

    Args:
        source: the ArrayKey to read.
        target_dtype: the new dtype (required, here or as `dtype`).
        target: optional new ArrayKey to create with the cast copy; it must not already be
            provided upstream. Default None: `source` itself is cast.
        dtype: alias of `target_dtype` (give one of the two).

    Example::

        pipeline += gp.AsType(gt_labels, np.int64)
        pipeline += gp.AsType(raw, np.float32, target=raw_float)
    """

    def __init__(
        self,
        source: ArrayKey,
        target_dtype: Any = None,
        target: ArrayKey | None = None,
        dtype: Any = None,
    ) -> None:
        if (target_dtype is None) == (dtype is None):
            raise TypeError(f"AsType({source}): give the new dtype once, as target_dtype")
        self.source = source
        self.dtype = np.dtype(target_dtype if target_dtype is not None else dtype)
        self.target_dtype = self.dtype
        self.target = target

    @property
    def name(self) -> str:
        return f"AsType({self.source})"

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, self.source)
        if self.target is not None and self.target in upstream_spec:
            raise PipelineSetupError(
                f"{self.name}: target {self.target} is already provided upstream; AsType "
                "creates it, choose a new key"
            )
        spec = upstream_spec.copy()
        spec[self.target or self.source] = spec[self.source].replace(dtype=self.dtype)
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        upstream = request.copy()
        if self.target is None:
            _as_upstream(upstream, self.source, self.upstream_spec)
            return upstream, None
        if self.target not in upstream:
            return upstream, None
        wanted = upstream.pop(self.target)
        have = self.upstream_spec[self.source]
        if self.source in upstream:
            own = upstream[self.source].roi
            if own is not None and wanted.roi is not None:
                upstream[self.source] = upstream[self.source].replace(roi=own.union(wanted.roi))
        else:
            upstream[self.source] = ArraySpec(
                roi=wanted.roi, voxel_size=wanted.voxel_size, dtype=have.dtype
            )
        return upstream, None

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if self.source not in batch:
            return batch
        array = batch[self.source]
        data = np.asarray(array.data).astype(self.dtype)
        batch[self.target or self.source] = Array(
            data, array.spec.replace(dtype=self.dtype), dict(array.attrs)
        )
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
