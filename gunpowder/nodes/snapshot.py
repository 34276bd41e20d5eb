"""`Snapshot`: write (some of) the batches passing through to zarr or HDF5, placed in world space.

Every array gets `resolution` (voxel size) and `offset` (world begin, nm) attributes, the
convention of gunpowder and funlib; zarr files also carry OME-NGFF 0.4 `multiscales`
metadata on each group, so napari and neuroglancer show all arrays overlaid in place.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..io_metadata import axis_names, ome_ngff_multiscales, write_spatial_metadata
from ..node import Node
from ..spec import ArrayKey, BatchRequest, GraphKey, ProviderSpec
from .hdf5like_write_base import zarr_compressor

HDF5_SUFFIXES = (".hdf", ".hdf5", ".h5")


class Snapshot(Node):
    """Save every `every`-th batch: the arrays in `dataset_names` to a zarr or HDF5 file.

    Args:
        dataset_names: ArrayKey → dataset name in the file (e.g. "volumes/raw"); a GraphKey
            is written as `{name}-ids`, `{name}-locations` (world units) and `{name}-edges`.
        output_dir: directory for the files.
        output_filename: file name; `{iteration}` (the training iteration, or the snapshot
            counter when no training happened) and `{id}` (the batch id) are filled in. A name
            ending in .hdf/.hdf5/.h5 writes HDF5, anything else zarr.
        every: store every n-th batch (1 = all; the first batch is always stored).
        additional_request: a `BatchRequest` of keys to request only for stored batches.
        compression_type: HDF5: "gzip", "lzf" or None; zarr: "gzip", "zstd", "blosc", "lz4",
            "zlib", a numcodecs codec, or None for zarr's default.
        dataset_dtypes: ArrayKey → dtype to cast to before writing.
        store_value_range: also store `value_range` = (min, max) as an attribute.

    The file attributes hold `loss` and `iteration` when the batch has them.

    Example::

        pipeline += gp.Snapshot({raw: "volumes/raw", pred: "volumes/pred_affs"},
                                output_filename="batch_{iteration}.zarr", every=100)
    """

    def __init__(
        self,
        dataset_names: Mapping[ArrayKey | GraphKey, str],
        output_dir: str | os.PathLike = "snapshots",
        output_filename: str = "{id}.zarr",
        every: int = 1,
        additional_request: BatchRequest | None = None,
        compression_type: str | None = None,
        dataset_dtypes: Mapping[ArrayKey, Any] | None = None,
        store_value_range: bool = False,
    ) -> None:
        if int(every) < 1:
            raise ValueError(f"Snapshot: every must be at least 1, got {every}")
        self.dataset_names = dict(dataset_names)
        self.output_dir = output_dir
        self.output_filename = output_filename
        self.every = int(every)
        self.additional_request = additional_request
        self.compression_type = compression_type
        self.dataset_dtypes = dict(dataset_dtypes or {})
        self.store_value_range = store_value_range
        self._counter = itertools.count()

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        if self.additional_request is not None:
            self.require(upstream_spec, *self.additional_request.keys())
        return upstream_spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[BatchRequest, Any]:
        n = next(self._counter)  # itertools.count is thread-safe in CPython
        record = n % self.every == 0
        if not record or self.additional_request is None:
            return request, (record, n)
        upstream = request.copy()
        for key, spec in self.additional_request.items():
            if key not in upstream:
                upstream[key] = spec
        return upstream, (record, n)

    def process(self, batch: Batch, ctx: Any) -> Batch:
        record, n = ctx
        if record:
            self.write(batch, n)
        return batch

    def filename(self, batch: Batch, n: int) -> Path:
        iteration = batch.iteration if batch.iteration is not None else n
        name = self.output_filename.format(id=str(batch.id).zfill(8), iteration=int(iteration))
        return Path(self.output_dir) / name

    def write(self, batch: Batch, n: int = 0) -> Path:
        """Write the arrays of `batch` named in `dataset_names`; returns the file's path."""
        path = self.filename(batch, n)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Array] = {}
        for key, name in self.dataset_names.items():
            if key not in batch:
                continue
            if isinstance(key, GraphKey):
                from ._graph_support import graph_datasets

                arrays.update(graph_datasets(name, batch[key]))
            else:
                arrays[name] = self._prepared(key, batch[key])
        file_attrs = {}
        if batch.loss is not None:
            file_attrs["loss"] = float(batch.loss)
        if batch.iteration is not None:
            file_attrs["iteration"] = int(batch.iteration)
        if path.suffix.lower() in HDF5_SUFFIXES:
            write_hdf5(path, arrays, file_attrs, self.compression_type, self.store_value_range)
        else:
            write_zarr(path, arrays, file_attrs, self.compression_type, self.store_value_range)
        return path

    def _prepared(self, key: ArrayKey, array: Array) -> Array:
        if key in self.dataset_dtypes:
            return Array(
                np.asarray(array.data).astype(self.dataset_dtypes[key]),
                array.spec.replace(dtype=None),
            )
        return array


def array_attributes(array: Array, store_value_range: bool = False) -> dict[str, Any]:
    """`resolution` and `offset` (world units) of a spatial array, plus `value_range`."""
    attrs: dict[str, Any] = {}
    spec = array.spec
    if not spec.nonspatial and spec.roi is not None:
        write_spatial_metadata(attrs, spec.voxel_size, spec.roi.offset)
    if store_value_range and np.size(array.data):
        data = np.asarray(array.data)
        attrs["value_range"] = [_scalar(data.min()), _scalar(data.max())]
    return attrs


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def ngff_image(name: str, array: Array) -> dict[str, Any] | None:
    """The OME-NGFF 0.4 `multiscales` entry placing `array` (one level, at path `name`)."""
    spec = array.spec
    if spec.nonspatial or spec.roi is None:
        return None
    entry = ome_ngff_multiscales(
        [(name, spec.voxel_size, spec.roi.offset)], np.ndim(array.data), name=name
    )
    entry["version"] = "0.4"
    return entry


def write_zarr(
    path: Path,
    arrays: Mapping[str, Array],
    file_attrs: Mapping[str, Any],
    compression_type: str | None = None,
    store_value_range: bool = False,
) -> None:
    """Write `arrays` (name → Array) into a new zarr (format 2) group at `path`."""
    import zarr

    root = zarr.open_group(os.fspath(path), mode="w", zarr_format=2)
    root.attrs.update(dict(file_attrs))
    compressor = zarr_compressor(compression_type)
    images: dict[str, list[dict[str, Any]]] = {}
    for name, array in arrays.items():
        parent_name, _, leaf = name.strip("/").rpartition("/")
        group = root.require_group(parent_name) if parent_name else root
        data = np.ascontiguousarray(array.data)
        target = group.create_array(
            leaf,
            shape=data.shape,
            dtype=data.dtype,
            chunks=tuple(max(1, s) for s in data.shape) or None,
            compressors=compressor,
        )
        target[...] = data
        target.attrs.update(array_attributes(array, store_value_range))
        if not array.spec.nonspatial and array.spec.voxel_size is not None:  # for xarray
            target.attrs["_ARRAY_DIMENSIONS"] = axis_names(data.ndim, array.spec.voxel_size.dims)
        image = ngff_image(leaf, array)
        if image is not None:
            images.setdefault(parent_name, []).append(image)
    for parent_name, entries in images.items():
        group = root[parent_name] if parent_name else root
        group.attrs["multiscales"] = entries


def write_hdf5(
    path: Path,
    arrays: Mapping[str, Array],
    file_attrs: Mapping[str, Any],
    compression_type: str | None = None,
    store_value_range: bool = False,
) -> None:
    """Write `arrays` (name → Array) into a new HDF5 file at `path`."""
    import h5py

    with h5py.File(path, "w") as f:
        for k, v in file_attrs.items():
            f.attrs[k] = v
        for name, array in arrays.items():
            data = np.asarray(array.data)
            ds = f.create_dataset(
                name, data=data, compression=compression_type if data.ndim else None
            )
            for k, v in array_attributes(array, store_value_range).items():
                ds.attrs[k] = v
