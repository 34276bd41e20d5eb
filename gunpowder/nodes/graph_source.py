"""Graph sources: `GraphSource` (an in-memory graph) and `CsvPointsSource` (points in a CSV file).

Both index their nodes in a KD-tree at setup (`PointIndex`), so a request reads only the nodes
in (or, for edges, near) its ROI, and `point_index(key)` lets `RandomLocation` sample near points.
Edges that leave the requested ROI are cut at its border (`Graph.trim`) unless `trim=False`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..batch import Batch
from ..errors import PipelineSetupError
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
        if len(self.edge_pos):
            locs = self.index.locations
            lengths = np.linalg.norm(locs[self.edge_pos[:, 0]] - locs[self.edge_pos[:, 1]], axis=1)
            self.edge_reach = float(np.percentile(lengths, 99))
            self.long_edges = np.flatnonzero(lengths > self.edge_reach)

    @classmethod
    def of_graph(cls, graph: Graph) -> _IndexedGraph:
        nodes = graph.nodes
        position = {node.id: i for i, node in enumerate(nodes)}
        edges = graph.edges
        edge_pos = np.array([(position[e.u], position[e.v]) for e in edges], dtype=np.int64)
        return cls(graph.node_ids, graph.locations, nodes, edge_pos.reshape(-1, 2), edges)

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
        return near.crop(roi, trim=trim)


def _unbounded(dims: int) -> Roi:
    return Roi((None,) * dims, (None,) * dims)


class GraphSource(Source):
    """Serve an in-memory graph (a `Graph` or a networkx graph with `location` node
    attributes, world units) under `key`.

    For annotations that fit in memory. Nodes are indexed in a KD-tree at setup, so each
    request reads only the nodes in its ROI (and RandomLocation can sample near them).

    Args:
        key: the GraphKey to provide.
        graph: a gunpowder `Graph`, or a networkx graph whose nodes have a `location`
            attribute (other node/edge data become attributes).
        graph_spec: optional GraphSpec overriding the provided spec, e.g. its ROI (default:
            the graph's own spec; without a ROI, unbounded).
        trim: cut edges leaving a requested ROI at its border, adding temporary nodes there
            (default True); False returns only the nodes inside and the edges between them.

    Example::

        graph = gp.Graph.from_arrays(locations=[[0, 0, 0], [40, 40, 40]], edges=[[0, 1]])
        pipeline = (raw_source, gp.GraphSource(skeletons, graph)) + gp.MergeProvider()
    """

    def __init__(
        self, key: GraphKey, graph: Any, graph_spec: GraphSpec | None = None, trim: bool = True
    ) -> None:
        self.key = key
        self.graph = graph
        self.graph_spec = graph_spec
        self.trim = trim
        self._indexed: _IndexedGraph | None = None

    @property
    def name(self) -> str:
        return f"{type(self).__name__}({self.key})"

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
        self._indexed = self._index(graph)
        self._spec = spec
        return ProviderSpec({self.key: spec})

    def _index(self, graph: Graph) -> _IndexedGraph:
        return _IndexedGraph.of_graph(graph)

    def point_index(self, key: GraphKey) -> PointIndex | None:
        """The KD-tree of all node locations of `key` (None for other keys)."""
        if key != self.key or self._indexed is None:
            return None
        return self._indexed.index

    def provide(self, request: BatchRequest, rng: np.random.Generator) -> Batch:
        assert self._indexed is not None, "provide before setup"
        spec = request[self.key]
        roi = self._spec.roi if spec.roi is None else spec.roi
        batch = Batch()
        batch[self.key] = self._indexed.subgraph(roi, self._spec.replace(roi=roi), self.trim)
        return batch
