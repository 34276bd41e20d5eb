"""Where a batch is cut from: `RandomLocation` (uniform, optionally guided by a mask) and
`SpecifiedLocation` (centred on given world points).

Both offer every spatial key everywhere (unbounded ROIs), shift each request into the upstream
data and shift the batch back, so the caller gets exactly the ROIs it asked for.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..pipeline import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, GraphKey, ProviderSpec
from .graph_support import (
    graph_nonempty,
    point_index_for,
    read_point_index,
    shift_graph,
    shifts_near_points,
)

logger = logging.getLogger(__name__)

Fetch = Callable[..., Batch]


# ---------------------------------------------------------------------------------------------
# spec and ROI helpers shared by the location nodes (and Reject)


def is_spatial(spec: Any) -> bool:
    """True for a spec with a ROI that is not a nonspatial array."""
    return spec.roi is not None and not getattr(spec, "nonspatial", False)


def unbounded_roi(dims: int) -> Roi:
    return Roi((None,) * dims, (None,) * dims)


def provided_everywhere(upstream_spec: ProviderSpec) -> ProviderSpec:
    """A copy of `upstream_spec` where every spatial key has an unbounded ROI."""
    spec = upstream_spec.copy()
    for value in spec.values():
        if is_spatial(value):
            value.roi = unbounded_roi(value.roi.dims)
    return spec


def add_nonspatial_key(spec: ProviderSpec, key: ArrayKey | None, node: str, what: str) -> None:
    """Declare `key` (if given) as a nonspatial int64 array created by `node`."""
    if key is None:
        return
    if key in spec:
        raise PipelineSetupError(
            f"{node}: {what} {key} is already provided upstream; choose a new key"
        )
    spec[key] = ArraySpec(nonspatial=True, dtype=np.int64)


def total_roi(request: ProviderSpec) -> Roi | None:
    """The union of the bounded spatial ROIs of a request (None if there are none)."""
    total = None
    for spec in request.values():
        if is_spatial(spec) and not spec.roi.unbounded:
            total = spec.roi if total is None else total.union(spec.roi)
    return total


def lcm_voxel_size(provided: ProviderSpec, keys: Any, dims: int) -> Coordinate:
    """The least common multiple of the voxel sizes of `keys` (1 where none is known)."""
    sizes = [
        provided[k].voxel_size
        for k in keys
        if isinstance(k, ArrayKey) and k in provided and provided[k].voxel_size is not None
    ]
    if not sizes:
        return Coordinate((1,) * dims)
    return Coordinate(np.lcm.reduce(np.array(sizes, dtype=np.int64), axis=0))


def shift_request(request: BatchRequest, shift: Coordinate) -> BatchRequest:
    """A copy of `request` with every bounded spatial ROI shifted by `shift`."""
    shifted = request.copy()
    for spec in shifted.values():
        if is_spatial(spec) and not spec.roi.unbounded:
            spec.roi = spec.roi.shift(shift)
    return shifted


def shift_batch(batch: Batch, offset: Coordinate, node: str) -> Batch:
    """Shift the ROI of every spatial item of `batch` by `offset` (in place, returned)."""
    for key, value in list(batch.items()):
        spec = value.spec
        if not is_spatial(spec):
            continue
        if isinstance(key, ArrayKey):
            batch[key] = Array(value.data, spec.replace(roi=spec.roi.shift(offset)), value.attrs)
        else:
            batch[key] = shift_graph(value, offset)
    return batch


def placement_range(
    rois: dict[Any, tuple[Roi, Roi | None]], step: Coordinate, node: str
) -> tuple[np.ndarray, np.ndarray]:
    """Grid indices `k` (shift = k * step) that keep every requested ROI in its provided ROI.

    `rois` maps key -> (requested ROI, provided ROI). Per dimension the result is the inclusive
    range [lo, hi]; a dimension without bounds gets [0, 0] (no shift), one bounded on one side
    only gets the admissible grid point closest to 0.
    """
    dims = step.dims
    lo: list[int | None] = [None] * dims
    hi: list[int | None] = [None] * dims
    for req, prov in rois.values():
        if prov is None:
            continue
        for d in range(dims):
            if prov.begin[d] is None or req.begin[d] is None:
                continue
            a = prov.begin[d] - req.begin[d]
            b = prov.end[d] - req.end[d]
            lo[d] = a if lo[d] is None else max(lo[d], a)
            hi[d] = b if hi[d] is None else min(hi[d], b)
    k_lo = np.zeros(dims, dtype=np.int64)
    k_hi = np.zeros(dims, dtype=np.int64)
    for d in range(dims):
        s = step[d]
        a = None if lo[d] is None else -(-lo[d] // s)
        b = None if hi[d] is None else hi[d] // s
        if a is not None and b is not None and a > b:
            details = "; ".join(
                f"{k}: requested shape {req.shape}, provided ROI {prov}"
                for k, (req, prov) in rois.items()
            )
            raise PipelineRequestError(
                f"{node}: the request does not fit inside the upstream data at any position "
                f"on the voxel grid {tuple(step)} (dimension {d}): {details}"
            )
        if a is None and b is None:
            a = b = 0
        elif a is None:
            a = b = min(0, b)
        elif b is None:
            a = b = max(0, a)
        k_lo[d], k_hi[d] = a, b
    return k_lo, k_hi


def fits(request: ProviderSpec, provided: ProviderSpec) -> bool:
    """True if every bounded spatial ROI of `request` lies in its provided ROI."""
    for key, spec in request.items():
        if is_spatial(spec) and key in provided and provided[key].roi is not None:
            if not provided[key].roi.contains(spec.roi):
                return False
    return True


def masked_voxels(data: np.ndarray, dims: int) -> np.ndarray:
    """Which voxels of mask data (channels first, `dims` spatial axes) are masked in."""
    data = np.asarray(data)
    return (data != 0).reshape((-1,) + data.shape[data.ndim - dims :]).any(axis=0)


def masked_fraction(data: np.ndarray, dims: int) -> float:
    """The fraction of masked-in (non-zero in any channel) voxels of mask data."""
    masked = masked_voxels(data, dims)
    return float(np.count_nonzero(masked)) / masked.size if masked.size else 0.0


def mask_roi_for(request: ProviderSpec, mask: ArrayKey, mask_spec: ArraySpec) -> Roi | None:
    """The ROI of `mask` whose masked-in fraction decides about `request`.

    The requested mask ROI if the mask is requested, else the bounding box of all requested
    spatial ROIs, grown to the mask's voxel grid.
    """
    if mask in request and request[mask].roi is not None:
        return request[mask].roi
    total = total_roi(request)
    if total is None:
        return None
    vs = mask_spec.voxel_size or Coordinate((1,) * total.dims)
    return total.snap_to_grid(vs, mode="grow")


# ---------------------------------------------------------------------------------------------
# mask summary: per-block counts of masked-in voxels as a summed-area table


def _box_sums(sat: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sums over the block boxes [lo, hi) (rows of `lo`/`hi`) from a summed-area table."""
    hi = np.maximum(hi, lo)
    dims = lo.shape[1]
    total = np.zeros(lo.shape[0], dtype=np.int64)
    for corner in range(2**dims):
        index = []
        sign = 1
        for d in range(dims):
            if corner >> d & 1:
                index.append(hi[:, d])
            else:
                index.append(lo[:, d])
                sign = -sign
        total += sign * sat[tuple(index)]
    return total


class MaskSummary:
    """Counts of masked-in voxels per block of the whole mask, as a summed-area table.

    Built once by reading the mask blockwise; bounds the masked-in fraction of any ROI from
    below (blocks wholly inside it) and above (blocks touching it). Exact with 1-voxel blocks.
    """

    def __init__(self, roi: Roi, voxel_size: Coordinate, block: np.ndarray, sat: np.ndarray):
        self.roi = roi
        self.voxel_size = voxel_size
        self.block = block
        self.sat = sat
        self.extent = np.array(roi.shape / voxel_size, dtype=np.int64)
        self.num_blocks = np.array(sat.shape, dtype=np.int64) - 1

    @property
    def total(self) -> int:
        return int(self.sat[tuple(self.num_blocks)])

    @staticmethod
    def block_size(extent: np.ndarray, max_blocks: int) -> np.ndarray:
        """Block shape (voxels): 1 where possible, doubled along the finest axis as needed."""
        block = np.ones(len(extent), dtype=np.int64)
        while np.prod(-(-extent // block)) > max_blocks:
            d = int(np.argmax(-(-extent // block)))
            block[d] *= 2
        return block

    @staticmethod
    def chunk_blocks(block: np.ndarray, num_blocks: np.ndarray, max_voxels: int) -> np.ndarray:
        """How many blocks per axis to read at once (at most `max_voxels` per read)."""
        chunk = np.ones(len(block), dtype=np.int64)
        while True:
            growable = [d for d in range(len(block)) if chunk[d] < num_blocks[d]]
            if not growable:
                return chunk
            d = min(growable, key=lambda i: chunk[i] * block[i])
            if np.prod(chunk * block) * 2 > max_voxels:
                return chunk
            chunk[d] = min(chunk[d] * 2, num_blocks[d])

    @classmethod
    def build(
        cls,
        roi: Roi,
        voxel_size: Coordinate,
        read: Callable[[Roi], np.ndarray],
        max_blocks: int = 2**21,
        chunk_voxels: int = 2**24,
    ) -> MaskSummary:
        """Read the mask in `roi` chunk by chunk with `read(world_roi)`; count per block."""
        extent = np.array(roi.shape / voxel_size, dtype=np.int64)
        block = cls.block_size(extent, max_blocks)
        num_blocks = -(-extent // block)
        counts = np.zeros(tuple(num_blocks), dtype=np.int64)
        chunk = cls.chunk_blocks(block, num_blocks, chunk_voxels)
        for start in np.ndindex(*tuple(-(-num_blocks // chunk))):
            b0 = np.array(start) * chunk
            b1 = np.minimum(b0 + chunk, num_blocks)
            v0 = b0 * block
            v1 = np.minimum(b1 * block, extent)
            world = Roi(roi.begin + Coordinate(v0) * voxel_size, Coordinate(v1 - v0) * voxel_size)
            data = np.asarray(read(world))
            masked = masked_voxels(data, len(block))
            padded = np.zeros(tuple((b1 - b0) * block), dtype=np.int64)
            padded[tuple(slice(0, n) for n in v1 - v0)] = masked
            shape = []
            for n, k in zip(b1 - b0, block):
                shape += [int(n), int(k)]
            sums = padded.reshape(shape).sum(axis=tuple(range(1, 2 * len(block), 2)))
            counts[tuple(slice(a, b) for a, b in zip(b0, b1))] = sums
        sat = np.zeros(tuple(num_blocks + 1), dtype=np.int64)
        cum = counts
        for d in range(counts.ndim):
            cum = np.cumsum(cum, axis=d)
        sat[tuple(slice(1, None) for _ in range(counts.ndim))] = cum
        return cls(roi, voxel_size, block, sat)

    def fraction_bounds(
        self, begins: np.ndarray, ends: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the masked-in fraction of the world ROIs [begins, ends)."""
        vs = np.array(self.voxel_size, dtype=np.int64)
        origin = np.array(self.roi.begin, dtype=np.int64)
        a = (begins - origin) // vs
        b = (ends - origin) // vs
        volume = np.prod(b - a, axis=1).astype(np.float64)
        inner_lo = -(-a // self.block)
        inner_hi = np.where(b >= self.extent, self.num_blocks, b // self.block)
        outer_lo = a // self.block
        outer_hi = -(-b // self.block)
        low = _box_sums(self.sat, inner_lo, inner_hi)
        high = np.minimum(_box_sums(self.sat, outer_lo, outer_hi), volume)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (
                np.where(volume > 0, low / volume, 0.0),
                np.where(volume > 0, high / volume, 0.0),
            )


# ---------------------------------------------------------------------------------------------
# RandomLocation


class RandomLocation(Node):
    """Cut each batch at a random location inside the upstream data.

    The shift is uniform over all positions (on the least common multiple of the voxel sizes)
    that keep every requested ROI inside its upstream ROI. With `mask` and `min_masked > 0`,
    only locations where at least `min_masked` of the mask's voxels are masked in (non-zero)
    are used: the mask ROI checked is the requested mask ROI, or else the bounding box of the
    request. The mask is summarised once (per-block counts read blockwise at the first request,
    never the whole mask at once); candidate locations are drawn uniformly and rejected on that
    summary, reading the mask only where the summary can not decide.

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
        self._summary: MaskSummary | None = None
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
        if summary is not None and summary.total == 0:
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
                        exact[shift] = self._exact_fraction(mask_roi.shift(shift), fetch)
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
            overall = summary.total / float(np.prod(summary.extent))
            reasons.append(
                f"at least {self.min_masked} of mask {self.mask} (ROI shape {mask_roi.shape}) "
                f"masked in ({len(exact)} locations read exactly; {overall:.3g} of the whole "
                "mask is masked in)"
            )
        if nonempty:
            reasons.append(f"a point of {graph} inside ({empty} batches came back empty)")
        reasons.append("accepted by accepts()")
        raise PipelineRequestError(
            f"{self.name}: found no location for {_keys(request)} after {tries} random tries "
            f"that is {'; '.join(reasons)}"
        )

    def _exact_fraction(self, roi: Roi, fetch: Fetch) -> float:
        request = BatchRequest({self.mask: ArraySpec(roi=roi)})
        return masked_fraction(fetch(request)[self.mask].data, roi.dims)

    def _mask_summary(self, fetch: Fetch) -> MaskSummary:
        """The mask summary, read blockwise from upstream the first time it is needed."""
        with self._lock:
            if self._summary is None:
                spec = self.upstream_spec[self.mask]
                vs = spec.voxel_size or Coordinate((1,) * spec.roi.dims)

                def read(roi: Roi) -> np.ndarray:
                    request = BatchRequest({self.mask: ArraySpec(roi=roi)}, random_seed=0)
                    return fetch(request)[self.mask].data

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


def _keys(request: ProviderSpec) -> str:
    return ", ".join(f"{k} {s.roi}" for k, s in request.items())


# ---------------------------------------------------------------------------------------------
# SpecifiedLocation


class SpecifiedLocation(Node):
    """Centre each request on one of `locations` (world units), in turn or at random.

    The centre of the request's bounding box is moved onto the location (snapped to the
    voxel grid), optionally jittered uniformly by up to `jitter` per axis. A location that
    would take the request outside the upstream data is skipped with a warning. In turn means
    a counter on the node: the one piece of state kept across requests (as in 1.x), so with
    `choose_randomly=False` the batch depends on how many requests came before; with
    `choose_randomly=True` it depends on the request seed alone. `extra_data[i]` is attached to
    every array of a batch taken at location `i` as `attrs["specified_location_extra_data"]`.
    Downstream, every spatial key is offered with an unbounded ROI.

    Args:
        locations: the points (world units, one coordinate per spatial axis) to centre
            requests on; at least one.
        choose_randomly: draw a location uniformly (with replacement) from the request's
            Generator instead of taking them in turn. Default False: in turn, starting over
            after the last.
        extra_data: optional list with one entry per location, attached to the arrays of a
            batch taken there (see above). Default None: nothing attached.
        jitter: the largest random offset (world units, one value per spatial axis) added
            to a location before centring, drawn uniformly from [-jitter, jitter]. Default
            None: no jitter.

    Example::

        raw = gp.ArrayKey("RAW")
        pipeline = gp.ZarrSource("sample.zarr", {raw: "raw"})
        pipeline += gp.SpecifiedLocation([(1000, 2000, 2000), (1200, 800, 3000)],
                                         choose_randomly=True, jitter=(0, 40, 40))
        request = gp.BatchRequest()
        request[raw] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (400, 400, 400)))
        with gp.build(pipeline):
            batch = pipeline.request_batch(request)  # centred on (near) a location
    """

    def __init__(
        self,
        locations: Sequence[Any],
        choose_randomly: bool = False,
        extra_data: Sequence[Any] | None = None,
        jitter: Any = None,
    ) -> None:
        self.locations = [Coordinate(loc) for loc in locations]
        if not self.locations:
            raise ValueError("SpecifiedLocation: needs at least one location")
        if extra_data is not None and len(extra_data) != len(self.locations):
            raise ValueError(
                f"SpecifiedLocation: extra_data has {len(extra_data)} entries for "
                f"{len(self.locations)} locations"
            )
        self.choose_randomly = choose_randomly
        self.extra_data = extra_data
        self.jitter = None if jitter is None else Coordinate(jitter)
        self._counter = 0
        self._counter_lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_counter_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._counter_lock = threading.Lock()

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        return provided_everywhere(upstream_spec)

    def _next_index(self, rng: np.random.Generator) -> int:
        if self.choose_randomly:
            return int(rng.integers(len(self.locations)))
        with self._counter_lock:
            index = self._counter % len(self.locations)
            self._counter += 1
        return index

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        total = total_roi(request)
        if total is None:
            return request, (None, None)
        keys = [k for k, s in request.items() if is_spatial(s)]
        step = lcm_voxel_size(self.upstream_spec, keys, total.dims)
        skipped = []
        # in turn without jitter, one round decides; random choices and jitter get more rounds
        rounds = 1 if not (self.choose_randomly or self.jitter is not None) else 10
        for _ in range(rounds * len(self.locations)):
            index = self._next_index(rng)
            location = self.locations[index]
            if location.dims != total.dims:
                raise PipelineRequestError(
                    f"{self.name}: location {location} has {location.dims} dimensions, the "
                    f"request {total.dims}"
                )
            if self.jitter is not None:
                location = location + Coordinate(
                    rng.integers(-np.array(self.jitter), np.array(self.jitter) + 1)
                )
            # the exact centre (begin + shape / 2) moved to the location, rounded half up on
            # the grid, so the location always lies inside the shifted request
            twice_off = 2 * np.array(location) - 2 * np.array(total.begin) - np.array(total.shape)
            steps = np.floor(twice_off / (2 * np.array(step)) + 0.5).astype(np.int64)
            shift = Coordinate(steps) * step
            shifted = shift_request(request, shift)
            if fits(shifted, self.upstream_spec):
                return shifted, (shift, index)
            skipped.append(tuple(location))
            logger.warning(
                "%s: location %s would take the request %s outside the upstream data; skipped",
                self.name,
                location,
                total,
            )
        raise PipelineRequestError(
            f"{self.name}: none of the locations tried ({sorted(set(skipped))}) can hold the "
            f"request "
            f"{_keys(request)} inside the upstream ROIs"
        )

    def process(self, batch: Batch, ctx: Any) -> Batch:
        shift, index = ctx
        if shift is None:
            return batch
        batch = shift_batch(batch, -shift, self.name)
        if self.extra_data is not None:
            for array in batch.arrays.values():
                array.attrs["specified_location_extra_data"] = self.extra_data[index]
        return batch
