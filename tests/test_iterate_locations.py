"""IterateLocations against a brute-force model: requests are centred on the graph's nodes in
turn (those in `roi`), nodes that can not hold the request are skipped, `node_id` says which
node, and the batch is the upstream data at exactly that place."""

import logging
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.graph import Graph
from gunpowder.nodes import GraphSource, IterateLocations, MergeProvider

RAW = gp.ArrayKey("IL_RAW")
NODE_ID = gp.ArrayKey("IL_NODE_ID")
POINTS = gp.GraphKey("IL_POINTS")
VS = gp.Coordinate(2, 2)
VOLUME = gp.Roi((0, 0), (40, 40))
DATA = np.arange(400, dtype=np.int64).reshape(20, 20)


class PlainGraphSource(GraphSource):
    """A graph source that offers no point index, so the nodes must be read through requests."""

    point_index = None


def pipeline(locations, ids, source=GraphSource, **kwargs):
    graph = Graph.from_arrays(np.array(locations, float).reshape(-1, 2), ids)
    points = source(POINTS, graph, gp.GraphSpec(roi=VOLUME))
    raw = gp.ArraySource(RAW, gp.Array(DATA, gp.ArraySpec(roi=VOLUME, voxel_size=VS)))
    node = IterateLocations(POINTS, node_id=NODE_ID, **kwargs)
    return (raw, points) + MergeProvider() + node


def make_request(roi, seed=0, with_points=True):
    r = gp.BatchRequest(random_seed=seed)
    r[RAW] = gp.ArraySpec(roi=roi)
    if with_points:
        r[POINTS] = gp.GraphSpec(roi=roi)
    r[NODE_ID] = gp.ArraySpec(nonspatial=True)
    return r


def placement(location, roi):
    """The shift on the voxel grid that puts `location` within half a voxel of the centre of
    `roi` (searched among all grid shifts), and whether `roi` then fits into the volume."""
    shift = []
    for x, b, s, v in zip(location, roi.begin, roi.shape, VS):
        centre = b + s / 2
        found = [
            k * v for k in range(-100, 101) if centre + k * v - v / 2 <= x < centre + k * v + v / 2
        ]
        assert len(found) == 1
        shift.append(found[0])
    shift = gp.Coordinate(shift)
    return shift, VOLUME.contains(roi.shift(shift))


def expected_visits(locations, ids, roi, n, region=VOLUME):
    """Brute force: the node (index into `locations`) and shift of each of `n` requests."""
    order = [i for i, loc in enumerate(locations) if region.contains(tuple(loc))]
    counter, visits = 0, []
    for _ in range(n):
        for _ in range(len(order)):
            i = order[counter % len(order)]
            counter += 1
            shift, ok = placement(locations[i], roi)
            if ok:
                visits.append((i, shift))
                break
        else:
            return visits
    return visits


def check_batch(batch, roi, location, node, shift):
    assert batch[NODE_ID].data.shape == (1,) and int(batch[NODE_ID].data[0]) == node
    assert batch[RAW].spec.roi == roi
    voxels = (roi.shift(shift) / VS).to_slices()
    np.testing.assert_array_equal(batch[RAW].data, DATA[voxels])
    if POINTS in batch:
        moved = batch[POINTS].node(node).location
        # locations are float32 (the graph's dtype, as 1.x)
        expected = np.asarray(location, np.float32).astype(float) - np.asarray(shift)
        np.testing.assert_allclose(moved, expected, rtol=0, atol=1e-5)
        assert roi.contains(tuple(moved))


locations_st = st.lists(st.tuples(st.floats(0, 39.9), st.floats(0, 39.9)), min_size=1, max_size=6)


@settings(max_examples=30, deadline=None)
@given(
    locations_st,
    st.tuples(st.integers(-50, 50), st.integers(-50, 50)).map(lambda c: gp.Coordinate(c) * VS),
    st.tuples(st.integers(1, 8), st.integers(1, 8)).map(lambda s: gp.Coordinate(s) * VS),
    st.booleans(),
)
def test_requests_visit_the_nodes_in_turn(locations, offset, shape, read_graph):
    ids = [7 * i + 3 for i in range(len(locations))]
    roi = gp.Roi(offset, shape)
    source = PlainGraphSource if read_graph else GraphSource
    p = pipeline(locations, ids, source=source)
    n = 2 * len(locations) + 1
    visits = expected_visits(locations, ids, roi, n)
    with gp.build(p):
        if not visits:
            with pytest.raises(gp.PipelineRequestError, match="IterateLocations"):
                p.request_batch(make_request(roi))
            return
        for i, shift in visits:
            batch = p.request_batch(make_request(roi))
            check_batch(batch, roi, locations[i], ids[i], shift)


@settings(max_examples=30, deadline=None)
@given(locations_st, st.tuples(st.integers(0, 30), st.integers(0, 30)), st.booleans())
def test_roi_restricts_the_nodes(locations, begin, read_graph):
    region = gp.Roi(begin, (12, 12))
    ids = list(range(len(locations)))
    roi = gp.Roi((0, 0), (2, 2))  # small enough to fit around every node
    inside = [i for i, loc in enumerate(locations) if region.contains(tuple(loc))]
    source = PlainGraphSource if read_graph else GraphSource
    p = pipeline(locations, ids, source=source, roi=region)
    with gp.build(p):
        if not inside:
            with pytest.raises(gp.PipelineRequestError, match="no node in"):
                p.request_batch(make_request(roi))
            return
        seen = [int(p.request_batch(make_request(roi))[NODE_ID].data[0]) for _ in inside * 2]
    assert seen == [ids[i] for i in inside] * 2


@settings(max_examples=20, deadline=None)
@given(locations_st, st.integers(0, 2**32 - 1))
def test_random_choice_depends_on_the_seed_only(locations, seed):
    ids = [100 + i for i in range(len(locations))]
    roi = gp.Roi((0, 0), (2, 2))
    p = pipeline(locations, ids, choose_randomly=True)
    with gp.build(p):
        a = p.request_batch(make_request(roi, seed))
        p.request_batch(make_request(roi, seed + 1))
        b = p.request_batch(make_request(roi, seed))
    node = int(a[NODE_ID].data[0])
    assert node == int(b[NODE_ID].data[0]) and node in ids
    i = ids.index(node)
    shift, ok = placement(locations[i], roi)
    assert ok
    check_batch(a, roi, locations[i], node, shift)


def test_nodes_that_can_not_hold_the_request_are_skipped_with_a_warning(caplog):
    locations = [(1.0, 1.0), (20.0, 20.0), (39.0, 2.0)]
    roi = gp.Roi((0, 0), (10, 10))  # fits only around the middle node
    p = pipeline(locations, [1, 2, 3])
    with gp.build(p), caplog.at_level(logging.WARNING):
        seen = [int(p.request_batch(make_request(roi))[NODE_ID].data[0]) for _ in range(3)]
    assert seen == [2, 2, 2]
    assert "outside the upstream data" in caplog.text


def test_node_id_alone_still_steps_through_the_nodes():
    p = pipeline([(5.0, 5.0), (9.0, 9.0)], [11, 12])
    r = gp.BatchRequest(random_seed=0)
    r[NODE_ID] = gp.ArraySpec(nonspatial=True)
    with gp.build(p):
        seen = [int(p.request_batch(r)[NODE_ID].data[0]) for _ in range(4)]
    assert seen == [11, 12, 11, 12]


def test_a_new_build_starts_again_and_a_pickled_node_works():
    p = pipeline([(5.0, 5.0), (9.0, 9.0)], [11, 12])
    roi = gp.Roi((0, 0), (2, 2))
    for _ in range(2):
        with gp.build(p):
            assert int(p.request_batch(make_request(roi))[NODE_ID].data[0]) == 11
    node = pickle.loads(pickle.dumps(IterateLocations(POINTS, node_id=NODE_ID)))
    assert node._counter_lock is not None


def test_setup_errors_name_the_node_and_key():
    raw = gp.ArraySource(RAW, gp.Array(DATA, gp.ArraySpec(roi=VOLUME, voxel_size=VS)))
    with pytest.raises(gp.PipelineSetupError, match=r"IterateLocations.*IL_POINTS"):
        with gp.build(raw + IterateLocations(POINTS)):
            pass
    p = pipeline([(5.0, 5.0)], [1])
    with pytest.raises(gp.PipelineSetupError, match="node_id"):
        with gp.build(p + IterateLocations(POINTS, node_id=NODE_ID)):
            pass
    with pytest.raises(TypeError, match="GraphKey"):
        IterateLocations(RAW)


def test_unbounded_graph_without_point_index_asks_for_a_roi():
    graph = Graph.from_arrays(np.array([[5.0, 5.0]]), [1])
    points = PlainGraphSource(POINTS, graph)  # no ROI: unbounded
    raw = gp.ArraySource(RAW, gp.Array(DATA, gp.ArraySpec(roi=VOLUME, voxel_size=VS)))
    p = (raw, points) + MergeProvider() + IterateLocations(POINTS, node_id=NODE_ID)
    with gp.build(p), pytest.raises(gp.PipelineRequestError, match="bounded roi"):
        p.request_batch(make_request(gp.Roi((0, 0), (2, 2)), with_points=False))
    p = (raw, points) + MergeProvider() + IterateLocations(POINTS, roi=VOLUME, node_id=NODE_ID)
    with gp.build(p):
        batch = p.request_batch(make_request(gp.Roi((0, 0), (2, 2)), with_points=False))
    assert int(batch[NODE_ID].data[0]) == 1
