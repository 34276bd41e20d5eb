"""`GraphSource`: an in-memory graph, or (1.x) a daisy-style graph provider read per request.

An in-memory graph is indexed in a KD-tree at setup (`PointIndex`), so a request reads only
the nodes in (or, for edges, near) its ROI, and `point_index(key)` lets `RandomLocation` sample
near points. Edges that leave the requested ROI are cut at its border (`Graph.trim`) unless
`trim=False`; new border nodes get ids from the whole graph's largest id + 1, so they equal
those of `graph.crop(roi, trim=True)`. `CsvPointsSource` builds on the same index.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..batch import Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Roi
from ..graph import Edge, Graph, Node, clip_segments
from ..node import Source
from ..spec import BatchRequest, GraphKey, GraphSpec, ProviderSpec
from ._graph_index import PointIndex


class _IndexedGraph:
    """Node arrays with a KD-tree over the locations: serves the subgraph of any ROI quickly.

    Edges up to `edge_reach` long are found by querying the ROI grown by that length; the
    few longer ones (above the 99th percentile) are clipped against every requested ROI.
    `Node` objects are made only for the nodes a request reads (unless given).
    """

    def __init__(
        self,
        ids: np.ndarray,
        locations: np.ndarray,
        nodes: list[Node] | None = None,
        edge_pos: np.ndarray | None = None,
        edges: list[Edge] | None = None,
    ) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self.index = PointIndex(locations, self.ids)
        self.nodes = nodes
        self.edge_pos = np.zeros((0, 2), np.int64) if edge_pos is None else edge_pos
        self.edges = edges
        self.edge_reach = 0.0
        self.long_edges = np.zeros(0, dtype=np.int64)
        self.new_ids_from = int(self.ids.max()) + 1 if len(self.ids) else 0
        if len(self.edge_pos):
            locs = self.index.locations
            lengths = np.linalg.norm(locs[self.edge_pos[:, 0]] - locs[self.edge_pos[:, 1]], axis=1)
            self.edge_reach = float(np.percentile(lengths, 99))
            self.long_edges = np.flatnonzero(lengths > self.edge_reach)

    @classmethod
    def of_graph(cls, graph: Graph, dtype: Any = None) -> _IndexedGraph:
        """Index `graph`, its locations rounded to `dtype` (the served spec's) first, so the
        KD-tree decides inside/outside on the values the served nodes will have."""
        nodes = graph.nodes
        position = {node.id: i for i, node in enumerate(nodes)}
        edges = graph.edges
        edge_pos = np.array([(position[e.u], position[e.v]) for e in edges], dtype=np.int64)
        locations = graph.locations
        if dtype is not None:
            locations = locations.astype(dtype)
        return cls(graph.node_ids, locations, nodes, edge_pos.reshape(-1, 2), edges)

    def _node(self, i: int) -> Node:
        if self.nodes is not None:
            return self.nodes[i]
        return Node(int(self.ids[i]), self.index.locations[i])

    def subgraph(self, roi: Roi, spec: GraphSpec, trim: bool) -> Graph:
        """The nodes inside `roi` (copies), plus edges cut at its border if `trim`."""
        with_edges = trim and len(self.edge_pos) > 0
        if with_edges:
            reach = math.ceil(self.edge_reach)
            picked = self.index.query_box(roi.grow(reach, reach))
            if len(self.long_edges):
                ends = self.edge_pos[self.long_edges]
                locs = self.index.locations
                _, _, hit = clip_segments(locs[ends[:, 0]], locs[ends[:, 1]], roi)
                picked = np.union1d(picked, ends[hit].reshape(-1))
        else:
            picked = self.index.query_box(roi)
        near = Graph(spec=spec)
        for i in picked.tolist():
            node = self._node(i)
            near._nodes[node.id] = node
        if len(self.edge_pos) and len(picked):
            selected = np.zeros(len(self.ids), dtype=bool)
            selected[picked] = True
            keep = np.flatnonzero(selected[self.edge_pos[:, 0]] & selected[self.edge_pos[:, 1]])
            for i in keep.tolist():
                edge = self.edges[i]
                near._edges[near._edge_key(edge.u, edge.v)] = edge
        return near.crop(roi, trim=trim, exact=not trim, new_ids_from=self.new_ids_from)


def _unbounded(dims: int) -> Roi:
    return Roi((None,) * dims, (None,) * dims)


class GraphSource(Source):
    """Serve a graph under a GraphKey: an in-memory graph (`GraphSource(key, graph)`), or, as
    in 1.x, a daisy-style graph provider read per request (`GraphSource(provider, key)`).

    An in-memory graph (a `Graph` or a networkx graph with `location` node attributes, world
    units) is indexed in a KD-tree at setup, so each request reads only the nodes in its ROI
    (and RandomLocation can sample near them). A provider (e.g. `daisy.SharedGraphProvider`)
    needs `provider[roi]` returning a networkx graph, `directed` and `position_attribute` (a
    node attribute name, or a list of one name per axis); nodes without a position are
    dropped with their edges, and only edges between nodes the provider returned are kept
    (as 1.x; no trimming).

    Args:
        key: the GraphKey to provide (1.x order: the graph provider).
        graph: a gunpowder `Graph`, or a networkx graph whose nodes have a `location`
            attribute (other node/edge data become attributes); 1.x order: the GraphKey.
        graph_spec: optional GraphSpec overriding the provided spec, e.g. its ROI (default:
            the graph's own spec; without a ROI, unbounded). For a provider: its ROI
            (default unbounded, needs the number of dimensions then: pass a ROI) and dtype.
        trim: cut edges leaving a requested ROI at its border, adding temporary nodes there
            (default True); False returns only the nodes inside and the edges between them.
            In-memory graphs only.

    Example::

        graph = gp.Graph.from_arrays(locations=[[0, 0, 0], [40, 40, 40]], edges=[[0, 1]])
        pipeline = (raw_source, gp.GraphSource(skeletons, graph)) + gp.MergeProvider()
        # 1.x: a graph stored in MongoDB through daisy
        # gp.GraphSource(daisy.persistence.MongoDbGraphProvider(...), skeletons, spec)
    """

    def __init__(
        self, key: GraphKey, graph: Any, graph_spec: GraphSpec | None = None, trim: bool = True
    ) -> None:
        self.provider = None
        if isinstance(graph, GraphKey) and not isinstance(key, GraphKey):
            self.provider, key, graph = key, graph, None
        self.key = key
        self.graph = graph
        self.graph_spec = graph_spec
        self.trim = trim
        self._indexed: _IndexedGraph | None = None

    @property
    def name(self) -> str:
        key = self.key if isinstance(self.key, GraphKey) else type(self.key).__name__
        return f"{type(self).__name__}({key})"

    def _load(self) -> Graph:
        graph = self.graph
        if isinstance(graph, Graph):
            return graph
        if hasattr(graph, "nodes") and hasattr(graph, "is_directed"):
            return Graph.from_nx_graph(graph)
        raise PipelineSetupError(
            f"{self.name}: graph must be a gunpowder Graph or a networkx graph, "
            f"got {type(graph).__name__}"
        )

    def setup(self, upstream_spec: Any = None) -> ProviderSpec:
        if not isinstance(self.key, GraphKey):
            raise PipelineSetupError(f"{self.name}: key must be a GraphKey, got {self.key!r}")
        if self.provider is not None:
            return self._setup_provider()
        graph = self._load()
        spec = graph.spec.copy()
        if self.graph_spec is not None:
            spec = spec.update_with(self.graph_spec)
        if spec.directed is None:
            spec.directed = graph.directed
        if spec.roi is None:
            dims = graph.dims
            if dims is None:
                raise PipelineSetupError(
                    f"{self.name}: the graph is empty and has no ROI; pass "
                    "graph_spec=GraphSpec(roi=...)"
                )
            spec.roi = _unbounded(dims)
        self._spec = spec
        self._indexed = self._index(graph)
        return ProviderSpec({self.key: spec})

    def _index(self, graph: Graph) -> _IndexedGraph:
        return _IndexedGraph.of_graph(graph, self._spec.dtype)

    def _setup_provider(self) -> ProviderSpec:
        provider = self.provider
        for attr in ("__getitem__", "position_attribute"):
            if not hasattr(provider, attr):
                raise PipelineSetupError(
                    f"{self.name}: the graph provider {type(provider).__name__} has no "
                    f"{attr!r}; it needs provider[roi] -> networkx graph, `directed` and "
                    "`position_attribute` (as daisy.SharedGraphProvider)"
                )
        directed = getattr(provider, "directed", None)
        spec = GraphSpec() if self.graph_spec is None else self.graph_spec.copy()
        if spec.directed is None:
            spec.directed = directed
        elif directed is not None and bool(spec.directed) != bool(directed):
            raise PipelineSetupError(
                f"{self.name}: graph_spec says directed={spec.directed}, the graph provider "
                f"directed={directed}"
            )
        self._spec = spec
        return ProviderSpec({self.key: spec})

    def _provide_from(self, roi: Roi) -> Graph:
        """The provider's graph in `roi` (nodes without a position dropped, with their edges)."""
        nx_graph = self.provider[roi]
        position = self.provider.position_attribute
        spec = self._spec.replace(roi=roi)
        if spec.directed is None:
            spec.directed = bool(nx_graph.is_directed())
        graph = Graph(spec=spec)
        for node_id, data in nx_graph.nodes(data=True):
            if isinstance(position, (list, tuple)):
                if any(a not in data for a in position):
                    continue
                location = [data[a] for a in position]
            elif position in data:
                location = data[position]
            else:
                continue
            attrs = {
                k: v
                for k, v in data.items()
                if k not in ("id", "location", "temporary")
                and not (isinstance(position, (list, tuple)) and k in position)
                and k != position
            }
            try:
                graph.add_node(Node(node_id, location, bool(data.get("temporary")), attrs))
            except (TypeError, ValueError) as e:
                raise PipelineRequestError(
                    f"{self.name}: node {node_id!r} from the graph provider has the position "
                    f"{location!r} ({position!r}), not a point: {e}"
                ) from e
        for u, v, data in nx_graph.edges(data=True):
            if u in graph._nodes and v in graph._nodes:
                graph.add_edge(Edge(u, v, dict(data)))
        return graph

    def point_index(self, key: GraphKey) -> PointIndex | None:
        """The KD-tree of all node locations of `key` (None for other keys)."""
        if key != self.key or self._indexed is None:
            return None
        return self._indexed.index

    def provide(self, request: BatchRequest, rng: np.random.Generator) -> Batch:
        spec = request[self.key]
        roi = self._spec.roi if spec.roi is None else spec.roi
        batch = Batch()
        if self.provider is not None:
            if roi is None:
                raise PipelineRequestError(
                    f"{self.name}: {self.key} requested without a ROI from a graph provider "
                    "without one; give the request (or graph_spec) a ROI"
                )
            batch[self.key] = self._provide_from(roi)
            return batch
        assert self._indexed is not None, "provide before setup"
        batch[self.key] = self._indexed.subgraph(roi, self._spec.replace(roi=roi), self.trim)
        return batch
