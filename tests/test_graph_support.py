"""Graphs through the spatial nodes: after any augmentation a point lies on (or within one voxel
of) the voxel that carried its marker before; padded and stored graphs; sampling near points
so that `ensure_nonempty` batches always contain a point."""

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gunpowder.batch import Array
from gunpowder.errors import PipelineRequestError
from gunpowder.geometry import Coordinate, Roi
from gunpowder.graph import Graph
from gunpowder.nodes import ArraySource, GraphSource, MergeProvider
from gunpowder.nodes._graph_index import PointIndex
from gunpowder.nodes._graph_support import (
    graph_datasets,
    graph_nonempty,
    pad_graph,
    pad_graph_request,
    pad_graph_spec,
    point_index_for,
    read_point_index,
    section_shift_graph,
    shift_graph,
    shifts_near_points,
    transform_graph,
)
from gunpowder.pipeline import Node, build
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest, GraphKey, GraphSpec

POINTS = GraphKey("SUPPORT_POINTS")
MARKERS = ArrayKey("SUPPORT_MARKERS")


def marked_volume(rng, shape, vs, n, blob=0, margin=4, region=None):
    """Points at random sub-voxel positions, far apart (in voxels `region` = (lo, hi) if
    given); `markers` carries i + 1 in the voxel of point i (and `blob` voxels around it)."""
    shape = np.array(shape)
    vs_arr = np.array(vs, dtype=np.float64)
    lo, hi = (margin, shape - margin) if region is None else region
    voxels = []
    while len(voxels) < n:
        v = rng.integers(lo, hi, size=len(shape))
        if all(np.max(np.abs(v - w)) > 2 * blob + 2 for w in voxels):
            voxels.append(v)
    voxels = np.array(voxels)
    locations = (voxels + rng.uniform(0.05, 0.95, size=voxels.shape)) * vs_arr
    markers = np.zeros(tuple(shape), dtype=np.uint32)
    for i, v in enumerate(voxels):
        markers[tuple(slice(max(0, c - blob), c + blob + 1) for c in v)] = i + 1
    roi = Roi((0,) * len(shape), Coordinate(shape) * Coordinate(vs))
    graph = Graph.from_arrays(locations, spec=GraphSpec(roi=roi, directed=False))
    array = Array(markers, ArraySpec(roi=roi, voxel_size=vs, interpolatable=False))
    return graph, array


def source_for(graph, array):
    return (GraphSource(POINTS, graph), ArraySource(MARKERS, array)) + MergeProvider()


def request_for(roi, seed):
    request = BatchRequest(random_seed=seed)
    request[MARKERS] = ArraySpec(roi=roi)
    request[POINTS] = GraphSpec(roi=roi)
    return request


def assert_points_on_markers(batch, tolerance):
    """Every point's voxel (or one within `tolerance` voxels) carries the point's marker."""
    markers = batch[MARKERS]
    graph = batch[POINTS]
    vs = np.array(markers.spec.voxel_size, dtype=np.float64)
    begin = np.array(markers.spec.roi.begin, dtype=np.float64)
    data = markers.data
    for node in graph.nodes:
        voxel = np.floor((node.location - begin) / vs).astype(int)
        lo = np.maximum(voxel - tolerance, 0)
        hi = np.minimum(voxel + tolerance + 1, data.shape)
        window = data[tuple(slice(a, b) for a, b in zip(lo, hi))]
        assert node.id + 1 in window, (
            f"point {node.id} at {node.location} (voxel {voxel}) is not on its marker; "
            f"window holds {np.unique(window)}"
        )
    return len(graph.nodes)


def _node_class(name):
    return getattr(importlib.import_module("gunpowder.nodes"), name)


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_simple_augment_points_stay_on_their_voxel_exactly(seed):
    SimpleAugment = _node_class("SimpleAugment")
    rng = np.random.default_rng(seed)
    vs = (8, 4, 4)
    graph, array = marked_volume(rng, (24, 24, 24), vs, 12, margin=0, region=(4, 16))
    pipeline = source_for(graph, array) + SimpleAugment()
    roi = Roi((32, 16, 16), (96, 48, 48))
    with build(pipeline) as p:
        batch = p.request_batch(request_for(roi, seed))
    assert assert_points_on_markers(batch, tolerance=0) > 0
    # exactly the points whose marker is in the batch come out
    assert set(batch[POINTS].node_ids + 1) == set(np.unique(batch[MARKERS].data)) - {0}


@pytest.mark.parametrize("name", ["ElasticAugment", "DeformAugment"])
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_warped_points_stay_within_one_voxel_of_their_marker(name, seed):
    cls = _node_class(name)
    rng = np.random.default_rng(seed)
    vs = (4, 4, 4)
    graph, array = marked_volume(rng, (40, 40, 40), vs, 14, blob=1, region=(12, 28))
    if name == "ElasticAugment":
        node = cls([8, 8, 8], [1.0, 1.0, 1.0], [0, np.pi / 2], scale_interval=(0.9, 1.1))
    else:
        node = cls([8, 8, 8], [1.0, 1.0, 1.0], scale_interval=(0.9, 1.1))
    pipeline = source_for(graph, array) + node
    roi = Roi((40, 40, 40), (80, 80, 80))
    with build(pipeline) as p:
        batch = p.request_batch(request_for(roi, seed))
    assert assert_points_on_markers(batch, tolerance=1) > 0


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_shift_augment_points_move_with_their_sections(seed):
    ShiftAugment = _node_class("ShiftAugment")
    rng = np.random.default_rng(seed)
    graph, array = marked_volume(rng, (20, 30, 30), (8, 4, 4), 10, region=(6, (14, 24, 24)))
    # shifted sections read markers beyond the data: Pad provides them (as in 1.x, ShiftAugment
    # does not make data up)
    pad = importlib.import_module("gunpowder.nodes").Pad(MARKERS, None)
    pipeline = source_for(graph, array) + pad + ShiftAugment(prob_slip=0.3, prob_shift=0.3, sigma=8)
    with build(pipeline) as p:
        batch = p.request_batch(request_for(Roi((16, 20, 20), (128, 80, 80)), seed))
    assert assert_points_on_markers(batch, tolerance=0) > 0


def test_transform_graph_with_a_spatial_transform():
    elastic = pytest.importorskip("gunpowder.transforms.elastic")
    rng = np.random.default_rng(0)
    vs = (4, 4, 4)
    graph, array = marked_volume(rng, (30, 30, 30), vs, 10, blob=1)
    transform = elastic.build_transform(
        (0, 0, 0), vs, (30, 30, 30), affine=elastic.random_rotation(rng, 3)
    )
    roi = graph.spec.roi
    moved = transform_graph(graph, transform, roi)
    warped = transform.warp(array.data, (0, 0, 0), vs, (0, 0, 0), (30, 30, 30), False)
    batch = {POINTS: moved, MARKERS: Array(warped, array.spec)}
    assert assert_points_on_markers(batch, tolerance=1) > 0
    # sub-voxel precision: each moved point maps back onto where it came from
    original = np.stack([graph.node(i).location for i in moved.node_ids])
    assert np.allclose(transform.to_source(moved.locations), original, atol=1e-3 * vs[0])
    # a plain callable works too, and points leaving the ROI are dropped
    out = transform_graph(graph, lambda p: p + 1000.0, roi)
    assert len(out) == 0 and out.spec.roi == roi


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_section_shift_graph_moves_points_with_their_voxels(seed):
    rng = np.random.default_rng(seed)
    vs = (8, 4, 4)
    graph, array = marked_volume(rng, (10, 12, 12), vs, 6, margin=0)
    roi = graph.spec.roi
    voxel_shifts = rng.integers(-2, 3, size=(10, 3))
    voxel_shifts[:, 0] = 0
    shifted = np.zeros_like(array.data)
    for z in range(10):  # the array kernel: roll each section by its shift (no wrap-around)
        dy, dx = voxel_shifts[z, 1:]
        src = array.data[z]
        out = np.zeros_like(src)
        ys, xs = slice(max(dy, 0), 12 + min(dy, 0)), slice(max(dx, 0), 12 + min(dx, 0))
        out[ys, xs] = src[max(-dy, 0) : 12 - max(dy, 0), max(-dx, 0) : 12 - max(dx, 0)]
        shifted[z] = out
    moved = section_shift_graph(graph, roi, 0, voxel_shifts * np.array(vs), vs[0])
    batch = {POINTS: moved, MARKERS: Array(shifted, array.spec)}
    assert_points_on_markers(batch, tolerance=0)
    assert set(moved.node_ids + 1) == set(np.unique(shifted)) - {0}


def test_shift_and_pad_graph():
    g = Graph.from_arrays([[1.5, 2.5], [7.0, 8.0]], spec=GraphSpec(roi=Roi((0, 0), (10, 10))))
    s = shift_graph(g, (10, -10))
    assert np.allclose(s.locations, g.locations + [10, -10])
    assert s.spec.roi == Roi((10, -10), (10, 10)) and g.spec.roi == Roi((0, 0), (10, 10))
    spec = pad_graph_spec(g.spec, (5, None))
    assert spec.roi == Roi((-5, None), (20, None))
    wanted = Roi((-5, -5), (10, 20))
    read = pad_graph_request(wanted, g.spec.roi)
    assert read == Roi((0, 0), (5, 10))
    padded = pad_graph(g.crop(read), wanted)
    assert padded.spec.roi == wanted and padded.node_ids.tolist() == [0]
    assert pad_graph_request(Roi((50, 50), (5, 5)), g.spec.roi).empty


def test_graph_datasets_round_trip(tmp_path):
    snapshot = importlib.import_module("gunpowder.nodes.snapshot")
    g = Graph.from_arrays(
        [[1.5, 2.5, 3.0], [7.0, 8.0, 9.0]],
        ids=[4, 9],
        edges=[(4, 9)],
        spec=GraphSpec(roi=Roi((0, 0, 0), (10, 10, 10))),
    )
    arrays = graph_datasets("points/synapses", g)
    snapshot.write_hdf5(tmp_path / "g.h5", arrays, {})
    snapshot.write_zarr(tmp_path / "g.zarr", arrays, {})
    import h5py
    import zarr

    with h5py.File(tmp_path / "g.h5", "r") as f:
        assert f["points/synapses-ids"][:].tolist() == [4, 9]
        assert np.allclose(f["points/synapses-locations"][:], g.locations)
        assert f["points/synapses-edges"][:].tolist() == [[4, 9]]
    root = zarr.open_group(str(tmp_path / "g.zarr"), mode="r")
    assert np.allclose(root["points/synapses-locations"][:], g.locations)
    empty = graph_datasets("e", Graph(spec=GraphSpec(roi=Roi((0, 0), (1, 1)))))
    assert empty["e-locations"].data.shape == (0, 2)


# ---------------------------------------------------------------------------------------------
# sampling near points


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans(), st.sampled_from([(1, 1), (4, 4), (8, 4)]))
def test_shifts_near_points_contain_a_point(seed, centered, step):
    rng = np.random.default_rng(seed)
    locs = rng.uniform(0, 400, size=(rng.integers(1, 30), 2))
    index = PointIndex(locs)
    step = Coordinate(step)
    roi = Roi((0, 0), (40, 48))
    # every point is reachable: shifts down to the whole ROI (and one step) below 0
    k_lo = -(np.array(roi.end) // np.array(step)) - 1
    k_hi = 400 // np.array(step)
    shifts = shifts_near_points(roi, index, k_lo, k_hi, step, rng, centered, 20)
    for _ in range(20):
        s = next(shifts)
        k = np.array(s) // np.array(step)
        assert np.all(np.array(s) % np.array(step) == 0)
        assert np.all(k >= k_lo) and np.all(k <= k_hi)
        if centered:
            c = np.array(roi.center)
            v0 = np.array(roi.begin) + (c - np.array(roi.begin)) // np.array(step) * step
            box = Roi(Coordinate(v0), step).shift(s)
        else:
            box = roi.shift(s)
        assert index.count(box) > 0


def test_shifts_near_points_errors():
    index = PointIndex(np.array([[1000.0, 1000.0]]))
    rng = np.random.default_rng(0)
    gen = shifts_near_points(Roi((0, 0), (10, 10)), index, [0, 0], [3, 3], Coordinate(1, 1), rng)
    with pytest.raises(PipelineRequestError, match="no point"):
        next(gen)
    # a ROI smaller than the grid step can fall between a point's grid positions
    index = PointIndex(np.array([[5.5, 5.5]]))
    gen = shifts_near_points(
        Roi((0, 0), (1, 1)), index, [-10, -10], [10, 10], Coordinate(4, 4), rng, max_misses=5
    )
    with pytest.raises(PipelineRequestError, match="in a row"):
        next(gen)


class NonemptyLocation(Node):
    """A minimal RandomLocation(ensure_nonempty=POINTS) built on the graph support functions."""

    drives_upstream = True

    def setup(self, upstream_spec):
        spec = upstream_spec.copy()
        for value in spec.values():
            value.roi = Roi((None,) * value.roi.dims, (None,) * value.roi.dims)
        return spec

    def serve(self, request, rng, fetch):
        provided = self.upstream_spec
        index = point_index_for(self.upstream_pipelines[0], POINTS)
        if index is None:
            index = read_point_index(fetch, POINTS, provided[POINTS].roi)
        k_lo = np.max(
            [np.array(provided[k].roi.begin) - s.roi.begin for k, s in request.items()], 0
        )
        k_hi = np.min([np.array(provided[k].roi.end) - s.roi.end for k, s in request.items()], 0)
        step = Coordinate(4, 4, 4)
        shifts = shifts_near_points(request[POINTS].roi, index, k_lo // 4, k_hi // 4, step, rng)
        for _ in range(10):
            shift = next(shifts)
            upstream = request.copy()
            for spec in upstream.values():
                spec.roi = spec.roi.shift(shift)
            batch = fetch(upstream)
            if graph_nonempty(batch, POINTS):
                break
        for key, value in list(batch.items()):
            if isinstance(key, GraphKey):
                batch[key] = value.shift(-shift)
            else:
                batch[key] = Array(value.data, value.spec.replace(roi=value.spec.roi.shift(-shift)))
        return batch


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_ensure_nonempty_batches_always_contain_a_point(seed):
    rng = np.random.default_rng(seed)
    graph, array = marked_volume(rng, (50, 50, 50), (4, 4, 4), 3, margin=0)
    roi = Roi((0, 0, 0), (24, 24, 24))
    with build(source_for(graph, array) + NonemptyLocation()) as p:
        assert point_index_for(p.upstream[0], POINTS) is not None
        batch = p.request_batch(request_for(roi, seed))
    assert len(batch[POINTS]) > 0
    assert batch[POINTS].spec.roi == roi
    assert_points_on_markers(batch, tolerance=0)


def test_random_location_ensure_nonempty():
    location = importlib.import_module("gunpowder.nodes")
    try:
        node = location.RandomLocation(ensure_nonempty=POINTS)
    except NotImplementedError:
        pytest.skip("RandomLocation has no graph support yet")
    rng = np.random.default_rng(1)
    graph, array = marked_volume(rng, (60, 60, 60), (4, 4, 4), 2, margin=0)
    with build(source_for(graph, array) + node) as p:
        for seed in range(10):
            batch = p.request_batch(request_for(Roi((0, 0, 0), (16, 16, 16)), seed))
            assert len(batch[POINTS]) > 0
            assert_points_on_markers(batch, tolerance=0)
