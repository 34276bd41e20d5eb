"""`Graph` (points and skeletons: `Node`s with a world location, `Edge`s) as a batch value.

Locations are world units (nm). A graph stores them in its spec's `dtype` (float32 by default,
as 1.x; `GraphSpec(dtype=np.float64)` keeps more precision); every operation that creates a
location (trim's border nodes, moves) rounds it into that dtype first and decides inside/outside
on the stored value, so a node never lands outside the ROI it was put in. A node lies inside a ROI when `begin <= location < end` on every bounded axis (as
`Roi.contains`). `crop(roi)` keeps exactly the nodes inside; `crop(roi, trim=True)` (or
`trim(roi)`) also keeps edges that leave the ROI, ending them in new *temporary* nodes on the
ROI's border. `locations`/`node_ids` give all nodes at once for vectorised maths.
"""

from __future__ import annotations

import copy as _copy
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .geometry import Coordinate, Roi
from .spec import GraphKey, GraphKeys, GraphSpec


class Node:
    """A graph node: integer `id`, `location` (a float array, world units), `attrs` (a dict).

    `temporary` marks nodes created by `Graph.trim` on a ROI border; `original_id` is the id,
    or None for such nodes (as 1.x). As in 1.x, `node.<name>` reads and writes `attrs[name]`
    for names that are not the node's own fields. A free node keeps a float location's dtype
    (other inputs become float64); a graph casts its nodes to the graph's dtype.
    """

    __slots__ = ("id", "_location", "temporary", "attrs")
    _FIELDS = frozenset(__slots__) | {"location"}

    def __init__(
        self, id: int, location: Any, temporary: bool = False, attrs: dict | None = None
    ) -> None:
        object.__setattr__(self, "attrs", {} if attrs is None else dict(attrs))
        for name in ("id", "location", "temporary"):  # 1.x keeps these in attrs too
            self.attrs.pop(name, None)
        object.__setattr__(self, "id", int(id))
        self.location = location
        object.__setattr__(self, "temporary", bool(temporary))

    @property
    def location(self) -> np.ndarray:
        return self._location

    @location.setter
    def location(self, value: Any) -> None:
        loc = np.asarray(value)
        dtype = loc.dtype if np.issubdtype(loc.dtype, np.floating) else np.float64
        loc = np.array(loc, dtype=dtype).reshape(-1)
        if not np.all(np.isfinite(loc)):
            raise ValueError(f"node {self.id}: location must be finite, got {tuple(loc)}")
        object.__setattr__(self, "_location", loc)

    @property
    def original_id(self) -> int | None:
        """The id, None for temporary (border) nodes: they have no node in the source."""
        return None if self.temporary else self.id

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: a 1.x attribute such as node.radius
        if name.startswith("__") or name in Node._FIELDS:
            raise AttributeError(name)
        try:
            return object.__getattribute__(self, "attrs")[name]
        except (KeyError, AttributeError):
            raise AttributeError(
                f"Node {self.id} has no attribute {name!r} (attrs: {sorted(self.attrs)})"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Node._FIELDS:
            if name == "id":
                value = int(value)
            elif name == "temporary":
                value = bool(value)
            if name == "location":
                Node.location.fset(self, value)
            else:
                object.__setattr__(self, name, value)
        else:
            self.attrs[name] = value

    def __getstate__(self) -> tuple:
        return (self.id, self._location, self.temporary, self.attrs)

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(("id", "_location", "temporary", "attrs"), state):
            object.__setattr__(self, name, value)

    @property
    def all(self) -> dict:
        """Attributes plus `id`, `location` and `temporary` (as 1.x `Node.all`)."""
        return {**self.attrs, "id": self.id, "location": self.location, "temporary": self.temporary}

    def copy(self) -> Node:
        new = Node.__new__(Node)
        new.__setstate__(
            (self.id, self._location.copy(), self.temporary, _copy.deepcopy(self.attrs))
        )
        return new

    def __eq__(self, other: object) -> bool:
        """Nodes are equal when their ids are (as in 1.x: `Node(1, ...) in graph.nodes` asks
        whether node 1 is there, wherever it moved); `same_as` compares everything."""
        return isinstance(other, Node) and self.id == other.id

    def same_as(self, other: object) -> bool:
        """Equal id, location, attributes and temporary flag."""
        return (
            isinstance(other, Node)
            and self.id == other.id
            and self.temporary == other.temporary
            and np.array_equal(self._location, other._location)
            and _attrs_equal(self.attrs, other.attrs)
        )

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        extra = ", temporary" if self.temporary else ""
        attrs = f", attrs={self.attrs}" if self.attrs else ""
        return f"Node({self.id}, {tuple(float(x) for x in self._location)}{extra}{attrs})"


class Edge:
    """An edge between node ids `u` and `v`, with `attrs` (a dict)."""

    __slots__ = ("u", "v", "attrs")

    def __init__(self, u: int, v: int, attrs: dict | None = None) -> None:
        self.u = int(u)
        self.v = int(v)
        self.attrs = {} if attrs is None else dict(attrs)

    @property
    def all(self) -> dict:
        return {**self.attrs, "u": self.u, "v": self.v}

    def copy(self) -> Edge:
        return Edge(self.u, self.v, _copy.deepcopy(self.attrs))

    def __iter__(self) -> Iterator[int]:
        """`u, v = edge` (as 1.x)."""
        return iter((self.u, self.v))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Edge)
            and (self.u, self.v) == (other.u, other.v)
            and _attrs_equal(self.attrs, other.attrs)
        )

    def __hash__(self) -> int:
        return hash((self.u, self.v))

    def __repr__(self) -> str:
        attrs = f", attrs={self.attrs}" if self.attrs else ""
        return f"Edge({self.u}, {self.v}{attrs})"


def _attrs_equal(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k, v in a.items():
        w = b[k]
        if isinstance(v, np.ndarray) or isinstance(w, np.ndarray):
            if not np.array_equal(v, w):
                return False
        elif v != w:
            return False
    return True


class _AttrsKey:
    """Attributes compared with `_attrs_equal` (numpy-safe), for graph equality."""

    __slots__ = ("attrs",)

    def __init__(self, attrs: dict) -> None:
        self.attrs = attrs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _AttrsKey) and _attrs_equal(self.attrs, other.attrs)


def _bounds(roi: Roi) -> tuple[np.ndarray, np.ndarray]:
    """(begin, end) of a ROI as float arrays, unbounded axes as -inf/+inf."""
    begin = np.array([-np.inf if b is None else b for b in roi.begin], dtype=np.float64)
    end = np.array([np.inf if e is None else e for e in roi.end], dtype=np.float64)
    return begin, end


def inside_mask(locations: np.ndarray, roi: Roi) -> np.ndarray:
    """Which rows of `locations` (N, dims) lie inside `roi` (half-open, as `Roi.contains`)."""
    locations = np.asarray(locations, dtype=np.float64)
    if locations.ndim != 2 or (len(locations) and locations.shape[1] != roi.dims):
        raise ValueError(
            f"locations of shape {locations.shape} do not match the {roi.dims}D ROI {roi}"
        )
    begin, end = _bounds(roi)
    return np.all((locations >= begin) & (locations < end), axis=1)


def clip_segments(
    start: np.ndarray, stop: np.ndarray, roi: Roi
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip segments start→stop (N, dims) to the closed box of `roi` (Liang–Barsky).

    Returns (t0, t1, hit): the clipped part is start + t * (stop - start) for t in [t0, t1];
    `hit` is False where the segment misses the box.
    """
    begin, end = _bounds(roi)
    d = stop - start
    t0 = np.zeros(len(start))
    t1 = np.ones(len(start))
    hit = np.ones(len(start), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis in range(start.shape[1]):
            p, q = start[:, axis], d[:, axis]
            b, e = begin[axis], end[axis]
            if not (np.isfinite(b) and np.isfinite(e)):
                continue
            flat = q == 0
            hit &= ~(flat & ((p < b) | (p > e)))
            ta = (b - p) / q
            tb = (e - p) / q
            lo = np.where(flat, -np.inf, np.minimum(ta, tb))
            hi = np.where(flat, np.inf, np.maximum(ta, tb))
            t0 = np.maximum(t0, lo)
            t1 = np.minimum(t1, hi)
    hit &= t0 <= t1
    return t0, t1, hit


def _into_roi(points: np.ndarray, roi: Roi, dtype: Any = np.float64) -> np.ndarray:
    """Points on the closed box of `roi` as `dtype` values inside the half-open ROI.

    The bounds are the `dtype` values nearest inside (upper faces nudged in, and bounds that
    `dtype` can not represent rounded inwards), so the stored location is inside the ROI.
    """
    dtype = np.dtype(dtype)
    begin, end = _bounds(roi)
    if not np.issubdtype(dtype, np.floating):
        lo = np.where(np.isfinite(begin), np.ceil(begin), np.iinfo(dtype).min)
        hi = np.where(np.isfinite(end), np.ceil(end) - 1, np.iinfo(dtype).max)
        return np.clip(np.round(points), lo, hi).astype(dtype)
    lo = begin.astype(dtype)
    lo = np.where(lo < begin, np.nextafter(lo, dtype.type(np.inf)), lo)
    hi = end.astype(dtype)
    hi = np.where(hi >= end, np.nextafter(hi, dtype.type(-np.inf)), hi)
    return np.clip(points.astype(dtype), lo, hi)


def _passes_through(start: np.ndarray, stop: np.ndarray, roi: Roi) -> np.ndarray:
    """Which segments start→stop (N, dims) run through the inside of `roi` (a stretch of
    positive length whose midpoint is inside the half-open ROI)."""
    t0, t1, hit = clip_segments(start, stop, roi)
    t0, t1 = np.where(hit, t0, 0.0), np.where(hit, t1, 0.0)
    mid = start + (0.5 * (t0 + t1))[:, None] * (stop - start)
    return hit & (t1 > t0) & inside_mask(mid, roi)


class _ListIter(list):
    """A list that is also its own iterator: `graph.nodes` is a generator in 1.x
    (`next(graph.nodes)`), a list here (`len`, indexing)."""

    _pos = 0

    def __next__(self) -> Any:
        if self._pos >= len(self):
            raise StopIteration
        self._pos += 1
        return self[self._pos - 1]


class Graph:
    """Nodes and edges with a `GraphSpec` (ROI, directed). `Graph(nodes, edges, spec)`.

    Mutable like 1.x (`add_node`, `remove_node`, `add_edge`, `node.location = ...`);
    `crop`, `trim`, `copy` and `with_locations` return new graphs sharing nothing. Node
    locations are stored as `spec.dtype` (float32 by default, as 1.x): `add_node` casts the
    node it is given.
    """

    def __init__(
        self,
        nodes: Iterable[Node] = (),
        edges: Iterable[Edge] = (),
        spec: GraphSpec | None = None,
    ) -> None:
        self.spec = GraphSpec() if spec is None else spec.copy()
        self._nodes: dict[int, Node] = {}
        self._edges: dict[tuple[int, int], Edge] = {}
        for node in nodes:
            self.add_node(node)
        for edge in edges:
            self.add_edge(edge)

    # construction ----------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        locations: Any,
        ids: Any = None,
        edges: Any = None,
        spec: GraphSpec | None = None,
        node_attrs: list[dict] | None = None,
        edge_attrs: list[dict] | None = None,
    ) -> Graph:
        """A graph from `locations` (N, dims), `ids` (N,; default 0..N-1) and `edges` (E, 2) ids."""
        locations = np.asarray(locations, dtype=np.float64)
        if locations.ndim != 2:
            raise ValueError(f"locations must be (N, dims), got shape {locations.shape}")
        ids = np.arange(len(locations)) if ids is None else np.asarray(ids)
        if len(ids) != len(locations):
            raise ValueError(f"got {len(ids)} ids for {len(locations)} locations")
        graph = cls(spec=spec)
        for i, (node_id, loc) in enumerate(zip(ids.tolist(), locations)):
            attrs = None if node_attrs is None else node_attrs[i]
            graph.add_node(Node(node_id, loc, attrs=attrs))
        if edges is not None:
            for i, (u, v) in enumerate(np.asarray(edges, dtype=np.int64).reshape(-1, 2).tolist()):
                graph.add_edge(Edge(u, v, None if edge_attrs is None else edge_attrs[i]))
        return graph

    @classmethod
    def from_nx_graph(cls, graph: Any, spec: GraphSpec | None = None) -> Graph:
        """A graph from a networkx graph whose nodes carry a `location` attribute.

        Other node/edge data become attributes; directedness follows the networkx graph.
        """
        spec = GraphSpec() if spec is None else spec.copy()
        if spec.directed is None:
            spec.directed = bool(graph.is_directed())
        nodes = []
        for node_id, data in graph.nodes(data=True):
            if "location" not in data:
                raise ValueError(
                    f"networkx node {node_id!r} has no 'location' attribute; every node needs "
                    "one (world units)"
                )
            attrs = {k: v for k, v in data.items() if k not in ("location", "temporary")}
            nodes.append(Node(node_id, data["location"], data.get("temporary", False), attrs))
        edges = [Edge(u, v, dict(data)) for u, v, data in graph.edges(data=True)]
        return cls(nodes, edges, spec)

    def to_nx_graph(self) -> Any:
        """A networkx (Di)Graph; node data: `location` and the attributes (`temporary` if set)."""
        import networkx as nx

        g = nx.DiGraph() if self.directed else nx.Graph()
        for node in self._nodes.values():
            data = dict(node.attrs, location=node.location.copy())
            if node.temporary:
                data["temporary"] = True
            g.add_node(node.id, **data)
        for edge in self._edges.values():
            g.add_edge(edge.u, edge.v, **edge.attrs)
        return g

    # properties --------------------------------------------------------------------------
    @property
    def directed(self) -> bool:
        return bool(self.spec.directed)

    @property
    def roi(self) -> Roi | None:
        return self.spec.roi

    @property
    def dtype(self) -> np.dtype:
        """The dtype node locations are stored in (`spec.dtype`; float32 by default)."""
        return np.dtype(self.spec.dtype)

    @property
    def dims(self) -> int | None:
        if self.spec.roi is not None:
            return self.spec.roi.dims
        first = next(iter(self._nodes.values()), None)
        return None if first is None else len(first.location)

    @property
    def nodes(self) -> list[Node]:
        """The nodes (the graph's own objects: changing one changes the graph), as a list that
        is also an iterator (`next(graph.nodes)` works as with 1.x's generator)."""
        return _ListIter(self._nodes.values())

    @property
    def edges(self) -> list[Edge]:
        """The edges, as a list that is also an iterator (see `nodes`)."""
        return _ListIter(self._edges.values())

    def num_vertices(self) -> int:
        return len(self._nodes)

    def num_edges(self) -> int:
        return len(self._edges)

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(list(self._nodes.values()))

    def __contains__(self, node: Any) -> bool:
        return (node.id if isinstance(node, Node) else int(node)) in self._nodes

    def contains(self, node_id: int) -> bool:
        return node_id in self._nodes

    def node(self, node_id: int) -> Node:
        try:
            return self._nodes[int(node_id)]
        except KeyError:
            raise KeyError(f"graph has no node with id {node_id}") from None

    def edge(self, u: int, v: int) -> Edge:
        try:
            return self._edges[self._edge_key(u, v)]
        except KeyError:
            raise KeyError(f"graph has no edge ({u}, {v})") from None

    def has_edge(self, u: int, v: int) -> bool:
        return self._edge_key(u, v) in self._edges

    # vectorised access -------------------------------------------------------------------
    @property
    def node_ids(self) -> np.ndarray:
        """Node ids (N,) int64, in the order of `locations`."""
        return np.fromiter(self._nodes.keys(), dtype=np.int64, count=len(self._nodes))

    @property
    def locations(self) -> np.ndarray:
        """All node locations (N, dims) as `dtype` (a copy), in the order of `node_ids`."""
        if not self._nodes:
            return np.zeros((0, self.dims or 0), dtype=self.dtype)
        return np.stack([n.location for n in self._nodes.values()]).astype(self.dtype, copy=False)

    def _store(self, node: Node, location: Any) -> None:
        """Set `node`'s location to `location` cast to the graph's dtype (checked finite)."""
        loc = np.asarray(location)
        if not np.all(np.isfinite(loc)):
            raise ValueError(f"node {node.id}: location must be finite, got {tuple(loc)}")
        object.__setattr__(node, "_location", np.array(loc, dtype=self.dtype).reshape(-1))

    def set_locations(self, locations: Any) -> Graph:
        """Move every node (rows in `node_ids` order, cast to `dtype`) in place; returns self."""
        locations = np.asarray(locations)
        if locations.shape[0] != len(self._nodes):
            raise ValueError(
                f"set_locations got {locations.shape[0]} locations for {len(self._nodes)} nodes"
            )
        for node, loc in zip(self._nodes.values(), locations):
            self._store(node, loc)
        return self

    def with_locations(self, locations: Any, roi: Roi | None = None) -> Graph:
        """A copy with the nodes moved to `locations` (and the spec's ROI set to `roi` if given)."""
        new = self.copy().set_locations(locations)
        if roi is not None:
            new.spec = new.spec.replace(roi=roi)
        return new

    @property
    def edge_array(self) -> np.ndarray:
        """Edges as (E, 2) int64 node ids."""
        if not self._edges:
            return np.zeros((0, 2), dtype=np.int64)
        return np.array([(e.u, e.v) for e in self._edges.values()], dtype=np.int64)

    def edge_index(self) -> np.ndarray:
        """Edges as (E, 2) row indices into `locations`."""
        position = {node_id: i for i, node_id in enumerate(self._nodes)}
        return np.array(
            [(position[e.u], position[e.v]) for e in self._edges.values()], dtype=np.int64
        ).reshape(-1, 2)

    # mutation ----------------------------------------------------------------------------
    def _edge_key(self, u: int, v: int) -> tuple[int, int]:
        u, v = int(u), int(v)
        return (u, v) if self.directed or u <= v else (v, u)

    def add_node(self, node: Node) -> None:
        if not isinstance(node, Node):
            raise TypeError(f"add_node needs a gunpowder.graph.Node, got {type(node).__name__}")
        dims = self.dims
        if dims is not None and len(node.location) != dims:
            raise ValueError(
                f"node {node.id} has a {len(node.location)}D location, the graph is {dims}D"
            )
        if node.location.dtype != self.dtype:
            self._store(node, node.location)
        self._nodes[node.id] = node

    def add_nodes(self, nodes: Iterable[Node]) -> None:
        for node in nodes:
            self.add_node(node)

    def add_edge(self, edge: Edge) -> None:
        if not isinstance(edge, Edge):
            raise TypeError(f"add_edge needs a gunpowder.graph.Edge, got {type(edge).__name__}")
        for end in (edge.u, edge.v):
            if end not in self._nodes:
                raise ValueError(
                    f"edge ({edge.u}, {edge.v}) refers to node {end}, not in the graph"
                )
        self._edges[self._edge_key(edge.u, edge.v)] = edge

    def add_edges(self, edges: Iterable[Edge]) -> None:
        for edge in edges:
            self.add_edge(edge)

    def remove_edge(self, edge: Edge) -> None:
        self._edges.pop(self._edge_key(edge.u, edge.v), None)

    def neighbors(self, node: Node | int) -> list[Node]:
        """Nodes connected to `node` by an edge in either direction (as 1.x: Nodes)."""
        nid = node.id if isinstance(node, Node) else int(node)
        out = []
        for u, v in self._edges:
            if u == nid:
                out.append(self._nodes[v])
            elif v == nid:
                out.append(self._nodes[u])
        return out

    def successors(self, node: Node | int) -> list[int]:
        """Ids of the nodes `node` has an edge to (all neighbours if undirected; ids, as 1.x)."""
        nid = node.id if isinstance(node, Node) else int(node)
        if not self.directed:
            return [n.id for n in self.neighbors(nid)]
        return [v for u, v in self._edges if u == nid]

    def predecessors(self, node: Node | int) -> list[int]:
        """Ids of the nodes with an edge to `node` (all neighbours if undirected)."""
        nid = node.id if isinstance(node, Node) else int(node)
        if not self.directed:
            return [n.id for n in self.neighbors(nid)]
        return [u for u, v in self._edges if v == nid]

    def in_degree(self) -> dict[int, int]:
        degree = dict.fromkeys(self._nodes, 0)
        for u, v in self._edges:
            degree[v] += 1
            if not self.directed:
                degree[u] += 1
        return degree

    def remove_node(self, node: Node | int, retain_connectivity: bool = False) -> None:
        """Remove a node and its edges; with `retain_connectivity`, connect its neighbours
        (predecessors to successors if directed)."""
        nid = node.id if isinstance(node, Node) else int(node)
        if nid not in self._nodes:
            return
        preds = self.predecessors(nid)
        succs = self.successors(nid)
        for key in [k for k in self._edges if nid in k]:
            del self._edges[key]
        del self._nodes[nid]
        if retain_connectivity:
            for u in preds:
                for v in succs:
                    if u != v and not self.has_edge(u, v):
                        self.add_edge(Edge(u, v))

    def shift(self, offset: Any) -> Graph:
        """Move every node and the ROI by `offset` (world units), in place; returns self."""
        offset_arr = np.asarray(offset, dtype=np.float64).reshape(-1)
        if len(offset_arr) == 1 and (self.dims or 1) > 1:
            offset_arr = np.full(self.dims, offset_arr[0])
        if self.spec.roi is not None:
            if not np.all(offset_arr == np.round(offset_arr)):
                raise ValueError(
                    f"Graph.shift: can not shift the ROI {self.spec.roi} by the fractional "
                    f"offset {tuple(offset_arr)}; use with_locations to move nodes only"
                )
            self.spec = self.spec.replace(roi=self.spec.roi.shift(Coordinate(offset_arr)))
        for node in self._nodes.values():
            self._store(node, node.location + offset_arr)
        return self

    # components ---------------------------------------------------------------------------
    @property
    def connected_components(self) -> list[set[int]]:
        """Sets of node ids, one per (weakly) connected component."""
        parent = {nid: nid for nid in self._nodes}

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for u, v in self._edges:
            ru, rv = find(u), find(v)
            if ru != rv:
                parent[ru] = rv
        comps: dict[int, set[int]] = {}
        for nid in self._nodes:
            comps.setdefault(find(nid), set()).add(nid)
        return list(comps.values())

    def relabel_connected_components(self) -> None:
        """Set the attribute `component` of every node to the index of its component."""
        for i, comp in enumerate(self.connected_components):
            for nid in comp:
                self._nodes[nid].attrs["component"] = i

    # cropping ----------------------------------------------------------------------------
    def crop(
        self,
        roi: Roi,
        trim: bool = False,
        exact: bool = False,
        new_ids_from: int | None = None,
    ) -> Graph:
        """A new graph with the nodes inside `roi`; the spec's ROI becomes `roi`.

        As 1.x, `crop(roi)` also keeps the *dangling* nodes: outside nodes with an edge to an
        inside node, with those edges (edges between two outside nodes are dropped), so a
        later `trim` can still cut them at the border. `exact=True` keeps exactly the nodes
        inside and the edges between them. `trim=True` (`trim(roi)`) keeps every edge that
        crosses the ROI's border but replaces its outside end by a new temporary node
        (attributes of the node it replaces) where the edge meets the border; new ids count
        up from `new_ids_from` (default: this graph's largest id + 1), in edge order, so
        cropping a graph or a part of it holding the same crossing edges gives the same ids.
        """
        if not isinstance(roi, Roi):
            raise TypeError(f"Graph.crop needs a Roi, got {type(roi).__name__}")
        spec = self.spec.replace(roi=roi)
        new = Graph(spec=spec)
        if not self._nodes:
            return new
        ids = self.node_ids
        locs = self.locations
        if locs.shape[1] != roi.dims:
            raise ValueError(f"can not crop a {locs.shape[1]}D graph to the {roi.dims}D ROI {roi}")
        inside = dict(zip(ids.tolist(), inside_mask(locs, roi).tolist()))
        keep = dict(inside)
        dangling = not (trim or exact)
        if dangling:
            for u, v in self._edges:
                if inside[u] or inside[v]:
                    keep[u] = keep[v] = True
        for nid, node in self._nodes.items():
            if keep[nid]:
                copied = node.copy()
                if copied._location.dtype != new.dtype:
                    new._store(copied, copied._location)
                new._nodes[nid] = copied
        crossing = []
        for key, edge in self._edges.items():
            u_in, v_in = inside[edge.u], inside[edge.v]
            if (u_in and v_in) or (dangling and (u_in or v_in)):
                new._edges[key] = edge.copy()
            elif trim:
                crossing.append(edge)
        if crossing:
            first = int(ids.max()) + 1 if new_ids_from is None else int(new_ids_from)
            self._add_boundary_edges(new, crossing, roi, inside, first)
        return new

    def _add_boundary_edges(
        self, new: Graph, crossing: list[Edge], roi: Roi, inside: dict, next_id: int
    ) -> None:
        start = np.stack([self._nodes[e.u].location for e in crossing]).astype(np.float64)
        stop = np.stack([self._nodes[e.v].location for e in crossing]).astype(np.float64)
        t0, t1, hit = clip_segments(start, stop, roi)
        t0, t1 = np.where(hit, t0, 0.0), np.where(hit, t1, 0.0)  # misses: any finite value
        d = stop - start
        a = _into_roi(start + t0[:, None] * d, roi, new.dtype)
        b = _into_roi(start + t1[:, None] * d, roi, new.dtype)
        through = _passes_through(start, stop, roi)
        fresh = itertools.count(next_id)
        for i, edge in enumerate(crossing):
            u_in, v_in = inside[edge.u], inside[edge.v]
            if not hit[i] or (not u_in and not v_in and not through[i]):
                continue
            ends = []
            for end_id, end_in, loc in ((edge.u, u_in, a[i]), (edge.v, v_in, b[i])):
                if end_in:
                    ends.append(end_id)
                    continue
                nid = next(fresh)
                while nid in new._nodes or nid in self._nodes:
                    nid = next(fresh)
                attrs = _copy.deepcopy(self._nodes[end_id].attrs)
                node = Node(nid, np.zeros(0), temporary=True, attrs=attrs)
                object.__setattr__(node, "_location", loc)
                new._nodes[nid] = node
                ends.append(nid)
            new._edges[new._edge_key(*ends)] = Edge(ends[0], ends[1], _copy.deepcopy(edge.attrs))

    def trim(self, roi: Roi, new_ids_from: int | None = None) -> Graph:
        """`crop(roi, trim=True)`: nodes inside plus edges leaving the ROI cut at its border."""
        return self.crop(roi, trim=True, new_ids_from=new_ids_from)

    # merging -----------------------------------------------------------------------------
    def merge(self, other: Graph, copy_from_self: bool = False, copy: bool = False) -> Graph:
        """This graph and `other` as one (1.x `Graph.merge`).

        The winner is `other` (or this graph, with `copy_from_self`). Inside the winner's ROI
        only the winner's nodes are kept (as `Array.merge` overwrites the overlap); outside it
        the loser's nodes are kept too, and on an id collision the winner's node or edge is
        taken. The loser's edges are kept where both ends are in the result, except edges with
        an end inside the winner's ROI (in the loser or in the result): the winner decides
        everything touching its ROI, also the edges leaving it (a trimmed winner already cut
        them at its border), so cropped or trimmed to the winner's ROI the result is the
        winner. The result's ROI is the larger one if one
        contains the other, else the box around both (as when `Scan` stitches tiles); a graph
        without ROI has no region, only ids. Neither input is changed; nodes and edges are
        shared with the inputs unless `copy=True`.
        """
        if not isinstance(other, Graph):
            raise TypeError(f"Graph.merge needs a Graph, got {type(other).__name__}")
        if self.directed != other.directed:
            raise ValueError(
                f"can not merge a {'' if self.directed else 'un'}directed graph with a "
                f"{'' if other.directed else 'un'}directed one"
            )
        winner, loser = (self, other) if copy_from_self else (other, self)
        region, rest = winner.spec.roi, loser.spec.roi
        if region is None:
            spec = winner.spec if rest is None else loser.spec
        elif rest is None or region.contains(rest):
            spec = winner.spec
        elif rest.contains(region):
            spec = loser.spec
        else:
            spec = winner.spec.replace(roi=region.union(rest))
        covered: set[int] = set()
        won: set[int] = set()
        if region is not None:
            for graph, ids in ((loser, covered), (winner, won)):
                if graph._nodes:
                    hits = inside_mask(graph.locations, region).tolist()
                    ids.update(nid for nid, hit in zip(graph._nodes, hits) if hit)
        take = (lambda item: item.copy()) if copy else (lambda item: item)
        merged = Graph(spec=spec)
        merged._nodes = {nid: take(n) for nid, n in loser._nodes.items() if nid not in covered}
        merged._nodes.update((nid, take(n)) for nid, n in winner._nodes.items())
        kept = [
            (k, e)
            for k, e in loser._edges.items()
            if e.u in merged._nodes
            and e.v in merged._nodes
            and not (e.u in covered or e.v in covered or e.u in won or e.v in won)
        ]
        if region is not None and kept and not region.empty:
            # edges passing through the winner's ROI (both ends outside) touch it too
            start = np.stack([merged._nodes[e.u].location for _, e in kept]).astype(np.float64)
            stop = np.stack([merged._nodes[e.v].location for _, e in kept]).astype(np.float64)
            through = _passes_through(start, stop, region)
            kept = [item for item, hit in zip(kept, through) if not hit]
        merged._edges = {k: take(e) for k, e in kept}
        merged._edges.update((k, take(e)) for k, e in winner._edges.items())
        return merged

    # copies -------------------------------------------------------------------------------
    def copy(self) -> Graph:
        new = Graph(spec=self.spec)
        new._nodes = {k: n.copy() for k, n in self._nodes.items()}
        new._edges = {k: e.copy() for k, e in self._edges.items()}
        return new

    def __deepcopy__(self, memo: dict) -> Graph:
        return self.copy()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Graph)
            and self.spec == other.spec
            and self._nodes.keys() == other._nodes.keys()
            and all(n.same_as(other._nodes[i]) for i, n in self._nodes.items())
            and self._edge_set() == other._edge_set()
        )

    def _edge_set(self) -> dict:
        """Edges by key (orientation-free if undirected) → sorted attribute items."""
        return {k: _AttrsKey(e.attrs) for k, e in self._edges.items()}

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Graph({len(self._nodes)} nodes, {len(self._edges)} edges, roi={self.spec.roi}, "
            f"directed={self.directed})"
        )


__all__ = [
    "Graph",
    "Node",
    "Edge",
    "GraphKey",
    "GraphKeys",
    "GraphSpec",
    "inside_mask",
    "clip_segments",
]
