"""`ArraySource`: an in-memory numpy array served as a source."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..geometry import Coordinate, Roi
from ..node import Source
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec


class ArraySource(Source):
    """Serve `array` (an `Array`, or numpy data with an `ArraySpec`) under `key`.

    `ArraySource(key, Array(data, ArraySpec(roi=..., voxel_size=...)))`. Without a ROI the
    data starts at the origin with voxel size 1.

    Handy for tests, notebooks and data small enough to hold in memory. Requests get a copy
    of the requested region (a nonspatial array is served whole).

    Args:
        key: the ArrayKey to provide.
        array: an `Array` (data channels first, spatial axes last, with its spec: ROI and
            voxel size in world units), or plain array data, then taken as all-spatial with
            voxel size 1 and its ROI starting at the origin.
        interpolatable: overrides the spec's `interpolatable`. Default None: the spec's
            value, or, if that is None too, True for floating-point data, else False.

    Example::

        raw = gp.ArrayKey("RAW")
        data = np.random.default_rng(0).random((100, 100, 100), dtype=np.float32)
        spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (4000, 400, 400)), voxel_size=(40, 4, 4))
        pipeline = gp.ArraySource(raw, gp.Array(data, spec))
        pipeline += gp.RandomLocation()
    """

    def __init__(self, key: ArrayKey, array: Any, interpolatable: bool | None = None) -> None:
        if not isinstance(array, Array):
            array = np.asarray(array)
            ndim = array.ndim
            array = Array(
                array,
                ArraySpec(roi=Roi((0,) * ndim, array.shape), voxel_size=(1,) * ndim),
            )
        self.key = key
        self.array = array
        self.interpolatable = interpolatable

    def setup(self, upstream_spec: Any = None) -> ProviderSpec:
        spec = self.array.spec.copy()
        if spec.voxel_size is None and spec.roi is not None:
            spec.voxel_size = Coordinate((1,) * spec.roi.dims)
        if self.interpolatable is not None:
            spec.interpolatable = self.interpolatable
        elif spec.interpolatable is None:
            spec.interpolatable = np.issubdtype(self.array.data.dtype, np.floating)
        spec.dtype = self.array.data.dtype
        self.array.spec = spec
        return ProviderSpec({self.key: spec})

    def provide(self, request: BatchRequest, rng: np.random.Generator) -> Batch:
        batch = Batch()
        if self.key not in request:
            return batch
        spec = request[self.key]
        if self.array.spec.nonspatial or spec.roi is None:
            batch[self.key] = Array(self.array.data, self.array.spec)
        else:
            batch[self.key] = self.array.crop(spec.roi, copy=True)
        return batch
