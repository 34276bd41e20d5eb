"""`Scan`: serve a large request by tiling it with a small reference request, then stitch.

The reference request (e.g. a network's input and output ROIs, inputs larger than outputs)
is shifted in steps of its smallest ROI shape until the shifted ROIs cover the downstream
request; the last step along an axis is shifted back to end exactly at the request's end
(tiles overlap there rather than reaching outside). An empty downstream request scans
everything upstream provides and returns an empty batch: that is how writers are driven.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..node import Node
from ..spec import ArrayKey, BatchRequest, ProviderSpec

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# tiling: pure functions of coordinates


def axis_positions(lo: int, hi: int, stride: int) -> list[int]:
    """Positions lo, lo+stride, ... below hi, then hi itself: steps that cover [lo, hi]."""
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    if hi <= lo:
        return [lo]
    positions = list(range(lo, hi, stride))
    positions.append(hi)
    return positions


def tile_shifts(lo: Coordinate, hi: Coordinate, stride: Coordinate) -> list[Coordinate]:
    """Every shift of the grid spanned by `axis_positions` per axis, in C (row-major) order."""
    axes = [axis_positions(a, b, s) for a, b, s in zip(lo, hi, stride)]
    return [Coordinate(p) for p in itertools.product(*axes)]


def _floor_to(c: Coordinate, step: Coordinate) -> Coordinate:
    return Coordinate(v // s * s for v, s in zip(c, step))


def _ceil_to(c: Coordinate, step: Coordinate) -> Coordinate:
    return Coordinate(-(-v // s) * s for v, s in zip(c, step))


def _spatial_rois(spec: ProviderSpec) -> dict[Any, Roi]:
    return {k: s.roi for k, s in spec.items() if s.roi is not None}


def reference_stride(reference: ProviderSpec) -> Coordinate:
    """The step between tiles: per axis, the smallest reference ROI shape."""
    shapes = [roi.shape for roi in _spatial_rois(reference).values()]
    return Coordinate(min(col) for col in zip(*shapes))


def plan_shifts(
    reference: ProviderSpec,
    request: ProviderSpec,
    provided: ProviderSpec,
    name: str = "Scan",
) -> list[Coordinate]:
    """The shifts of `reference` that tile `request` (or, if it has no ROIs, the `provided`
    ROIs of the reference keys). Shifts are multiples of the reference's lcm voxel size.

    As in gunpowder 1.x, the range of shifts is the intersection over the reference keys of
    the shifts that keep each key's reference ROI inside its requested ROI (unbounded axes
    do not constrain): tiles never reach outside any requested ROI, so a Scan never asks
    upstream for more than was requested. A requested ROI that no tile covers completely
    (requests inconsistent with the reference) keeps zeros there; `_Stitcher` warns."""
    ref = _spatial_rois(reference)
    if not ref:
        raise PipelineSetupError(f"{name}: the reference request has no ROIs to scan with")
    stride = reference_stride(reference)
    vs_keys = [k for k in ref if isinstance(k, ArrayKey)]
    grid = reference.get_lcm_voxel_size(vs_keys) if vs_keys else None
    if grid is None:
        grid = provided.get_lcm_voxel_size([k for k in vs_keys if k in provided])
    grid = grid or Coordinate((1,) * stride.dims)
    wanted = {k: r for k, r in _spatial_rois(request).items() if k in ref}
    bounds = _provided_bounds(ref, provided)
    if wanted:
        lo, hi = _shift_range(ref, wanted)
        if any(v is None for v in (*lo, *hi)):
            if bounds is None:
                raise PipelineRequestError(
                    f"{name}: can not scan an unbounded request {dict(wanted)}: upstream "
                    f"provides no bounded ROI for the reference keys either"
                )
            lo = Coordinate(b if v is None else v for v, b in zip(lo, bounds[0]))
            hi = Coordinate(b if v is None else v for v, b in zip(hi, bounds[1]))
        lo, hi = _ceil_to(lo, grid), _floor_to(hi, grid)
        if any(h < l for l, h in zip(lo, hi)):
            # the request is smaller than the reference along an axis: one tile, moved back
            # inside what upstream provides where possible
            single = [h <= l for l, h in zip(lo, hi)]
            if bounds is not None:
                plo, phi = _ceil_to(bounds[0], grid), _floor_to(bounds[1], grid)
                lo = Coordinate(
                    min(max(l, a), b) if one else l for l, one, a, b in zip(lo, single, plo, phi)
                )
            hi = Coordinate(l if one else h for l, h, one in zip(lo, hi, single))
    else:
        if bounds is None:
            unbounded = {k: provided[k].roi if k in provided else None for k in ref}
            raise PipelineRequestError(
                f"{name}: can not scan the whole upstream ROI: it is unbounded or unknown for "
                f"{unbounded}; request a ROI instead of an empty request"
            )
        lo, hi = _ceil_to(bounds[0], grid), _floor_to(bounds[1], grid)
        if any(h < l for l, h in zip(lo, hi)):
            raise PipelineRequestError(
                f"{name}: the reference request does not fit into what upstream provides: "
                f"reference {dict(ref)}, provided "
                f"{ {k: provided[k].roi for k in ref if k in provided} }"
            )
    stride = _floor_to(stride, grid)
    if any(s <= 0 for s in stride):
        raise PipelineSetupError(
            f"{name}: the reference ROI shapes {stride} are smaller than the voxel size {grid}"
        )
    return tile_shifts(lo, hi, stride)


def _shift_range(
    ref: dict[Any, Roi], wanted: dict[Any, Roi]
) -> tuple[tuple[int | None, ...], tuple[int | None, ...]]:
    """Per axis, the smallest and largest shift keeping every reference ROI inside its
    wanted ROI (None where no key bounds the axis)."""
    dims = next(iter(ref.values())).dims
    lo: list[int | None] = [None] * dims
    hi: list[int | None] = [None] * dims
    for k, w in wanted.items():
        r = ref[k]
        for d in range(dims):
            b, e = w.begin[d], w.end[d]
            if b is not None:
                v = b - r.begin[d]
                lo[d] = v if lo[d] is None else max(lo[d], v)
            if e is not None:
                v = e - r.end[d]
                hi[d] = v if hi[d] is None else min(hi[d], v)
    return tuple(lo), tuple(hi)


def _provided_bounds(
    ref: dict[Any, Roi], provided: ProviderSpec
) -> tuple[Coordinate, Coordinate] | None:
    """The range of shifts that keep every reference ROI inside its provided ROI (keys
    provided without bounds do not constrain; None if no key is bounded)."""
    lo = hi = None
    for k, r in ref.items():
        have = provided[k].roi if k in provided else None
        if have is None or have.unbounded:
            continue
        b, e = have.begin - r.begin, have.end - r.end
        lo = b if lo is None else Coordinate(max(x, y) for x, y in zip(lo, b))
        hi = e if hi is None else Coordinate(min(x, y) for x, y in zip(hi, e))
    return None if lo is None else (lo, hi)


def _warn_uncovered(
    reference: ProviderSpec, request: ProviderSpec, lo: Coordinate, hi: Coordinate, name: str
) -> None:
    """Warn about requested arrays that the tiles from shift `lo` to `hi` do not cover: they
    keep zeros there (gunpowder 1.x does the same), because a tile reaching further would
    leave another key's requested ROI."""
    for key, spec in request.items():
        ref = reference[key].roi if key in reference else None
        if not isinstance(key, ArrayKey) or ref is None or spec.roi is None:
            continue
        covered = Roi(ref.begin + lo, ref.shape + (hi - lo))
        if not covered.contains(spec.roi):
            logger.warning(
                "%s: the tiles cover only %s of the %s requested for %s (the request is "
                "not consistent with the reference); the rest is filled with zeros",
                name,
                covered.intersect(spec.roi),
                spec.roi,
                key,
            )


def shifted(reference: ProviderSpec, shift: Coordinate, seed: int | None) -> BatchRequest:
    """`reference` with every ROI moved by `shift` and the given random seed."""
    request = BatchRequest(random_seed=seed)
    for key, spec in reference.items():
        request[key] = spec if spec.roi is None else spec.replace(roi=spec.roi.shift(shift))
    return request


# --------------------------------------------------------------------------------------------
# running tiles (in order, optionally on threads) and stitching


def ordered_map(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int, window: int
) -> Iterator[Any]:
    """`map(fn, items)` in order, on `workers` threads with at most `window` items in flight."""
    if workers <= 1:
        yield from map(fn, items)
        return
    window = max(window, workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scan") as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


class _Stitcher:
    """Accumulates tile batches into one output per requested key (arrays and graphs)."""

    def __init__(self, request: BatchRequest, name: str) -> None:
        self.request = request
        self.name = name
        self.buffers: dict[Any, Array] = {}
        self.others: dict[Any, Any] = {}

    def add(self, tile: Batch) -> None:
        for key, spec in self.request.items():
            if key not in tile:
                continue
            value = tile[key]
            if not isinstance(key, ArrayKey):
                self.others[key] = (
                    value if key not in self.others else _merge_graphs(self.others[key], value)
                )
                continue
            if spec.roi is None or value.spec.nonspatial:
                self.others[key] = value
                continue
            if key not in self.buffers:
                vs = value.spec.voxel_size
                channels = np.shape(value.data)[: -spec.roi.dims]
                data = np.zeros(channels + tuple(spec.roi.shape / vs), dtype=value.data.dtype)
                self.buffers[key] = Array(data, value.spec.replace(roi=spec.roi), dict(value.attrs))
            out = self.buffers[key]
            common = value.spec.roi.intersect(spec.roi)
            if common.empty:
                continue
            vs = out.spec.voxel_size
            target = (Ellipsis,) + ((common - spec.roi.offset) / vs).to_slices()
            out.data[target] = value.crop(common, copy=False).data

    def batch(self) -> Batch:
        batch = Batch()
        for key, spec in self.request.items():
            if key in self.buffers:
                batch[key] = self.buffers[key]
            elif key in self.others:
                value = self.others[key]
                if spec.roi is not None and getattr(value.spec, "roi", None) is not None:
                    value = value.crop(spec.roi, exact=True)
                batch[key] = value
            elif not spec.placeholder:
                raise PipelineRequestError(
                    f"{self.name}: {key} was requested but no upstream tile delivered it"
                )
        return batch


def _merge_graphs(a: Any, b: Any) -> Any:
    """The union of two tiles' graphs: nodes by id (the first tile's copy wins), then the
    edges whose ends are both present; nodes a crop made up (`temporary`) are left out."""
    merged = a.copy()
    if a.spec.roi is not None and b.spec.roi is not None:
        merged.spec = merged.spec.replace(roi=a.spec.roi.union(b.spec.roi))
    for node in b.nodes:
        if not getattr(node, "temporary", False) and not merged.contains(node.id):
            merged.add_node(node.copy())
    for edge in b.edges:
        if (
            merged.contains(edge.u)
            and merged.contains(edge.v)
            and not merged.has_edge(edge.u, edge.v)
        ):
            merged.add_edge(edge.copy())
    return merged


class ScanCallback:
    """Progress of a `Scan` (1.x): subclass and pass as `Scan(..., progress_callback=...)`.

    `start(num_total)` before the first tile, `update(num_processed)` after each tile (the
    number processed so far), `stop()` at the end (also after an error).
    """

    def start(self, num_total: int) -> None:
        pass

    def update(self, num_processed: int) -> None:
        pass

    def stop(self) -> None:
        pass


class TqdmCallback(ScanCallback):
    """The default `Scan` progress: a tqdm bar."""

    def __init__(self, desc: str = "Scan", disable: bool = False) -> None:
        self.desc = desc
        self.disable = disable
        self._bar: Any = None

    def start(self, num_total: int) -> None:
        from ..progress import progress_bar as tqdm

        self._bar = tqdm(total=num_total, desc=self.desc, unit="tile", disable=self.disable)

    def update(self, num_processed: int) -> None:
        if self._bar is not None:
            self._bar.update(num_processed - self._bar.n)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class Scan(Node):
    """Serve a request by requesting `reference`-sized batches upstream in a scanning fashion.

    `reference` (a BatchRequest) is shifted over the requested ROIs (over the whole upstream
    ROI if the request is empty, which returns an empty batch; use this to drive writers).
    With `num_workers > 1` tiles are requested on that many threads, at most `cache_size`
    at a time; the result is the same as with one worker. `progress_callback` (a
    `ScanCallback`, 1.x) is told about the progress; by default a tqdm bar shows it, which
    `progress=False` turns off.

    Tiles step by the smallest ROI shape of the reference (per axis), so with a network whose
    outputs are smaller than its inputs, the outputs tile the request without gaps. Each tile
    is requested with its own seed, drawn from this node's Generator. Every requested key
    must be in the reference. As in gunpowder 1.x, tiles stay inside every requested ROI
    (the shift ranges of the keys are intersected; unbounded ROIs do not constrain): with
    requested ROIs that are not consistent with the reference, a part of some array may be
    covered by no tile; it is filled with zeros and a warning says so.

    Args:
        reference: a BatchRequest of bounded ROIs (world units) for one tile, e.g. a network's
            input and output ROIs; its keys must be provided upstream. It is copied.
        num_workers: how many threads request tiles at the same time. Default 1 (in order,
            in the calling thread).
        cache_size: with `num_workers > 1`, at most this many tiles are in flight at once.
            Default 50.
        progress_callback: a `ScanCallback` told `start(total)`, `update(done)`, `stop()`.
            Default None: a tqdm progress bar. (A bool here is taken as `progress`.)
        progress: show the default tqdm bar. Default True; ignored with a
            `progress_callback`.

    Example::

        raw, pred = gp.ArrayKey("RAW"), gp.ArrayKey("PRED")
        reference = gp.BatchRequest()
        reference[raw] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (1320, 1320, 1320)))
        reference[pred] = gp.ArraySpec(roi=gp.Roi((440, 440, 440), (440, 440, 440)))
        pipeline = gp.ZarrSource("sample.zarr", {raw: "raw"})
        # model: a torch.nn.Module whose 1320^3 input gives a 440^3 output (world units)
        pipeline += gp.torch.Predict(model, inputs={"input": raw}, outputs={0: pred})
        pipeline += gp.ZarrWrite({pred: "pred"}, output_filename="pred.zarr")
        pipeline += gp.Scan(reference, num_workers=2)
        with gp.build(pipeline):
            pipeline.request_batch(gp.BatchRequest())  # empty: scan all, write everything
    """

    drives_upstream = True

    def __init__(
        self,
        reference: BatchRequest,
        num_workers: int = 1,
        cache_size: int = 50,
        progress_callback: ScanCallback | None = None,
        progress: bool = True,
    ) -> None:
        if isinstance(progress_callback, bool):  # `Scan(ref, n, size, False)`: the flag
            progress, progress_callback = progress_callback, None
        self.reference = reference.copy()
        self.num_workers = int(num_workers)
        self.cache_size = int(cache_size)
        self.progress_callback = progress_callback
        self.progress = progress

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, *self.reference.keys())
        for key, spec in self.reference.items():
            if spec.roi is not None and spec.roi.unbounded:
                raise PipelineSetupError(
                    f"{self.name}: reference ROI of {key} is unbounded ({spec.roi}); "
                    "the reference must be a bounded, batch-sized request"
                )
        return upstream_spec.copy()

    def serve(self, request: BatchRequest, rng: np.random.Generator, fetch: Callable) -> Batch:
        missing = [k for k in request if k not in self.reference]
        if missing:
            raise PipelineRequestError(
                f"{self.name}: {missing} requested, but the reference request only has "
                f"{sorted(self.reference)}; add them to the reference"
            )
        shifts = plan_shifts(self.reference, request, self.upstream_spec, self.name)
        _warn_uncovered(self.reference, request, shifts[0], shifts[-1], self.name)
        seeds = rng.integers(0, 2**63 - 1, size=len(shifts), dtype=np.int64)
        tiles = [shifted(self.reference, s, int(seed)) for s, seed in zip(shifts, seeds)]
        stitcher = _Stitcher(request, self.name) if len(request) else None
        for tile in self._run(tiles, fetch):
            if stitcher is not None:
                stitcher.add(tile)
        return Batch() if stitcher is None else stitcher.batch()

    def _run(self, tiles: list[BatchRequest], fetch: Callable) -> Iterator[Batch]:
        callback = self.progress_callback
        if callback is None:
            callback = TqdmCallback(self.name, disable=not self.progress)
        callback.start(len(tiles))
        try:
            for done, batch in enumerate(
                ordered_map(fetch, tiles, self.num_workers, self.cache_size), start=1
            ):
                callback.update(done)
                yield batch
        finally:
            callback.stop()
