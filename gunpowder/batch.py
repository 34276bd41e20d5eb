"""`Array` (data + spec) and `Batch` (key → array or graph): what flows down a pipeline."""

from __future__ import annotations

import copy as _copy
import itertools
from collections.abc import Iterator, MutableMapping
from typing import Any

import numpy as np

from .errors import PipelineRequestError
from .geometry import Coordinate, Roi
from .graph import Graph
from .spec import ArrayKey, ArraySpec, BatchRequest, GraphKey, KindView, ProviderSpec


class ArrayMismatch(ValueError, AssertionError):
    """Array data that does not fit its spec (1.x asserted this)."""


class Array:
    """Array data (channels first, spatial axes last) with its `ArraySpec`.

    The last `roi.dims` axes times the voxel size must equal the ROI's shape.
    """

    __slots__ = ("data", "spec", "attrs")

    def __init__(self, data: Any, spec: ArraySpec | None = None, attrs: dict | None = None) -> None:
        object.__setattr__(self, "spec", ArraySpec() if spec is None else spec.copy())
        object.__setattr__(self, "data", data)
        self.attrs = {} if attrs is None else attrs
        dtype = getattr(data, "dtype", None)
        if self.spec.dtype is None and dtype is not None:
            self.spec.dtype = dtype
        elif dtype is not None and self.spec.dtype != dtype:
            raise ArrayMismatch(
                f"array data of dtype {dtype} does not match its spec's dtype {self.spec.dtype}"
            )
        self.check()

    def check(self) -> None:
        spec = self.spec
        if spec.nonspatial or spec.roi is None:
            return
        if spec.voxel_size is None:
            spec.voxel_size = Coordinate((1,) * spec.roi.dims)
        dims = spec.roi.dims
        shape = tuple(np.shape(self.data))
        if len(shape) < dims:
            raise ArrayMismatch(
                f"array of shape {shape} has fewer axes than its ROI {spec.roi} ({dims} spatial)"
            )
        expected = spec.roi.shape / spec.voxel_size if not spec.roi.unbounded else None
        if expected is not None and (
            tuple(shape[-dims:]) != tuple(expected)
            or not spec.roi.shape.is_multiple_of(spec.voxel_size)
        ):
            raise ArrayMismatch(
                f"array data of shape {shape} does not match its ROI {spec.roi} at voxel size "
                f"{spec.voxel_size}: expected spatial shape {tuple(expected)}"
            )

    @property
    def roi(self) -> Roi | None:
        return self.spec.roi

    def crop(self, roi: Roi, copy: bool = True) -> Array:
        """The part of this array inside `roi` (world units, on the voxel grid)."""
        if self.spec.nonspatial:
            return self.copy() if copy else self
        own = self.spec.roi
        if not own.contains(roi):
            raise PipelineRequestError(
                f"can not crop array with ROI {own} to {roi}: the requested ROI is not contained"
            )
        vs = self.spec.voxel_size
        if not (roi.offset - own.offset).is_multiple_of(vs) or not roi.shape.is_multiple_of(vs):
            raise PipelineRequestError(
                f"can not crop array with ROI {own} to {roi}: not aligned with voxel size {vs}"
            )
        rel = (roi - own.offset) / vs
        index = (Ellipsis,) + rel.to_slices()
        data = self.data[index]
        if copy:
            data = np.array(data)
        return Array(data, self.spec.replace(roi=roi), dict(self.attrs))

    def merge(self, array: Array, copy_from_self: bool = False, copy: bool = False) -> Array:
        """This array and `array` as one, over the larger of the two ROIs (1.x `Array.merge`).

        One ROI must contain the other. Where they overlap, `array`'s values win (or this
        array's, with `copy_from_self`). Neither input is changed; the data is copied where
        values are written in, or everywhere with `copy=True`.
        """
        if self.spec.nonspatial or array.spec.nonspatial:
            source = self if copy_from_self else array
            return source.copy() if copy else source
        mine, theirs = self.spec.roi, array.spec.roi
        if mine.contains(theirs):
            large, small, small_wins = self, array, not copy_from_self
        elif theirs.contains(mine):
            large, small, small_wins = array, self, copy_from_self
        else:
            raise ArrayMismatch(
                f"can not merge arrays with ROIs {mine} and {theirs}: neither contains the other"
            )
        if not small_wins or small.spec.roi.empty:
            return large.copy() if copy else large
        data = np.array(large.data, dtype=np.result_type(large.data, small.data))
        vs = large.spec.voxel_size
        target = (Ellipsis,) + ((small.spec.roi - large.spec.roi.offset) / vs).to_slices()
        data[target] = small.data
        spec = large.spec.replace(dtype=data.dtype)
        return Array(data, spec, {**large.attrs, **small.attrs})

    def copy(self) -> Array:
        return Array(np.array(self.data), self.spec, _copy.deepcopy(self.attrs))

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name == "data":
            # 1.x code replaces `array.data`; the spec's dtype follows the new data
            dtype = getattr(value, "dtype", None)
            spec = getattr(self, "spec", None)
            if dtype is not None and spec is not None:
                spec.dtype = dtype

    def __repr__(self) -> str:
        return f"Array(shape={np.shape(self.data)}, dtype={getattr(self.data, 'dtype', None)}, spec={self.spec})"


_batch_ids = itertools.count()


class Batch(MutableMapping):
    """What a pipeline returns: a mapping from `ArrayKey`/`GraphKey` to `Array`/`Graph`.

    Also carries `profiling_stats`, `loss` and `iteration` (set by training), `random_seed`
    (the seed this batch was made from, so it can be made again) and a free-form `affinity_neighborhood`.
    """

    def __init__(self) -> None:
        from .profiling import ProfilingStats

        self.id = next(_batch_ids)
        self._items: dict[Any, Any] = {}
        self.profiling_stats = ProfilingStats()
        self.loss: Any = None
        self.iteration: int | None = None
        self.random_seed: int | None = None
        self.affinity_neighborhood: Any = None

    # mapping ------------------------------------------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, ArrayKey):
            if not isinstance(value, Array):
                raise TypeError(
                    f"{key}: only an Array can be stored under an ArrayKey, got {type(value).__name__}"
                )
        elif isinstance(key, GraphKey):
            if type(value).__name__ not in ("Graph", "Points") and not hasattr(value, "nodes"):
                raise TypeError(
                    f"{key}: only a Graph can be stored under a GraphKey, got {type(value).__name__}"
                )
        else:
            raise TypeError(f"only ArrayKey or GraphKey can be used as batch keys, got {key!r}")
        self._items[key] = value

    def __getitem__(self, key: Any) -> Any:
        try:
            return self._items[key]
        except KeyError:
            raise KeyError(f"{key} is not in this batch (has {sorted(self._items)})") from None

    def __delitem__(self, key: Any) -> None:
        del self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def arrays(self) -> KindView:
        """The arrays of this batch (a live mapping: `batch.arrays[key] = array` works)."""
        return KindView(self, ArrayKey)

    @property
    def graphs(self) -> KindView:
        """The graphs of this batch (a live mapping)."""
        return KindView(self, GraphKey)

    @property
    def points(self) -> KindView:
        return self.graphs

    # geometry -----------------------------------------------------------------------------
    def get_total_roi(self) -> Roi | None:
        total = None
        for value in self._items.values():
            roi = value.spec.roi
            if roi is None:
                continue
            total = roi if total is None else total.union(roi)
        return total

    @property
    def spec(self) -> ProviderSpec:
        """The specs of everything in this batch."""
        return ProviderSpec({k: v.spec for k, v in self._items.items()})

    def crop(self, request: ProviderSpec, copy: bool = False) -> Batch:
        """A batch with only the requested keys, each cropped to its requested ROI."""
        cropped = self._empty_like()
        for key, spec in request.items():
            if key not in self._items:
                raise PipelineRequestError(f"{key} was requested but is not in the batch")
            value = self._items[key]
            if spec.roi is None or value.spec.roi is None or value.spec.roi == spec.roi:
                cropped[key] = value.copy() if copy else value
            else:
                cropped[key] = (
                    value.crop(spec.roi, copy=copy)
                    if isinstance(key, ArrayKey)
                    else value.crop(spec.roi, trim=True)
                )
        return cropped

    def merge(self, other: Batch, merge_profiling_stats: bool = True) -> Batch:
        """A new batch with the items of both (1.x `Batch.merge`). Where a key is in both and
        one ROI contains the other's, they are merged with `Array.merge` / `Graph.merge`
        (`other`'s values, nodes and edges win where they overlap); otherwise `other`'s item
        replaces this batch's."""
        merged = self._empty_like()
        merged._items.update(self._items)
        for key, value in other._items.items():
            mine = merged._items.get(key)
            if (
                (
                    isinstance(key, ArrayKey)
                    or (isinstance(mine, Graph) and isinstance(value, Graph))
                )
                and mine is not None
                and mine is not value
                and mine.spec.roi is not None
                and value.spec.roi is not None
                and mine.spec.roi != value.spec.roi
                and (
                    mine.spec.roi.contains(value.spec.roi) or value.spec.roi.contains(mine.spec.roi)
                )
            ):
                value = mine.merge(value)
            merged._items[key] = value
        if merge_profiling_stats:
            merged.profiling_stats.merge_with(other.profiling_stats)
        for attr in ("loss", "iteration", "affinity_neighborhood"):
            if getattr(other, attr) is not None:
                setattr(merged, attr, getattr(other, attr))
        return merged

    def _empty_like(self) -> Batch:
        new = Batch()
        new.profiling_stats = self.profiling_stats
        new.loss = self.loss
        new.iteration = self.iteration
        new.random_seed = self.random_seed
        new.affinity_neighborhood = self.affinity_neighborhood
        return new

    def copy(self) -> Batch:
        new = self._empty_like()
        new.profiling_stats = self.profiling_stats.copy()
        for k, v in self._items.items():
            new._items[k] = v.copy()
        return new

    def matches(self, request: BatchRequest) -> bool:
        return all(
            k in self and (s.roi is None or self[k].spec.roi == s.roi) for k, s in request.items()
        )

    def __repr__(self) -> str:
        lines = "".join(f"\n\t{k}: {v}" for k, v in self._items.items())
        return f"Batch(id={self.id}, seed={self.random_seed}{lines}\n)"

    def _repr_html_(self) -> str:
        """A table of the batch's arrays and graphs, for notebooks."""
        from .html_repr import batch_rows, table

        return table(f"Batch {self.id} (seed {self.random_seed})", batch_rows(self))
