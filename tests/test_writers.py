"""ZarrWrite / Hdf5Write: data and metadata round-trip through the sources, driven by Scan."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from gunpowder.batch import Array
from gunpowder.errors import PipelineRequestError, PipelineSetupError
from gunpowder.geometry import Coordinate, Roi
from gunpowder.io_metadata import find_multiscales, read_ome_ngff, read_spatial_metadata
from gunpowder.nodes import ArraySource, Hdf5Source, Hdf5Write, Scan, ZarrSource, ZarrWrite
from gunpowder.pipeline import build
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest

RAW = ArrayKey("RAW")
LABELS = ArrayKey("WRITER_LABELS")


def make_array(vs, offset, shape, channels=(), dtype=np.float32, seed=0):
    vs, shape = Coordinate(vs), Coordinate(shape)
    data = np.random.default_rng(seed).random(tuple(channels) + tuple(shape)) * 100
    return Array(data.astype(dtype), ArraySpec(roi=Roi(offset, shape * vs), voxel_size=vs))


def write(array, writer, tile_voxels, workers=1, extra=None):
    vs = array.spec.voxel_size
    reference = BatchRequest(
        {RAW: ArraySpec(roi=Roi((0,) * vs.dims, Coordinate(tile_voxels) * vs))}
    )
    source = ArraySource(RAW, array)
    if extra is not None:
        source = (source, ArraySource(LABELS, extra)) + _merge()
        reference[LABELS] = reference[RAW].copy()
    with build(source + writer + Scan(reference, num_workers=workers, progress=False)) as p:
        p.request_batch(BatchRequest())


def _merge():
    from gunpowder.pipeline import MultiNode

    class Merge(MultiNode):
        def setup(self, specs):
            out = specs[0].copy()
            for s in specs[1:]:
                out = out.update_with(s)
            return out

        def prepare(self, request, rng):
            reqs = []
            for spec in self.upstream_spec:
                r = BatchRequest({k: v for k, v in request.items() if k in spec})
                reqs.append(r if len(r) else None)
            return reqs, None

        def process(self, batches, ctx):
            out = batches[0]
            for b in batches[1:]:
                if b is not None:
                    out = out.merge(b)
            return out

    return Merge()


def read_back(source, key=RAW):
    with build(source) as p:
        spec = p.spec[key]
        return p.request_batch(BatchRequest({key: ArraySpec(roi=spec.roi)}))[key]


@settings(max_examples=12, deadline=None)
@given(
    vs=st.sampled_from([(1, 1, 1), (40, 4, 4), (8, 6, 2)]),
    offset_vox=st.tuples(*[st.integers(-3, 3)] * 3),
    shape=st.tuples(*[st.integers(1, 9)] * 3),
    tile=st.tuples(*[st.integers(1, 5)] * 3),
    channels=st.sampled_from([(), (3,)]),
    fmt=st.sampled_from(["zarr2", "zarr3", "hdf5"]),
)
def test_round_trip_data_and_metadata(tmp_path_factory, vs, offset_vox, shape, tile, channels, fmt):
    out = tmp_path_factory.mktemp("w")
    offset = Coordinate(offset_vox) * Coordinate(vs)
    array = make_array(vs, offset, shape, channels)
    tile = tuple(min(t, s) for t, s in zip(tile, shape))
    if fmt == "hdf5":
        write(array, Hdf5Write({RAW: "volumes/raw"}, str(out), compression_type="gzip"), tile)
        got = read_back(Hdf5Source(str(out / "output.hdf"), {RAW: "volumes/raw"}))
        with h5py.File(out / "output.hdf", "r") as f:
            ds = f["volumes/raw"]
            meta = read_spatial_metadata(dict(ds.attrs), ds.ndim)
    else:
        zf = 2 if fmt == "zarr2" else 3
        writer = ZarrWrite({RAW: "volumes/raw"}, str(out), "o.zarr", "gzip", zarr_format=zf)
        write(array, writer, tile, workers=2)
        got = read_back(ZarrSource(str(out / "o.zarr"), {RAW: "volumes/raw"}))
        z = zarr.open_array(str(out / "o.zarr"), path="volumes/raw", mode="r")
        assert z.metadata.zarr_format == zf
        meta = read_spatial_metadata(z.attrs.asdict(), z.ndim)
        group = zarr.open_group(str(out / "o.zarr"), path="volumes", mode="r")
        ome = read_ome_ngff(group.attrs.asdict(), "raw", z.ndim)
        assert (ome.voxel_size, ome.offset) == (Coordinate(vs), offset)
        assert ("ome" in group.attrs) == (zf == 3)
    assert (meta.voxel_size, meta.offset) == (Coordinate(vs), offset)
    assert got.spec.roi == array.spec.roi and got.spec.voxel_size == array.spec.voxel_size
    np.testing.assert_array_equal(got.data, array.data)


def test_dtypes_and_several_datasets(tmp_path):
    raw = make_array((4, 4, 4), (0, 0, 0), (6, 7, 8))
    labels = make_array((4, 4, 4), (0, 0, 0), (6, 7, 8), dtype=np.uint64, seed=1)
    writer = ZarrWrite(
        {RAW: "raw", LABELS: "seg/labels"}, str(tmp_path), dataset_dtypes={RAW: np.float16}
    )
    write(raw, writer, (4, 4, 4), extra=labels)
    root = zarr.open_group(str(tmp_path / "output.zarr"), mode="r")
    assert root["raw"].dtype == np.float16 and root["seg/labels"].dtype == np.uint64
    np.testing.assert_array_equal(root["raw"][:], raw.data.astype(np.float16))
    np.testing.assert_array_equal(root["seg/labels"][:], labels.data)
    # no image groups: "labels" is reserved by OME-NGFF, and the root holds an array and a group
    assert find_multiscales(root["seg"].attrs.asdict()) is None
    assert find_multiscales(root.attrs.asdict()) is None
    assert read_spatial_metadata(root["seg/labels"].attrs.asdict(), 3).voxel_size == (4, 4, 4)


def test_existing_dataset_is_written_within_its_roi(tmp_path):
    """1.x: an existing dataset keeps its geometry; a larger upstream writes only inside it."""
    first = make_array((1, 1, 1), (0, 0, 0), (4, 4, 4))
    write(first, ZarrWrite({RAW: "raw"}, str(tmp_path)), (2, 2, 2))
    larger = make_array((1, 1, 1), (-1, 0, 0), (6, 4, 4), seed=5)
    write(larger, ZarrWrite({RAW: "raw"}, str(tmp_path)), (3, 3, 3))
    stored = zarr.open_array(str(tmp_path / "output.zarr"), path="raw")
    assert stored.shape == (4, 4, 4)
    np.testing.assert_array_equal(stored[:], larger.data[1:5])
    # another voxel size or channel shape can not be written into it
    other = make_array((2, 1, 1), (0, 0, 0), (2, 4, 4))
    with pytest.raises(
        PipelineRequestError, match=r"ZarrWrite: RAW: .*raw already exists with resolution"
    ):
        write(other, ZarrWrite({RAW: "raw"}, str(tmp_path)), (2, 2, 2))
    channels = make_array((1, 1, 1), (0, 0, 0), (4, 4, 4), channels=(2,))
    with pytest.raises(PipelineRequestError, match=r"already exists with shape \(4, 4, 4\)"):
        write(channels, ZarrWrite({RAW: "raw"}, str(tmp_path)), (2, 2, 2))


@pytest.mark.parametrize("fmt", ["zarr", "hdf5", "n5"])
def test_unbounded_upstream_writes_into_an_existing_dataset(tmp_path, fmt):
    """After Pad(raw, None) the upstream ROI is unbounded: the writer fills the existing
    dataset (prepared beforehand, as for a daisy run) where the requests overlap it."""
    from gunpowder.nodes import Pad
    from gunpowder.nodes.n5_write import N5Write

    array = make_array((2, 1, 1), (0, 0, 0), (6, 5, 4))
    names = {"zarr": "out.zarr", "hdf5": "out.hdf", "n5": "out.n5"}
    cls = {"zarr": ZarrWrite, "hdf5": Hdf5Write, "n5": N5Write}[fmt]
    prepared = make_array((2, 1, 1), (2, 1, 0), (3, 3, 4), seed=9)  # a part of the volume
    write(prepared, cls({RAW: "pred"}, str(tmp_path), names[fmt]), (3, 3, 4))
    writer = cls({RAW: "pred"}, str(tmp_path), names[fmt])
    pipeline = ArraySource(RAW, array) + Pad(RAW, None) + writer
    with build(pipeline) as p:
        assert p.spec[RAW].roi.unbounded
        request = Roi((-2, -1, 0), (16, 7, 4))  # larger than the dataset and the data
        p.request_batch(BatchRequest({RAW: ArraySpec(roi=request)}))
    source_cls = {"zarr": ZarrSource, "hdf5": Hdf5Source, "n5": ZarrSource}[fmt]
    stored = read_back(source_cls(str(tmp_path / names[fmt]), {RAW: "pred"}))
    assert stored.spec.roi == prepared.spec.roi
    np.testing.assert_array_equal(stored.data, array.crop(prepared.spec.roi).data)
    # a new dataset can not be made from an unbounded ROI: said at build time
    with pytest.raises(PipelineSetupError, match=r"unbounded ROI .*other does not exist"):
        with build(
            ArraySource(RAW, array)
            + Pad(RAW, None)
            + cls({RAW: "other"}, str(tmp_path), names[fmt])
        ):
            pass


def test_zarr_store_objects_and_the_store_argument(tmp_path):
    """1.x `ZarrWrite(..., store=...)`: a path or a zarr (3) store object, read back."""
    array = make_array((4, 2, 2), (8, 2, 0), (5, 6, 7))
    for store in [
        tmp_path / "by_path.zarr",
        zarr.storage.LocalStore(str(tmp_path / "local.zarr")),
        zarr.storage.MemoryStore(),
    ]:
        write(array, ZarrWrite({RAW: "arrays/raw"}, store=store), (2, 3, 4))
        got = read_back(ZarrSource(store, {RAW: "arrays/raw"}))
        assert got.spec.roi == array.spec.roi and got.spec.voxel_size == (4, 2, 2)
        np.testing.assert_array_equal(got.data, array.data)
    assert (tmp_path / "by_path.zarr" / ".zgroup").exists()


def test_old_zarr_source_arguments(tmp_path):
    """1.x spellings: filename=, and datasets/filename swapped in keyword calls."""
    array = make_array((1, 1, 1), (0, 0, 0), (3, 3, 3))
    write(array, ZarrWrite({RAW: "raw"}, tmp_path, "data.zarr"), (3, 3, 3))
    path = str(tmp_path / "data.zarr")
    for source in [
        ZarrSource(filename=path, datasets={RAW: "raw"}),
        ZarrSource(datasets=path, filename={RAW: "raw"}),
        ZarrSource(path, {RAW: "raw"}),
    ]:
        np.testing.assert_array_equal(read_back(source).data, array.data)
    with pytest.raises(TypeError, match="not both"):
        ZarrSource(path, {RAW: "raw"}, filename=path)


def test_writer_needs_its_keys_and_a_bounded_roi(tmp_path):
    array = make_array((1, 1, 1), (0, 0, 0), (4, 4, 4))
    with pytest.raises(PipelineSetupError, match=r"Hdf5Write: needs WRITER_LABELS"):
        with build(ArraySource(RAW, array) + Hdf5Write({LABELS: "x"}, str(tmp_path))):
            pass
    with pytest.raises(TypeError, match="dataset_names"):
        ZarrWrite("raw")


def test_writer_passes_batches_through(tmp_path):
    array = make_array((1, 1, 1), (0, 0, 0), (4, 5, 6))
    sub = Roi((1, 1, 1), (2, 3, 4))
    with build(ArraySource(RAW, array) + ZarrWrite({RAW: "raw"}, str(tmp_path))) as p:
        batch = p.request_batch(BatchRequest({RAW: ArraySpec(roi=sub)}))
    np.testing.assert_array_equal(batch[RAW].data, array.crop(sub).data)
    stored = zarr.open_array(str(tmp_path / "output.zarr"), path="raw")[:]
    assert stored.shape == (4, 5, 6)
    np.testing.assert_array_equal(stored[1:3, 1:4, 1:5], array.crop(sub).data)
    assert not stored[0].any()
