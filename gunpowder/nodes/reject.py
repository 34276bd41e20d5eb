"""`Reject`: ask upstream again until a batch has enough masked-in voxels."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..batch import Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..pipeline import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from .location import Fetch, mask_roi_for, masked_fraction

logger = logging.getLogger(__name__)


class Reject(Node):
    """Re-request batches until at least `min_masked` of `mask`'s voxels are masked in.

    A batch below the threshold is rejected with probability `reject_probability` (1: always)
    and requested again with a new seed drawn from this node's Generator, so the result is
    still a function of the request seed. If the mask is not requested it is fetched for the
    request's bounding box (on the mask's voxel grid) and left out of the result. After
    `max_tries` requests a `PipelineRequestError` says how close the best batch came; a warning
    is logged every 100 rejections. `ensure_nonempty` (graphs) needs graph support.
    """

    drives_upstream = True

    def __init__(
        self,
        mask: ArrayKey | None = None,
        min_masked: float = 0.5,
        ensure_nonempty: Any = None,
        reject_probability: float = 1.0,
        max_tries: int = 1000,
    ) -> None:
        if ensure_nonempty is not None:
            raise NotImplementedError(
                "Reject: ensure_nonempty needs graph support, which is not available yet"
            )
        if mask is None:
            raise ValueError("Reject: needs a mask (an ArrayKey) to decide about batches")
        if not 0 <= reject_probability <= 1:
            raise ValueError(
                f"Reject: reject_probability must be in [0, 1], got {reject_probability}"
            )
        if max_tries < 1:
            raise ValueError(f"Reject: max_tries must be at least 1, got {max_tries}")
        self.mask = mask
        self.min_masked = min_masked
        self.ensure_nonempty = ensure_nonempty
        self.reject_probability = reject_probability
        self.max_tries = max_tries

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        self.require(upstream_spec, self.mask)
        if upstream_spec[self.mask].nonspatial:
            raise PipelineSetupError(f"{self.name}: mask {self.mask} must be a spatial array")
        return upstream_spec

    def _upstream_request(self, request: BatchRequest) -> BatchRequest:
        upstream = request.copy()
        if self.mask in upstream:
            return upstream
        spec = self.upstream_spec[self.mask]
        roi = mask_roi_for(request, self.mask, spec)
        if roi is None:
            raise PipelineRequestError(
                f"{self.name}: the request has no spatial ROI to check mask {self.mask} in"
            )
        if spec.roi is not None and not spec.roi.contains(roi):
            roi = roi.intersect(spec.roi).snap_to_grid(spec.voxel_size, mode="shrink")
            if roi.empty:
                raise PipelineRequestError(
                    f"{self.name}: the request's bounding box does not overlap mask "
                    f"{self.mask} (provided ROI {spec.roi})"
                )
        upstream[self.mask] = ArraySpec(roi=roi)
        return upstream

    def serve(self, request: BatchRequest, rng: np.random.Generator, fetch: Fetch) -> Batch:
        upstream = self._upstream_request(request)
        best = -1.0
        for attempt in range(self.max_tries):
            seeded = upstream if attempt == 0 else upstream.with_seed(int(rng.integers(2**63)))
            batch = fetch(seeded)
            mask = batch[self.mask]
            fraction = masked_fraction(mask.data, mask.spec.roi.dims)
            best = max(best, fraction)
            if fraction >= self.min_masked:
                return batch
            if self.reject_probability < 1 and rng.random() >= self.reject_probability:
                return batch
            if (attempt + 1) % 100 == 0:
                logger.warning(
                    "%s: rejected %d batches in a row (best masked-in fraction %.3g < %s)",
                    self.name,
                    attempt + 1,
                    best,
                    self.min_masked,
                )
        raise PipelineRequestError(
            f"{self.name}: no batch with at least {self.min_masked} of {self.mask} masked in "
            f"after {self.max_tries} tries (best {best:.3g}); lower min_masked, raise "
            f"max_tries or place requests with RandomLocation(min_masked=..., mask=...)"
        )
