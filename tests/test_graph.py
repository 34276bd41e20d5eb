"""Graph values: crop keeps exactly the nodes inside, trim cuts edges at the border, copies,
shifts, networkx round trips and vectorised access."""

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gunpowder.batch import Batch
from gunpowder.geometry import Coordinate, Roi
from gunpowder.graph import Edge, Graph, Node, clip_segments, inside_mask
from gunpowder.spec import GraphKey, GraphSpec
from gunpowder.testing import rois

coord = st.floats(-60, 60, allow_nan=False, width=32)


@st.composite
def graphs(draw, dims=3, max_nodes=25, directed=None):
    n = draw(st.integers(0, max_nodes))
    locs = np.array(draw(st.lists(st.tuples(*[coord] * dims), min_size=n, max_size=n)))
    locs = locs.reshape(n, dims)
    ids = draw(st.lists(st.integers(-1000, 1000), min_size=n, max_size=n, unique=True))
    edges = []
    if n > 1:
        pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=30))
        edges = [(ids[a], ids[b]) for a, b in pairs if a != b]
    if directed is None:
        directed = draw(st.booleans())
    spec = GraphSpec(roi=Roi((-100,) * dims, (200,) * dims), directed=directed)
    return Graph.from_arrays(locs, ids, edges, spec=spec)


def brute_inside(loc, roi):
    return all(b <= x < e for x, b, e in zip(loc, roi.begin, roi.end))


@settings(max_examples=60, deadline=None)
@given(graphs(), rois(3, 80, 120))
def test_crop_keeps_exactly_the_nodes_inside(graph, roi):
    cropped = graph.crop(roi, exact=True)
    expected = {n.id for n in graph.nodes if brute_inside(n.location, roi)}
    assert {n.id for n in cropped.nodes} == expected
    for n in cropped.nodes:
        assert n == graph.node(n.id)
    expected_edges = {(e.u, e.v) for e in graph.edges if e.u in expected and e.v in expected}
    assert {(e.u, e.v) for e in cropped.edges} == expected_edges
    assert cropped.spec.roi == roi
    assert cropped.directed == graph.directed


@settings(max_examples=60, deadline=None)
@given(graphs(), rois(3, 80, 120))
def test_crop_keeps_dangling_nodes_as_1x(graph, roi):
    cropped = graph.crop(roi)
    inside = {n.id for n in graph.nodes if brute_inside(n.location, roi)}
    edges = {(e.u, e.v) for e in graph.edges if e.u in inside or e.v in inside}
    assert {(e.u, e.v) for e in cropped.edges} == edges
    assert {n.id for n in cropped.nodes} == inside | {x for e in edges for x in e}
    for n in cropped.nodes:
        assert n == graph.node(n.id)
    # trimming the crop cuts every edge with one end inside (the dangling nodes carry them)
    trimmed = cropped.trim(roi)
    assert {n.id for n in trimmed.nodes if not n.temporary} == inside
    crossing = [e for e in graph.edges if (e.u in inside) != (e.v in inside)]
    assert sum(n.temporary for n in trimmed.nodes) == len(crossing)


@settings(max_examples=60, deadline=None)
@given(graphs(), rois(3, 80, 120))
def test_trim_cuts_edges_at_the_border(graph, roi):
    trimmed = graph.trim(roi)
    inside = {n.id for n in graph.nodes if brute_inside(n.location, roi)}
    original = [n for n in trimmed.nodes if not n.temporary]
    assert {n.id for n in original} == inside
    for n in trimmed.nodes:
        assert roi.contains(n.location)
    # every edge with one end inside survives, ending on the border where it left
    new_ids = {n.id for n in trimmed.nodes if n.temporary}
    assert not new_ids & {n.id for n in graph.nodes}
    for e in graph.edges:
        u_in, v_in = e.u in inside, e.v in inside
        if u_in != v_in:
            inner, outer = (e.u, e.v) if u_in else (e.v, e.u)
            partners = [
                trimmed.node(x.v if x.u == inner else x.u)
                for x in trimmed.edges
                if inner in (x.u, x.v) and (x.v if x.u == inner else x.u) in new_ids
            ]
            assert partners, f"edge {e} lost"
            p, q = graph.node(inner).location, graph.node(outer).location
            # border nodes are float32 (the default dtype): within a few float32 steps
            on_segment = [_distance_to_segment(b.location, p, q) < 1e-4 for b in partners]
            on_border = [_on_border(b.location, roi) for b in partners]
            assert any(a and b for a, b in zip(on_segment, on_border))
    for n in trimmed.nodes:
        if n.temporary:
            assert trimmed.neighbors(n), "boundary nodes always hang on an edge"


def _distance_to_segment(x, p, q):
    d = q - p
    t = 0.0 if not d.any() else np.clip((x - p) @ d / (d @ d), 0, 1)
    return float(np.linalg.norm(p + t * d - x))


def _on_border(x, roi):
    b, e = np.array(roi.begin, float), np.array(roi.end, float)
    return bool(np.any(np.isclose(x, b, atol=1e-4) | np.isclose(x, e, atol=1e-4)))


def test_trim_segment_passing_through():
    g = Graph([Node(1, (-5, -5)), Node(2, (25, 25))], [Edge(1, 2, {"w": 3})])
    t = g.trim(Roi((0, 0), (10, 10)))
    assert len(t.nodes) == 2 and all(n.temporary for n in t.nodes)
    locs = sorted(tuple(np.round(n.location.astype(float), 4)) for n in t.nodes)
    assert locs == [(0.0, 0.0), (10.0, 10.0)]
    # the upper face is nudged in by one float32 step: the stored location is inside
    assert all(t.roi.contains(n.location) for n in t.nodes)
    assert all(n.location.dtype == np.float32 for n in t.nodes)
    assert t.edges[0].attrs == {"w": 3}
    # a segment that misses the ROI gives nothing
    assert (
        len(
            Graph([Node(1, (-5, 20)), Node(2, (20, 50))], [Edge(1, 2)])
            .trim(Roi((0, 0), (10, 10)))
            .nodes
        )
        == 0
    )


def test_unbounded_crop_and_clip():
    g = Graph.from_arrays([[0, 5], [1e9, -3]], edges=[(0, 1)])
    roi = Roi((None, 0), (None, 10))
    assert g.crop(roi, exact=True).node_ids.tolist() == [0]
    assert g.crop(roi).node_ids.tolist() == [0, 1]  # 1.x: the dangling node stays
    assert len(g.trim(roi).nodes) == 2
    t0, t1, hit = clip_segments(np.array([[0.0, 0.0]]), np.array([[10.0, 10.0]]), roi)
    assert hit[0] and t0[0] == 0 and t1[0] == 1


@settings(max_examples=30, deadline=None)
@given(graphs())
def test_copy_is_independent_and_equal(graph):
    c = graph.copy()
    assert c == graph
    for n in c.nodes:
        n.location = n.location + 1
        n.attrs["x"] = 1
    if graph.nodes:
        assert c != graph
        assert "x" not in graph.nodes[0].attrs


@settings(max_examples=30, deadline=None)
@given(graphs())
def test_networkx_round_trip(graph):
    back = Graph.from_nx_graph(graph.to_nx_graph(), graph.spec)
    assert back == graph
    assert isinstance(graph.to_nx_graph(), nx.DiGraph if graph.directed else nx.Graph)


@settings(max_examples=30, deadline=None)
@given(graphs(), st.tuples(*[st.integers(-50, 50)] * 3))
def test_shift_and_vectorised_locations(graph, offset):
    before = graph.locations
    ids = graph.node_ids
    shifted = graph.copy().shift(offset)
    assert np.allclose(shifted.locations, before + np.array(offset))
    assert shifted.spec.roi == graph.spec.roi.shift(Coordinate(offset))
    assert np.array_equal(shifted.node_ids, ids)
    moved = graph.with_locations(before * 2)
    assert np.allclose(moved.locations, before * 2)
    assert np.allclose(graph.locations, before)
    for i, nid in enumerate(ids):
        assert np.array_equal(graph.node(nid).location, before[i])
    idx = graph.edge_index()
    assert np.array_equal(ids[idx].reshape(-1, 2), graph.edge_array)


def test_node_edge_api_and_errors():
    g = Graph(spec=GraphSpec(directed=True))
    g.add_node(Node(1, (0, 0, 0), attrs={"a": 1}))
    g.add_node(Node(2, (1, 1, 1)))
    g.add_node(Node(3, (2, 2, 2)))
    g.add_edge(Edge(1, 2))
    g.add_edge(Edge(2, 3))
    assert g.successors(2) == [3] and g.predecessors(2) == [1]  # ids, as 1.x
    assert [n.id for n in g.neighbors(2)] == [1, 3]
    assert g.in_degree() == {1: 0, 2: 1, 3: 1}
    g.remove_node(2, retain_connectivity=True)
    assert g.has_edge(1, 3) and not g.has_edge(3, 1)
    assert g.node(1).all["a"] == 1
    with pytest.raises(ValueError, match="refers to node 7"):
        g.add_edge(Edge(1, 7))
    with pytest.raises(ValueError, match="2D location"):
        g.add_node(Node(9, (0, 0)))
    with pytest.raises(KeyError, match="no node with id 5"):
        g.node(5)
    with pytest.raises(ValueError, match="finite"):
        Node(1, (np.nan, 0))
    with pytest.raises(ValueError, match="fractional"):
        Graph(spec=GraphSpec(roi=Roi((0,), (1,)))).shift((0.5,))
    with pytest.raises(ValueError, match="no 'location'"):
        h = nx.Graph()
        h.add_node(1)
        Graph.from_nx_graph(h)


def test_connected_components():
    g = Graph.from_arrays(np.zeros((5, 2)), edges=[(0, 1), (1, 2), (3, 4)])
    g.relabel_connected_components()
    comps = sorted(sorted(c) for c in g.connected_components)
    assert comps == [[0, 1, 2], [3, 4]]
    assert g.node(0).attrs["component"] == g.node(2).attrs["component"]
    assert g.node(0).attrs["component"] != g.node(3).attrs["component"]


def test_inside_mask_half_open():
    roi = Roi((0, 0), (10, 10))
    m = inside_mask(np.array([[0, 0], [10, 0], [9.999, 9.999], [-1e-9, 5]]), roi)
    assert m.tolist() == [True, False, True, False]


def test_batch_stores_and_crops_graphs():
    key = GraphKey("TEST_GRAPH_BATCH")
    g = Graph.from_arrays([[1, 1], [5, 5]], spec=GraphSpec(roi=Roi((0, 0), (10, 10))))
    batch = Batch()
    batch[key] = g
    assert batch.graphs[key] is g
    from gunpowder.spec import BatchRequest

    req = BatchRequest()
    req[key] = GraphSpec(roi=Roi((0, 0), (3, 3)))
    assert batch.crop(req)[key].node_ids.tolist() == [0]
