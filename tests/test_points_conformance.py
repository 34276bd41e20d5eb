"""1.x behaviour of graphs and points: Node's 1.x API, float32 locations by default, graph
providers behind GraphSource, GPGraphSource, CsvPointsSource's 1.5 arguments, Stack with
graphs, and border-node ids that do not depend on how the graph was read."""

import logging

import networkx as nx
import numpy as np
import pytest

from gunpowder.batch import Array
from gunpowder.errors import PipelineSetupError
from gunpowder.geometry import Roi
from gunpowder.graph import Edge, Graph, Node
from gunpowder.nodes import (
    ArraySource,
    CsvPointsSource,
    GraphSource,
    MergeProvider,
    RandomLocation,
    Stack,
)
from gunpowder.nodes.gpgraph_source import GPGraphSource
from gunpowder.nodes.rasterize_points import RasterizeGraph
from gunpowder.pipeline import build
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest, GraphKey, GraphSpec

KEY = GraphKey("PC_POINTS")
RAW = ArrayKey("PC_RAW")


def request(roi, seed=1):
    r = BatchRequest(random_seed=seed)
    r[KEY] = GraphSpec(roi=roi)
    return r


def test_node_1x_api():
    n = Node(3, np.array([1, 2, 3]), attrs={"radius": 2.5})
    assert n.radius == 2.5 and n.original_id == 3
    n.color = 7  # 1.x: unknown attributes go to attrs
    assert n.attrs == {"radius": 2.5, "color": 7}
    with pytest.raises(AttributeError, match="no attribute 'size'"):
        _ = n.size
    assert Node(4, [0.0, 0.0], temporary=True).original_id is None
    u, v = Edge(1, 2)
    assert (u, v) == (1, 2)
    g = Graph([Node(1, [0, 0]), Node(2, [1, 1])], [Edge(1, 2)], GraphSpec())
    first = next(g.nodes)  # a generator in 1.x
    assert first.id == 1 and len(g.nodes) == 2 and next(g.edges).u == 1


def test_locations_are_float32_by_default_and_spec_dtype_otherwise():
    loc = np.array([0.1, 1e8 + 1.0])
    g = Graph([Node(1, loc)], [], GraphSpec())
    assert g.node(1).location.dtype == np.float32 and g.locations.dtype == np.float32
    assert g.node(1).location[1] == np.float32(1e8 + 1.0)
    precise = Graph([Node(1, loc)], [], GraphSpec(dtype=np.float64))
    assert precise.locations.dtype == np.float64 and precise.node(1).location[1] == 1e8 + 1.0
    # moved nodes are stored in the graph's dtype
    g.set_locations([[0.25, 3.0]])
    assert g.node(1).location.dtype == np.float32


def test_trim_border_nodes_are_inside_in_float32():
    # the border at 1e7 + 1 is not a float32 value: the node is rounded inwards
    g = Graph([Node(1, [0.0, 0.0]), Node(2, [0.0, 3e7])], [Edge(1, 2)], GraphSpec())
    roi = Roi((0, 0), (1, 10_000_001))
    t = g.trim(roi)
    border = [n for n in t.nodes if n.temporary]
    assert len(border) == 1 and roi.contains(border[0].location)
    assert border[0].location.dtype == np.float32


class Provider:
    """A daisy-style graph provider: provider[roi] -> networkx graph of the nodes in roi."""

    def __init__(self, position_attribute="location", directed=True):
        self.directed = directed
        self.position_attribute = position_attribute
        self.rois = []

    def __getitem__(self, roi):
        self.rois.append(roi)
        g = nx.DiGraph() if self.directed else nx.Graph()
        for i in range(5):
            loc = (float(i), float(i), float(i))
            if roi.contains(loc):
                if isinstance(self.position_attribute, list):
                    g.add_node(i, **dict(zip(self.position_attribute, loc)), kind="syn")
                else:
                    g.add_node(i, **{self.position_attribute: loc}, kind="syn")
        for i in range(4):
            if i in g.nodes:
                g.add_edge(i, i + 1, w=i)  # may add node i + 1 without a position
        return g


@pytest.mark.parametrize("position", ["location", "pos", ["z", "y", "x"]])
def test_graph_source_reads_a_graph_provider(position):
    provider = Provider(position)
    source = GraphSource(provider, KEY, GraphSpec(roi=Roi((0, 0, 0), (5, 5, 5))))
    with build(source) as p:
        assert p.spec[KEY].directed is True
        graph = p.request_batch(request(Roi((2, 2, 2), (2, 2, 2))))[KEY]
    # node 4 (added by the edge 3 -> 4, without a position) is dropped with its edge
    assert [n.id for n in graph.nodes] == [2, 3]
    assert [(e.u, e.v) for e in graph.edges] == [(2, 3)]
    assert graph.node(2).attrs == {"kind": "syn"} and graph.edge(2, 3).attrs == {"w": 2}
    assert graph.node(3).location.tolist() == [3.0, 3.0, 3.0]
    assert provider.rois == [Roi((2, 2, 2), (2, 2, 2))]


def test_graph_source_provider_errors():
    with pytest.raises(PipelineSetupError, match="position_attribute"):
        with build(GraphSource(object(), KEY)):
            pass
    with pytest.raises(PipelineSetupError, match="directed"):
        with build(GraphSource(Provider(directed=False), KEY, GraphSpec(directed=True))):
            pass


def test_gpgraph_source_serves_a_graph_without_roi():
    nodes = [Node(i, np.array([5 * i, 40 * i, 40 * i, 40 * i])) for i in range(4)]
    source = GPGraphSource(KEY, Graph(nodes, [Edge(1, 2)], GraphSpec()))
    with build(source) as p:
        assert p.spec[KEY].roi.unbounded
        graph = p.request_batch(request(Roi((5, 30, 30, 30), (10, 40, 40, 40))))[KEY]
    assert [n.id for n in graph.nodes if not n.temporary] == [1]
    assert sum(n.temporary for n in graph.nodes) == 1  # the edge to node 2, cut at the border
    with pytest.raises(TypeError, match="GraphKey comes first"):
        GPGraphSource(Provider(), KEY)


def test_csv_points_source_15_arguments(tmp_path, caplog):
    path = tmp_path / "p.csv"
    path.write_text("x\ty\tz\tid\n1\t2\t3\t10\n4\t5\t6\t11\n")
    # spatial_cols reorders the axes; the 1.5 positional order works too
    for source in (
        CsvPointsSource(path, KEY, spatial_cols=[2, 1, 0], id_col=3, delimiter="\t", scale=2),
        CsvPointsSource(path, KEY, [2, 1, 0], id_col=3, delimiter="\t", scale=2),
    ):
        with build(source) as p:
            graph = p.request_batch(request(p.spec[KEY].roi))[KEY]
        assert sorted(graph.node_ids.tolist()) == [10, 11]
        assert graph.node(10).location.tolist() == [6.0, 4.0, 2.0]
    # a points_spec ROI with fewer axes than the points (1.x does not compare): a warning
    source = CsvPointsSource(
        path,
        KEY,
        spatial_cols=[0, 1, 2],
        delimiter="\t",
        points_spec=GraphSpec(Roi((0, 0), (9, 9))),
    )
    with caplog.at_level(logging.WARNING):
        with build(source) as p:
            assert p.spec[KEY].roi.dims == 3
            graph = p.request_batch(request(Roi((0, 0, 0), (9, 9, 9))))[KEY]
    assert "unbounded" in caplog.text and len(graph) == 2
    with pytest.raises(PipelineSetupError, match="spatial_cols"):
        with build(CsvPointsSource(path, KEY, spatial_cols=[0, 7], delimiter="\t")):
            pass
    with pytest.raises(TypeError, match="points_spec must be a GraphSpec"):
        CsvPointsSource(path, KEY, "nonsense")


def test_stack_gives_the_graph_of_the_first_repetition():
    data = np.arange(100, dtype=np.uint8).reshape(10, 10)
    graph = Graph([Node(i, [i + 0.5, i + 0.5]) for i in range(10)], [], GraphSpec())
    pipeline = (
        (
            ArraySource(RAW, Array(data, ArraySpec(roi=Roi((0, 0), (10, 10))))),
            GraphSource(KEY, graph),
        )
        + MergeProvider()
        + RandomLocation()
        + Stack(3)
    )
    r = request(Roi((0, 0), (2, 2)), seed=5)
    r[RAW] = ArraySpec(roi=Roi((0, 0), (2, 2)))
    with build(pipeline) as p:
        batch = p.request_batch(r)
    raw = batch[RAW].data
    assert raw.shape == (3, 2, 2)
    # the graph is the first sample's: the nodes near where the first sample was cut
    assert len({tuple(sample.ravel()) for sample in raw}) > 1  # the samples differ
    assert batch[KEY].spec.roi == Roi((0, 0), (2, 2))
    locations = batch[KEY].locations
    offset = np.array(divmod(int(raw[0, 0, 0]), 10))  # data[i, j] = 10 i + j
    expected = [[i + 0.5 - offset[0], i + 0.5 - offset[1]] for i in range(10)]
    expected = [e for e in expected if 0 <= e[0] < 2 and 0 <= e[1] < 2]
    assert sorted(locations.tolist()) == sorted(expected)


def test_border_node_ids_do_not_depend_on_how_the_graph_was_read():
    # a chain 7 -> 10 -> ... leaving a small ROI: the source reads only nodes near it
    locs = [[float(i), float(i), 0.0] for i in range(40)]
    graph = Graph.from_arrays(
        locs,
        ids=np.arange(40) * 3 + 7,
        edges=[(3 * i + 7, 3 * i + 10) for i in range(39)],
        spec=GraphSpec(roi=Roi((0, 0, 0), (50, 50, 50)), directed=False),
    )
    roi = Roi((0, 0, 0), (2, 2, 7))
    with build(GraphSource(KEY, graph)) as p:
        got = p.request_batch(request(roi))[KEY]
    expected = graph.crop(roi, trim=True)
    assert got == expected
    assert [n.id for n in got.nodes if n.temporary] == [int(graph.node_ids.max()) + 1]


def test_rasterize_points_module_is_the_1x_path():
    assert RasterizeGraph.__module__ == "gunpowder.nodes.rasterize_graph"
