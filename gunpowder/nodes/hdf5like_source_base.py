"""Sources that serve datasets of a file or store: `Hdf5Source` and `ZarrSource`.

`DatasetSource` is their shared base: it turns each dataset's shape, dtype and spatial
metadata (see `gunpowder.io_metadata`) into an `ArraySpec`, and reads only the requested
region. Files open lazily, once per process (never in a pickled node), so a source can be
pickled into worker processes; `teardown` closes them.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import GunpowderError, PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi, is_multiple_of
from ..io_metadata import (
    NO_METADATA,
    SpatialMetadata,
    find_multiscales,
    multiscale_datasets,
    read_ome_ngff,
    read_spatial_metadata,
)
from ..node import Source
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ._row_reads import ROW_CALL_SECONDS, read_rows

Reader = Callable[[tuple], np.ndarray]


logger = logging.getLogger(__name__)


_MAX_LISTED = 40


# Guards the creation of per-process state; re-created in a forked child, where a lock held
# by another thread of the parent would stay locked forever.
_state_lock = threading.Lock()


# Handles inherited from a parent process through fork: kept alive, never closed in the child.
_inherited: list[Any] = []


def _reset_after_fork() -> None:
    global _state_lock
    _state_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class SourceReadError(GunpowderError, OSError):
    """Reading a dataset failed (a truncated file, a corrupt or missing chunk, a vanished
    store); the message names the source, the file, the dataset and the ROI."""

    def __init__(self, message: str) -> None:
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:  # travels from worker processes unchanged
        return (type(self), self.args[:1], self.__dict__)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def default_interpolatable(dtype: np.dtype) -> bool:
    """Float and uint8 arrays (intensities) are interpolatable; other integers (labels) not.

    The rule of gunpowder 1.x; override with `array_specs`.
    """
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or dtype == np.uint8


@dataclass(frozen=True)
class DatasetLayout:
    """Where an array lives in its dataset: the path, its axes and its place in the world.

    `origin` is the world position of the dataset's first voxel (the provided ROI's begin);
    `spatial_dims` counts the spatial axes, last (`channels_first`) or first otherwise.
    """

    path: str
    shape: tuple[int, ...]
    spatial_dims: int
    channels_first: bool
    origin: Coordinate | None
    voxel_size: Coordinate | None

    def index(self, roi: Roi) -> tuple[slice, ...]:
        """The dataset index (all axes) that holds `roi` (world units, on the voxel grid)."""
        begin = (roi.begin - self.origin) / self.voxel_size  # type: ignore[operator]
        shape = roi.shape / self.voxel_size  # type: ignore[operator]
        spatial = tuple(slice(b, b + s) for b, s in zip(begin, shape))
        rest = (slice(None),) * (len(self.shape) - self.spatial_dims)
        return rest + spatial if self.channels_first else spatial + rest

    def to_channels_first(self, data: np.ndarray) -> np.ndarray:
        if self.channels_first or data.ndim == self.spatial_dims:
            return data
        n = self.spatial_dims
        return np.ascontiguousarray(np.moveaxis(data, range(n), range(data.ndim - n, data.ndim)))


class _ProcessState:
    """What one process has open: the container, a reader per key, and a lock."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.lock = threading.Lock()
        self.container: Any = None
        self.readers: dict[ArrayKey, Reader] = {}


class DatasetSource(Source):
    """Shared base of the sources that serve datasets of a container (file or store).

    Subclasses say how to open, close and list the container and how to read a dataset;
    this class builds the specs (metadata, `array_specs` overrides, checks) and serves
    requests. `datasets` maps each `ArrayKey` to a dataset path in the container.

    A subclass implements `location`, `open_container`, `get_node`, `is_array`, `attrs_of`,
    `list_arrays` and `make_reader` (and, if needed, `check_exists` and `close_container`).
    Only the requested region of a dataset is read; requests outside the dataset's ROI are
    an error. Without metadata a dataset gets voxel size 1 and offset 0.

    Args:
        datasets: a non-empty dict ArrayKey -> dataset path in the container.
        array_specs: a dict ArrayKey -> ArraySpec whose non-None fields override what the
            metadata says: `voxel_size` and `roi` (world units; the ROI must lie on the voxel
            grid and fit in the data), `interpolatable`, `nonspatial` (read the whole
            dataset, no ROI); a `dtype` must match the dataset's. Default None: metadata only
            (`interpolatable` then defaults to True for float and uint8 data, else False).
        channels_first: True (default) if the channel axes come before the spatial axes in
            the dataset; False for (spatial..., channels) datasets, which are served channels
            first.

    Example::

        class NpzSource(gp.DatasetSource):  # serves the arrays of an .npz file
            def __init__(self, filename, datasets, array_specs=None):
                super().__init__(datasets, array_specs)
                self.filename = filename

            def location(self):
                return self.filename

            def open_container(self):
                return np.load(self.filename)

            def close_container(self, container):
                container.close()

            def get_node(self, container, path):
                return container[path]  # KeyError if there is none

            def is_array(self, obj):
                return True

            def attrs_of(self, obj):
                return {}

            def list_arrays(self, container):
                return ((k, container[k].shape, container[k].dtype) for k in container.files)

            def make_reader(self, container, dataset):
                return lambda index: np.array(dataset[index])

        raw = gp.ArrayKey("RAW")
        pipeline = NpzSource("sample.npz", {raw: "raw"}, {raw: gp.ArraySpec(voxel_size=(40, 4, 4))})
        pipeline += gp.RandomLocation()
    """

    def __init__(
        self,
        datasets: dict[ArrayKey, str],
        array_specs: dict[ArrayKey, ArraySpec] | None = None,
        channels_first: bool = True,
    ) -> None:
        if not isinstance(datasets, dict) or not datasets:
            raise TypeError(
                f"{type(self).__name__}: datasets must be a non-empty dict ArrayKey -> dataset "
                f"path, got {datasets!r}"
            )
        for key, path in datasets.items():
            if not isinstance(key, ArrayKey):
                raise TypeError(f"{type(self).__name__}: datasets key {key!r} is not an ArrayKey")
            if not isinstance(path, str):
                raise TypeError(
                    f"{type(self).__name__}: dataset path for {key} must be a str, got {path!r}"
                )
        for key, spec in (array_specs or {}).items():
            if key not in datasets:
                raise TypeError(
                    f"{type(self).__name__}: array_specs has {key}, which is not in datasets "
                    f"({sorted(datasets)})"
                )
            if not isinstance(spec, ArraySpec):
                raise TypeError(
                    f"{type(self).__name__}: array_specs[{key}] must be an ArraySpec, got "
                    f"{type(spec).__name__}"
                )
        self.datasets = dict(datasets)
        self.array_specs = dict(array_specs or {})
        self.channels_first = channels_first
        self._layouts: dict[ArrayKey, DatasetLayout] = {}
        self._provided: dict[ArrayKey, ArraySpec] = {}
        self._state: _ProcessState | None = None

    # -- what a subclass provides ----------------------------------------------------------
    def location(self) -> str:
        """The file or store, for messages."""
        raise NotImplementedError

    def check_exists(self) -> None:
        """Raise PipelineSetupError if the container does not exist."""

    def open_container(self) -> Any:
        raise NotImplementedError

    def close_container(self, container: Any) -> None:
        pass

    def get_node(self, container: Any, path: str) -> Any:
        """The array or group at `path`; KeyError if there is none."""
        raise NotImplementedError

    def is_array(self, obj: Any) -> bool:
        raise NotImplementedError

    def attrs_of(self, obj: Any) -> dict[str, Any]:
        raise NotImplementedError

    def list_arrays(self, container: Any) -> Iterator[tuple[str, tuple[int, ...], Any]]:
        """(path, shape, dtype) of every array in the container."""
        raise NotImplementedError

    def make_reader(self, container: Any, dataset: Any) -> Reader:
        """A function reading `dataset[index]` into a fresh numpy array."""
        raise NotImplementedError

    # -- names and messages ----------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.name}({self.location()!r})"

    def _contents(self, container: Any) -> str:
        lines = []
        for i, (path, shape, dtype) in enumerate(self.list_arrays(container)):
            if i == _MAX_LISTED:
                lines.append("  ...")
                break
            lines.append(f"  {path or '/'}: shape {tuple(shape)}, dtype {dtype}")
        if not lines:
            return "it contains no datasets"
        return "it contains:\n" + "\n".join(lines)

    # -- setup -----------------------------------------------------------------------------
    def setup(self, upstream_spec: Any = None) -> ProviderSpec:
        self.check_exists()
        try:
            container = self.open_container()
        except PipelineSetupError:
            raise
        except Exception as e:
            raise PipelineSetupError(
                f"{self._where()}: can not open: {type(e).__name__}: {e}"
            ) from e
        layouts: dict[ArrayKey, DatasetLayout] = {}
        provided: dict[ArrayKey, ArraySpec] = {}
        try:
            for key, path in self.datasets.items():
                dataset, path = self._find(container, key, path)
                layouts[key], provided[key] = self._describe(container, key, path, dataset)
        finally:
            self.close_container(container)
        self._layouts = layouts
        self._provided = provided
        return ProviderSpec(dict(provided))

    def _find(self, container: Any, key: ArrayKey, path: str) -> tuple[Any, str]:
        """The dataset for `key` at `path` (a multiscale group resolves to its first level)."""
        try:
            node = self.get_node(container, path)
        except KeyError:
            raise PipelineSetupError(
                f"{self._where()}: dataset {path!r} for {key} does not exist; "
                f"{self._contents(container)}"
            ) from None
        if self.is_array(node):
            return node, path
        levels = multiscale_datasets(self.attrs_of(node))
        if levels:
            level = path.strip("/") + "/" + levels[0] if path.strip("/") else levels[0]
            return self._find(container, key, level)
        raise PipelineSetupError(
            f"{self._where()}: {path!r} for {key} is a group, not a dataset; "
            f"{self._contents(container)}"
        )

    def _metadata(self, container: Any, path: str, dataset: Any, ndim: int) -> SpatialMetadata:
        """The array's own attributes, else OME-NGFF multiscales of its nearest such group."""
        meta = read_spatial_metadata(self.attrs_of(dataset), ndim)
        if meta is not NO_METADATA:
            return meta
        parts = [p for p in path.split("/") if p]
        for i in range(len(parts) - 1, -1, -1):
            try:
                group = self.get_node(container, "/".join(parts[:i]))
            except KeyError:
                continue
            attrs = self.attrs_of(group)
            if find_multiscales(attrs):
                return read_ome_ngff(attrs, "/".join(parts[i:]), ndim)
        return NO_METADATA

    def _describe(
        self, container: Any, key: ArrayKey, path: str, dataset: Any
    ) -> tuple[DatasetLayout, ArraySpec]:
        """The layout and provided spec of one dataset: metadata, then `array_specs` overrides."""
        shape = tuple(int(s) for s in dataset.shape)
        ndim = len(shape)
        dtype = np.dtype(dataset.dtype)
        dtype = dtype.newbyteorder("=") if dtype.byteorder not in ("=", "|") else dtype
        override = self.array_specs.get(key, ArraySpec())
        where = f"{self._where()}: {key} (dataset {path!r}, shape {shape}, dtype {dtype})"

        if override.dtype is not None and override.dtype != dtype:
            raise PipelineSetupError(
                f"{where}: array_specs gives dtype {override.dtype}, but the dataset is {dtype}"
            )
        interpolatable = override.interpolatable
        if interpolatable is None:
            interpolatable = default_interpolatable(dtype)
            if dtype == np.uint8:
                logger.warning(
                    "%s: interpolatable not set for %s; guessed True from dtype uint8 (raw "
                    "intensities). If it is a mask or labels, set it in array_specs.",
                    self._where(),
                    key,
                )
        if override.nonspatial:
            layout = DatasetLayout(path, shape, 0, self.channels_first, None, None)
            return layout, ArraySpec(nonspatial=True, dtype=dtype, interpolatable=interpolatable)

        if override.voxel_size is not None and override.roi is not None:
            meta = NO_METADATA  # array_specs says everything the metadata could
        else:
            try:
                meta = self._metadata(container, path, dataset, ndim)
            except ValueError as e:
                raise PipelineSetupError(f"{where}: bad spatial metadata: {e}") from e

        voxel_size = override.voxel_size or meta.voxel_size
        if voxel_size is not None:
            dims = len(voxel_size)
        elif override.roi is not None:
            dims = override.roi.dims
        elif meta.spatial_dims is not None:
            dims = meta.spatial_dims
        else:
            dims = ndim
        if voxel_size is None:
            voxel_size = Coordinate((1,) * dims)
        if dims > ndim or dims == 0:
            raise PipelineSetupError(
                f"{where}: voxel size {voxel_size} has {dims} dimensions, but the dataset has "
                f"{ndim} axes"
            )
        if any(v is None or v <= 0 for v in voxel_size):
            raise PipelineSetupError(f"{where}: voxel size {voxel_size} must be positive")
        if override.roi is not None and override.roi.dims != dims:
            raise PipelineSetupError(
                f"{where}: array_specs ROI {override.roi} and voxel size {voxel_size} differ in "
                "dimensions"
            )
        data_shape = Coordinate(shape[ndim - dims :] if self.channels_first else shape[:dims])
        extent = data_shape * voxel_size

        if override.roi is not None:
            roi = override.roi
            if roi.unbounded or not roi.shape.is_multiple_of(voxel_size):
                raise PipelineSetupError(
                    f"{where}: array_specs ROI {roi} is not a bounded multiple of the voxel size "
                    f"{voxel_size}"
                )
            if any(s > e for s, e in zip(roi.shape, extent)):
                raise PipelineSetupError(
                    f"{where}: array_specs ROI {roi} is larger than the data ({tuple(extent)} "
                    f"world units at voxel size {voxel_size})"
                )
        else:
            offset = meta.offset if meta.offset is not None else Coordinate((0,) * dims)
            if len(offset) != dims:
                raise PipelineSetupError(
                    f"{where}: offset {offset} ({meta.source}) and voxel size {voxel_size} differ "
                    "in dimensions"
                )
            roi = Roi(offset, extent)
        if not is_multiple_of(roi.offset, voxel_size):
            raise PipelineSetupError(
                f"{where}: offset {roi.offset} is not a multiple of the voxel size {voxel_size}, "
                "so no request could be served; give a ROI on the voxel grid in array_specs"
            )
        layout = DatasetLayout(path, shape, dims, self.channels_first, roi.offset, voxel_size)
        spec = ArraySpec(roi=roi, voxel_size=voxel_size, interpolatable=interpolatable, dtype=dtype)
        return layout, spec

    # -- per-process handles ---------------------------------------------------------------
    def _here(self) -> _ProcessState:
        """This process's state, created on first use (a forked child gets its own)."""
        pid = os.getpid()
        state = self._state
        if state is None or state.pid != pid:
            with _state_lock:
                state = self._state
                if state is None or state.pid != pid:
                    if state is not None:
                        _inherited.append(state)
                    state = _ProcessState(pid)
                    self._state = state
        return state

    def _reader(self, key: ArrayKey) -> Reader:
        state = self._here()
        reader = state.readers.get(key)
        if reader is None:
            with state.lock:
                reader = state.readers.get(key)
                if reader is None:
                    if state.container is None:
                        state.container = self.open_container()
                    dataset = self.get_node(state.container, self._layouts[key].path)
                    reader = self.make_reader(state.container, dataset)
                    state.readers[key] = reader
        return reader

    def teardown(self) -> None:
        state = self._state
        self._state = None
        if state is None or state.pid != os.getpid():
            return
        with state.lock:
            state.readers.clear()
            if state.container is not None:
                container, state.container = state.container, None
                self.close_container(container)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_state"] = None  # open handles never travel; each process opens its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # -- serving ---------------------------------------------------------------------------
    def provide(self, request: BatchRequest, rng: np.random.Generator) -> Batch:
        batch = Batch()
        for key, requested in request.items():
            if key not in self._provided:
                raise PipelineRequestError(
                    f"{self._where()}: {key} was requested but this source provides only "
                    f"{sorted(self._provided)}"
                )
            provided = self._provided[key]
            layout = self._layouts[key]
            if provided.nonspatial:
                data = self._read(key, (slice(None),) * len(layout.shape), None)
                batch[key] = Array(data, provided)
                continue
            roi = provided.roi if requested.roi is None else requested.roi
            if not provided.roi.contains(roi):  # type: ignore[union-attr]
                raise PipelineRequestError(
                    f"{self._where()}: {key} requested with ROI {roi}, which lies outside the "
                    f"dataset's ROI {provided.roi}"
                )
            index = layout.index(roi)
            data = layout.to_channels_first(self._read(key, index, roi))
            batch[key] = Array(data, provided.replace(roi=roi))
        return batch

    def _read(self, key: ArrayKey, index: tuple, roi: Roi | None) -> np.ndarray:
        """Read `index` of `key`'s dataset (opening it on first use in this process); any
        failure becomes a `SourceReadError` naming the file, the dataset and the ROI."""
        try:
            return self._reader(key)(index)
        except Exception as e:
            voxels = tuple((s.start, s.stop) for s in index)
            where = "the whole dataset" if roi is None else f"ROI {roi} (voxels {voxels})"
            raise SourceReadError(
                f"{self._where()}: reading {key} from dataset {self._layouts[key].path!r} at "
                f"{where} failed: {type(e).__name__}: {e}"
            ) from e

    def __repr__(self) -> str:
        return self._where()


def _contiguous_offset(dataset: Any) -> int | None:
    """Byte offset of an uncompressed, contiguous, allocated dataset in its file, else None."""
    try:
        dtype = dataset.dtype
        if (
            dataset.chunks is not None
            or dataset.compression is not None
            or dataset.external
            or dataset.is_virtual
            or dataset.size == 0
            or dtype.kind not in "iufc"
            or not dtype.isnative
            or dataset.file.driver != "sec2"
        ):
            return None
        nbytes = int(dataset.size) * dtype.itemsize
        offset = dataset.id.get_offset()
        if offset is None or dataset.id.get_storage_size() != nbytes:
            return None
        if offset + nbytes > os.path.getsize(dataset.file.filename):
            return None
        return int(offset)
    except Exception:
        return None


def _hdf5_reader(dataset: Any) -> Reader:
    """Read `dataset[index]`: positioned reads for contiguous data, else `read_direct`; a
    read during which the file changed is repeated (and an error if it keeps changing)."""
    offset = _contiguous_offset(dataset)
    if offset is not None:
        return _contiguous_reader(dataset.file.filename, offset, dataset.shape, dataset.dtype)

    shape = dataset.shape
    dtype = dataset.dtype.newbyteorder("=") if not dataset.dtype.isnative else dataset.dtype

    filename = dataset.file.filename

    def read_direct(index: tuple) -> np.ndarray:
        out_shape = tuple(len(range(*s.indices(n))) for s, n in zip(index, shape))
        out = np.empty(out_shape, dtype=dtype)
        if not out.size:
            return out
        for _ in range(_READ_TRIES):  # as `_contiguous_reader`: repeat a read the file
            before = _path_stamp(filename)  # changed under (written or truncated meanwhile)
            dataset.read_direct(out, source_sel=index)
            if _path_stamp(filename) == before:
                return out
        raise OSError(
            f"{filename!r} kept changing while being read ({_READ_TRIES} tries): another "
            "process is writing to it"
        )

    return read_direct


# Cost model of `_contiguous_reader`: one read call, and one byte read (page cache to memory).
_CALL_SECONDS = 2e-6
_BYTE_SECONDS = 1 / 5e9


def _read_level(
    ranges: list[range], strides: tuple[int, ...], itemsize: int
) -> tuple[int, int, float]:
    """The number L of outer axes to loop over (one read per index of them), the bytes one
    read spans (the other axes) and the estimated seconds: the L with the least of them."""
    best: tuple[float, int, int] | None = None
    calls = 1
    for level in range(len(ranges) + 1):
        if level:
            calls *= len(ranges[level - 1])
        span = itemsize + sum(
            (len(r) - 1) * r.step * st for r, st in zip(ranges[level:], strides[level:])
        )
        cost = calls * (_CALL_SECONDS + span * _BYTE_SECONDS)
        if best is None or cost < best[0]:
            best = (cost, level, span)
    assert best is not None
    return best[1], best[2], best[0]


def _rows_are_cheaper(ranges: list[range], itemsize: int, sections_seconds: float) -> bool:
    """Whether reading row by row from the compiled loop beats the best split of Python
    reads: the innermost axis must be contiguous (step 1)."""
    if len(ranges) < 2 or ranges[-1].step != 1:
        return False
    rows = int(np.prod([len(r) for r in ranges[:-1]], dtype=np.int64))
    row_bytes = len(ranges[-1]) * itemsize
    return rows * (ROW_CALL_SECONDS + row_bytes * _BYTE_SECONDS) < sections_seconds


# A read during which the file changed (size or modification time) is repeated this often.
_READ_TRIES = 3


def _stamp(fd: int) -> tuple[int, int, int]:
    """What changes when a file is written to or truncated: size, mtime and ctime."""
    st = os.fstat(fd)
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _path_stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _read_fully(fd: int, buffer: np.ndarray, at: int) -> int:
    """Fill `buffer` from byte `at` of `fd`; the bytes read (fewer only at the end of file)."""
    got = os.preadv(fd, [memoryview(buffer)], at)
    if got == buffer.nbytes or got == 0:
        return got
    view = memoryview(buffer).cast("B")  # a read stops early only past ~2 GiB or at EOF
    while got < len(view):
        more = os.preadv(fd, [view[got:]], at + got)
        if more == 0:
            break
        got += more
    return got


def _contiguous_reader(filename: str, offset: int, shape: tuple, dtype: np.dtype) -> Reader:
    """Read slices of a contiguous on-disk array with positioned reads (`os.preadv`).

    Not a memory map: a map of a file that another process truncates kills the reader with
    SIGBUS, while a read of a shrunk file merely comes back short, which is reported as an
    `OSError` naming the file. Either each read spans the bytes of the inner axes for one
    index of the outer ones (what lies between the requested rows goes to a scratch buffer,
    and only the requested voxels are copied out), or every row is read on its own from a
    compiled loop (`_row_reads`): whichever the cost model finds faster.
    """
    dtype = np.dtype(dtype)
    itemsize = dtype.itemsize
    strides = tuple(
        int(np.prod(shape[i + 1 :], dtype=np.int64)) * itemsize for i in range(len(shape))
    )
    end_of_data = offset + int(np.prod(shape, dtype=np.int64)) * itemsize

    def read_starts(ranges: list[range], level: int) -> np.ndarray:
        """The byte position of every read when looping over the first `level` axes (each
        read starts at the first selected element of the other axes), flat, in C order."""
        base = offset + sum(r.start * st for r, st in zip(ranges[level:], strides[level:]))
        starts = np.full((), base, dtype=np.int64)
        for r, st in zip(ranges[:level], strides[:level]):
            starts = np.add.outer(starts, np.asarray(r, dtype=np.int64) * st)
        return starts.reshape(-1)

    def stable_read(fill: Callable[[int], bool | None]) -> bool | None:
        """Run `fill(fd)` (False: a read came back short; None: it cannot read) until the
        file's size and mtime are the same before and after; OSError if the file shrank or
        kept changing."""
        fd = os.open(filename, os.O_RDONLY)
        try:
            for _ in range(_READ_TRIES):
                before = _stamp(fd)
                filled = fill(fd)
                if filled is None:
                    return None
                if not filled:
                    raise OSError(
                        f"{filename!r} shrank while being read: it has "
                        f"{os.fstat(fd).st_size} bytes, the dataset's data ends at byte "
                        f"{end_of_data} (the file was truncated or is being rewritten by "
                        "another process)"
                    )
                if _stamp(fd) == before:
                    return True
            raise OSError(
                f"{filename!r} kept changing while being read ({_READ_TRIES} tries): another "
                "process is writing to it"
            )
        finally:
            os.close(fd)

    def read_by_rows(ranges: list[range], out: np.ndarray) -> bool | None:
        starts = read_starts(ranges, len(ranges) - 1)

        def fill(fd: int) -> bool | None:
            done = read_rows(fd, out, starts)
            return None if done is None else done == len(starts)

        return stable_read(fill)

    def read_contiguous(index: tuple) -> np.ndarray:
        ranges = [range(*s.indices(n)) for s, n in zip(index, shape)]
        out = np.empty(tuple(len(r) for r in ranges), dtype=dtype)
        if out.size == 0:
            return out
        level, span, seconds = _read_level(ranges, strides, itemsize)
        inner_shape = out.shape[level:]
        inner_strides = tuple(r.step * st for r, st in zip(ranges[level:], strides[level:]))
        direct = span == int(np.prod(inner_shape, dtype=np.int64)) * itemsize
        if not direct:  # the copy out of the scratch buffer
            seconds += out.nbytes * _BYTE_SECONDS
        if _rows_are_cheaper(ranges, itemsize, seconds) and read_by_rows(ranges, out):
            return out
        scratch = None if direct else np.empty(span, dtype=np.uint8)
        view = (
            None
            if scratch is None
            else np.ndarray(inner_shape, dtype=dtype, buffer=scratch, strides=inner_strides)
        )
        starts = read_starts(ranges, level)
        blocks = out.reshape((-1, *inner_shape))

        def fill(fd: int) -> bool:
            for i, at in enumerate(starts.tolist()):
                buffer = blocks[i].reshape(-1).view(np.uint8) if direct else scratch
                if _read_fully(fd, buffer, at) != span:  # type: ignore[arg-type]
                    return False
                if view is not None:
                    blocks[i] = view
            return True

        stable_read(fill)
        return out

    return read_contiguous


MISSING_CHUNKS = ("error", "fill")


def check_missing_chunks(node: str, missing_chunks: str) -> str:
    """Validate a `missing_chunks` argument ("error" or "fill"), naming the node."""
    if missing_chunks not in MISSING_CHUNKS:
        raise ValueError(
            f"{node}: missing_chunks must be 'error' (a chunk absent from the store is an "
            f"error) or 'fill' (it reads as the fill value), got {missing_chunks!r}"
        )
    return missing_chunks


def _zarr_key(array: Any, key: str) -> str:
    return f"{array.path.strip('/')}/{key}" if array.path.strip("/") else key


def _zarr_keys_exist(array: Any, keys: list[str]) -> list[bool]:
    """Whether each store key of `array` exists (a stat per key for a local store)."""
    store = array.store
    root = getattr(store, "root", None)
    if root is not None and type(store).__name__ == "LocalStore":
        return [os.path.isfile(os.path.join(os.fspath(root), k)) for k in keys]
    import asyncio

    from zarr.core.sync import sync

    async def exist() -> list[bool]:
        return list(await asyncio.gather(*(store.exists(k) for k in keys)))

    return sync(exist())


def _covered(selection: slice, size: int, unit: int) -> range | np.ndarray:
    """Indices of the storage units (chunks or shards) of size `unit` that a slice reads."""
    r = range(*selection.indices(size))
    if len(r) == 0:
        return range(0)
    if r.step == 1:
        return range(r.start // unit, (r[-1]) // unit + 1)
    return np.unique(np.asarray(r) // unit)


def check_zarr_chunks(array: Any, index: tuple, missing_chunks: str = "error") -> None:
    """Raise `OSError` unless the stored chunks that `array[index]` reads are all there.

    A zarr store gives no sign of a missing chunk: it reads as the fill value. That is right
    for a dataset written sparsely, and silently wrong for a chunk lost or deleted (or a
    store removed) under a running pipeline. Always checked: the array's metadata is still
    in the store (so a vanished store is an error). With `missing_chunks="error"`, every
    chunk (of a sharded array: every shard) that the selection touches must exist;
    `"fill"` lets absent chunks read as the fill value. `index` is a tuple of slices, one
    per axis. The message names the first missing chunks; callers add file and ROI.
    """
    meta_key = _zarr_key(array, "zarr.json" if array.metadata.zarr_format == 3 else ".zarray")
    if not _zarr_keys_exist(array, [meta_key])[0]:
        raise OSError(
            f"the store no longer holds this array (its metadata {meta_key!r} is gone): was "
            "the store deleted or moved during the run?"
        )
    if missing_chunks == "fill":
        return
    unit = array.shards or array.chunks
    covered = [_covered(sel, n, u) for sel, n, u in zip(index, array.shape, unit)]
    coords = list(itertools.product(*(list(map(int, c)) for c in covered)))
    if not coords:
        return
    keys = [_zarr_key(array, array.metadata.encode_chunk_key(c)) for c in coords]
    missing = [k for k, there in zip(keys, _zarr_keys_exist(array, keys)) if not there]
    if missing:
        shown = ", ".join(repr(k) for k in missing[:5]) + (", ..." if len(missing) > 5 else "")
        what = "shards" if array.shards else "chunks"
        raise OSError(
            f"{len(missing)} of the {len(keys)} {what} this read needs are missing from the "
            f"store: {shown}. If the dataset was written sparsely on purpose, pass "
            "missing_chunks='fill' to read absent chunks as the fill value"
        )


def zarr_reader(array: Any, missing_chunks: str = "error") -> Reader:
    """A reader of `array[index]` that verifies the chunks it reads exist (before and after
    the read, so a chunk deleted meanwhile is caught); see `check_zarr_chunks`."""
    check_missing_chunks("zarr_reader", missing_chunks)
    dtype = np.dtype(array.dtype)
    native = dtype.newbyteorder("=") if not dtype.isnative else dtype

    def read(index: tuple) -> np.ndarray:
        check_zarr_chunks(array, index, missing_chunks)
        data = np.asarray(array[index])
        if missing_chunks == "error":
            check_zarr_chunks(array, index, missing_chunks)
        if data.dtype != native:
            data = data.astype(native)
        return data

    return read


def _describe_directory(path: str) -> str:
    """What the directory of a missing `path` holds, to spot a typo."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"directory {directory!r} does not exist either"
    entries = sorted(os.listdir(directory))
    shown = ", ".join(entries[:_MAX_LISTED]) + (", ..." if len(entries) > _MAX_LISTED else "")
    return f"directory {directory!r} contains: {shown or '(nothing)'}"
