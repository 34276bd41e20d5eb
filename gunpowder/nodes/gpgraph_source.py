"""`GPGraphSource`: serve an in-memory `gp.Graph` (1.x module path and name).

The same as `GraphSource(key, graph)`: 1.x kept two names, one for graphs from a daisy graph
provider (`GraphSource`) and one for a graph already in memory (`GPGraphSource`).
"""

from __future__ import annotations

from typing import Any

from ..spec import GraphKey, GraphSpec
from .graph_source import GraphSource


class GPGraphSource(GraphSource):
    """Serve the in-memory graph `graph` (a `gp.Graph`) under `key`; requests get the nodes
    inside their ROI, with edges leaving it cut at the border (1.x name of
    `GraphSource(key, graph)`).

    A graph without a ROI is provided everywhere (an unbounded ROI); its nodes are indexed
    in a KD-tree at setup, so each request reads only the nodes in its ROI.

    Args:
        key: the GraphKey to provide.
        graph: the `gp.Graph` (or a networkx graph with `location` node attributes).
        graph_spec: optional GraphSpec overriding the graph's own spec (e.g. its ROI).
        trim: cut edges leaving a requested ROI at its border (default True).

    Example::

        nodes = [gp.Node(0, np.array([0, 0, 0])), gp.Node(1, np.array([50, 50, 50]))]
        source = gp.GPGraphSource(points, gp.Graph(nodes, [], gp.GraphSpec()))
    """

    def __init__(
        self, key: GraphKey, graph: Any, graph_spec: GraphSpec | None = None, trim: bool = True
    ) -> None:
        if isinstance(key, GraphKey) is False and isinstance(graph, GraphKey):
            raise TypeError(
                "GPGraphSource(key, graph): the GraphKey comes first; for a daisy graph "
                "provider use GraphSource(provider, key)"
            )
        super().__init__(key, graph, graph_spec, trim)


__all__ = ["GPGraphSource"]
