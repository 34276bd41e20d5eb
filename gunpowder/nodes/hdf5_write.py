from __future__ import annotations

import os
from typing import Any

from ..spec import ArrayKey
from .hdf5like_write_base import _Write, create_hdf5_dataset, open_for_writing


class Hdf5Write(_Write):
    """Write arrays to datasets of an HDF5 file (`output_dir/output_filename`).

    `dataset_names` maps ArrayKey → dataset path; `compression_type` is h5py's (e.g. "gzip",
    "lzf"); `dataset_dtypes` maps ArrayKey → dtype to cast to.

    Batches pass through unchanged. An existing file is appended to. An existing dataset is
    written into as it is (gunpowder 1.x): its ROI is its shape at its `resolution`/`offset`
    attributes, and each batch is written where it overlaps it, so the upstream ROI may be
    larger or unbounded (after `Pad(raw, None)`); a different `resolution` or channel shape
    is an error. A new dataset covers the upstream ROI (which must then be bounded); its
    chunks span all channels and the spatial shape (voxels) of the first batch written. The
    file is flushed after every write and closed at teardown.

    Args:
        dataset_names: a dict ArrayKey -> dataset path in the file (e.g.
            `{pred: "volumes/pred"}`); every key must be provided upstream; a new dataset
            covers its (bounded) upstream ROI.
        output_dir: the directory of the file (created if missing). Default ".".
        output_filename: the file's name inside `output_dir`. Default "output.hdf".
        compression_type: an h5py compression filter, e.g. "gzip" or "lzf". Default None:
            uncompressed.
        dataset_dtypes: a dict ArrayKey -> dtype the data is cast to when written. Default
            None: each array's own dtype.

    Example::

        raw = gp.ArrayKey("RAW")
        pipeline = gp.ZarrSource("sample.zarr", {raw: "raw"})
        pipeline += gp.Hdf5Write(
            {raw: "volumes/raw"}, output_dir="out", output_filename="copy.hdf",
            compression_type="gzip")
        reference = gp.BatchRequest()
        reference[raw] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (400, 400, 400)))  # one block
        pipeline += gp.Scan(reference)
        with gp.build(pipeline):
            pipeline.request_batch(gp.BatchRequest())  # copies raw into out/copy.hdf
    """

    default_filename = "output.hdf"

    def __init__(
        self,
        dataset_names: dict[ArrayKey, str],
        output_dir: str = ".",
        output_filename: str = "output.hdf",
        compression_type: Any = None,
        dataset_dtypes: dict[ArrayKey, Any] | None = None,
    ) -> None:
        super().__init__(
            dataset_names, output_dir, output_filename, compression_type, dataset_dtypes
        )

    def _file(self) -> Any:
        import h5py

        self._datasets()
        if "file" not in self._handles:
            self._handles["file"] = h5py.File(self.path, "a")
        return self._handles["file"]

    def _dataset_exists(self, dataset: str) -> bool:
        import h5py

        if not os.path.exists(self.path):
            return False
        with h5py.File(self.path, "r") as f:
            return dataset in f

    def _open_dataset(self, dataset, total, voxel_size, channels, dtype, chunks) -> Any:
        file = self._file()

        def create() -> Any:
            return create_hdf5_dataset(
                file, dataset, total, voxel_size, channels, dtype, chunks, self.compression_type
            )

        where = f"{self.path}/{dataset}"
        return open_for_writing(file, dataset, where, total, voxel_size, channels, create)

    def _flush(self) -> None:
        self._handles["file"].flush()

    def teardown(self) -> None:
        f = self._handles.get("file")
        if f is not None and self._handles.get("pid") == os.getpid():
            f.close()
        self._handles = {}
