from __future__ import annotations

import os
from typing import Any

from ..geometry import Coordinate, Roi
from ..io_n5 import N5Container, n5_order, spatial_attrs
from ..spec import ArrayKey
from .hdf5like_write_base import _layout, open_for_writing
from .zarr_write import ZarrWrite


class N5Write(ZarrWrite):
    """Write arrays to datasets of an N5 container (`output_dir/output_filename`).

    The gunpowder 1.x node (there through zarr 2's `N5Store`), written with gunpowder's own
    N5 writer (`gunpowder.io_n5`; zarr-python 3 has no N5, and tensorstore aborts forked
    children once used). Arrays are stored in C order (N5 `dimensions` [x, y, z] for the
    shape (z, y, x)), with `resolution` and `offset` attributes in N5's x, y, z order, as
    gunpowder 1.x, BigDataViewer and `N5Source` read them. Block files are written through
    a rename, so a reader never sees half a block. Otherwise as `ZarrWrite`: an existing
    dataset is written into as it is (the upstream ROI may be larger or unbounded), a new
    one covers the (bounded) upstream ROI. `ZarrWrite` to a name ending in `.n5` is this.

    Args:
        dataset_names: a dict ArrayKey -> dataset path in the container.
        output_dir: the directory of the container (created if missing). Default ".".
        output_filename: the container's name inside `output_dir`. Default "output.n5".
        compression_type: "gzip" (default), "zlib", "raw", "bzip2", "xz", "blosc", "zstd",
            or an N5 compression dict (e.g. `{"type": "gzip", "level": 9}`). Default None:
            gzip.
        dataset_dtypes: a dict ArrayKey -> dtype the data is cast to when written. Default
            None: each array's own dtype.
        store: the container's path; replaces `output_dir` and `output_filename` (as in
            `ZarrWrite`). Default None.
        zarr_format: ignored (N5 is not zarr); accepted since `ZarrWrite(...)` to a `.n5`
            name becomes an N5Write with the same arguments.

    Example::

        pred = gp.ArrayKey("PRED")
        pipeline = gp.ZarrSource("pred.zarr", {pred: "pred"})
        pipeline += gp.N5Write({pred: "volumes/pred"}, output_filename="pred.n5")
        reference = gp.BatchRequest()
        reference[pred] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (400, 400, 400)))  # one block
        pipeline += gp.Scan(reference)
        with gp.build(pipeline):
            pipeline.request_batch(gp.BatchRequest())  # writes pred.n5/volumes/pred
    """

    default_filename = "output.n5"

    def __init__(
        self,
        dataset_names: dict[ArrayKey, str],
        output_dir: str | os.PathLike = ".",
        output_filename: str = "output.n5",
        compression_type: Any = None,
        dataset_dtypes: dict[ArrayKey, Any] | None = None,
        store: Any = None,
        zarr_format: int = 2,
    ) -> None:
        if store is not None and not isinstance(store, (str, os.PathLike)):
            raise TypeError(
                f"N5Write: store must be a path to an N5 container, got {type(store).__name__}"
            )
        super().__init__(
            dataset_names, output_dir, output_filename, compression_type, dataset_dtypes, store
        )

    def _dataset_exists(self, dataset: str) -> bool:
        if not os.path.isdir(self.path):
            return False
        container = N5Container(self.path, mode="r")
        return dataset.strip("/") in container and container.is_dataset(dataset)

    def _open_dataset(self, dataset, total, voxel_size, channels, dtype, chunks) -> Any:
        container = N5Container(self.path, mode="a")
        dataset = dataset.strip("/")

        def create() -> Any:
            shape, block = _layout(total, voxel_size, channels, chunks)
            ds = container.create_dataset(dataset, shape, block, dtype, self.compression_type)
            write_n5_spatial_metadata(ds.attrs, voxel_size, total)
            return ds

        where = f"{self.path}/{dataset}"
        return open_for_writing(
            container, dataset, where, total, voxel_size, channels, create, _n5_attrs
        )


def _n5_attrs(dataset: Any) -> dict[str, Any]:
    return spatial_attrs(dataset.attrs)


def write_n5_spatial_metadata(attrs: Any, voxel_size: Coordinate, roi: Roi) -> None:
    """`resolution` and `offset` in N5's (x, y, z) order."""
    attrs["resolution"] = n5_order(voxel_size)
    attrs["offset"] = n5_order(roi.offset)
