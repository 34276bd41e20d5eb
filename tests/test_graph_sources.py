"""GraphSource and CsvPointsSource: requests get exactly the nodes inside (edges trimmed at
the border), point indices answer box queries like brute force."""

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gunpowder.errors import PipelineSetupError
from gunpowder.geometry import Roi
from gunpowder.graph import Graph
from gunpowder.nodes import CsvPointsSource, GraphSource
from gunpowder.nodes._graph_index import PointIndex
from gunpowder.pipeline import build
from gunpowder.spec import BatchRequest, GraphKey, GraphSpec
from gunpowder.testing import rois

KEY = GraphKey("SOURCE_TEST_POINTS")


def request_for(roi, key=KEY, seed=1):
    req = BatchRequest(random_seed=seed)
    req[key] = GraphSpec(roi=roi)
    return req


def skeleton(rng, n=60, dims=3):
    """A random chain (skeleton-like) in [0, 100)^dims."""
    locs = np.cumsum(rng.uniform(-8, 8, size=(n, dims)), axis=0) % 100
    return Graph.from_arrays(
        locs,
        ids=np.arange(n) * 3 + 7,
        edges=[(3 * i + 7, 3 * i + 10) for i in range(n - 1)],
        spec=GraphSpec(roi=Roi((0,) * dims, (100,) * dims), directed=False),
    )


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), rois(3, 20, 80))
def test_graph_source_serves_what_crop_and_trim_would(seed, roi):
    graph = skeleton(np.random.default_rng(seed))
    roi = roi.intersect(graph.spec.roi)
    if roi.empty:
        return
    for trim in (True, False):
        source = GraphSource(KEY, graph, trim=trim)
        with build(source) as p:
            got = p.request_batch(request_for(roi))[KEY]
        expected = graph.crop(roi, trim=trim, exact=not trim)
        assert got == expected
    # the source's graph is never modified by what is done downstream
    got.shift((1, 1, 1))
    assert graph == skeleton(np.random.default_rng(seed))


def test_graph_source_from_networkx_and_spec_override():
    g = nx.DiGraph()
    g.add_node(5, location=(1.5, 2.5), kind="synapse")
    g.add_node(6, location=(8.0, 9.0))
    g.add_edge(5, 6, weight=2)
    source = GraphSource(KEY, g, GraphSpec(roi=Roi((0, 0), (20, 20))))
    with build(source) as p:
        assert p.spec[KEY].roi == Roi((0, 0), (20, 20))
        assert p.spec[KEY].directed is True
        batch = p.request_batch(request_for(Roi((0, 0), (10, 10))))
    graph = batch[KEY]
    assert graph.node(5).attrs == {"kind": "synapse"}
    assert graph.edge(5, 6).attrs == {"weight": 2}
    assert graph.directed and graph.spec.roi == Roi((0, 0), (10, 10))


def test_graph_source_without_roi_is_unbounded_and_empty_needs_roi():
    g = Graph.from_arrays([[1e6, -1e6, 3]])
    with build(GraphSource(KEY, g)) as p:
        assert p.spec[KEY].roi.unbounded
        assert len(p.request_batch(request_for(Roi((0, -2e6, 0), (2e6, 4e6, 10))))[KEY]) == 1
    with pytest.raises(PipelineSetupError, match="empty and has no ROI"):
        with build(GraphSource(KEY, Graph())):
            pass
    with pytest.raises(PipelineSetupError, match="networkx"):
        with build(GraphSource(KEY, [1, 2])):
            pass


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), rois(2, 60, 100))
def test_point_index_box_query_is_brute_force(seed, roi):
    locs = np.random.default_rng(seed).uniform(-100, 100, size=(200, 2))
    index = PointIndex(locs)
    expected = [i for i, p in enumerate(locs) if roi.contains(p)]
    assert index.query_box(roi).tolist() == expected
    assert index.count(roi) == len(expected)


def test_point_index_balance_weights():
    locs = np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [50.0, 50.0]])
    w = PointIndex(locs).balance_weights(2.0)
    assert np.allclose(w, [1 / 3, 1 / 3, 1 / 3, 1.0])
    assert len(PointIndex(np.zeros((0, 3))).query_box(Roi((0, 0, 0), (1, 1, 1)))) == 0


def test_csv_points_source(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("z, y, x, id\n1, 2, 3, 17\n4.5, 5, 6, 3\n# comment\n10 20 30 99\n")
    source = CsvPointsSource(path, KEY, scale=(40, 4, 4), id_col=3)
    with build(source) as p:
        roi = p.spec[KEY].roi
        batch = p.request_batch(request_for(roi))
    graph = batch[KEY]
    assert sorted(graph.node_ids.tolist()) == [3, 17, 99]
    assert np.allclose(graph.node(3).location, (180, 20, 24))
    assert np.allclose(graph.node(99).location, (400, 80, 120))
    for n in graph.nodes:
        assert roi.contains(n.location)
    # ndims: only the first two columns, ids from row index
    source = CsvPointsSource(path, KEY, ndims=2)
    with build(source) as p:
        graph = p.request_batch(request_for(p.spec[KEY].roi))[KEY]
    assert graph.locations.shape == (3, 2) and sorted(graph.node_ids.tolist()) == [0, 1, 2]
    # negative ndims: all but the last column
    with build(CsvPointsSource(path, KEY, ndims=-1)) as p:
        assert p.spec[KEY].roi.dims == 3
    bad = tmp_path / "bad.csv"
    bad.write_text("1, 2, 3\n1, 2\n")
    with pytest.raises(PipelineSetupError, match="different numbers of columns"):
        with build(CsvPointsSource(bad, KEY)):
            pass
    dup = tmp_path / "dup.csv"
    dup.write_text("1, 2, 5\n3, 4, 5\n")
    with pytest.raises(PipelineSetupError, match="not unique"):
        with build(CsvPointsSource(dup, KEY, id_col=2)):
            pass
    with pytest.raises(PipelineSetupError, match="can not read"):
        with build(CsvPointsSource(tmp_path / "missing.csv", KEY)):
            pass


def test_graph_source_finds_long_edges_crossing_the_roi():
    # a dense chain of short edges far away, plus long edges passing through the ROI
    chain = [[500.0 + i, 500.0, 500.0] for i in range(300)]
    far = [[-1000.0, 50.0, 50.0], [1000.0, 50.0, 50.0], [50.0, -900.0, 50.0], [50.0, 900.0, 50.0]]
    edges = [(i, i + 1) for i in range(299)] + [(300, 301), (302, 303)]
    graph = Graph.from_arrays(
        chain + far, edges=edges, spec=GraphSpec(roi=Roi((-2000,) * 3, (4000,) * 3), directed=False)
    )
    roi = Roi((0, 0, 0), (100, 100, 100))
    with build(GraphSource(KEY, graph)) as p:
        got = p.request_batch(request_for(roi))[KEY]
    assert got == graph.crop(roi, trim=True)
    assert len(got.nodes) == 4 and len(got.edges) == 2


@pytest.mark.parametrize("sep", [", ", " ", "\t"])
def test_csv_layouts(tmp_path, sep):
    rows = np.random.default_rng(2).uniform(0, 100, size=(50, 3))
    path = tmp_path / "p.csv"
    text = "z y x\n" + "\n".join(sep.join(repr(float(v)) for v in row) for row in rows) + "\n"
    path.write_text(text)
    with build(CsvPointsSource(path, KEY)) as p:
        graph = p.request_batch(request_for(p.spec[KEY].roi))[KEY]
    got = graph.locations[np.argsort(graph.node_ids)]
    assert got.dtype == np.float32 and np.array_equal(got, rows.astype(np.float32))
