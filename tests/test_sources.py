"""Hdf5Source / ZarrSource: the voxels they serve equal direct slicing of the file, metadata
(gunpowder attributes, OME-NGFF, array_specs overrides) places them in the world, errors name
what the file contains, and a source survives pickling into worker processes."""

from __future__ import annotations

import multiprocessing
import os
import pickle

import h5py
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from gunpowder.errors import PipelineRequestError, PipelineSetupError
from gunpowder.geometry import Coordinate, Roi
from gunpowder.io_metadata import (
    NO_METADATA,
    find_multiscales,
    read_gunpowder_attrs,
    read_ome_ngff,
    read_spatial_metadata,
    write_ome_ngff_metadata,
    write_spatial_metadata,
)
from gunpowder.nodes import Hdf5Source, ZarrSource
from gunpowder.nodes.hdf5like_source_base import default_interpolatable
from gunpowder.pipeline import build
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest

RAW = ArrayKey("RAW")
LABELS = ArrayKey("GT_LABELS")
CHANNELS = ArrayKey("SRC_CHANNELS")

VOXEL_SIZE = Coordinate((40, 4, 4))
OFFSET = Coordinate((-80, 12, 400))
SHAPE = (9, 14, 17)
RNG = np.random.default_rng(42)
RAW_DATA = RNG.integers(0, 256, SHAPE, dtype=np.uint8)
LABEL_DATA = RNG.integers(0, 2**40, SHAPE, dtype=np.uint64)
CHANNEL_DATA = RNG.random((2,) + SHAPE).astype(np.float32)


# ------------------------------------------------------------------------------------------
# files


def chunks_for(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Small chunks that do not line up with the requested ROIs."""
    return tuple(min(n, c) for n, c in zip(shape, (4, 5, 6, 3)[-len(shape) :]))


def write_hdf5(path: str, chunked: bool) -> str:
    kwargs = {"compression": "gzip"} if chunked else {}
    with h5py.File(path, "w") as f:
        for name, data in (
            ("volumes/raw", RAW_DATA),
            ("volumes/labels/ids", LABEL_DATA),
            ("volumes/channels", CHANNEL_DATA),
            ("volumes/channels_last", np.moveaxis(CHANNEL_DATA, 0, -1)),
        ):
            chunks = chunks_for(data.shape) if chunked else None
            ds = f.create_dataset(name, data=data, chunks=chunks, **kwargs)
            write_spatial_metadata(ds.attrs, VOXEL_SIZE, OFFSET)
        f.create_dataset("plain", data=RAW_DATA)
    return path


def write_zarr(path: str, zarr_format: int) -> str:
    root = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    for name, data in (
        ("volumes/raw", RAW_DATA),
        ("volumes/labels/ids", LABEL_DATA),
        ("volumes/channels", CHANNEL_DATA),
        ("volumes/channels_last", np.moveaxis(CHANNEL_DATA, 0, -1)),
    ):
        arr = root.create_array(
            name, shape=data.shape, dtype=data.dtype, chunks=chunks_for(data.shape)
        )
        arr[...] = data
        write_spatial_metadata(arr.attrs, VOXEL_SIZE, OFFSET)
    root.create_array("plain", shape=SHAPE, dtype=np.uint8)[...] = RAW_DATA
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("sources")
    return {
        "hdf5": write_hdf5(str(d / "contiguous.hdf"), chunked=False),
        "hdf5-chunked": write_hdf5(str(d / "chunked.h5"), chunked=True),
        "zarr2": write_zarr(str(d / "v2.zarr"), 2),
        "zarr3": write_zarr(str(d / "v3.zarr"), 3),
    }


def make_source(kind: str, path: str, datasets: dict, **kwargs):
    if kind.startswith("hdf5"):
        return Hdf5Source(path, datasets, **kwargs)
    return ZarrSource(path, datasets, **kwargs)


KINDS = ["hdf5", "hdf5-chunked", "zarr2", "zarr3"]


@st.composite
def voxel_rois(draw, shape=SHAPE):
    """A non-empty voxel-index box inside `shape`: (begin, end) per axis."""
    begin, end = [], []
    for n in shape:
        b = draw(st.integers(0, n - 1))
        e = draw(st.integers(b + 1, n))
        begin.append(b)
        end.append(e)
    return Coordinate(begin), Coordinate(end)


def world_roi(begin: Coordinate, end: Coordinate) -> Roi:
    """The world ROI of voxels [begin, end) of the test data (by definition of voxel size and
    offset: voxel i covers offset + i * voxel_size ... + voxel_size)."""
    return Roi(OFFSET + begin * VOXEL_SIZE, (end - begin) * VOXEL_SIZE)


def request_for(**rois: Roi) -> BatchRequest:
    request = BatchRequest(random_seed=0)
    for key, roi in rois.items():
        request[ArrayKey(key)] = ArraySpec(roi=roi)
    return request


# ------------------------------------------------------------------------------------------
# same voxels as slicing the file


@pytest.mark.parametrize("kind", KINDS)
def test_serves_the_voxels_of_the_file(files, kind):
    source = make_source(
        kind,
        files[kind],
        {RAW: "volumes/raw", LABELS: "/volumes/labels/ids", CHANNELS: "volumes/channels"},
    )
    with build(source) as pipeline:
        provided = pipeline.spec
        assert provided[RAW].roi == Roi(OFFSET, Coordinate(SHAPE) * VOXEL_SIZE)
        assert provided[RAW].voxel_size == VOXEL_SIZE
        assert provided[RAW].dtype == np.uint8 and provided[LABELS].dtype == np.uint64
        assert provided[CHANNELS].roi == provided[RAW].roi

        @settings(max_examples=25)
        @given(voxel_rois(), voxel_rois())
        def check(box, box2):
            (b, e), (b2, e2) = box, box2
            request = request_for(
                RAW=world_roi(b, e), GT_LABELS=world_roi(b2, e2), SRC_CHANNELS=world_roi(b2, e2)
            )
            batch = pipeline.request_batch(request)
            want = RAW_DATA[b[0] : e[0], b[1] : e[1], b[2] : e[2]]
            np.testing.assert_array_equal(batch[RAW].data, want)
            sl = (slice(b2[0], e2[0]), slice(b2[1], e2[1]), slice(b2[2], e2[2]))
            np.testing.assert_array_equal(batch[LABELS].data, LABEL_DATA[sl])
            np.testing.assert_array_equal(batch[CHANNELS].data, CHANNEL_DATA[(slice(None),) + sl])
            assert batch[RAW].spec.roi == request[RAW].roi
            assert batch[RAW].data.dtype == np.uint8 and batch[LABELS].data.dtype == np.uint64

        check()


@pytest.mark.parametrize("kind", ["hdf5", "zarr3"])
def test_channels_last_is_served_channels_first(files, kind):
    source = make_source(
        kind, files[kind], {CHANNELS: "volumes/channels_last"}, channels_first=False
    )
    with build(source) as pipeline:

        @settings(max_examples=10)
        @given(voxel_rois())
        def check(box):
            b, e = box
            batch = pipeline.request_batch(request_for(SRC_CHANNELS=world_roi(b, e)))
            want = CHANNEL_DATA[:, b[0] : e[0], b[1] : e[1], b[2] : e[2]]
            np.testing.assert_array_equal(batch[CHANNELS].data, want)
            assert batch[CHANNELS].data.flags.c_contiguous

        check()


def test_without_metadata_voxel_size_one_offset_zero(files):
    for kind in ("hdf5", "zarr2"):
        with build(make_source(kind, files[kind], {RAW: "plain"})) as pipeline:
            spec = pipeline.spec[RAW]
            assert spec.voxel_size == (1, 1, 1)
            assert spec.roi == Roi((0, 0, 0), SHAPE)
            batch = pipeline.request_batch(request_for(RAW=Roi((1, 2, 3), (4, 5, 6))))
            np.testing.assert_array_equal(batch[RAW].data, RAW_DATA[1:5, 2:7, 3:9])


def test_interpolatable_default_follows_dtype(files):
    assert default_interpolatable(np.float32) and default_interpolatable(np.uint8)
    assert not default_interpolatable(np.uint64) and not default_interpolatable(np.int32)
    with build(Hdf5Source(files["hdf5"], {RAW: "volumes/raw", LABELS: "volumes/labels/ids"})) as p:
        assert p.spec[RAW].interpolatable is True
        assert p.spec[LABELS].interpolatable is False


def test_big_endian_and_userblock_hdf5(tmp_path):
    path = str(tmp_path / "ub.h5")
    data = np.arange(6 * 7 * 8, dtype=np.uint16).reshape(6, 7, 8)
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("le", data=data)
        f.create_dataset("be", data=data.astype(">u2"))
    source = Hdf5Source(path, {RAW: "le", LABELS: "be"})
    with build(source) as pipeline:
        assert pipeline.spec[LABELS].dtype == np.dtype("=u2")
        roi = Roi((1, 2, 3), (4, 4, 4))
        batch = pipeline.request_batch(request_for(RAW=roi, GT_LABELS=roi))
        np.testing.assert_array_equal(batch[RAW].data, data[1:5, 2:6, 3:7])
        np.testing.assert_array_equal(batch[LABELS].data, data[1:5, 2:6, 3:7])
        assert batch[LABELS].data.dtype.isnative


# ------------------------------------------------------------------------------------------
# array_specs overrides


@settings(max_examples=15)
@given(
    voxel_size=st.tuples(*[st.integers(1, 50)] * 3).map(Coordinate),
    origin=st.tuples(*[st.integers(-20, 20)] * 3).map(Coordinate),
    box=voxel_rois(),
)
def test_array_specs_override_voxel_size_and_roi(files, voxel_size, origin, box):
    b, e = box
    roi = Roi(origin * voxel_size, Coordinate(SHAPE) * voxel_size)
    source = Hdf5Source(
        files["hdf5"],
        {RAW: "plain"},
        array_specs={RAW: ArraySpec(roi=roi, voxel_size=voxel_size, interpolatable=False)},
    )
    with build(source) as pipeline:
        assert pipeline.spec[RAW].roi == roi and pipeline.spec[RAW].interpolatable is False
        want_roi = Roi(roi.offset + b * voxel_size, (e - b) * voxel_size)
        batch = pipeline.request_batch(request_for(RAW=want_roi))
        np.testing.assert_array_equal(
            batch[RAW].data, RAW_DATA[b[0] : e[0], b[1] : e[1], b[2] : e[2]]
        )


def test_voxel_size_override_keeps_the_file_offset(files):
    source = Hdf5Source(
        files["hdf5"],
        {CHANNELS: "volumes/channels"},
        array_specs={CHANNELS: ArraySpec(voxel_size=(20, 2, 4))},
    )
    with build(source) as pipeline:
        assert pipeline.spec[CHANNELS].roi == Roi(OFFSET, Coordinate(SHAPE) * Coordinate(20, 2, 4))
        roi = Roi(OFFSET + Coordinate(20, 4, 8), (40, 6, 4))
        batch = pipeline.request_batch(request_for(SRC_CHANNELS=roi))
        np.testing.assert_array_equal(batch[CHANNELS].data, CHANNEL_DATA[:, 1:3, 2:5, 2:3])


def test_voxel_size_override_declares_channel_axes(files):
    source = ZarrSource(
        files["zarr2"],
        {CHANNELS: "volumes/channels"},
        array_specs={CHANNELS: ArraySpec(voxel_size=(4, 4))},
    )
    # the file says 3 spatial dims (offset has 3 values): a clear error, not a crash
    with pytest.raises(PipelineSetupError, match="offset .* differ in dimensions"):
        with build(source):
            pass
    source = ZarrSource(
        files["zarr2"],
        {CHANNELS: "volumes/channels"},
        array_specs={CHANNELS: ArraySpec(roi=Roi((0, 0), (56, 68)), voxel_size=(4, 4))},
    )
    with build(source) as pipeline:
        batch = pipeline.request_batch(request_for(SRC_CHANNELS=Roi((8, 4), (8, 12))))
        np.testing.assert_array_equal(batch[CHANNELS].data, CHANNEL_DATA[:, :, 2:4, 1:4])


def test_override_errors(files):
    bad_dtype = Hdf5Source(
        files["hdf5"], {RAW: "volumes/raw"}, array_specs={RAW: ArraySpec(dtype=np.float32)}
    )
    with pytest.raises(PipelineSetupError, match="dtype float32.*uint8"):
        with build(bad_dtype):
            pass
    too_big = Hdf5Source(
        files["hdf5"], {RAW: "plain"}, array_specs={RAW: ArraySpec(roi=Roi((0, 0, 0), (99, 1, 1)))}
    )
    with pytest.raises(PipelineSetupError, match="larger than the data"):
        with build(too_big):
            pass
    with pytest.raises(TypeError, match="not in datasets"):
        Hdf5Source(files["hdf5"], {RAW: "plain"}, array_specs={LABELS: ArraySpec()})


def test_nonspatial_dataset(files):
    source = Hdf5Source(
        files["hdf5"], {RAW: "plain"}, array_specs={RAW: ArraySpec(nonspatial=True)}
    )
    with build(source) as pipeline:
        request = BatchRequest(random_seed=0)
        request[RAW] = ArraySpec(nonspatial=True)
        np.testing.assert_array_equal(pipeline.request_batch(request)[RAW].data, RAW_DATA)


# ------------------------------------------------------------------------------------------
# metadata


@settings(max_examples=30)
@given(
    voxel_size=st.tuples(*[st.integers(1, 100)] * 3).map(Coordinate),
    offset=st.tuples(*[st.integers(-1000, 1000)] * 3).map(Coordinate),
    channels=st.integers(0, 2),
    version=st.sampled_from(["0.4", "0.5"]),
    unit=st.sampled_from(["nanometer", "micrometer", "angstrom"]),
)
def test_metadata_round_trip(voxel_size, offset, channels, version, unit):
    attrs: dict = {}
    write_spatial_metadata(attrs, voxel_size, offset)
    meta = read_gunpowder_attrs(attrs)
    assert (meta.voxel_size, meta.offset) == (voxel_size, offset)
    funlib_style = {"voxel_size": list(voxel_size), "offset": list(offset)}
    assert read_gunpowder_attrs(funlib_style) == meta

    group: dict = {}
    ndim = channels + 3
    write_ome_ngff_metadata(group, [("s0", voxel_size, offset)], ndim, unit=unit, version=version)
    assert find_multiscales(group)
    meta = read_ome_ngff(group, "s0", ndim)
    assert (meta.voxel_size, meta.offset, meta.spatial_dims) == (voxel_size, offset, 3)
    assert read_spatial_metadata({}, ndim, group, "s0") == meta
    assert read_ome_ngff(group, "s1", ndim) is NO_METADATA


def test_ome_ngff_composes_transformations_and_converts_units():
    group = {
        "multiscales": [
            {
                "version": "0.4",
                "axes": [
                    {"name": "c", "type": "channel"},
                    {"name": "z", "type": "space", "unit": "micrometer"},
                    {"name": "y", "type": "space", "unit": "micrometer"},
                    {"name": "x", "type": "space", "unit": "micrometer"},
                ],
                "datasets": [
                    {
                        "path": "s0",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [1, 0.02, 0.002, 0.002]},
                            {"type": "translation", "translation": [0, 0.1, 0.01, -0.02]},
                        ],
                    },
                    {
                        "path": "s1",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [1, 0.04, 0.004, 0.004]},
                        ],
                    },
                ],
                "coordinateTransformations": [{"type": "scale", "scale": [1, 2, 2, 2]}],
            }
        ]
    }
    s0 = read_ome_ngff(group, "s0", 4)
    assert s0.voxel_size == (40, 4, 4) and s0.offset == (200, 20, -40)
    s1 = read_ome_ngff(group, "/s1", 4)
    assert s1.voxel_size == (80, 8, 8) and s1.offset == (0, 0, 0)
    with pytest.raises(ValueError, match="has 4 axes, but dataset .s0. has 3"):
        read_ome_ngff(group, "s0", 3)
    bad = {
        "multiscales": [
            dict(
                group["multiscales"][0], axes=[{"name": "x", "type": "space", "unit": "second"}] * 4
            )
        ]
    }
    with pytest.raises(ValueError, match="not a length unit"):
        read_ome_ngff(bad, "s0", 4)


@pytest.mark.parametrize("zarr_format,version", [(2, "0.4"), (3, "0.5")])
def test_zarr_source_reads_ome_ngff_multiscales(tmp_path, zarr_format, version):
    path = str(tmp_path / f"ome{zarr_format}.zarr")
    root = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    levels = {
        "s0": (RAW_DATA, Coordinate((40, 4, 4)), Coordinate((80, 8, -12))),
        "s1": (RAW_DATA[:, ::2, ::2], Coordinate((40, 8, 8)), Coordinate((80, 8, -16))),
    }
    group = root.require_group("raw")
    for name, (data, _, _) in levels.items():
        group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=(4, 4, 4))[...] = data
    write_ome_ngff_metadata(
        group.attrs, [(n, vs, off) for n, (_, vs, off) in levels.items()], 3, version=version
    )
    # "raw" (the multiscale group) serves its first level, "raw/s1" the second
    with build(ZarrSource(path, {RAW: "raw", LABELS: "raw/s1"})) as pipeline:
        for key, (data, vs, off) in ((RAW, levels["s0"]), (LABELS, levels["s1"])):
            spec = pipeline.spec[key]
            assert spec.voxel_size == vs
            assert spec.roi == Roi(off, Coordinate(data.shape) * vs)
            roi = Roi(off + vs * Coordinate(1, 2, 3), vs * Coordinate(3, 2, 2))
            batch = pipeline.request_batch(request_for(**{str(key): roi}))
            np.testing.assert_array_equal(batch[key].data, data[1:4, 2:4, 3:5])


def test_gunpowder_attributes_win_over_ome_ngff(tmp_path):
    path = str(tmp_path / "both.zarr")
    root = zarr.open_group(path, mode="w", zarr_format=2)
    arr = root.create_array("raw/s0", shape=SHAPE, dtype=np.uint8)
    write_spatial_metadata(arr.attrs, (40, 4, 4), (0, 0, 0))
    write_ome_ngff_metadata(root["raw"].attrs, [("s0", (1, 1, 1), (5, 5, 5))], 3)
    with build(ZarrSource(path, {RAW: "raw/s0"})) as pipeline:
        assert pipeline.spec[RAW].voxel_size == (40, 4, 4)
        assert pipeline.spec[RAW].roi.offset == (0, 0, 0)


def test_non_integer_metadata_is_a_clear_error(tmp_path):
    path = str(tmp_path / "frac.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=RAW_DATA).attrs["resolution"] = [40, 4.5, 4]
    with pytest.raises(PipelineSetupError, match=r"Hdf5Source.*RAW.*'raw'.*whole number"):
        with build(Hdf5Source(path, {RAW: "raw"})):
            pass
    with build(
        Hdf5Source(
            path,
            {RAW: "raw"},
            array_specs={RAW: ArraySpec(roi=Roi((0, 0, 0), (360, 56, 68)), voxel_size=(40, 4, 4))},
        )
    ) as p:
        assert p.spec[RAW].voxel_size == (40, 4, 4)


def test_offset_off_the_voxel_grid_is_a_setup_error(tmp_path):
    path = str(tmp_path / "offgrid.h5")
    with h5py.File(path, "w") as f:
        write_spatial_metadata(f.create_dataset("raw", data=RAW_DATA).attrs, (40, 4, 4), (20, 0, 0))
    with pytest.raises(PipelineSetupError, match="not a multiple of the voxel size"):
        with build(Hdf5Source(path, {RAW: "raw"})):
            pass


# ------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("kind", ["hdf5", "zarr3"])
def test_missing_file_names_node_and_directory(files, kind):
    path = files[kind] + ".typo"
    with pytest.raises(PipelineSetupError) as info:
        with build(make_source(kind, path, {RAW: "volumes/raw"})):
            pass
    message = str(info.value)
    assert ("Hdf5Source" if kind == "hdf5" else "ZarrSource") in message
    assert "does not exist" in message and os.path.basename(files[kind]) in message


@pytest.mark.parametrize("kind", ["hdf5", "zarr2", "zarr3"])
def test_missing_dataset_lists_the_contents(files, kind):
    with pytest.raises(PipelineSetupError) as info:
        with build(make_source(kind, files[kind], {RAW: "volumes/raw", LABELS: "volumes/nope"})):
            pass
    message = str(info.value)
    assert "'volumes/nope'" in message and "GT_LABELS" in message and "does not exist" in message
    for name in ("volumes/raw", "volumes/labels/ids", "volumes/channels", "plain"):
        assert name in message
    assert "(9, 14, 17)" in message


def test_group_instead_of_dataset(files):
    with pytest.raises(PipelineSetupError, match="'volumes' for RAW is a group"):
        with build(Hdf5Source(files["hdf5"], {RAW: "volumes"})):
            pass


def test_not_an_hdf5_file(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("hello")
    with pytest.raises(PipelineSetupError, match="can not open"):
        with build(Hdf5Source(str(path), {RAW: "raw"})):
            pass


@pytest.mark.parametrize("kind", ["hdf5", "zarr2"])
def test_request_partly_outside_the_dataset(files, kind):
    with build(make_source(kind, files[kind], {RAW: "volumes/raw"})) as pipeline:
        inside = world_roi(Coordinate((0, 0, 0)), Coordinate(SHAPE))
        with pytest.raises(PipelineRequestError, match="outside the provided ROI"):
            pipeline.request_batch(request_for(RAW=inside.shift(VOXEL_SIZE * Coordinate(0, 0, -1))))
        with pytest.raises(PipelineRequestError, match="outside the provided ROI"):
            pipeline.request_batch(request_for(RAW=inside.grow((0, 0, 0), VOXEL_SIZE)))


# ------------------------------------------------------------------------------------------
# files open lazily, per process


def test_files_open_lazily_and_close_at_teardown(files):
    source = Hdf5Source(files["hdf5-chunked"], {RAW: "volumes/raw"})
    with build(source) as pipeline:
        assert source._state is None  # setup read the metadata and closed the file
        pipeline.request_batch(
            request_for(RAW=world_roi(Coordinate((0, 0, 0)), Coordinate((2, 2, 2))))
        )
        assert source._state is not None and source._state.container.id.valid
        handle = source._state.container
    assert source._state is None and not handle.id.valid
    with h5py.File(files["hdf5-chunked"], "a"):  # no lock left behind
        pass


@pytest.mark.parametrize("kind", KINDS)
def test_pickle_round_trip(files, kind):
    source = make_source(kind, files[kind], {RAW: "volumes/raw"})
    roi = world_roi(Coordinate((1, 2, 3)), Coordinate((5, 9, 11)))
    with build(source) as pipeline:
        first = pipeline.request_batch(request_for(RAW=roi))[RAW].data
        clone = pickle.loads(pickle.dumps(source))
        assert clone._state is None
    with build(clone) as pipeline:
        again = pipeline.request_batch(request_for(RAW=roi))[RAW].data
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(again, RAW_DATA[1:5, 2:9, 3:11])


def _read_in_worker(args):
    """Build a pickled source in this (worker) process and read a ROI from it."""
    source_bytes, roi = args
    source = pickle.loads(source_bytes)
    with build(source) as pipeline:
        batch = pipeline.request_batch(request_for(RAW=roi))
    return os.getpid(), batch[RAW].data


_INHERITED_BY_FORK: tuple = ()


def _read_built(_):
    """Read through the built pipeline this forked process inherited (not pickled)."""
    pipeline, roi = _INHERITED_BY_FORK
    state = pipeline.node._state
    return os.getpid(), pipeline.request_batch(request_for(RAW=roi))[RAW].data, state.pid


def test_source_works_in_a_spawned_worker(files):
    rois = [world_roi(Coordinate((i, 0, 2)), Coordinate((i + 3, 10, 12))) for i in range(2)]
    jobs = [
        (pickle.dumps(make_source(kind, files[kind], {RAW: "volumes/raw"})), roi)
        for kind in ("hdf5", "zarr3")
        for roi in rois
    ]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        results = pool.map(_read_in_worker, jobs)
    for (pid, data), (_, roi) in zip(results, jobs):
        assert pid != os.getpid()
        b = (roi.offset - OFFSET) / VOXEL_SIZE
        e = (roi.end - OFFSET) / VOXEL_SIZE
        np.testing.assert_array_equal(data, RAW_DATA[b[0] : e[0], b[1] : e[1], b[2] : e[2]])


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_forked_worker_opens_its_own_handle(files):
    global _INHERITED_BY_FORK
    source = Hdf5Source(files["hdf5-chunked"], {RAW: "volumes/raw"})
    roi = world_roi(Coordinate((2, 3, 4)), Coordinate((6, 8, 10)))
    with build(source) as pipeline:
        pipeline.request_batch(request_for(RAW=roi))  # the parent has the file open
        parent_handle = source._state.container
        _INHERITED_BY_FORK = (pipeline, roi)
        try:
            with multiprocessing.get_context("fork").Pool(1) as pool:
                pid, data, state_pid = pool.apply(_read_built, (None,))
        finally:
            _INHERITED_BY_FORK = ()
        assert pid != os.getpid() and state_pid == os.getpid()  # inherited the parent's state
        assert source._state.container is parent_handle and parent_handle.id.valid
        np.testing.assert_array_equal(data, RAW_DATA[2:6, 3:8, 4:10])
        np.testing.assert_array_equal(pipeline.request_batch(request_for(RAW=roi))[RAW].data, data)


def test_zarr_store_objects_and_1x_filename_argument(files):
    from zarr.storage import LocalStore, MemoryStore

    memory = MemoryStore()
    root = zarr.open_group(memory, mode="w", zarr_format=3)
    write_spatial_metadata(
        root.create_array("raw", shape=SHAPE, dtype=np.uint8).attrs, VOXEL_SIZE, OFFSET
    )
    root["raw"][...] = RAW_DATA
    roi = world_roi(Coordinate((3, 1, 0)), Coordinate((7, 9, 4)))
    for source in (
        ZarrSource(memory, {RAW: "raw"}),
        pickle.loads(
            pickle.dumps(
                ZarrSource(LocalStore(files["zarr2"], read_only=True), {RAW: "volumes/raw"})
            )
        ),
        ZarrSource(filename=files["zarr3"], datasets={RAW: "volumes/raw"}),
    ):
        with build(source) as pipeline:
            data = pipeline.request_batch(request_for(RAW=roi))[RAW].data
        np.testing.assert_array_equal(data, RAW_DATA[3:7, 1:9, 0:4])


@pytest.mark.parametrize("kind", ["hdf5", "zarr3"])
def test_concurrent_requests_from_threads(files, kind):
    from concurrent.futures import ThreadPoolExecutor

    boxes = [
        (Coordinate((i % 5, i % 7, i % 3)), Coordinate((i % 5 + 4, i % 7 + 7, i % 3 + 9)))
        for i in range(24)
    ]
    with build(make_source(kind, files[kind], {RAW: "volumes/raw"})) as pipeline:
        with ThreadPoolExecutor(4) as pool:
            results = list(
                pool.map(
                    lambda box: pipeline.request_batch(request_for(RAW=world_roi(*box)))[RAW].data,
                    boxes,
                )
            )
    for (b, e), data in zip(boxes, results):
        np.testing.assert_array_equal(data, RAW_DATA[b[0] : e[0], b[1] : e[1], b[2] : e[2]])
