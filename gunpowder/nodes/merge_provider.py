from __future__ import annotations

from typing import Any

import numpy as np

from ..batch import Batch
from ..errors import PipelineSetupError
from ..node import MultiNode
from ..spec import BatchRequest, ProviderSpec
from ._combine import _merge


class MergeProvider(MultiNode):
    """Offer the keys of several upstreams as one: `(raw_source, labels_source) +
    MergeProvider()`. Each key is requested from the upstream that provides it; a key
    provided by two upstreams is an error at setup.

    Use it to join arrays and graphs that live in different files or stores. It takes no
    constructor arguments: the upstreams are given by composition, as a tuple before it.

    Example::

        raw, points = gp.ArrayKey("RAW"), gp.GraphKey("POINTS")
        pipeline = (
            gp.ZarrSource("sample.zarr", {raw: "raw"}),
            gp.CsvPointsSource("points.csv", points),
        ) + gp.MergeProvider()
        pipeline += gp.RandomLocation(ensure_nonempty=points)
    """

    def setup(self, upstream_specs: list[ProviderSpec]) -> ProviderSpec:  # type: ignore[override]
        owner: dict[Any, int] = {}
        spec = ProviderSpec()
        for index, upstream in enumerate(upstream_specs):
            for key, value in upstream.items():
                if key in owner:
                    raise PipelineSetupError(
                        f"{self.name}: {key} is provided by upstream {owner[key]} and by "
                        f"upstream {index}; each key may come from one upstream only"
                    )
                owner[key] = index
                spec[key] = value
        self.owner = owner
        return spec

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        requests: list[BatchRequest | None] = [None] * len(self.upstream_spec)
        for key, spec in request.items():
            index = self.owner[key]
            if requests[index] is None:
                requests[index] = BatchRequest()
            requests[index][key] = spec
        return requests, None

    def process(self, batches: Any, ctx: Any) -> Batch:
        return _merge(batches)
