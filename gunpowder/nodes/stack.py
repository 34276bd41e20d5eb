"""`Stack`: several samples along a new first axis (1.x node)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineRequestError
from ..node import Node
from ..spec import ArrayKey, BatchRequest


class Stack(Node):
    """Request the same upstream `num_repetitions` times and stack every array along a new
    first axis (a batch axis). Each repetition is requested with its own seed, drawn from
    this node's Generator: different samples, and the same ones for the same request seed.

    Every repetition must return the same array shapes. The spec of each array is that of the
    first repetition (the ROI of one sample, not counting the new axis). Graphs are not
    stacked: as in 1.x, a requested graph is the one of the first repetition (the graphs of
    the other samples are dropped; to keep them, stack before adding the graph or rasterise
    it into an array first).

    Args:
        num_repetitions: how many samples to request and stack (at least 1): the size of the
            new first axis.

    Example::

        raw = gp.ArrayKey("RAW")
        pipeline = gp.ZarrSource("sample.zarr", {raw: "raw"})
        pipeline += gp.RandomLocation()
        pipeline += gp.Stack(8)  # raw comes back as (8, z, y, x)
    """

    drives_upstream = True

    def __init__(self, num_repetitions: int) -> None:
        if int(num_repetitions) < 1:
            raise ValueError(f"Stack: num_repetitions must be at least 1, got {num_repetitions}")
        self.num_repetitions = int(num_repetitions)

    def serve(
        self, request: BatchRequest, rng: np.random.Generator, fetch: Callable[..., Batch]
    ) -> Batch:
        seeds = rng.integers(2**63, size=self.num_repetitions)
        batches = [fetch(request.with_seed(int(s))) for s in seeds]
        out = batches[0]._empty_like()
        out.profiling_stats = batches[0].profiling_stats
        for other in batches[1:]:
            out.profiling_stats.merge_with(other.profiling_stats)
        for key in request:
            if not isinstance(key, ArrayKey):
                out[key] = batches[0][key]  # 1.x: the graph of the first repetition
                continue
            arrays = [b[key] for b in batches]
            shapes = {np.shape(a.data) for a in arrays}
            if len(shapes) != 1:
                raise PipelineRequestError(
                    f"{self.name}: {key} came back with different shapes {sorted(shapes)}"
                )
            out[key] = Array(np.stack([a.data for a in arrays]), arrays[0].spec, arrays[0].attrs)
        return out
