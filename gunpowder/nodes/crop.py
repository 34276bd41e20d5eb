from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..node import Node
from ..spec import ArrayKey, ProviderSpec
from ._args import NodeArgumentError, bad_argument


class Crop(Node):
    """Offer only part of `key`: the ROI `roi`, or its upstream ROI shrunk by
    `fraction_negative`/`fraction_positive` of its shape at the lower/upper end (per axis).

    Only the provided spec changes (requests and batches pass through): downstream nodes such
    as `RandomLocation` or `Scan` then use just that part, e.g. to hold out a validation
    region. Give either `roi` or the fractions.

    Args:
        key: the ArrayKey (or GraphKey) to crop; it must be provided upstream with a ROI.
        roi: the ROI to offer (world units), inside the upstream ROI. Default None: use the
            fractions.
        fraction_negative: the fraction (in [0, 1]; a number or one per axis) of the upstream
            ROI's shape to cut off at its lower end. Default None (= 0).
        fraction_positive: the same at the upper end. Default None (= 0). Both fractions
            together may not exceed 1 in an axis. As in 1.x, the cut (rounded down to world
            units) is not snapped to the voxel grid: the offered ROI bounds where requests may
            lie, and requests themselves must still be on the grid.

    Example::

        raw = gp.ArrayKey("RAW")
        pipeline = gp.ZarrSource("sample.zarr", {raw: "raw"})
        # train on the first 80 % along z, keep the rest for validation
        pipeline += gp.Crop(raw, fraction_positive=(0.2, 0, 0))
        pipeline += gp.RandomLocation()
    """

    def __init__(
        self,
        key: ArrayKey,
        roi: Roi | None = None,
        fraction_negative: Any = None,
        fraction_positive: Any = None,
    ) -> None:
        node = f"Crop({key})"
        fractions = fraction_negative is not None or fraction_positive is not None
        if roi is not None and fractions:
            raise NodeArgumentError(f"{node}: give either roi or fractions, not both")
        if roi is None and not fractions:
            raise NodeArgumentError(f"{node}: give a roi or fraction_negative/fraction_positive")
        if roi is not None and not isinstance(roi, Roi):
            raise bad_argument(node, "roi", "a Roi", roi)
        for arg, value in (
            ("fraction_negative", fraction_negative),
            ("fraction_positive", fraction_positive),
        ):
            if value is None:
                continue
            try:
                f = np.asarray(value, dtype=float)
            except (TypeError, ValueError):
                raise bad_argument(node, arg, "a number or one number per axis", value) from None
            if f.ndim > 1 or not np.all((f >= 0) & (f <= 1)):
                raise bad_argument(node, arg, "in [0, 1] (a number or one per axis)", value)
        self.key = key
        self.roi = roi
        self.fraction_negative = fraction_negative
        self.fraction_positive = fraction_positive

    @property
    def name(self) -> str:
        return f"Crop({self.key})"

    def _fraction(self, value: Any, dims: int) -> np.ndarray:
        f = np.asarray(0.0 if value is None else value, float)
        if f.ndim == 1 and len(f) != dims:
            raise PipelineSetupError(
                f"{self.name}: fractions {value} have {len(f)} entries, {self.key} {dims} axes"
            )
        f = np.broadcast_to(f, dims)
        if np.any(f < 0) or np.any(f > 1):
            raise PipelineSetupError(f"{self.name}: fractions must be in [0, 1], got {value}")
        return f

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, self.key)
        spec = upstream_spec.copy()
        array = spec[self.key]
        have = array.roi
        if have is None:
            raise PipelineSetupError(f"{self.name}: {self.key} has no ROI upstream to crop")
        if self.roi is not None:
            roi = self.roi
            if roi.dims != have.dims:
                raise PipelineSetupError(
                    f"{self.name}: roi {roi} has {roi.dims} dimensions, {self.key} {have.dims}"
                )
            if not have.contains(roi):
                raise PipelineSetupError(
                    f"{self.name}: roi {roi} is not inside the upstream ROI {have} of {self.key}"
                )
        else:
            if have.unbounded:
                raise PipelineSetupError(
                    f"{self.name}: can not crop a fraction of the unbounded ROI of {self.key}"
                )
            neg = self._fraction(self.fraction_negative, have.dims)
            pos = self._fraction(self.fraction_positive, have.dims)
            if np.any(neg + pos > 1):
                raise PipelineSetupError(
                    f"{self.name}: fraction_negative + fraction_positive exceed 1 ({neg + pos})"
                )
            shape = np.array(have.shape, dtype=np.float64)
            roi = have.grow(
                Coordinate(-np.floor(shape * neg).astype(int)),
                Coordinate(-np.floor(shape * pos).astype(int)),
            )
        array.roi = roi
        return spec
