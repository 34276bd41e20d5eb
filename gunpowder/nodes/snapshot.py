"""`Snapshot`: write (some of) the batches passing through to zarr or HDF5, placed in world space.

Every array gets `resolution` (voxel size) and `offset` (world begin, nm) attributes, the
convention of gunpowder and funlib. In zarr (by default) every array's dataset name is an
OME-NGFF image group holding the array as its single scale `s0` (`volumes/raw/s0`), so
napari (napari-ome-zarr) and neuroglancer open each array as one image, in place; zarr 2 files
carry OME-NGFF 0.4, zarr 3 files 0.5. `ome_ngff=False` writes plain arrays at the names (1.x).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..io_metadata import (
    axis_names,
    ngff_version,
    ome_ngff_image_attrs,
    write_spatial_metadata,
)
from ..node import Node
from ..spec import ArrayKey, BatchRequest, GraphKey, ProviderSpec
from .hdf5like_write_base import zarr_compressor

#: the path of the one array inside each snapshot image group (the field's `raw/s0` layout)
SCALE_PATH = "s0"

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
        ome_ngff: zarr only. True (default): each array's name is an OME-NGFF image group
            holding the array as `s0` (`volumes/raw/s0`; `multiscales` on `volumes/raw`,
            `resolution`/`offset` on `s0`), which napari and neuroglancer open in place.
            False: the array itself at the name, no `multiscales` (the gunpowder 1.x layout).
            HDF5 files and graphs are written the same either way.
        zarr_format: zarr only, 2 (default; OME-NGFF 0.4) or 3 (OME-NGFF 0.5).

    The file attributes hold `loss` and `iteration` when the batch has them.

    Example::

        pipeline += gp.Snapshot({raw: "volumes/raw", pred: "volumes/pred_affs"},
                                output_filename="batch_{iteration}.zarr", every=100)
        # batch_100.zarr/volumes/raw/s0 and .../volumes/pred_affs/s0; open in napari with
        # napari --plugin napari-ome-zarr snapshots/batch_100.zarr/volumes/raw
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
        ome_ngff: bool = True,
        zarr_format: int = 2,
    ) -> None:
        if int(every) < 1:
            raise ValueError(f"Snapshot: every must be at least 1, got {every}")
        if zarr_format not in (2, 3):
            raise ValueError(f"Snapshot: zarr_format must be 2 or 3, got {zarr_format!r}")
        if ome_ngff:
            try:
                check_image_names(n for k, n in dataset_names.items() if isinstance(k, ArrayKey))
            except ValueError as e:
                raise ValueError(f"Snapshot: dataset_names: {e}") from None
        self.ome_ngff = bool(ome_ngff)
        self.zarr_format = int(zarr_format)
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
            write_zarr(
                path, arrays, file_attrs, self.compression_type, self.store_value_range,
                ome_ngff=self.ome_ngff, zarr_format=self.zarr_format,
            )  # fmt: skip
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


def is_image(array: Array) -> bool:
    """Whether `array` is placed in space (so it is written as an OME-NGFF image)."""
    spec = array.spec
    return not spec.nonspatial and spec.roi is not None and spec.voxel_size is not None


def check_image_names(names: Iterable[str]) -> None:
    """ValueError if image groups named `names` would collide: a name inside another's image
    group at `s0` (its array) or at `labels` (a group OME-NGFF reserves for label images)."""
    images = {n.strip("/") for n in names}
    for name in sorted(images):
        parent, _, leaf = name.rpartition("/")
        if parent in images and leaf in (SCALE_PATH, "labels"):
            what = "its array" if leaf == SCALE_PATH else "a group OME-NGFF reserves for labels"
            raise ValueError(
                f"{name!r} lies in the OME-NGFF image group {parent!r} at {leaf!r} ({what}); "
                "rename one of them, or pass ome_ngff=False for plain arrays"
            )


def write_zarr(
    path: Path,
    arrays: Mapping[str, Array],
    file_attrs: Mapping[str, Any],
    compression_type: str | None = None,
    store_value_range: bool = False,
    ome_ngff: bool = True,
    zarr_format: int = 2,
) -> None:
    """Write `arrays` (name → Array) into a new zarr group at `path`.

    `ome_ngff`: a spatial array named `a/b` is written as `a/b/s0`, and `a/b` is a single-image
    OME-NGFF group (0.4 in zarr 2, 0.5 in zarr 3); other arrays (graphs, nonspatial ones) and
    all arrays with `ome_ngff=False` are written at their names.
    """
    import zarr

    version = ngff_version(zarr_format)
    if ome_ngff:
        check_image_names(name for name, array in arrays.items() if is_image(array))
    root = zarr.open_group(os.fspath(path), mode="w", zarr_format=zarr_format)
    root.attrs.update(dict(file_attrs))
    compressor = zarr_compressor(compression_type, zarr_format)
    for name, array in arrays.items():
        data = np.ascontiguousarray(array.data)
        image = ome_ngff and is_image(array)
        if image:
            group = root.require_group(name.strip("/"))
            leaf = SCALE_PATH
        else:
            parent_name, _, leaf = name.strip("/").rpartition("/")
            group = root.require_group(parent_name) if parent_name else root
        names = axis_names(data.ndim, array.spec.voxel_size.dims) if is_image(array) else None
        target = group.create_array(
            leaf,
            shape=data.shape,
            dtype=data.dtype,
            chunks=tuple(max(1, s) for s in data.shape) or None,
            compressors=compressor,
            # every chunk is written: no fill value in zarr 2, where xarray would read one
            # as missing (NaN); zarr 3 needs one and xarray does not mask it
            fill_value=None if zarr_format == 2 else 0,
            **({"dimension_names": names} if zarr_format == 3 and names else {}),
        )
        target[...] = data
        target.attrs.update(array_attributes(array, store_value_range))
        if names and zarr_format == 2:  # for xarray
            target.attrs["_ARRAY_DIMENSIONS"] = names
        if image:
            spec = array.spec
            group.attrs.update(
                ome_ngff_image_attrs(
                    [(SCALE_PATH, spec.voxel_size, spec.roi.offset)], data.ndim, version,
                    name=name.strip("/").rpartition("/")[2],
                )
            )  # fmt: skip


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
