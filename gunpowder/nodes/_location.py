"""Where a batch is cut from: `RandomLocation` (uniform, optionally guided by a mask) and
`SpecifiedLocation` (centred on given world points).

Both offer every spatial key everywhere (unbounded ROIs), shift each request into the upstream
data and shift the batch back, so the caller gets exactly the ROIs it asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ._graph_support import (
    shift_graph,
)

logger = logging.getLogger(__name__)


Fetch = Callable[..., Batch]


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


class LocationChoice(NamedTuple):
    """What a location node chose in `prepare`: the shift applied to the request (None: the
    request was not spatial) and the index of the location (None: none chosen)."""

    shift: Coordinate | None
    index: int | None


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
        elif a is None and b is not None:
            a = b = min(0, b)
        elif b is None and a is not None:
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

    @property
    def known_empty(self) -> bool:
        """True if the mask has no masked-in voxel at all."""
        return self.total == 0

    @property
    def known_fraction(self) -> float:
        """The masked-in fraction of the whole mask."""
        return self.total / float(np.prod(self.extent))

    def exact_fraction(self, roi: Roi, read: Callable[[Roi], np.ndarray]) -> float:
        """The masked-in fraction of `roi` (world units), read from the mask."""
        return masked_fraction(read(roi), roi.dims)


def _cumsum_table(values: np.ndarray) -> np.ndarray:
    """The summed-area table of `values` (one more entry per axis, zeros first)."""
    sat = np.zeros(tuple(np.array(values.shape) + 1), dtype=np.int64)
    cum = values.astype(np.int64)
    for d in range(values.ndim):
        cum = np.cumsum(cum, axis=d)
    sat[tuple(slice(1, None) for _ in range(values.ndim))] = cum
    return sat


class LazyMaskSummary:
    """Counts of masked-in voxels per block, filled in only where a decision needed them.

    Nothing is read up front: a block not read yet counts as anything between empty and full,
    so the bounds stay valid (`fraction_bounds`), and a candidate they can not decide is read
    exactly (`exact_fraction`, which also records the counts of every block it covers). The
    first batch thus reads about one request's worth of the mask, however large the mask is;
    decisions are exact, so the locations drawn are the same as with a full summary. Bounds
    are summed over the blocks of each ROI (summed-area tables once every block is known).
    """

    def __init__(self, roi: Roi, voxel_size: Coordinate, max_blocks: int = 2**21) -> None:
        self.roi = roi
        self.voxel_size = voxel_size
        self.extent = np.array(roi.shape / voxel_size, dtype=np.int64)
        self.block = MaskSummary.block_size(self.extent, max_blocks)
        self.num_blocks = -(-self.extent // self.block)
        volumes = np.ones((), dtype=np.int32)
        for d in range(len(self.extent)):  # voxels per block (edge blocks are smaller)
            starts = np.arange(self.num_blocks[d]) * self.block[d]
            volumes = np.multiply.outer(volumes, np.minimum(self.block[d], self.extent[d] - starts))
        self.volumes = volumes.astype(np.int32)
        self.counts = np.zeros(tuple(self.num_blocks), dtype=np.int32)  # 0 where unknown
        self.upper = self.volumes.copy()  # counts where known, the block's volume elsewhere
        self.known = np.zeros(tuple(self.num_blocks), dtype=bool)
        self.unknown_blocks = int(self.known.size)
        self._full: MaskSummary | None = None  # once every block is known
        self.voxels_read = 0

    @property
    def known_empty(self) -> bool:
        """True once every block was read and none has a masked-in voxel."""
        return self.unknown_blocks == 0 and int(self.counts.sum()) == 0

    @property
    def known_fraction(self) -> float:
        """The masked-in fraction of the blocks read so far (0 if none)."""
        volume = float(self.volumes[self.known].sum())
        return float(self.counts[self.known].sum()) / volume if volume else 0.0

    def fraction_bounds(
        self, begins: np.ndarray, ends: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the masked-in fraction of the world ROIs [begins, ends)."""
        if self._full is not None:
            return self._full.fraction_bounds(begins, ends)
        vs = np.array(self.voxel_size, dtype=np.int64)
        origin = np.array(self.roi.begin, dtype=np.int64)
        a = (begins - origin) // vs
        b = (ends - origin) // vs
        volume = np.prod(b - a, axis=1).astype(np.float64)
        inner_lo = -(-a // self.block)
        inner_hi = np.where(b >= self.extent, self.num_blocks, b // self.block)
        outer_lo = a // self.block
        outer_hi = -(-b // self.block)
        low = np.zeros(len(a))
        high = np.zeros(len(a))
        for i in range(len(a)):
            inner = tuple(slice(x, max(x, y)) for x, y in zip(inner_lo[i], inner_hi[i]))
            outer = tuple(slice(x, y) for x, y in zip(outer_lo[i], outer_hi[i]))
            low[i] = self.counts[inner].sum(dtype=np.int64)
            high[i] = self.upper[outer].sum(dtype=np.int64)
        high = np.minimum(high, volume)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (
                np.where(volume > 0, low / volume, 0.0),
                np.where(volume > 0, high / volume, 0.0),
            )

    def exact_fraction(self, roi: Roi, read: Callable[[Roi], np.ndarray]) -> float:
        """The masked-in fraction of `roi`: reads just it (`read(world_roi)`) and records
        the counts of the blocks it covers wholly (or up to the end of the mask)."""
        vs = np.array(self.voxel_size, dtype=np.int64)
        origin = np.array(self.roi.begin, dtype=np.int64)
        a = (np.array(roi.begin, dtype=np.int64) - origin) // vs
        b = (np.array(roi.end, dtype=np.int64) - origin) // vs
        masked = masked_voxels(read(roi), len(self.block))
        self.voxels_read += masked.size
        lo = -(-a // self.block)
        hi = np.where(b >= self.extent, self.num_blocks, b // self.block)
        if np.all(hi > lo):
            sl = tuple(slice(int(x), int(y)) for x, y in zip(lo, hi))
            if not self.known[sl].all():
                self._record(sl, masked, lo * self.block - a, np.minimum(hi * self.block, b) - a)
        return float(np.count_nonzero(masked)) / masked.size if masked.size else 0.0

    def _record(self, sl: tuple[slice, ...], masked: np.ndarray, v0: Any, v1: Any) -> None:
        """Count the blocks `sl`, which cover `masked[v0:v1]` (the last ones may be short)."""
        part = masked[tuple(slice(int(x), int(y)) for x, y in zip(v0, v1))]
        n = np.array([s.stop - s.start for s in sl])
        full = n * self.block
        if tuple(full) != part.shape:  # blocks at the end of the mask: pad with zeros
            padded = np.zeros(tuple(full), dtype=bool)
            padded[tuple(slice(0, k) for k in part.shape)] = part
            part = padded
        counts = part.view(np.uint8)
        for d in reversed(range(len(n))):  # reduce one axis at a time, the last first
            shape = counts.shape[:d] + (int(n[d]), int(self.block[d])) + counts.shape[d + 1 :]
            counts = counts.reshape(shape).sum(axis=d + 1, dtype=np.int32)
        self.unknown_blocks -= int(np.count_nonzero(~self.known[sl]))
        self.counts[sl] = counts
        self.upper[sl] = counts
        self.known[sl] = True
        if self.unknown_blocks == 0:  # from now on as fast as a full summary
            self._full = MaskSummary(
                self.roi, self.voxel_size, self.block, _cumsum_table(self.counts)
            )
