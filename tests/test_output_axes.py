"""Zarr outputs name their axes: zarr 3 `dimension_names`, zarr 2 `_ARRAY_DIMENSIONS`, so
xarray and dask open what the writers and Snapshot write, with the right axes."""

from __future__ import annotations

import numpy as np
import pytest

import gunpowder as gp
from gunpowder.io_metadata import axis_names

RAW = gp.ArrayKey("AXES_RAW")
VS = gp.Coordinate(4, 2, 2)


def _source() -> gp.ArraySource:
    data = np.arange(2 * 8 * 16 * 16, dtype=np.float32).reshape(2, 8, 16, 16)
    spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), gp.Coordinate(8, 16, 16) * VS), voxel_size=VS)
    return gp.GPArraySource(RAW, gp.Array(data, spec))


def _write(tmp_path, zarr_format: int) -> str:
    pipeline = _source() + gp.ZarrWrite(
        {RAW: "raw"},
        output_dir=str(tmp_path),
        output_filename="out.zarr",
        zarr_format=zarr_format,
    )
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), gp.Coordinate(8, 16, 16) * VS))
    with gp.build(pipeline) as p:
        p.request_batch(request)
    return str(tmp_path / "out.zarr")


def test_axis_names_are_channels_then_space():
    assert axis_names(5, 3) == ["c", "c1", "z", "y", "x"]
    assert axis_names(3, 2) == ["c", "y", "x"]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_writer_output_opens_in_xarray_and_dask(tmp_path, zarr_format):
    import dask.array as da
    import zarr

    path = _write(tmp_path, zarr_format)
    array = zarr.open_array(f"{path}/raw", mode="r")
    if zarr_format == 3:
        assert tuple(array.metadata.dimension_names) == ("c", "z", "y", "x")
    else:
        assert array.attrs["_ARRAY_DIMENSIONS"] == ["c", "z", "y", "x"]
    lazy = da.from_zarr(f"{path}/raw")
    assert lazy.shape == (2, 8, 16, 16) and float(lazy[1, 0, 0, 0].compute()) == 8 * 16 * 16
    xr = pytest.importorskip("xarray")
    ds = xr.open_zarr(path, consolidated=False, zarr_format=zarr_format)
    assert ds["raw"].dims == ("c", "z", "y", "x")


def test_snapshot_arrays_name_their_axes(tmp_path):
    import zarr

    pipeline = _source() + gp.Snapshot(
        {RAW: "raw"}, output_dir=str(tmp_path), output_filename="snap.zarr"
    )
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), gp.Coordinate(4, 8, 8) * VS))
    with gp.build(pipeline) as p:
        p.request_batch(request)
    written = sorted(str(f) for f in tmp_path.rglob("*.zarr"))
    assert written, "Snapshot wrote no zarr"
    array = zarr.open_array(f"{written[0]}/raw/s0", mode="r")
    assert array.attrs["_ARRAY_DIMENSIONS"] == ["c", "z", "y", "x"]
