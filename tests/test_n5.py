"""N5: the container codec against numpy (and tensorstore, in a subprocess), and
N5Write/N5Source round trips with `resolution`/`offset` attributes in N5's x, y, z order."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gunpowder.batch import Array
from gunpowder.geometry import Coordinate, Roi
from gunpowder.io_n5 import N5Container, N5Error
from gunpowder.nodes import ArraySource, Scan, ZarrSource, ZarrWrite
from gunpowder.nodes.n5_source import N5Source
from gunpowder.nodes.n5_write import N5Write
from gunpowder.pipeline import build
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest

RAW = ArrayKey("RAW")


@st.composite
def boxes(draw, shape):
    b = [draw(st.integers(0, s - 1)) for s in shape]
    e = [draw(st.integers(x + 1, s)) for x, s in zip(b, shape)]
    return tuple(slice(x, y) for x, y in zip(b, e))


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_dataset_writes_and_reads_like_a_numpy_array(tmp_path_factory, data):
    """Any sequence of box writes, then any box read, equals the same on a numpy array."""
    shape = tuple(data.draw(st.lists(st.integers(1, 7), min_size=1, max_size=3)))
    chunks = tuple(data.draw(st.integers(1, 4)) for _ in shape)
    dtype = data.draw(st.sampled_from([np.uint8, np.int16, np.uint64, np.float32]))
    compression = data.draw(st.sampled_from(["gzip", "raw", "zlib", "bzip2", "xz", "blosc"]))
    container = N5Container(tmp_path_factory.mktemp("n5") / "c.n5", mode="a")
    ds = container.create_dataset("a/b", shape, chunks, dtype, compression)
    expected = np.zeros(shape, dtype)
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    for _ in range(data.draw(st.integers(1, 4))):
        box = data.draw(boxes(shape))
        values = (rng.random(expected[box].shape) * 100).astype(dtype)
        ds[box] = values
        expected[box] = values
    box = data.draw(boxes(shape))
    np.testing.assert_array_equal(container["a/b"][box], expected[box])
    np.testing.assert_array_equal(container["a/b"][...], expected)


def test_bad_blocks_and_paths_are_clear_errors(tmp_path):
    container = N5Container(tmp_path / "c.n5", mode="a")
    ds = container.create_dataset("x", (4, 4), (2, 2), np.uint8)
    ds[...] = 1
    (tmp_path / "c.n5" / "x" / "0" / "0").write_bytes(b"\x00")
    with pytest.raises(N5Error, match="block file too short"):
        ds[...]
    with pytest.raises(N5Error, match="invalid N5 path"):
        container["../x"]
    with pytest.raises(N5Error, match="can not store dtype"):
        container.create_dataset("y", (2,), (2,), np.complex64)
    with pytest.raises(N5Error, match="unknown N5 compression"):
        container.create_dataset("z", (2,), (2,), np.uint8, "snappy")


def _scan_write(array, writer, tile):
    vs = array.spec.voxel_size
    reference = BatchRequest({RAW: ArraySpec(roi=Roi((0,) * vs.dims, Coordinate(tile) * vs))})
    with build(ArraySource(RAW, array) + writer + Scan(reference, progress=False)) as p:
        p.request_batch(BatchRequest())


def _read_all(source):
    with build(source) as p:
        return p.request_batch(BatchRequest({RAW: ArraySpec(roi=p.spec[RAW].roi)}))[RAW]


@pytest.mark.parametrize("channels", [(), (2,)])
def test_n5_write_and_read_back_with_resolution_and_offset(tmp_path, channels):
    vs, offset, shape = Coordinate(40, 4, 2), Coordinate(80, -8, 6), Coordinate(5, 6, 7)
    data = np.random.default_rng(1).integers(0, 1000, channels + tuple(shape)).astype(np.uint16)
    array = Array(data, ArraySpec(roi=Roi(offset, shape * vs), voxel_size=vs))
    _scan_write(array, N5Write({RAW: "volumes/raw"}, str(tmp_path), "out.n5"), (2, 4, 3))
    attrs = json.loads((tmp_path / "out.n5" / "volumes" / "raw" / "attributes.json").read_text())
    assert attrs["dimensions"] == list(data.shape[::-1])  # N5 order: x first
    assert attrs["resolution"] == [2, 4, 40] and attrs["offset"] == [6, -8, 80]
    assert json.loads((tmp_path / "out.n5" / "attributes.json").read_text())["n5"]
    for source in [
        N5Source(str(tmp_path / "out.n5"), {RAW: "volumes/raw"}),
        ZarrSource(str(tmp_path / "out.n5"), {RAW: "volumes/raw"}),  # 1.x: .n5 is N5
    ]:
        assert isinstance(source, N5Source)
        got = _read_all(source)
        assert got.spec.roi == array.spec.roi and got.spec.voxel_size == vs
        assert got.spec.dtype == np.uint16
        np.testing.assert_array_equal(got.data, data)
    # ZarrWrite to a .n5 name is an N5Write (as zarr 2's N5 store made it in 1.x)
    assert isinstance(ZarrWrite({RAW: "x"}, store=tmp_path / "other.n5"), N5Write)
    assert isinstance(ZarrWrite({RAW: "x"}, str(tmp_path), "other.n5"), N5Write)


def test_missing_dataset_lists_the_container(tmp_path):
    from gunpowder.errors import PipelineSetupError

    array = Array(np.ones((2, 2, 2), np.float32), ArraySpec(roi=Roi((0, 0, 0), (2, 2, 2))))
    _scan_write(array, N5Write({RAW: "a/raw"}, str(tmp_path), "out.n5"), (2, 2, 2))
    with pytest.raises(PipelineSetupError, match=r"(?s)'nope' .* does not exist.*a/raw: shape"):
        with build(N5Source(str(tmp_path / "out.n5"), {RAW: "nope"})):
            pass
    with pytest.raises(PipelineSetupError, match="N5 container does not exist"):
        with build(N5Source(str(tmp_path / "missing.n5"), {RAW: "a/raw"})):
            pass


@pytest.mark.skipif(
    importlib.util.find_spec("tensorstore") is None, reason="tensorstore is not installed"
)
def test_tensorstore_reads_what_we_write_and_we_read_what_it_writes(tmp_path):
    """Interoperability with a maintained N5 implementation. tensorstore runs in a
    subprocess: once used it aborts forked children, and the test run forks workers."""
    data = np.arange(3 * 5 * 7, dtype=np.int32).reshape(3, 5, 7)
    container = N5Container(tmp_path / "c.n5", mode="a")
    for compression in ["gzip", "raw", "blosc", "zstd", "xz", "bzip2"]:
        ds = container.create_dataset(
            f"ours/{compression}", data.shape, (2, 2, 3), data.dtype, compression
        )
        ds[...] = data
    script = textwrap.dedent(
        f"""
        import numpy as np, tensorstore as ts
        data = np.arange(3 * 5 * 7, dtype=np.int32).reshape(3, 5, 7)
        root = {str(tmp_path / "c.n5")!r}
        for c in ["gzip", "raw", "blosc", "zstd", "xz", "bzip2"]:
            t = ts.open({{"driver": "n5", "kvstore": {{"driver": "file", "path": root + "/ours/" + c}}}}).result()
            assert (t.read().result() == data.T).all(), c  # tensorstore shows N5's x, y, z
        spec = {{"driver": "n5", "kvstore": {{"driver": "file", "path": root + "/theirs"}},
                "metadata": {{"dimensions": [7, 5, 3], "blockSize": [3, 2, 2],
                             "dataType": "int32", "compression": {{"type": "gzip"}}}}}}
        t = ts.open(spec, create=True).result()
        t[...] = data.T
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr
    np.testing.assert_array_equal(N5Container(tmp_path / "c.n5")["theirs"][...], data)
