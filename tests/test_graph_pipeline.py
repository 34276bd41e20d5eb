"""The synapse example (points + raw → rasterised target) end to end, through the public names:
every batch has a synapse, the target marks every synapse in the batch, and points stay on
the voxels that carried their markers through location, elastic and simple augmentation."""

import h5py
import numpy as np

import gunpowder as gp


def make_sample(tmp_path, seed=0):
    """An anisotropic raw volume (40x4x4 nm) with a few synapses, marked in a label volume
    (1 x 3 x 3 voxels around each, so nearest-neighbour rotations can not lose a marker)."""
    rng = np.random.default_rng(seed)
    voxel_size = np.array([40, 4, 4])
    shape = np.array([20, 160, 160])
    voxels = rng.integers((2, 16, 16), shape - (2, 16, 16), size=(6, 3))
    locations = (voxels + rng.uniform(0.2, 0.8, size=voxels.shape)) * voxel_size
    markers = np.zeros(tuple(shape), dtype=np.uint32)
    for i, (z, y, x) in enumerate(voxels):  # 1 x 3 x 3 markers survive in-plane rotations
        markers[z, y - 1 : y + 2, x - 1 : x + 2] = i + 1
    raw = rng.integers(0, 255, size=tuple(shape), dtype=np.uint8)
    with h5py.File(tmp_path / "sample.hdf", "w") as f:
        for name, data in (("volumes/raw", raw), ("volumes/markers", markers)):
            ds = f.create_dataset(name, data=data)
            ds.attrs["resolution"] = tuple(voxel_size)
            ds.attrs["offset"] = (0, 0, 0)
    np.savetxt(tmp_path / "synapses.csv", locations, delimiter=",")
    return locations


def test_synapse_example(tmp_path):
    locations = make_sample(tmp_path)
    raw = gp.ArrayKey("RAW")
    markers = gp.ArrayKey("SYN_MARKERS")
    synapses = gp.GraphKey("SYNAPSES")
    target = gp.ArrayKey("SYNAPSE_TARGET")
    voxel_size = gp.Coordinate(40, 4, 4)
    volume = gp.Roi((0, 0, 0), gp.Coordinate(20, 160, 160) * voxel_size)

    source = (
        gp.Hdf5Source(
            tmp_path / "sample.hdf",
            datasets={raw: "volumes/raw", markers: "volumes/markers"},
            array_specs={markers: gp.ArraySpec(interpolatable=False)},
        ),
        gp.CsvPointsSource(
            tmp_path / "synapses.csv", synapses, points_spec=gp.GraphSpec(roi=volume)
        ),
    ) + gp.MergeProvider()
    pipeline = (
        source
        + gp.Normalize(raw)
        + gp.RandomLocation(ensure_nonempty=synapses, ensure_centered=True)
        + gp.ElasticAugment([2, 20, 20], [0, 1, 1], [0, np.pi / 2])
        + gp.SimpleAugment(transpose_only=[1, 2])
        + gp.RasterizeGraph(
            synapses,
            target,
            gp.ArraySpec(voxel_size=voxel_size),
            gp.RasterizationSettings(radius=(40, 12, 12)),
        )
    )
    request = gp.BatchRequest()
    request.add(raw, gp.Coordinate(6, 48, 48) * voxel_size)
    request.add(markers, gp.Coordinate(6, 48, 48) * voxel_size)
    request.add(synapses, gp.Coordinate(6, 48, 48) * voxel_size)
    request.add(target, gp.Coordinate(6, 48, 48) * voxel_size)

    with gp.build(pipeline):
        for seed in range(4):
            request.random_seed = seed
            batch = pipeline.request_batch(request)
            graph = batch[synapses]
            assert len(graph.nodes) > 0, "ensure_nonempty"
            roi = batch[target].spec.roi
            vs = np.array(voxel_size, dtype=np.float64)
            for node in graph.nodes:
                voxel = tuple(np.floor((node.location - np.array(roi.begin)) / vs).astype(int))
                assert batch[target].data[voxel] == 1, "a synapse's voxel is in the target"
                window = batch[markers].data[tuple(slice(max(v - 1, 0), v + 2) for v in voxel)]
                assert node.id + 1 in window, "the point stayed on its marker"
            assert batch[target].data.dtype == np.uint8
            assert batch[raw].data.shape == batch[target].data.shape
    assert len(locations) == 6


def test_snapshot_writes_points(tmp_path):
    points = gp.GraphKey("SNAP_POINTS")
    graph = gp.Graph.from_arrays(
        [[10.5, 20.0], [30.0, 40.0], [90.0, 90.0]],
        ids=[3, 5, 8],
        edges=[(3, 5)],
        spec=gp.GraphSpec(roi=gp.Roi((0, 0), (100, 100))),
    )
    pipeline = gp.GraphSource(points, graph) + gp.Snapshot(
        {points: "points"}, output_dir=tmp_path, output_filename="s.hdf"
    )
    request = gp.BatchRequest(random_seed=0)
    request[points] = gp.GraphSpec(roi=gp.Roi((0, 0), (50, 50)))
    with gp.build(pipeline):
        pipeline.request_batch(request)
    with h5py.File(tmp_path / "s.hdf", "r") as f:
        assert f["points-ids"][:].tolist() == [3, 5]
        assert np.allclose(f["points-locations"][:], [[10.5, 20.0], [30.0, 40.0]])
        assert f["points-edges"][:].tolist() == [[3, 5]]
