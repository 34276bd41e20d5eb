"""`IterateLocations`: centre each request on the next node of a graph (1.x node).

`SpecifiedLocation` with the locations read from upstream: the nodes of a graph (optionally
only those in a ROI) are looked up once, at the first request, and visited in turn.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..spec import ArrayKey, ArraySpec, BatchRequest, GraphKey, ProviderSpec
from ._graph_index import PointIndex
from ._graph_support import point_index_for, read_point_index
from ._location import (
    Fetch,
    LocationChoice,
    add_nonspatial_key,
    fits,
    is_spatial,
    lcm_voxel_size,
    provided_everywhere,
    shift_request,
    total_roi,
)
from .specified_location import SpecifiedLocation

logger = logging.getLogger(__name__)


def _provided(spec: ProviderSpec, keys: list) -> str:
    return ", ".join(f"{k}: {spec[k].roi}" for k in keys if k in spec)


class IterateLocations(SpecifiedLocation):
    """Centre each request on the nodes of `graph` (a GraphKey), one after another.

    The nodes are those upstream provides for `graph`, within `roi` if given, in the graph's
    order; they are found once, at the first request (from the graph source's point index,
    else by reading the graph in its provided ROI). Each request is moved on the voxel grid so
    that the next node lies within half a voxel of the centre of its bounding box (centre -
    voxel/2 <= node < centre + voxel/2, so always inside it); after the last node the first
    comes again; with `choose_randomly`, a node is drawn from the request's `rng` (with
    replacement). A node that would take the request outside the upstream data is skipped with
    a warning. `node_id` (an ArrayKey) receives the id of the node as a nonspatial int64 array of shape
    (1,) (as 1.x).
    As in `SpecifiedLocation`, the counter is the one state kept across requests: each worker
    process (PreCache) counts on its own copy. Downstream, every spatial key is offered with
    an unbounded ROI.

    Args:
        graph: the GraphKey whose nodes are visited; it must be provided upstream.
        roi: only visit the nodes inside this ROI (world units). Default None: every node in
            the graph's provided ROI (which must then be bounded, unless the graph source has
            a point index).
        node_id: an ArrayKey under which the id of the visited node is stored, as a
            nonspatial int64 array of shape (1,), when requested. Default None.
        choose_randomly: draw a node uniformly (with replacement) from the request's
            Generator instead of visiting them in turn. Default False: in turn, starting over
            after the last.

    Example::

        raw, points, node_id = gp.ArrayKey("RAW"), gp.GraphKey("POINTS"), gp.ArrayKey("NODE_ID")
        pipeline = (
            gp.ZarrSource("sample.zarr", {raw: "raw"}),
            gp.CsvPointsSource("points.csv", points),
        ) + gp.MergeProvider()
        pipeline += gp.IterateLocations(points, node_id=node_id)
        request = gp.BatchRequest()
        request[raw] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (400, 400, 400)))
        request[node_id] = gp.ArraySpec(nonspatial=True)
        with gp.build(pipeline):
            batch = pipeline.request_batch(request)  # centred on the first node
    """

    drives_upstream = True

    def __init__(
        self,
        graph: GraphKey,
        roi: Roi | None = None,
        node_id: ArrayKey | None = None,
        choose_randomly: bool = False,
    ) -> None:
        if not isinstance(graph, GraphKey):
            raise TypeError(f"IterateLocations: graph must be a GraphKey, got {graph!r}")
        if roi is not None and not isinstance(roi, Roi):
            raise TypeError(f"IterateLocations: roi must be a Roi or None, got {roi!r}")
        if node_id is not None and not isinstance(node_id, ArrayKey):
            raise TypeError(f"IterateLocations: node_id must be an ArrayKey, got {node_id!r}")
        self.graph = graph
        self.roi = roi
        self.node_id = node_id
        self.choose_randomly = choose_randomly
        # SpecifiedLocation's machinery: locations are filled in at the first request
        self.locations: list[Coordinate] = []
        self.extra_data = None
        self.jitter = None
        self._ids: np.ndarray | None = None
        self._points = np.zeros((0, 0))
        self._counter = 0
        self._counter_lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"IterateLocations({self.graph})"

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, self.graph)
        provided = upstream_spec[self.graph].roi
        if self.roi is not None and provided is not None and self.roi.dims != provided.dims:
            raise PipelineSetupError(
                f"{self.name}: roi {self.roi} has {self.roi.dims} dimensions, the graph "
                f"{self.graph} upstream {provided.dims} (ROI {provided})"
            )
        spec = provided_everywhere(upstream_spec)
        add_nonspatial_key(spec, self.node_id, self.name, "node_id")
        with self._counter_lock:
            self.locations, self._ids, self._counter = [], None, 0
            self._points = np.zeros((0, 0))
        return spec

    def _region(self) -> Roi | None:
        """Where nodes are taken from: the graph's provided ROI, within `roi` if given."""
        provided = self.upstream_spec[self.graph].roi
        if self.roi is None or provided is None:
            return self.roi if provided is None else provided
        return provided.intersect(self.roi)

    def _load(self, fetch: Fetch) -> None:
        """Find the nodes once: the source's point index if there is one, else read them."""
        with self._counter_lock:
            if self._ids is not None:
                return
            region = self._region()
            index: PointIndex | None = None
            if self.upstream_pipelines:
                index = point_index_for(self.upstream_pipelines[0], self.graph)
            if index is None:
                if region is None or region.unbounded:
                    raise PipelineRequestError(
                        f"{self.name}: no point index of {self.graph} upstream, and its ROI "
                        f"{region} is unbounded, so its nodes can not be read; pass a bounded "
                        "roi"
                    )
                index = read_point_index(fetch, self.graph, region)
            chosen = np.arange(len(index)) if region is None else index.query_box(region)
            if len(chosen) == 0:
                raise PipelineRequestError(
                    f"{self.name}: graph {self.graph} has no node in {region} to centre requests on"
                )
            self._points = index.locations[chosen]
            self.locations = [Coordinate(np.rint(loc).astype(np.int64)) for loc in self._points]
            self._ids = index.ids[chosen]

    def _shift(self, index: int, total: Roi, step: Coordinate) -> Coordinate:
        """The shift (a multiple of `step`) that puts node `index` into the central `step`
        box of `total`: centre - step/2 <= node - shift < centre + step/2."""
        point = self._points[index]
        if len(point) != total.dims:
            raise PipelineRequestError(
                f"{self.name}: the nodes of {self.graph} have {len(point)} dimensions, the "
                f"request {total.dims}"
            )
        step_arr = np.array(step, dtype=np.float64)
        centre = np.array(total.begin, np.float64) + np.array(total.shape, np.float64) / 2
        return Coordinate(np.floor((point - centre) / step_arr + 0.5).astype(np.int64)) * step

    def prepare(
        self, request: BatchRequest, rng: np.random.Generator
    ) -> tuple[BatchRequest, LocationChoice]:
        """The upstream request centred on the next node that lets it fit, and that choice."""
        total = total_roi(request)
        if total is None:  # nothing spatial asked for: still visit the next node
            return request, LocationChoice(None, self._next_index(rng))
        keys = [k for k, spec in request.items() if is_spatial(spec)]
        step = lcm_voxel_size(self.upstream_spec, keys, total.dims)
        skipped = set()
        for _ in range((10 if self.choose_randomly else 1) * len(self.locations)):
            index = self._next_index(rng)
            shift = self._shift(index, total, step)
            shifted = shift_request(request, shift)
            if fits(shifted, self.upstream_spec):
                return shifted, LocationChoice(shift, index)
            skipped.add(int(self._ids[index]))
            logger.warning(
                "%s: node %d at %s would take the request %s outside the upstream data; skipped",
                self.name,
                self._ids[index],
                tuple(float(x) for x in self._points[index]),
                total,
            )
        raise PipelineRequestError(
            f"{self.name}: no node tried (ids {sorted(skipped)}) can hold the request "
            f"{total} inside the upstream ROIs {_provided(self.upstream_spec, keys)}"
        )

    def serve(self, request: BatchRequest, rng: np.random.Generator, fetch: Fetch) -> Batch:
        self._load(fetch)
        upstream = request.copy()
        if self.node_id is not None and self.node_id in upstream:
            del upstream[self.node_id]
        upstream, ctx = self.prepare(upstream, rng)
        batch = self.process(fetch(upstream) if len(upstream) else Batch(), ctx)
        if self.node_id is not None and self.node_id in request:
            assert self._ids is not None
            batch[self.node_id] = Array(
                np.array([self._ids[ctx.index]], dtype=np.int64),
                ArraySpec(nonspatial=True, dtype=np.int64),
            )
        return batch


__all__ = ["IterateLocations"]
