"""The contiguous HDF5 reader returns exactly numpy's slice of the data, whichever way it
reads (whole sections, Python row reads, or the compiled row loop of `_row_reads`)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gunpowder.nodes.hdf5like_source_base as base
from gunpowder.nodes import _row_reads

DTYPES = ["uint8", "int16", "float32", "uint64", ">f4"]


@st.composite
def _slicings(draw):
    shape = tuple(draw(st.integers(1, 9)) for _ in range(draw(st.integers(1, 3))))
    index = []
    for n in shape:
        start = draw(st.integers(0, n - 1))
        stop = draw(st.integers(start + 1, n))
        index.append(slice(start, stop, draw(st.sampled_from([1, 1, 2, 3]))))
    return shape, tuple(index), draw(st.sampled_from(DTYPES))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("row_reads")


@pytest.mark.parametrize("strategy", ["model", "sections", "rows"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=_slicings())
def test_reads_equal_numpy_slices(workdir, strategy, case):
    shape, index, dtype = case
    data = (np.arange(int(np.prod(shape))) * 7 % 251).astype(dtype).reshape(shape)
    path = str(workdir / f"{strategy}-{dtype}-{'x'.join(map(str, shape))}.h5")
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("a", data=data)
        offset = ds.id.get_offset()
    reader = base._contiguous_reader(path, offset, shape, np.dtype(dtype))
    original = base._rows_are_cheaper
    forced = {  # "rows": wherever rows can be read on their own (innermost step 1)
        "sections": lambda *a: False,
        "rows": lambda ranges, itemsize, _: original(ranges, itemsize, float("inf")),
    }.get(strategy)
    try:
        if forced is not None:
            base._rows_are_cheaper = forced
        got = reader(index)
    finally:
        base._rows_are_cheaper = original
    np.testing.assert_array_equal(got, data[index])
    assert got.dtype == np.dtype(dtype)


def test_row_loop_reports_a_short_read(tmp_path):
    """Rows past the end of the file are not filled and not counted."""
    path = tmp_path / "short.bin"
    path.write_bytes(bytes(range(100)))
    out = np.zeros((3, 10), np.uint8)
    import os

    fd = os.open(path, os.O_RDONLY)
    try:
        done = _row_reads.read_rows(fd, out, np.array([0, 50, 95], np.int64))
    finally:
        os.close(fd)
    if done is None:
        pytest.skip("no libc pread here")
    assert done == 2
    np.testing.assert_array_equal(out[0], np.arange(10))
    np.testing.assert_array_equal(out[1], np.arange(50, 60))
