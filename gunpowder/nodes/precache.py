"""`PreCache`: batches computed ahead in worker processes (the pool is `parallel.pool`)."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

import numpy as np

from ..batch import Batch
from ..engine import derive_seed
from ..errors import PipelineSetupError
from ..node import Node
from ..parallel.pool import (
    WorkerPool,
    check_start_method,
    default_start_method,
    in_worker,
    make_batch,
    warm_up,
)
from ..pipeline import Pipeline
from ..spec import BatchRequest, ProviderSpec


class PreCache(Node):
    """Compute upstream batches ahead in `num_workers` processes, at most `cache_size` ahead.

    The k-th request after the first request R (seed s0) returns the upstream's batch for
    R with seed `derive_seed(s0, k)`, the same for any `num_workers` (0: made in this process,
    on demand), as `stream(upstream, R, seed=s0)` would. A request that differs from R (seeds
    aside) restarts the run from it. Workers start on the first request, in the background;
    that first batch is made here meanwhile. `start_method` defaults to
    `default_start_method()` ("fork" on Linux; `$GUNPOWDER_START_METHOD` overrides it).

    Put it after the expensive nodes (augmentations) and before the consumer (e.g. `Train`),
    so batches are prepared while the model trains. Workers are stopped at teardown; an
    error in a worker is raised here as a `WorkerError` with the worker's traceback.

    Args:
        cache_size: how many batches (at least 1) may be computed ahead of the consumer.
            Default 50.
        num_workers: how many worker processes compute batches. Default 20; 0 computes every
            batch in this process, on demand (same batches, no parallelism).
        start_method: the multiprocessing start method of the workers ("fork", "spawn",
            "forkserver"). Default None: `default_start_method()` (fork on Linux).

    Example::

        pipeline = source + gp.RandomLocation() + gp.SimpleAugment()
        pipeline += gp.PreCache(cache_size=40, num_workers=10)
        pipeline += gp.torch.Train(model, loss, optimizer, inputs={"input": raw},
                                   outputs={0: pred}, loss_inputs={0: pred, 1: gt})
    """

    drives_upstream = True

    def __init__(
        self, cache_size: int = 50, num_workers: int = 20, start_method: str | None = None
    ) -> None:
        if int(cache_size) < 1:
            raise ValueError(f"PreCache: cache_size must be at least 1, got {cache_size}")
        if int(num_workers) < 0:
            raise ValueError(f"PreCache: num_workers must be >= 0, got {num_workers}")
        self.cache_size = int(cache_size)
        self.num_workers = int(num_workers)
        self.start_method = check_start_method(start_method) if start_method else None
        self._lock = threading.Lock()
        self._pool: WorkerPool | None = None
        self._run: tuple[BatchRequest, int] | None = None  # (request, seed) of the current run
        self._next = 0
        if self.num_workers > 0:
            warm_up(self.start_method or default_start_method())

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        return upstream_spec.copy()

    def serve(self, request: BatchRequest, rng: np.random.Generator, fetch: Any) -> Batch:
        with self._lock:
            seed = request.random_seed
            if seed is None:
                seed = int(rng.integers(2**63))
            if self._run is None or self._run[0] != request:
                self._restart(request, seed)
            if self._pool is None:
                i = self._next
                self._next += 1
                run, base = self._run  # type: ignore[misc]
                return make_batch(self._upstream(), run.with_seed(derive_seed(base, i)))
            return self._pool.next_batch()

    def _upstream(self) -> Pipeline:
        if not self.upstream_pipelines:
            raise PipelineSetupError("PreCache has no upstream provider")
        return self.upstream_pipelines[0]

    def _restart(self, request: BatchRequest, seed: int) -> None:
        plain = request.with_seed(None)
        self._run = (plain, int(seed))
        self._next = 0
        if self.num_workers == 0 or in_worker():
            return
        if self._pool is None or self._pool.closed:
            upstream = self._upstream()
            self._pool = WorkerPool(
                upstream,
                self.num_workers,
                self.start_method,
                owner="PreCache",
                local=partial(make_batch, upstream),  # the first batches, while workers start
            )
        self._pool.begin(plain, seed, None, self.cache_size)

    @property
    def worker_pids(self) -> list[int]:
        pool = self._pool
        return [] if pool is None or pool.closed else pool.pids

    def teardown(self) -> None:
        pool, self._pool = self._pool, None
        self._run = None
        if pool is not None:
            pool.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_lock=None, _pool=None, _run=None, _next=0)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
