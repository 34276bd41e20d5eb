from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..node import MultiNode
from ..spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec
from ._combine import _common


class RandomProvider(MultiNode):
    """Serve each request from one upstream chosen at random (with `probabilities`, default
    uniform). Offers the keys every upstream provides, each with the intersection of their
    ROIs. With `random_provider_key`, the chosen index is stored as a nonspatial int64 array.

    The choice is drawn from the request's Generator, so it depends on the request seed only.
    Typical use: sample training batches from several volumes.

    Args:
        probabilities: one non-negative weight per upstream (normalised to sum to 1).
            Default None: every upstream equally likely.
        random_provider_key: an ArrayKey under which the index (in upstream order) of the
            chosen upstream is stored, as a nonspatial int64 array, when requested. Default
            None.

    Example::

        raw = gp.ArrayKey("RAW")
        samples = ["a.zarr", "b.zarr", "c.zarr"]
        pipeline = tuple(
            gp.ZarrSource(s, {raw: "raw"}) + gp.RandomLocation() for s in samples
        )
        pipeline += gp.RandomProvider(probabilities=[0.5, 0.25, 0.25])
    """

    def __init__(
        self,
        probabilities: Sequence[float] | None = None,
        random_provider_key: ArrayKey | None = None,
    ) -> None:
        self.probabilities = probabilities
        self.random_provider_key = random_provider_key

    def setup(self, upstream_specs: list[ProviderSpec]) -> ProviderSpec:  # type: ignore[override]
        n = len(upstream_specs)
        if self.probabilities is None:
            p = np.full(n, 1.0 / n)
        else:
            p = np.asarray(self.probabilities, dtype=np.float64)
            if p.shape != (n,) or np.any(p < 0) or p.sum() <= 0:
                raise PipelineSetupError(
                    f"{self.name}: probabilities {list(self.probabilities)} must be {n} "
                    f"non-negative numbers (one per upstream), not all zero"
                )
            p = p / p.sum()
        self.p = p
        spec = upstream_specs[0].copy()
        for index, upstream in enumerate(upstream_specs[1:], start=1):
            for key in list(spec):
                if key not in upstream:
                    del spec[key]
                    continue
                spec[key] = _common(self.name, key, spec[key], upstream[key], index)
        if self.random_provider_key is not None:
            if self.random_provider_key in spec:
                raise PipelineSetupError(
                    f"{self.name}: random_provider_key {self.random_provider_key} is already "
                    "provided upstream; choose a new key"
                )
            spec[self.random_provider_key] = ArraySpec(nonspatial=True, dtype=np.int64)
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        index = int(rng.choice(len(self.p), p=self.p))
        upstream = request.copy()
        if self.random_provider_key is not None and self.random_provider_key in upstream:
            del upstream[self.random_provider_key]
        requests: list[Any] = [None] * len(self.p)
        requests[index] = upstream
        return requests, index

    def process(self, batches: Any, index: Any) -> Batch:
        batch = batches[index]
        if self.random_provider_key is not None:
            batch[self.random_provider_key] = Array(
                np.array(index, dtype=np.int64), ArraySpec(nonspatial=True, dtype=np.int64)
            )
        return batch
