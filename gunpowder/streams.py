"""`stream`: an endless (or counted) sequence of batches, the same for any number of workers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .batch import Batch
from .engine import derive_seed, fresh_seed
from .parallel.pool import parallel_stream
from .pipeline import Pipeline
from .spec import BatchRequest


def stream(
    pipeline: Any,
    request: BatchRequest,
    seed: int | None = None,
    workers: int = 0,
    num_batches: int | None = None,
    cache_size: int | None = None,
) -> Iterator[Batch]:
    """Batches for `request`, the i-th made with seed `derive_seed(seed, i)`.

    The result does not depend on `workers` (0 = in this process). If the pipeline is not built
    yet, it is built for the lifetime of the generator.
    """
    base = fresh_seed() if seed is None else int(seed)
    p = Pipeline.of(pipeline)
    if workers > 0:
        yield from parallel_stream(p, request, base, workers, num_batches, cache_size)
        return
    own = not p._is_setup
    if own:
        p.setup()
    try:
        i = 0
        while num_batches is None or i < num_batches:
            yield p.request_batch(
                request.with_seed(derive_seed(base, i))
                if isinstance(request, BatchRequest)
                else BatchRequest(dict(request), random_seed=derive_seed(base, i))
            )
            i += 1
    finally:
        if own:
            p.teardown()
