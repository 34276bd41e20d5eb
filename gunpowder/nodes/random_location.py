from __future__ import annotations

import itertools
import threading
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..node import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, GraphKey, ProviderSpec
from ._graph_support import (
    graph_nonempty,
    point_index_for,
    read_point_index,
    shifts_near_points,
)
from ._location import (
    Fetch,
    LazyMaskSummary,
    MaskSummary,
    add_nonspatial_key,
    is_spatial,
    lcm_voxel_size,
    mask_roi_for,
    placement_range,
    provided_everywhere,
    shift_batch,
    shift_request,
    total_roi,
)
from .specified_location import _keys


class RandomLocation(Node):
    """Cut each batch at a random location inside the upstream data.

    The shift is uniform over all positions (on the least common multiple of the voxel sizes)
    that keep every requested ROI inside its upstream ROI. With `mask` and `min_masked > 0`,
    only locations where at least `min_masked` of the mask's voxels are masked in (non-zero)
    are used: the mask ROI checked is the requested mask ROI, or else the bounding box of the
    request. Candidate locations are drawn uniformly and rejected on a summary of the mask
    (masked-in counts per block), reading the mask exactly only where the summary can not
    decide. A small mask is summarised at the first request (read blockwise); a large one
    (over `mask_eager_voxels`) lazily: only the blocks a decision needed are read, so the
    first batch reads about one request's worth of the mask. Decisions are exact either way:
    the locations do not depend on what was read before.

    With `ensure_nonempty` (a GraphKey), a request is, with probability `p_nonempty`, placed
    so that a point of that graph lies in its ROI (the graph's requested ROI, else the request's
    bounding box) -- in its central voxel with `ensure_centered` -- choosing points with weight
    1 / (points within `point_balance_radius`). Points come from the upstream source's point
    index, or are read once. `random_shift_key` stores the shift (world units) as a nonspatial
    int64 array. Subclasses may override `accepts(request)` to veto shifted requests. After
    `max_tries` candidate locations a `PipelineRequestError` explains what failed.

    Downstream, every spatial key is offered with an unbounded ROI, so the request can be
    placed anywhere (e.g. at the origin); the batch comes back with the requested ROIs.

    Args:
        min_masked: the smallest fraction (in [0, 1]) of masked-in voxels of `mask` a
            location must have. Default 0: no mask condition. A value > 0 needs `mask`.
        mask: the ArrayKey of the mask (non-zero = masked in) that `min_masked` refers to; it
            must have a bounded ROI upstream. Default None: no mask.
        ensure_nonempty: a GraphKey; if given, locations are chosen so that a point of this
            graph lies inside the request (see `p_nonempty`). Default None: any location.
        p_nonempty: the probability (in [0, 1]) that a request is placed on a point of
            `ensure_nonempty`; otherwise it is placed uniformly. Default 1.0: always.
        ensure_centered: with `ensure_nonempty`, put the chosen point into the central voxel
            of the ROI instead of anywhere inside it. Default None (= False).
        point_balance_radius: radius (world units) for balancing the choice of points: each
            point is chosen with weight 1 / (number of points within this radius), so dense
            clusters are not oversampled. Default 1 (barely any balancing).
        random_shift_key: an ArrayKey under which the chosen shift (world units, one value per
            spatial axis) is stored as a nonspatial int64 array when requested. Default None.
        max_tries: how many candidate locations to try per request before giving up with a
            `PipelineRequestError`. Default 10 000.

    Example::

        raw, labels_mask = gp.ArrayKey("RAW"), gp.ArrayKey("LABELS_MASK")
        pipeline = gp.ZarrSource("sample.zarr", {raw: "raw", labels_mask: "labels_mask"})
        pipeline += gp.RandomLocation(min_masked=0.5, mask=labels_mask)
        request = gp.BatchRequest()
        request[raw] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (400, 400, 400)))
        with gp.build(pipeline):
            batch = pipeline.request_batch(request)
    """

    drives_upstream = True
    #: summary size: at most this many blocks (the block grows as the mask grows)
    mask_summary_blocks = 2**21
    #: voxels read at once while summarising the mask
    mask_read_voxels = 2**24
    #: masks with more voxels are summarised lazily (see above)
    mask_eager_voxels = 2**24
    #: candidates drawn per round of the rejection loop
    candidates_per_round = 64

    def __init__(
        self,
        min_masked: float = 0,
        mask: ArrayKey | None = None,
        ensure_nonempty: GraphKey | None = None,
        p_nonempty: float = 1.0,
        ensure_centered: bool | None = None,
        point_balance_radius: float = 1,
        random_shift_key: ArrayKey | None = None,
        max_tries: int = 10_000,
    ) -> None:
        if not 0 <= min_masked <= 1:
            raise ValueError(f"RandomLocation: min_masked must be in [0, 1], got {min_masked}")
        if min_masked > 0 and mask is None:
            raise ValueError("RandomLocation: min_masked > 0 needs a mask (an ArrayKey)")
        if ensure_nonempty is not None and not isinstance(ensure_nonempty, GraphKey):
            raise TypeError(
                f"RandomLocation: ensure_nonempty must be a GraphKey, got {ensure_nonempty!r}"
            )
        if not 0 <= p_nonempty <= 1:
            raise ValueError(f"RandomLocation: p_nonempty must be in [0, 1], got {p_nonempty}")
        self.min_masked = min_masked
        self.mask = mask
        self.ensure_nonempty = ensure_nonempty
        self.p_nonempty = p_nonempty
        self.ensure_centered = ensure_centered
        self.point_balance_radius = point_balance_radius
        self.random_shift_key = random_shift_key
        self.max_tries = max_tries
        self._summary: MaskSummary | LazyMaskSummary | None = None
        self._points: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def _uses_mask(self) -> bool:
        return self.mask is not None and self.min_masked > 0

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, self.mask, self.ensure_nonempty)
        if self._uses_mask:
            roi = upstream_spec[self.mask].roi
            if roi is None or roi.unbounded:
                raise PipelineSetupError(
                    f"{self.name}: mask {self.mask} must have a bounded ROI upstream to choose "
                    f"locations by it, got {roi}"
                )
        spec = provided_everywhere(upstream_spec)
        add_nonspatial_key(spec, self.random_shift_key, self.name, "random_shift_key")
        self._summary = None
        self._points = None
        return spec

    def accepts(self, request: BatchRequest) -> bool:
        """Override to veto a shifted upstream request (True: use it)."""
        return True

    def serve(self, request: BatchRequest, rng: np.random.Generator, fetch: Fetch) -> Batch:
        upstream = request.copy()
        if self.random_shift_key is not None and self.random_shift_key in upstream:
            del upstream[self.random_shift_key]
        batch, shift = self._place(upstream, rng, fetch)
        batch = shift_batch(batch, -shift, self.name)
        if self.random_shift_key is not None and self.random_shift_key in request:
            batch[self.random_shift_key] = Array(
                np.array(shift, dtype=np.int64), ArraySpec(nonspatial=True, dtype=np.int64)
            )
        return batch

    # the random draw ----------------------------------------------------------------------
    def _place(
        self, request: BatchRequest, rng: np.random.Generator, fetch: Fetch
    ) -> tuple[Batch, Coordinate]:
        """Draw shifts until one meets every condition; the upstream batch there and the shift."""
        provided = self.upstream_spec
        rois = {
            k: (s.roi, provided[k].roi)
            for k, s in request.items()
            if is_spatial(s) and not s.roi.unbounded
        }
        if not rois:
            dims = next((s.roi.dims for s in provided.values() if is_spatial(s)), 0)
            shift = Coordinate((0,) * dims)
            return (fetch(request) if len(request) else Batch()), shift
        dims = next(iter(rois.values()))[0].dims
        keys = list(rois)
        mask_roi = None
        if self._uses_mask:
            mask_roi = mask_roi_for(request, self.mask, provided[self.mask])
            if mask_roi is not None:
                rois.setdefault(self.mask, (mask_roi, provided[self.mask].roi))
                keys.append(self.mask)
        step = lcm_voxel_size(provided, keys, dims)
        k_lo, k_hi = placement_range(rois, step, self.name)
        summary = self._mask_summary(fetch) if mask_roi is not None else None
        if summary is not None and summary.known_empty:
            raise PipelineRequestError(
                f"{self.name}: mask {self.mask} has no masked-in voxel in {summary.roi}; no "
                f"location can reach min_masked={self.min_masked}"
            )
        graph = self.ensure_nonempty
        nonempty = graph is not None and (self.p_nonempty >= 1 or rng.random() < self.p_nonempty)
        if nonempty:
            graph_roi = request[graph].roi if graph in request else total_roi(request)
            near = shifts_near_points(
                graph_roi,
                self._point_index(fetch),
                k_lo,
                k_hi,
                step,
                rng,
                ensure_centered=bool(self.ensure_centered),
                point_balance_radius=self.point_balance_radius,
            )
            rounds: Any = (np.array([next(near)], dtype=np.int64) for _ in itertools.count())
        else:
            step_arr = np.array(step, dtype=np.int64)
            n = self.candidates_per_round
            rounds = (
                rng.integers(k_lo, k_hi + 1, size=(n, dims)) * step_arr for _ in itertools.count()
            )
        tries = empty = 0
        exact: dict[tuple, float] = {}  # masked-in fractions read this request, by shift
        for shifts in rounds:
            shifts = shifts[: self.max_tries - tries]
            tries += len(shifts)
            candidates: Any = range(len(shifts))
            if summary is not None:
                begins = np.array(mask_roi.begin, dtype=np.int64) + shifts
                low, high = summary.fraction_bounds(begins, begins + np.array(mask_roi.shape))
                candidates = np.flatnonzero(high >= self.min_masked)
            for i in candidates:
                shift = Coordinate(shifts[i])
                if summary is not None and low[i] < self.min_masked:
                    if shift not in exact:
                        exact[shift] = self._exact_fraction(summary, mask_roi.shift(shift), fetch)
                    if exact[shift] < self.min_masked:
                        continue
                shifted = shift_request(request, shift)
                if not self.accepts(shifted):
                    continue
                batch = fetch(shifted)
                if nonempty and graph in batch and not graph_nonempty(batch, graph):
                    empty += 1
                    continue
                return batch, shift
            if tries >= self.max_tries:
                break
        reasons = []
        if summary is not None:
            overall = summary.known_fraction
            reasons.append(
                f"at least {self.min_masked} of mask {self.mask} (ROI shape {mask_roi.shape}) "
                f"masked in ({len(exact)} locations read exactly; {overall:.3g} of the mask "
                "read so far is masked in)"
            )
        if nonempty:
            reasons.append(f"a point of {graph} inside ({empty} batches came back empty)")
        reasons.append("accepted by accepts()")
        raise PipelineRequestError(
            f"{self.name}: found no location for {_keys(request)} after {tries} random tries "
            f"that is {'; '.join(reasons)}"
        )

    def _mask_reader(self, fetch: Fetch) -> Any:
        """Reads the mask in a world ROI (seed 0: mask reads do not depend on the request)."""

        def read(roi: Roi) -> np.ndarray:
            request = BatchRequest({self.mask: ArraySpec(roi=roi)}, random_seed=0)
            return fetch(request)[self.mask].data

        return read

    def _exact_fraction(self, summary: Any, roi: Roi, fetch: Fetch) -> float:
        with self._lock:
            return summary.exact_fraction(roi, self._mask_reader(fetch))

    def _mask_summary(self, fetch: Fetch) -> MaskSummary | LazyMaskSummary:
        """The mask summary: built blockwise for a small mask, else lazily (see the class)."""
        with self._lock:
            if self._summary is None:
                spec = self.upstream_spec[self.mask]
                vs = spec.voxel_size or Coordinate((1,) * spec.roi.dims)
                read = self._mask_reader(fetch)
                voxels = int(np.prod(spec.roi.shape / vs))
                if voxels > self.mask_eager_voxels:
                    self._summary = LazyMaskSummary(spec.roi, vs, self.mask_summary_blocks)
                else:
                    self._summary = MaskSummary.build(
                        spec.roi, vs, read, self.mask_summary_blocks, self.mask_read_voxels
                    )
            return self._summary

    def _point_index(self, fetch: Fetch) -> Any:
        """The points of `ensure_nonempty`: the upstream source's index, else read once."""
        with self._lock:
            if self._points is None:
                key = self.ensure_nonempty
                index = None
                if self.upstream_pipelines:
                    index = point_index_for(self.upstream_pipelines[0], key)
                if index is None:
                    roi = self.upstream_spec[key].roi
                    if roi is None or roi.unbounded:
                        raise PipelineRequestError(
                            f"{self.name}: no point index of {key} upstream, and its ROI {roi} "
                            "is unbounded, so its points can not be read once to find them"
                        )
                    index = read_point_index(fetch, key, roi)
                self._points = index
            return self._points
