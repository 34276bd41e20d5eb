from __future__ import annotations

from typing import Any

from ..spec import ArrayKey
from .hdf5like_write_base import _Write, open_or_create_zarr


class ZarrWrite(_Write):
    """Write arrays to datasets of a zarr container (`output_dir/output_filename`).

    `dataset_names` maps ArrayKey → dataset path; `compression_type` e.g. "gzip", "blosc";
    `dataset_dtypes` maps ArrayKey → dtype to cast to. New containers use `zarr_format` 2
    (OME-NGFF 0.4 metadata) unless 3 (OME-NGFF 0.5) is given.

    Batches pass through unchanged. An existing container is appended to (its format kept);
    an existing dataset is reused if its shape, `resolution` and `offset` match, else it is an
    error. Chunks of a new dataset span all channels and the spatial shape (voxels) of the
    first batch written. Put it above a `Scan` to write a whole volume block by block.

    Args:
        dataset_names: a dict ArrayKey -> dataset path in the container (e.g.
            `{pred: "volumes/pred"}`); every key must be provided upstream with a bounded ROI,
            which is the extent of its dataset.
        output_dir: the directory of the container (created if missing). Default ".".
        output_filename: the container's name inside `output_dir`. Default "output.zarr".
        compression_type: "gzip", "zlib" (v2 only), "zstd", "blosc", "lz4", "none", or a
            codec object. Default None: zarr's default compression.
        dataset_dtypes: a dict ArrayKey -> dtype the data is cast to when written. Default
            None: each array's own dtype.
        zarr_format: 2 or 3, the format of a new container. Default 2.

    Example::

        raw = gp.ArrayKey("RAW")
        pipeline = gp.Hdf5Source("sample.hdf", {raw: "volumes/raw"})
        pipeline += gp.IntensityScaleShift(raw, 2, -1)
        pipeline += gp.ZarrWrite(
            {raw: "raw_scaled"}, output_dir="out", output_filename="scaled.zarr",
            dataset_dtypes={raw: "float32"})
        reference = gp.BatchRequest()
        reference[raw] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (400, 400, 400)))  # one block
        pipeline += gp.Scan(reference)
        with gp.build(pipeline):
            pipeline.request_batch(gp.BatchRequest())  # writes out/scaled.zarr/raw_scaled
    """

    default_filename = "output.zarr"

    def __init__(
        self,
        dataset_names: dict[ArrayKey, str],
        output_dir: str = ".",
        output_filename: str = "output.zarr",
        compression_type: Any = None,
        dataset_dtypes: dict[ArrayKey, Any] | None = None,
        zarr_format: int = 2,
    ) -> None:
        super().__init__(
            dataset_names, output_dir, output_filename, compression_type, dataset_dtypes
        )
        self.zarr_format = zarr_format

    def _open_dataset(self, dataset, roi, voxel_size, channels, dtype, chunks) -> Any:
        return open_or_create_zarr(
            self.path,
            dataset,
            roi,
            voxel_size,
            channels,
            dtype,
            chunks,
            self.compression_type,
            self.zarr_format,
        )
