"""Snapshot: zarr and HDF5 files that open with zarr/h5py and place arrays in world space."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import zarr

from gunpowder.batch import Array, Batch
from gunpowder.geometry import Coordinate, Roi
from gunpowder.io_metadata import find_multiscales, read_ome_ngff
from gunpowder.nodes import Hdf5Source, Snapshot, ZarrSource
from gunpowder.pipeline import FunctionNode, Source, build
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec

RAW = ArrayKey("RAW")
AFFS = ArrayKey("AFFS")
LABELS = ArrayKey("LABELS")
VOXEL = Coordinate(40, 4, 4)
TOTAL = Roi((400, -80, 120), Coordinate(10, 20, 20) * VOXEL)


class Volume(Source):
    """Raw, labels and 3-channel affinities over TOTAL, values from the voxel positions."""

    def setup(self, upstream_spec=None) -> ProviderSpec:
        spec = ProviderSpec()
        spec[RAW] = ArraySpec(roi=TOTAL, voxel_size=VOXEL, dtype=np.uint8, interpolatable=True)
        spec[LABELS] = ArraySpec(roi=TOTAL, voxel_size=VOXEL, dtype=np.uint64, interpolatable=False)
        spec[AFFS] = ArraySpec(roi=TOTAL, voxel_size=VOXEL, dtype=np.float32, interpolatable=True)
        return spec

    def provide(self, request: BatchRequest, rng: np.random.Generator) -> Batch:
        batch = Batch()
        for key, spec in request.items():
            roi = spec.roi
            grid = np.indices(tuple(roi.shape / VOXEL)).sum(axis=0) + sum(roi.begin / VOXEL)
            data = {
                RAW: (grid % 256).astype(np.uint8),
                LABELS: (grid // 3).astype(np.uint64),
                AFFS: np.stack([grid, grid + 1, grid + 2]).astype(np.float32) / 100,
            }[key]
            batch[key] = Array(data, ArraySpec(roi=roi, voxel_size=VOXEL))
        return batch


def request(seed: int = 0) -> BatchRequest:
    r = BatchRequest(random_seed=seed)
    r[RAW] = ArraySpec(roi=Roi((520, -64, 128), Coordinate(6, 12, 12) * VOXEL))
    r[AFFS] = ArraySpec(roi=Roi((600, -56, 136), Coordinate(4, 8, 8) * VOXEL))
    return r


def trained(batch: Batch, ctx) -> Batch:
    batch.loss = 0.25
    batch.iteration = 17
    return batch


def test_zarr_snapshot_places_arrays_in_world_space(tmp_path):
    extra = BatchRequest()
    extra[LABELS] = ArraySpec(roi=Roi((520, -64, 128), Coordinate(6, 12, 12) * VOXEL))
    snapshot = Snapshot(
        {RAW: "volumes/raw", AFFS: "volumes/pred_affs", LABELS: "volumes/labels/neuron_ids"},
        output_dir=tmp_path,
        output_filename="batch_{iteration}.zarr",
        additional_request=extra,
        dataset_dtypes={LABELS: np.uint32},
        store_value_range=True,
    )
    pipeline = Volume() + FunctionNode(process=trained) + snapshot
    with build(pipeline):
        batch = pipeline.request_batch(request())
    assert LABELS not in batch  # only requested for the snapshot
    root = zarr.open_group(str(tmp_path / "batch_17.zarr"), mode="r")
    assert root.attrs["loss"] == 0.25 and root.attrs["iteration"] == 17
    assert find_multiscales(root["volumes"].attrs.asdict()) is None  # not an image itself
    for name, key in (("volumes/raw", RAW), ("volumes/pred_affs", AFFS)):
        stored = root[f"{name}/s0"]  # each name is an image group holding its one scale
        np.testing.assert_array_equal(stored[...], batch[key].data)
        assert tuple(stored.attrs["resolution"]) == tuple(VOXEL)
        assert tuple(stored.attrs["offset"]) == tuple(batch[key].spec.roi.offset)
        # OME-NGFF on the image group says the same (what napari / neuroglancer read)
        assert len(find_multiscales(root[name].attrs.asdict())) == 1
        meta = read_ome_ngff(root[name].attrs.asdict(), "s0", stored.ndim)
        assert meta.voxel_size == VOXEL and meta.offset == batch[key].spec.roi.offset
    labels = root["volumes/labels/neuron_ids/s0"]
    assert labels.dtype == np.uint32
    assert list(labels.attrs["value_range"]) == [int(labels[...].min()), int(labels[...].max())]
    # a gunpowder source reads the snapshot back in place (a name resolves to its s0)
    source = ZarrSource(
        tmp_path / "batch_17.zarr", {AFFS: "volumes/pred_affs", RAW: "volumes/raw/s0"}
    )
    with build(source):
        assert source.spec[AFFS].roi == request()[AFFS].roi
        assert source.spec[AFFS].voxel_size == VOXEL
        assert source.spec[RAW].roi == request()[RAW].roi
        got = source.request_batch(request())
    np.testing.assert_array_equal(got[AFFS].data, batch[AFFS].data)


def test_zarr_snapshot_flat_layout_of_1x(tmp_path):
    """ome_ngff=False: arrays at their names with resolution/offset, no multiscales (1.x)."""
    snapshot = Snapshot(
        {RAW: "volumes/raw", AFFS: "volumes/affs"},
        output_dir=tmp_path,
        output_filename="flat.zarr",
        ome_ngff=False,
    )
    pipeline = Volume() + snapshot
    with build(pipeline):
        batch = pipeline.request_batch(request())
    root = zarr.open_group(str(tmp_path / "flat.zarr"), mode="r")
    for name, key in (("volumes/raw", RAW), ("volumes/affs", AFFS)):
        assert isinstance(root[name], zarr.Array)
        np.testing.assert_array_equal(root[name][...], batch[key].data)
        assert tuple(root[name].attrs["offset"]) == tuple(batch[key].spec.roi.offset)
    for group in (root, root["volumes"]):
        assert find_multiscales(group.attrs.asdict()) is None
    source = ZarrSource(tmp_path / "flat.zarr", {RAW: "volumes/raw"})
    with build(source):
        assert source.spec[RAW].roi == request()[RAW].roi


@pytest.mark.parametrize(
    "names, clash",
    [({RAW: "raw", AFFS: "raw/s0"}, "its array"), ({RAW: "a", AFFS: "a/labels"}, "labels")],
)
def test_image_names_that_would_collide_are_refused(names, clash):
    with pytest.raises(ValueError, match=f"Snapshot: dataset_names.*{clash}"):
        Snapshot(names)
    Snapshot(names, ome_ngff=False)  # plain arrays: no image groups to collide


def test_zarr_format_must_be_2_or_3():
    with pytest.raises(ValueError, match="zarr_format"):
        Snapshot({RAW: "raw"}, zarr_format=4)


def test_hdf5_snapshot_every_second_batch(tmp_path):
    snapshot = Snapshot(
        {RAW: "volumes/raw", AFFS: "volumes/affs"},
        output_dir=tmp_path,
        output_filename="{iteration}.hdf",
        every=2,
        compression_type="gzip",
    )
    pipeline = Volume() + snapshot
    with build(pipeline):
        batches = [pipeline.request_batch(request(i)) for i in range(5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.hdf", "2.hdf", "4.hdf"]
    with h5py.File(tmp_path / "2.hdf", "r") as f:
        raw = f["volumes/raw"]
        np.testing.assert_array_equal(raw[...], batches[2][RAW].data)
        assert tuple(raw.attrs["resolution"]) == tuple(VOXEL)
        assert tuple(raw.attrs["offset"]) == tuple(request()[RAW].roi.offset)
        assert f["volumes/affs"].shape == (3, 4, 8, 8)
        assert f["volumes/affs"].compression == "gzip"
    source = Hdf5Source(tmp_path / "0.hdf", {RAW: "volumes/raw"})
    with build(source):
        assert source.spec[RAW].roi == request()[RAW].roi


def test_every_must_be_positive():
    with pytest.raises(ValueError, match="every"):
        Snapshot({RAW: "raw"}, every=0)


def test_graphs_are_written_as_ids_locations_edges(tmp_path):
    from gunpowder.graph import Graph
    from gunpowder.spec import GraphKey, GraphSpec

    points = GraphKey("SNAPSHOT_POINTS")
    roi = Roi((0, 0, 0), (400, 80, 80))
    locations = np.array([[40.0, 8.0, 12.0], [200.0, 40.0, 60.0]])

    class Points(Source):
        def setup(self, upstream_spec=None) -> ProviderSpec:
            return ProviderSpec(graph_specs={points: GraphSpec(roi=roi)})

        def provide(self, request, rng) -> Batch:
            batch = Batch()
            spec = GraphSpec(roi=request[points].roi)
            batch[points] = Graph.from_arrays(locations, [5, 7], [[5, 7]], spec=spec)
            return batch

    req = BatchRequest(random_seed=0)
    req[points] = GraphSpec(roi=roi)
    pipeline = Points() + Snapshot({points: "tree"}, output_dir=tmp_path, output_filename="g.h5")
    with build(pipeline):
        pipeline.request_batch(req)
    with h5py.File(tmp_path / "g.h5", "r") as f:
        np.testing.assert_array_equal(f["tree-ids"][...], [5, 7])
        np.testing.assert_allclose(f["tree-locations"][...], locations)
        np.testing.assert_array_equal(f["tree-edges"][...], [[5, 7]])
