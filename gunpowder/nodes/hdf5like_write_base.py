"""`ZarrWrite` and `Hdf5Write`: store the arrays passing through a pipeline in a file.

A new dataset covers the whole ROI the upstream provides for its key, with the voxel size and
offset written as gunpowder `resolution`/`offset` attributes. It is created when its first
batch arrives (then the number of channels is known). An existing dataset is written into as
it is (gunpowder 1.x): its ROI comes from its shape and `resolution`/`offset` attributes, and
each batch is written where it overlaps the dataset, so the upstream ROI may be larger or
unbounded (e.g. after `Pad(raw, None)`, or a dataset prepared for a daisy run). Files are
opened once per process.

zarr arrays stay exactly at the paths named (1.x; daisy and funlib.persistence read them as
arrays) and name their axes (`dimension_names` / `_ARRAY_DIMENSIONS`). OME-NGFF (0.4 in zarr
2, 0.5 in zarr 3): a parent group the writer created that holds just the one array it wrote
becomes a single-image group (`multiscales` listing that array); once a second array (or
group) is written into it, that entry is taken away again, so no group ever lists two images.
Nothing is ever written onto arrays or groups the writer did not create.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..io_metadata import (
    axis_names,
    find_multiscales,
    has_own_multiscales,
    ngff_version,
    ome_ngff_image_attrs,
    read_gunpowder_attrs,
    remove_multiscales,
    write_spatial_metadata,
)
from ..node import Node
from ..spec import ArrayKey, ProviderSpec

logger = logging.getLogger(__name__)


def zarr_compressor(compression_type: Any, zarr_format: int = 2) -> Any:
    """The compressor for `compression_type` ("gzip", "zstd", "blosc", "lz4", "none", or a
    codec object) in a zarr v2 (numcodecs) or v3 (zarr.codecs) array; None: zarr's default."""
    if compression_type is None:
        return "auto"
    if not isinstance(compression_type, str):
        return compression_type
    name = compression_type.lower()
    if zarr_format == 2:
        import numcodecs

        codecs = {
            "gzip": lambda: numcodecs.GZip(level=5),
            "zlib": lambda: numcodecs.Zlib(level=5),
            "zstd": lambda: numcodecs.Zstd(level=3),
            "blosc": lambda: numcodecs.Blosc(cname="zstd", clevel=3),
            "lz4": lambda: numcodecs.LZ4(),
            "none": lambda: None,
        }
    else:
        from zarr import codecs as zc

        codecs = {
            "gzip": lambda: zc.GzipCodec(level=5),
            "zstd": lambda: zc.ZstdCodec(level=3),
            "blosc": lambda: zc.BloscCodec(cname="zstd", clevel=3),
            "lz4": lambda: zc.BloscCodec(cname="lz4", clevel=5),
            "none": lambda: None,
        }
    if name not in codecs:
        raise ValueError(
            f"unknown compression_type {compression_type!r} for zarr format {zarr_format}; "
            f"use one of {sorted(codecs)} or a codec object"
        )
    return codecs[name]()


def voxel_slices(roi: Roi, dataset_roi: Roi, voxel_size: Coordinate) -> tuple[slice, ...]:
    """Index of `roi` (world units) in a dataset starting at `dataset_roi.begin`."""
    return ((roi - dataset_roi.offset) / voxel_size).to_slices()


def check_existing(
    where: str,
    shape: tuple[int, ...],
    attrs: Mapping[str, Any],
    roi: Roi,
    voxel_size: Coordinate,
    channels: tuple[int, ...],
) -> None:
    """Raise ValueError unless an existing dataset matches the geometry we would create."""
    expected = tuple(channels) + tuple(roi.shape / voxel_size)
    meta = read_gunpowder_attrs(attrs)
    problems = []
    if tuple(shape) != expected:
        problems.append(f"shape {tuple(shape)} (expected {expected})")
    if meta.voxel_size is not None and meta.voxel_size != voxel_size:
        problems.append(f"resolution {tuple(meta.voxel_size)} (expected {tuple(voxel_size)})")
    if meta.offset is not None and meta.offset != roi.offset:
        problems.append(f"offset {tuple(meta.offset)} (expected {tuple(roi.offset)})")
    if problems:
        raise ValueError(
            f"{where} already exists with {', '.join(problems)}; remove it or write elsewhere"
        )


def _split(dataset: str) -> tuple[str, str]:
    parent, _, name = dataset.strip("/").rpartition("/")
    return parent, name


#: the group in a container where `run_blockwise` keeps its done markers (ours, not an image)
BLOCKWISE_DONE_GROUP = "gunpowder_done"


def _single_array(group: Any) -> str | None:
    """The name of the one array `group` holds if it holds nothing else (the blockwise done
    markers aside) and that name is not `labels` (reserved by OME-NGFF); else None."""
    import zarr

    arrays, others = [], []
    for name, member in group.members():
        if isinstance(member, zarr.Array):
            arrays.append(name)
        elif name != BLOCKWISE_DONE_GROUP:
            others.append(name)
    if len(arrays) == 1 and not others and arrays[0] != "labels":
        return arrays[0]
    return None


def _made_by_blockwise(group: Any) -> bool:
    """A group whose only members are blockwise done markers, without attributes: the root
    `run_blockwise` created before its first block (so the writer's own)."""
    names = [name for name, _ in group.members()]
    return names == [BLOCKWISE_DONE_GROUP] and not group.attrs.asdict()


def update_ngff_images(
    root: Any,
    dataset: str,
    voxel_size: Coordinate,
    offset: Coordinate,
    ndim: int,
    parent_is_ours: bool,
) -> None:
    """OME-NGFF after the array `dataset` was created under `root`: its parent becomes a
    single-image group if the writer created it (`parent_is_ours`, or it carries our own
    `multiscales`) and holds only that array; an ancestor whose `multiscales` we wrote but that
    now holds more loses them. Foreign metadata and groups are never touched."""
    version = ngff_version(root.metadata.zarr_format)
    parts = [p for p in dataset.strip("/").split("/") if p]
    parent_path, leaf = "/".join(parts[:-1]), parts[-1]
    for depth in range(len(parts) - 1):
        path = "/".join(parts[:depth])
        group = root[path] if path else root
        if path != parent_path and has_own_multiscales(group.attrs.asdict()):
            remove_multiscales(group.attrs)
    parent = root[parent_path] if parent_path else root
    attrs = parent.attrs.asdict()
    own = has_own_multiscales(attrs)
    if find_multiscales(attrs) is not None and not own:
        return  # someone else's image metadata
    if not (parent_is_ours or own):
        return
    if _single_array(parent) == leaf:
        parent.attrs.update(ome_ngff_image_attrs([(leaf, voxel_size, offset)], ndim, version))
    elif own:
        remove_multiscales(parent.attrs)


def _existing(
    group: Any,
    dataset: str,
    where: str,
    roi: Roi,
    voxel_size: Coordinate,
    channels: tuple[int, ...],
) -> Any:
    """`group[dataset]` (zarr or h5py) after checking it fits `roi`, or None if there is none."""
    if dataset not in group:
        return None
    array = group[dataset]
    check_existing(where, array.shape, array.attrs, roi, voxel_size, channels)
    return array


def _layout(
    roi: Roi, voxel_size: Coordinate, channels: tuple[int, ...], chunks: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shape of a new dataset covering `roi`, and its chunks (each at most the shape, at least 1)."""
    shape = tuple(channels) + tuple(roi.shape / voxel_size)
    spatial = (min(c, s) for c, s in zip(chunks, shape[len(channels) :]))
    return shape, tuple(max(1, c) for c in (*channels, *spatial))


def open_or_create_zarr(
    container: Any,
    dataset: str,
    roi: Roi,
    voxel_size: Coordinate,
    channels: tuple[int, ...],
    dtype: Any,
    chunks: tuple[int, ...],
    compression_type: Any = None,
    zarr_format: int = 2,
) -> Any:
    """The zarr array `dataset` in `container` (a path or zarr store) covering `roi`: opened
    if it exists (and matches exactly), else created (see `create_zarr_dataset`)."""
    root_is_new = not container_exists(container)
    root = open_zarr_root(container, zarr_format)
    existing = _existing(root, dataset, f"{_name(container)}/{dataset}", roi, voxel_size, channels)
    if existing is not None:
        return existing
    return create_zarr_dataset(
        root, dataset, roi, voxel_size, channels, dtype, chunks, compression_type, root_is_new
    )


def open_zarr_root(container: Any, zarr_format: int = 2) -> Any:
    """The root group of `container` (a path or zarr store), created if missing (keeping the
    format of an existing one)."""
    import zarr

    zarr_format = _existing_format(container, zarr_format)
    return zarr.open_group(container, mode="a", zarr_format=zarr_format)


def _parent_is_ours(root: Any, dataset: str, root_is_new: bool) -> bool:
    """Whether the parent group of `dataset` (not created yet) is the writer's own: missing
    (it is created with the array), the new root, or a root that only blockwise has used."""
    parent_path, _ = _split(dataset)
    if parent_path:
        return parent_path not in root
    return root_is_new or _made_by_blockwise(root)


def create_zarr_dataset(
    root: Any,
    dataset: str,
    roi: Roi,
    voxel_size: Coordinate,
    channels: tuple[int, ...],
    dtype: Any,
    chunks: tuple[int, ...],
    compression_type: Any = None,
    root_is_new: bool = False,
) -> Any:
    """A new zarr array `dataset` under `root` covering `roi`: named axes, `resolution` /
    `offset`, and OME-NGFF on its parent where the writer owns it (see `update_ngff_images`).

    `root_is_new`: the caller has just created `root` (so it is the writer's own).
    """
    zarr_format = root.metadata.zarr_format
    shape, chunks = _layout(roi, voxel_size, channels, chunks)
    names = axis_names(len(shape), voxel_size.dims)
    parent_is_ours = _parent_is_ours(root, dataset, root_is_new)
    array = root.create_array(
        dataset,
        shape=shape,
        chunks=chunks,
        dtype=np.dtype(dtype),
        compressors=zarr_compressor(compression_type, zarr_format),
        fill_value=0,
        **({"dimension_names": names} if zarr_format == 3 else {}),
    )
    if zarr_format == 2:
        array.attrs["_ARRAY_DIMENSIONS"] = names  # xarray's convention for zarr 2
    write_spatial_metadata(array.attrs, voxel_size, roi.offset)
    update_ngff_images(root, dataset, voxel_size, roi.offset, len(shape), parent_is_ours)
    return array


def container_exists(container: Any) -> bool:
    """Whether `container` (a path or zarr store) holds a zarr group or array already."""
    if isinstance(container, (str, os.PathLike)):
        path = os.fspath(container)
        return any(
            os.path.exists(os.path.join(path, f)) for f in ("zarr.json", ".zgroup", ".zarray")
        )
    return _existing_format(container, 0) != 0


def open_for_writing(
    group: Any,
    dataset: str,
    where: str,
    total: Roi,
    voxel_size: Coordinate,
    channels: tuple[int, ...],
    create: Callable[[], Any],
    attrs_of: Callable[[Any], Mapping[str, Any]] = lambda a: a.attrs,
) -> tuple[Any, Roi]:
    """(handle, ROI) of the dataset a writer fills: an existing one as it is (its ROI from its
    shape and attributes), else `create()`d over `total`, which must then be bounded."""
    if dataset in group:
        handle = group[dataset]
        roi = existing_roi(where, tuple(handle.shape), attrs_of(handle), voxel_size, channels)
        if not total.unbounded and not roi.contains(total):
            logger.info(
                "%s exists with ROI %s: only the part of %s inside it is written", where, roi, total
            )
        return handle, roi
    if total.unbounded:
        raise ValueError(
            f"{where} does not exist, and a new dataset needs a bounded ROI, but the upstream "
            f"ROI is {total}; create the dataset beforehand or bound the ROI (e.g. gp.Crop)"
        )
    return create(), total


def _name(container: Any) -> str:
    return os.fspath(container) if isinstance(container, (str, os.PathLike)) else repr(container)


def _existing_format(container: Any, default: int) -> int:
    """The zarr format of an existing container (a path or a zarr store), else `default`."""
    if isinstance(container, (str, os.PathLike)):
        container = os.fspath(container)
        if os.path.exists(os.path.join(container, "zarr.json")):
            return 3
        if os.path.exists(os.path.join(container, ".zgroup")):
            return 2
        return default
    import zarr

    try:
        return int(zarr.open_group(container, mode="r").metadata.zarr_format)
    except Exception:  # nothing there yet (zarr raises several kinds)
        return default


def existing_roi(
    where: str,
    shape: tuple[int, ...],
    attrs: Mapping[str, Any],
    voxel_size: Coordinate,
    channels: tuple[int, ...],
) -> Roi:
    """The ROI of an existing dataset (its spatial shape times `voxel_size`, at its `offset`
    attribute, else at 0), after checking its voxel size and channel axes; ValueError else."""
    dims = voxel_size.dims
    meta = read_gunpowder_attrs(attrs)
    problems = []
    if len(shape) != len(channels) + dims or tuple(shape[: len(channels)]) != tuple(channels):
        problems.append(
            f"shape {tuple(shape)} (expected {len(channels)} channel axes {tuple(channels)} "
            f"before {dims} spatial axes)"
        )
    if meta.voxel_size is not None and meta.voxel_size != voxel_size:
        problems.append(f"resolution {tuple(meta.voxel_size)} (expected {tuple(voxel_size)})")
    if problems:
        raise ValueError(
            f"{where} already exists with {', '.join(problems)}; remove it or write elsewhere"
        )
    offset = meta.offset if meta.offset is not None else Coordinate((0,) * dims)
    return Roi(offset, Coordinate(shape[-dims:]) * voxel_size)


def open_or_create_hdf5(
    file: Any,
    dataset: str,
    roi: Roi,
    voxel_size: Coordinate,
    channels: tuple[int, ...],
    dtype: Any,
    chunks: tuple[int, ...],
    compression_type: Any = None,
) -> Any:
    """The h5py dataset `dataset` in the open `file` covering `roi` (opened or created)."""
    existing = _existing(file, dataset, f"{file.filename}/{dataset}", roi, voxel_size, channels)
    if existing is not None:
        return existing
    return create_hdf5_dataset(
        file, dataset, roi, voxel_size, channels, dtype, chunks, compression_type
    )


def create_hdf5_dataset(
    file: Any,
    dataset: str,
    roi: Roi,
    voxel_size: Coordinate,
    channels: tuple[int, ...],
    dtype: Any,
    chunks: tuple[int, ...],
    compression_type: Any = None,
) -> Any:
    """A new h5py dataset `dataset` in the open `file` covering `roi`, with spatial metadata."""
    shape, chunks = _layout(roi, voxel_size, channels, chunks)
    ds = file.create_dataset(
        dataset,
        shape=shape,
        dtype=np.dtype(dtype),
        chunks=chunks if all(shape) else None,
        compression=compression_type,
        fillvalue=0,
    )
    write_spatial_metadata(ds.attrs, voxel_size, roi.offset)
    return ds


class _Write(Node):
    """Common part of the writers: which keys go where, per-process handles, writing."""

    default_filename = "output"

    def __init__(
        self,
        dataset_names: dict[ArrayKey, str],
        output_dir: str = ".",
        output_filename: str | None = None,
        compression_type: Any = None,
        dataset_dtypes: dict[ArrayKey, Any] | None = None,
    ) -> None:
        if not isinstance(dataset_names, Mapping) or not dataset_names:
            raise TypeError(
                f"{type(self).__name__}: dataset_names must be a dict {{ArrayKey: 'dataset'}}, "
                f"got {dataset_names!r}"
            )
        self.dataset_names = dict(dataset_names)
        self.output_dir = output_dir
        self.output_filename = output_filename or self.default_filename
        self.compression_type = compression_type
        self.dataset_dtypes = dict(dataset_dtypes or {})
        self._lock = threading.Lock()
        self._handles: dict[str, Any] = {}

    @property
    def path(self) -> str:
        return os.path.join(self.output_dir, self.output_filename)

    def location(self) -> str:
        """The file or store written to, for messages."""
        return self.path

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, *self.dataset_names)
        for key, dataset in self.dataset_names.items():
            spec = upstream_spec[key]
            if spec.roi is None or spec.nonspatial:
                raise PipelineSetupError(
                    f"{self.name}: {key} is provided without a ROI (nonspatial); only spatial "
                    "arrays can be written"
                )
            if spec.roi.unbounded and not self._dataset_exists(dataset):
                raise PipelineSetupError(
                    f"{self.name}: {key} is provided with the unbounded ROI {spec.roi}, and "
                    f"{self.location()}/{dataset} does not exist: a new dataset needs a bounded "
                    f"ROI; create the dataset beforehand or bound {key} (e.g. gp.Crop)"
                )
        self._make_container_dir()
        return upstream_spec.copy()

    def _make_container_dir(self) -> None:
        os.makedirs(self.output_dir or ".", exist_ok=True)

    def _dataset_exists(self, dataset: str) -> bool:
        """Whether `dataset` exists already (asked only for unbounded upstream ROIs)."""
        raise NotImplementedError

    def process(self, batch: Batch, ctx: Any) -> Batch:
        for key, dataset in self.dataset_names.items():
            if key in batch:
                self._write(key, dataset, batch[key])
        return batch

    def _write(self, key: ArrayKey, dataset: str, array: Array) -> None:
        vs = array.spec.voxel_size
        dims = array.spec.roi.dims
        data = array.data
        with self._lock:
            entry = self._datasets().get(dataset)
            if entry is None:
                channels = tuple(np.shape(data)[:-dims])
                dtype = np.dtype(self.dataset_dtypes.get(key, data.dtype))
                chunks = tuple(array.spec.roi.shape / vs)
                total = self.upstream_spec[key].roi
                try:
                    entry = self._open_dataset(dataset, total, vs, channels, dtype, chunks)
                except ValueError as e:
                    raise PipelineRequestError(f"{self.name}: {key}: {e}") from e
                self._datasets()[dataset] = entry
            target, dataset_roi = entry
            region = array.spec.roi.intersect(dataset_roi)
            if region.empty:
                return
            part = np.asarray(array.crop(region, copy=False).data)
            index = (Ellipsis,) + voxel_slices(region, dataset_roi, vs)
            target[index] = part.astype(target.dtype, copy=False)
            self._flush()

    def _flush(self) -> None:
        pass

    def _datasets(self) -> dict[str, Any]:
        """Handles of this process (a forked worker opens its own)."""
        if self._handles.get("pid") != os.getpid():
            self._handles = {"pid": os.getpid(), "datasets": {}}
        return self._handles["datasets"]

    def _open_dataset(
        self,
        dataset: str,
        total: Roi,
        voxel_size: Coordinate,
        channels: tuple[int, ...],
        dtype: np.dtype,
        chunks: tuple[int, ...],
    ) -> tuple[Any, Roi]:
        """(handle, ROI) of `dataset`, see `open_for_writing`; ValueError if it can't be used."""
        raise NotImplementedError

    def teardown(self) -> None:
        self._handles = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        state["_handles"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
