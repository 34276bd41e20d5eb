from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi, is_multiple_of
from ..node import Node
from ..spec import ArrayKey, BatchRequest, GraphKey, ProviderSpec
from ._graph_support import pad_graph, pad_graph_request, pad_graph_spec, pad_roi
from ._pad import PAD_MODES, check_pad_size, gather, pad_constant, source_index


class PadContext(NamedTuple):
    """What Pad.prepare hands to process: the wanted ROI and, per axis, the source voxel of
    each output voxel and whether it lies inside the data."""

    wanted: Any
    indices: list
    inside: list


class Pad(Node):
    """Offer `key` beyond its data: its ROI grows by `size` (world units) on each side.

    `size=None` (or `None` in some dimensions) pads without bound. Requests reaching outside
    the data read only the data they need and are filled with `value` (default 0) in
    `mode="constant"`, or like `numpy.pad` in modes "edge", "reflect", "symmetric", "wrap".
    A request wholly outside the data reads one voxel of it (for its channels and dtype).
    For a graph key, the points inside the data are returned under the padded ROI. Use it so
    that random locations or scans may reach over the border of a volume.

    Args:
        key: the ArrayKey (or GraphKey) to pad; it must be provided upstream with a ROI.
        size: how far to grow the ROI on each side, in world units (a Coordinate, one value
            per spatial axis, each a multiple of the voxel size). None, or None in an axis:
            unbounded padding (in that axis).
        value: the fill value for `mode="constant"`, cast to the array's dtype. Default None
            (= 0). Ignored by the other modes.
        mode: how to fill beyond the data: "constant" (default; with `value`), or as
            `numpy.pad` does: "edge", "reflect", "symmetric", "wrap".

    Example::

        raw, labels = gp.ArrayKey("RAW"), gp.ArrayKey("LABELS")
        pipeline = gp.ZarrSource("sample.zarr", {raw: "raw", labels: "labels"})
        pipeline += gp.Pad(raw, None)  # any amount, zeros
        pipeline += gp.Pad(labels, gp.Coordinate((40, 80, 80)), mode="edge")
        pipeline += gp.RandomLocation()
    """

    def __init__(self, key: ArrayKey, size: Any, value: Any = None, mode: str = "constant") -> None:
        if mode not in PAD_MODES:
            raise ValueError(f"Pad({key}): unknown mode {mode!r}; use one of {PAD_MODES}")
        self.key = key
        self.size = None if size is None else check_pad_size(size, f"Pad({key})")
        self.value = value
        self.mode = mode

    @property
    def name(self) -> str:
        return f"Pad({self.key})"

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, self.key)
        spec = upstream_spec.copy()
        array = spec[self.key]
        roi = array.roi
        if roi is None or getattr(array, "nonspatial", False):
            raise PipelineSetupError(f"{self.name}: {self.key} has no ROI upstream to pad")
        size = self.size if self.size is not None else Coordinate((None,) * roi.dims)
        if size.dims != roi.dims:
            raise PipelineSetupError(
                f"{self.name}: argument size={size} has {size.dims} dimensions, but {self.key} "
                f"has {roi.dims} (ROI {roi}); give one value (or None) per spatial axis"
            )
        if isinstance(self.key, GraphKey):
            spec[self.key] = pad_graph_spec(array, self.size)
            return spec
        vs = array.voxel_size
        if vs is not None and not is_multiple_of(size, vs):
            raise PipelineSetupError(
                f"{self.name}: size {size} is not a multiple of the voxel size {vs} of {self.key}"
            )
        array.roi = pad_roi(roi, size)
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        if self.key not in request or request[self.key].roi is None:
            return request, None
        wanted = request[self.key].roi
        have = self.upstream_spec[self.key]
        data_roi = have.roi
        if data_roi.contains(wanted) or wanted.empty:
            return request, None
        if isinstance(self.key, GraphKey):
            upstream = request.copy()
            upstream[self.key] = request[self.key].replace(roi=pad_graph_request(wanted, data_roi))
            return upstream, wanted
        vs = have.voxel_size or Coordinate((1,) * wanted.dims)
        if not data_roi.unbounded and not (
            is_multiple_of(data_roi.begin, vs) and is_multiple_of(data_roi.shape, vs)
        ):  # an off-grid provided ROI (a fractional Crop, as 1.x): read whole voxels only
            data_roi = data_roi.snap_to_grid(vs, mode="shrink")
        begin, shape, indices, inside = [], [], [], []
        for d in range(wanted.dims):
            v = vs[d]
            if data_roi.begin[d] is None:
                begin.append(wanted.begin[d])
                shape.append(wanted.shape[d])
                n = wanted.shape[d] // v
                indices.append(np.arange(n))
                inside.append(np.ones(n, dtype=bool))
                continue
            n = data_roi.shape[d] // v
            rel = np.arange(
                (wanted.begin[d] - data_roi.begin[d]) // v, (wanted.end[d] - data_roi.begin[d]) // v
            )
            src = source_index(rel, n, self.mode)
            lo, hi = int(src.min()), int(src.max()) + 1
            begin.append(data_roi.begin[d] + lo * v)
            shape.append((hi - lo) * v)
            indices.append(src - lo)
            inside.append((rel >= 0) & (rel < n))
        read = Roi(begin, shape)
        upstream = request.copy()
        upstream[self.key] = request[self.key].replace(roi=read, dtype=have.dtype)
        return upstream, PadContext(wanted, indices, inside)

    def process(self, batch: Batch, ctx: Any) -> Batch:
        if ctx is None:  # the request lies inside the data: the upstream array as it is
            return batch
        if isinstance(self.key, GraphKey):
            batch[self.key] = pad_graph(batch[self.key], ctx)
            return batch
        wanted, indices, inside = ctx
        array = batch[self.key]
        data = np.asarray(array.data)
        if self.mode == "constant":
            value = np.asarray(0 if self.value is None else self.value).astype(data.dtype)
            padded = pad_constant(data, indices, inside, value)
        else:
            padded = gather(data, indices)
        batch[self.key] = Array(padded, array.spec.replace(roi=wanted), array.attrs)
        return batch
