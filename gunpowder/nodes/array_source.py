"""`ArraySource`: an in-memory or lazily read array (funlib.persistence `Array`, gunpowder
`Array` or numpy data) served as a source."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..geometry import Coordinate, Roi
from ..node import Source
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ._args import bad_argument


def _is_world_array(array: Any) -> bool:
    """Duck-typed funlib.persistence `Array`: `.data`, `.roi` and `.voxel_size` (world units)."""
    return all(hasattr(array, name) for name in ("data", "roi", "voxel_size")) and not isinstance(
        array, Array
    )


class ArraySource(Source):
    """Serve `array` under `key`: a funlib.persistence `Array` (1.5), a gunpowder `Array`, or
    plain numpy data.

    A funlib.persistence `Array` (or anything with `.data`, `.roi` and `.voxel_size` in world
    units, spatial axes last) is read lazily: a request reads just the requested region of
    its data (zarr, dask, numpy). A gunpowder `Array` (data with an `ArraySpec`) or numpy data
    (taken as all-spatial, voxel size 1, ROI from the origin) is held in memory; requests get a
    copy of the requested region (a nonspatial array is served whole). Handy for tests,
    notebooks and datasets opened with `funlib.persistence.open_ds`.

    Args:
        key: the ArrayKey to provide.
        array: a funlib.persistence `Array` (or a duck-typed equivalent), a gunpowder `Array`
            (data channels first, spatial axes last, with its spec: ROI and voxel size in
            world units), or plain array data.
        interpolatable: overrides the spec's `interpolatable`. Default None: the spec's
            value, or, if that is None too, True for floating-point data, else False.

    Example::

        raw = gp.ArrayKey("RAW")
        data = np.random.default_rng(0).random((100, 100, 100), dtype=np.float32)
        spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (4000, 400, 400)), voxel_size=(40, 4, 4))
        pipeline = gp.ArraySource(raw, gp.Array(data, spec))
        # or, from a zarr container: gp.ArraySource(raw, funlib.persistence.open_ds(path))
        pipeline += gp.RandomLocation()
    """

    def __init__(self, key: ArrayKey, array: Any, interpolatable: bool | None = None) -> None:
        if not isinstance(key, ArrayKey):
            raise TypeError(f"ArraySource: key must be an ArrayKey, got {key!r}")
        if interpolatable is not None and not isinstance(interpolatable, (bool, np.bool_)):
            raise bad_argument(
                f"ArraySource({key})", "interpolatable", "None or a bool", interpolatable
            )
        self._world = None
        if _is_world_array(array):
            self._world = array
        elif not isinstance(array, Array):
            try:
                data = np.asarray(array)
            except Exception as e:
                raise TypeError(
                    f"ArraySource({key}): array must be a funlib.persistence Array, a "
                    f"gunpowder Array or array data, got {type(array).__name__}"
                ) from e
            if data.dtype == object or data.ndim == 0:
                raise TypeError(
                    f"ArraySource({key}): array must be a funlib.persistence Array, a "
                    f"gunpowder Array or array data, got {type(array).__name__}"
                )
            array = Array(
                data,
                ArraySpec(roi=Roi((0,) * data.ndim, data.shape), voxel_size=(1,) * data.ndim),
            )
        self.key = key
        self.array = array
        self.interpolatable = interpolatable

    def _interpolatable(self, given: bool | None, dtype: np.dtype) -> bool:
        if self.interpolatable is not None:
            return bool(self.interpolatable)
        if given is not None:
            return bool(given)
        return bool(np.issubdtype(dtype, np.floating))

    def setup(self, upstream_spec: Any = None) -> ProviderSpec:
        if self._world is not None:
            world = self._world
            roi, vs = world.roi, Coordinate(world.voxel_size)
            if roi.dims != vs.dims or np.ndim(world.data) < vs.dims:
                raise PipelineRequestError(
                    f"ArraySource({self.key}): the array's ROI {roi}, voxel size {vs} and data shape "
                    f"{np.shape(world.data)} do not fit together"
                )
            dtype = getattr(world, "dtype", None)
            dtype = np.dtype(world.data.dtype if dtype is None else dtype)
            spec = ArraySpec(
                roi=roi,
                voxel_size=vs,
                interpolatable=self._interpolatable(None, dtype),
                dtype=dtype,
            )
            self._spec = spec
            return ProviderSpec({self.key: spec})
        spec = self.array.spec.copy()
        if spec.voxel_size is None and spec.roi is not None:
            spec.voxel_size = Coordinate((1,) * spec.roi.dims)
        spec.interpolatable = self._interpolatable(spec.interpolatable, self.array.data.dtype)
        spec.dtype = self.array.data.dtype
        self.array.spec = spec
        return ProviderSpec({self.key: spec})

    def _read(self, roi: Roi) -> Array:
        world, spec = self._world, self._spec
        vs = spec.voxel_size
        begin = (roi.offset - spec.roi.offset) / vs
        index: tuple[Any, ...] = (
            Ellipsis,
            *(slice(int(b), int(b) + int(s)) for b, s in zip(begin, roi.shape / vs)),
        )
        data = np.array(world.data[index], copy=True)
        return Array(data, spec.replace(roi=roi))

    def provide(self, request: BatchRequest, rng: np.random.Generator) -> Batch:
        batch = Batch()
        if self.key not in request:
            return batch
        spec = request[self.key]
        if self._world is not None:
            batch[self.key] = self._read(spec.roi if spec.roi is not None else self._spec.roi)
        elif self.array.spec.nonspatial or spec.roi is None:
            batch[self.key] = Array(self.array.data, self.array.spec)
        else:
            batch[self.key] = self.array.crop(spec.roi, copy=True)
        return batch
