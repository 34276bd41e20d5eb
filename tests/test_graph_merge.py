"""Graph.merge (and Batch.merge on graphs) against the definition: inside the winner's ROI only
the winner's nodes, outside also the loser's; the winner's node/edge on an id collision; loser
edges kept where both ends survive, except edges touching the winner's ROI; the ROI is
the larger one, or the box around both."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gunpowder.batch import Batch
from gunpowder.geometry import Roi
from gunpowder.graph import Edge, Graph, Node
from gunpowder.spec import GraphKey, GraphSpec

BIG = Roi((0, 0), (20, 20))


@st.composite
def graphs(draw, roi, tag, directed):
    """A 2D graph with ids from a small pool (so two graphs collide) and a `tag` on every
    node and edge, telling which input it came from."""
    ids = draw(st.lists(st.integers(0, 15), max_size=10, unique=True))
    coord = st.integers(0, 19).map(float)
    locations = [draw(st.tuples(coord, coord)) for _ in ids]
    graph = Graph(spec=GraphSpec(roi=roi, directed=directed))
    for nid, loc in zip(ids, locations):
        graph.add_node(Node(nid, loc, attrs={"tag": tag}))
    if len(ids) > 1:
        pairs = draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=12))
        for u, v in pairs:
            if u != v:
                graph.add_edge(Edge(u, v, {"tag": tag}))
    return graph


@st.composite
def sub_rois(draw):
    begin = draw(st.tuples(st.integers(0, 15), st.integers(0, 15)))
    shape = draw(st.tuples(*[st.integers(0, 20 - b) for b in begin]))
    return Roi(begin, shape)


@st.composite
def graph_pairs(draw, nested=True):
    """(self, other): one has the big ROI, the other a ROI inside it, in either order; or,
    with `nested=False`, any two ROIs inside the big one."""
    directed = draw(st.booleans())
    small = draw(sub_rois())
    if nested:
        roi_a, roi_b = (BIG, small) if draw(st.booleans()) else (small, BIG)
    else:
        roi_a, roi_b = small, draw(sub_rois())
    return draw(graphs(roi_a, "self", directed)), draw(graphs(roi_b, "other", directed))


def expected_roi(a, b):
    """The larger ROI if one contains the other, else the box around both."""
    return a if a.contains(b) else b if b.contains(a) else a.union(b)


def inside(location, roi):
    return all(b <= x < e for x, b, e in zip(location, roi.begin, roi.end))


def edge_key(graph, u, v):
    return (u, v) if graph.directed or u <= v else (v, u)


def passes_through(p, q, roi, samples=2000):
    """Does the segment p→q run through the inside of `roi`? (by sampling; the graphs'
    integer locations make a partial pass at least a 1/19 of the segment long)"""
    if roi.empty:
        return False
    t = (np.arange(samples) + 0.5) / samples
    points = p + t[:, None] * (q - p)
    return any(inside(x, roi) for x in points)


def expected_merge(mine, theirs, copy_from_self):
    """Nodes id -> tag and edges key -> tag, by the definition, element by element."""
    winner, loser = (mine, theirs) if copy_from_self else (theirs, mine)
    region = winner.spec.roi
    covered = {n.id for n in loser.nodes if inside(n.location, region)}
    won = {n.id for n in winner.nodes if inside(n.location, region)}
    nodes = {n.id: n for n in loser.nodes if n.id not in covered}
    nodes.update({n.id: n for n in winner.nodes})
    edges = {}
    for e in loser.edges:
        if e.u not in nodes or e.v not in nodes:
            continue
        if {e.u, e.v} & (covered | won):  # touches the winner's ROI: the winner decides
            continue
        if passes_through(nodes[e.u].location, nodes[e.v].location, region):
            continue
        edges[edge_key(loser, e.u, e.v)] = e
    for e in winner.edges:
        edges[edge_key(winner, e.u, e.v)] = e
    return nodes, edges


@settings(max_examples=150, deadline=None)
@given(st.booleans().flatmap(graph_pairs), st.booleans(), st.booleans())
def test_merge_follows_its_definition(pair, copy_from_self, copy):
    mine, theirs = pair
    before = (mine.copy(), theirs.copy())
    merged = mine.merge(theirs, copy_from_self=copy_from_self, copy=copy)
    nodes, edges = expected_merge(mine, theirs, copy_from_self)
    got = {n.id: n for n in merged.nodes}
    assert got.keys() == nodes.keys() and all(got[i].same_as(nodes[i]) for i in nodes)
    assert {edge_key(merged, e.u, e.v): e for e in merged.edges} == edges
    # the result covers both ROIs, keeps the directedness, and the inputs are unchanged
    want = expected_roi(mine.spec.roi, theirs.spec.roi)
    assert merged.spec.roi == want or (merged.spec.roi.empty and want.empty)
    assert merged.directed == mine.directed
    assert (mine, theirs) == before
    originals = {id(n) for n in mine.nodes + theirs.nodes + mine.edges + theirs.edges}
    shared = {id(x) for x in merged.nodes + merged.edges} & originals
    assert not shared if copy else len(shared) == len(merged.nodes) + len(merged.edges)


@settings(max_examples=150, deadline=None)
@given(st.booleans().flatmap(graph_pairs))
def test_inside_the_winners_roi_the_merge_is_the_winner(pair):
    """As Array.merge: cropped to the winner's ROI, the merge equals the winner cropped."""
    mine, theirs = pair
    for winner, merged in ((theirs, mine.merge(theirs)), (mine, mine.merge(theirs, True))):
        region = winner.spec.roi
        assert merged.crop(region, exact=True) == winner.crop(region, exact=True)
        # and trimmed: the edges leaving the winner's ROI are the winner's
        assert merged.trim(region, new_ids_from=100) == winner.trim(region, new_ids_from=100)


@settings(max_examples=60, deadline=None)
@given(st.booleans(), st.data())
def test_graphs_without_roi_merge_by_id(directed, data):
    mine = data.draw(graphs(None, "self", directed))
    theirs = data.draw(graphs(None, "other", directed))
    merged = mine.merge(theirs)
    assert {n.id for n in merged.nodes} == {n.id for n in mine.nodes + theirs.nodes}
    for n in merged.nodes:
        assert n.attrs["tag"] == ("other" if n.id in theirs else "self")
    assert merged.num_edges() == len({edge_key(mine, e.u, e.v) for e in mine.edges + theirs.edges})


def test_merge_refuses_mixed_directedness_and_non_graphs():
    a = Graph(spec=GraphSpec(roi=Roi((0, 0), (10, 10))))
    c = Graph(spec=GraphSpec(roi=Roi((0, 0), (10, 10)), directed=True))
    with pytest.raises(ValueError, match="directed"):
        a.merge(c)
    with pytest.raises(TypeError, match="Graph"):
        a.merge("not a graph")


def test_a_skeleton_edge_across_the_border_survives_when_both_ends_do():
    whole = Graph.from_arrays([[1.0, 1.0], [8.0, 8.0]], [1, 2], [[1, 2]], GraphSpec(roi=BIG))
    part = whole.crop(Roi((5, 5), (10, 10)))
    part.node(2).location = np.array([9.0, 9.0])  # e.g. moved by an augmentation
    merged = whole.merge(part)
    assert merged.has_edge(1, 2)
    np.testing.assert_array_equal(merged.node(2).location, [9.0, 9.0])


SKELETON = GraphKey("SKELETON")


@settings(max_examples=60, deadline=None)
@given(graph_pairs())
def test_batch_merge_merges_nested_graphs(pair):
    mine, theirs = pair
    a, b = Batch(), Batch()
    a[SKELETON], b[SKELETON] = mine, theirs
    assert a.merge(b)[SKELETON] == mine.merge(theirs)


def test_batch_merge_replaces_graphs_whose_rois_do_not_nest():
    a, b = Batch(), Batch()
    a[SKELETON] = Graph([Node(1, (1, 1))], spec=GraphSpec(roi=Roi((0, 0), (10, 10))))
    b[SKELETON] = Graph([Node(2, (6, 6))], spec=GraphSpec(roi=Roi((5, 5), (10, 10))))
    assert a.merge(b)[SKELETON] is b[SKELETON]
