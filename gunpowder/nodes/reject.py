"""`Reject`: ask upstream again until a batch has enough masked-in voxels (and/or points)."""

from __future__ import annotations

import logging

import numpy as np

from ..batch import Batch
from ..errors import PipelineRequestError, PipelineSetupError
from ..node import Node
from ..spec import ArrayKey, ArraySpec, BatchRequest, GraphKey, GraphSpec, ProviderSpec
from ._graph_support import graph_nonempty
from ._location import Fetch, mask_roi_for, masked_fraction, total_roi

logger = logging.getLogger(__name__)


class Reject(Node):
    """Re-request batches until at least `min_masked` of `mask`'s voxels are masked in (and,
    with `ensure_nonempty`, the graph of that key has a point inside its ROI).

    A failing batch is rejected with probability `reject_probability` (1: always) and requested
    again with a new seed drawn from this node's Generator, so the result is still a function
    of the request seed. A mask or graph that is not requested is fetched for the request's
    bounding box (the mask on its voxel grid) and left out of the result. After `max_tries`
    requests a `PipelineRequestError` says how close the best batch came; a warning is logged
    every 100 rejections. Place it below a random node (e.g. `RandomLocation`) so that a new
    seed gives a new batch.

    Args:
        mask: the ArrayKey of a spatial mask (non-zero = masked in) to judge batches by.
            Default None: no mask condition (then `ensure_nonempty` is needed).
        min_masked: the smallest fraction (in [0, 1]) of masked-in voxels of `mask` in the
            judged ROI for a batch to pass. Default 0.5.
        ensure_nonempty: a GraphKey; if given, a batch passes only if this graph has a point
            inside its ROI. Default None: no graph condition.
        reject_probability: the probability (in [0, 1]) that a failing batch is rejected;
            otherwise it is returned as it is. Default 1.0: always reject.
        max_tries: how many batches to request (at least 1) before giving up with a
            `PipelineRequestError`. Default 1000.

    Example::

        raw, mask = gp.ArrayKey("RAW"), gp.ArrayKey("MASK")
        pipeline = gp.ZarrSource("sample.zarr", {raw: "raw", mask: "mask"})
        pipeline += gp.RandomLocation()
        pipeline += gp.Reject(mask=mask, min_masked=0.7)
    """

    drives_upstream = True

    def __init__(
        self,
        mask: ArrayKey | None = None,
        min_masked: float = 0.5,
        ensure_nonempty: GraphKey | None = None,
        reject_probability: float = 1.0,
        max_tries: int = 1000,
    ) -> None:
        if mask is None and ensure_nonempty is None:
            raise ValueError("Reject: needs a mask (an ArrayKey) or ensure_nonempty (a GraphKey)")
        if ensure_nonempty is not None and not isinstance(ensure_nonempty, GraphKey):
            raise TypeError(f"Reject: ensure_nonempty must be a GraphKey, got {ensure_nonempty!r}")
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
        self.require(upstream_spec, self.mask, self.ensure_nonempty)
        if self.mask is not None and upstream_spec[self.mask].nonspatial:
            raise PipelineSetupError(f"{self.name}: mask {self.mask} must be a spatial array")
        return upstream_spec

    def _upstream_request(self, request: BatchRequest) -> BatchRequest:
        upstream = request.copy()
        if self.mask is not None and self.mask not in upstream:
            spec = self.upstream_spec[self.mask]
            roi = mask_roi_for(request, self.mask, spec)
            if spec.roi is not None and not spec.roi.contains(roi):
                roi = roi.intersect(spec.roi).snap_to_grid(spec.voxel_size, mode="shrink")
                if roi.empty:
                    raise PipelineRequestError(
                        f"{self.name}: the request's bounding box does not overlap mask "
                        f"{self.mask} (provided ROI {spec.roi})"
                    )
            upstream[self.mask] = ArraySpec(roi=roi)
        graph = self.ensure_nonempty
        if graph is not None and graph not in upstream:
            roi = total_roi(upstream)
            have = self.upstream_spec[graph].roi
            if have is not None and not have.contains(roi):
                roi = roi.intersect(have)
            upstream[graph] = GraphSpec(roi=roi)
        return upstream

    def _accept(self, batch: Batch) -> tuple[bool, float]:
        """Whether `batch` passes, and its masked-in fraction (1 without a mask)."""
        fraction = 1.0
        if self.mask is not None:
            mask = batch[self.mask]
            fraction = masked_fraction(mask.data, mask.spec.roi.dims)
        ok = fraction >= self.min_masked
        if self.ensure_nonempty is not None:
            ok = ok and graph_nonempty(batch, self.ensure_nonempty)
        return ok, fraction

    def serve(self, request: BatchRequest, rng: np.random.Generator, fetch: Fetch) -> Batch:
        if total_roi(request) is None and not any(
            k in request for k in (self.mask, self.ensure_nonempty)
        ):
            return fetch(request)  # nothing spatial requested: nothing to judge
        upstream = self._upstream_request(request)
        best = -1.0
        for attempt in range(self.max_tries):
            seeded = upstream if attempt == 0 else upstream.with_seed(int(rng.integers(2**63)))
            batch = fetch(seeded)
            ok, fraction = self._accept(batch)
            best = max(best, fraction)
            if ok:
                return batch
            if self.reject_probability < 1 and rng.random() >= self.reject_probability:
                return batch
            if (attempt + 1) % 100 == 0:
                logger.warning(
                    "%s: rejected %d batches in a row (best masked-in fraction %.3g)",
                    self.name,
                    attempt + 1,
                    best,
                )
        wanted = []
        if self.mask is not None:
            wanted.append(f"at least {self.min_masked} of {self.mask} masked in (best {best:.3g})")
        if self.ensure_nonempty is not None:
            wanted.append(f"a point of {self.ensure_nonempty} inside")
        raise PipelineRequestError(
            f"{self.name}: no batch with {' and '.join(wanted)} after {self.max_tries} tries; "
            "relax the condition, raise max_tries or place requests with "
            "RandomLocation(min_masked=..., mask=..., ensure_nonempty=...)"
        )
