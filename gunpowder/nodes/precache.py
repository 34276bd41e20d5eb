"""`PreCache`: batches computed ahead in worker processes (the pool is `parallel.pool`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from .. import engine
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
from ..threads import check_threads, worker_threads_default

logger = logging.getLogger(__name__)

_MAX_SEED = 2**63  # seeds are non-negative and (from fresh_seed/derive_seed) below 2**63


def seed_given(request: BatchRequest) -> bool:
    """True if the caller chose `request`'s seed (False: none, or a fresh one from the OS)."""
    seed = request.random_seed
    return seed is not None and not engine.is_fresh_seed(seed)


class _Plan:
    """The seeds PreCache expects next: `seeds(i)` for i in [0, limit)."""

    def __init__(self, kind: str, seeds: Callable[[int], int], limit: int | None) -> None:
        self.kind = kind
        self.seeds = seeds
        self.limit = limit


def _progression(start: int, step: int, i: int) -> int:
    return start + i * step


def progression_plan(seed: int, step: int) -> _Plan:
    """The seeds after `seed` stepping by `step` (only those in [0, 2**63))."""
    start = seed + step
    if step > 0:
        limit = max(0, -(-(_MAX_SEED - start) // step))
    elif step < 0:
        limit = max(0, start // -step + 1) if start >= 0 else 0
    else:
        limit = None
    return _Plan("step", partial(_progression, start, step), limit)


def _stream_seed(base: int, offset: int, i: int) -> int:
    return derive_seed(base, offset + i)


def stream_plan(base: int, position: int) -> _Plan:
    """The seeds of unseeded requests from `position` on: `derive_seed(base, position + i)`."""
    return _Plan("stream", partial(_stream_seed, base, position), None)


class PreCache(Node):
    """Compute upstream batches ahead in `num_workers` processes, at most `cache_size` ahead.

    A request that carries a seed gets exactly the upstream's batch for that seed (as
    `make_batch(upstream, request)`), whatever the order of requests and `num_workers`. An
    unseeded request is the next of a stream: the k-th request after the one that started
    the run (seed s0, its own or a fresh one) is made with `derive_seed(s0, k)` if it carries
    no seed, as `stream(upstream, R, seed=s0)` would. A request that differs from the run's
    (seeds aside) starts a new run.

    Workers compute ahead the seeds PreCache predicts: after an unseeded request the stream,
    after seeded ones the progression of their last step (seeds 0, 1, 2, ... or 10, 8, 6,
    ...; after one seeded request, step 1). A request it did not predict is made here, on
    demand, and the prediction starts again after it. Each batch records "hit" or "miss" in
    its profiling stats under this node (the count of each gives the hit rate; the time is
    how long the request waited); `hits`, `misses`, `hit_rate` count them here.

    Workers start on the first request (fork: at once; spawn/forkserver: in the background,
    the first batches are made here meanwhile). `start_method` defaults to
    `default_start_method()` ("fork" on Linux; `$GUNPOWDER_START_METHOD` overrides it). Each
    worker limits numpy's BLAS/OpenMP, numba and torch to `worker_threads` threads, so N
    workers use N cores instead of oversubscribing them.

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
        worker_threads: threads per worker for BLAS/OpenMP, numba and torch. Default 1
            (`$GUNPOWDER_WORKER_THREADS` overrides the default; 0 there: no limit). None:
            leave the libraries' defaults (one thread per core in every worker).

    Example::

        pipeline = source + gp.RandomLocation() + gp.SimpleAugment()
        pipeline += gp.PreCache(cache_size=40, num_workers=10)
        pipeline += gp.torch.Train(model, loss, optimizer, inputs={"input": raw},
                                   outputs={0: pred}, loss_inputs={0: pred, 1: gt})
    """

    drives_upstream = True

    def __init__(
        self,
        cache_size: int = 50,
        num_workers: int = 20,
        start_method: str | None = None,
        worker_threads: int | None | str = "default",
    ) -> None:
        if int(cache_size) < 1:
            raise ValueError(f"PreCache: cache_size must be at least 1, got {cache_size}")
        if int(num_workers) < 0:
            raise ValueError(f"PreCache: num_workers must be >= 0, got {num_workers}")
        self.cache_size = int(cache_size)
        self.num_workers = int(num_workers)
        self.start_method = check_start_method(start_method) if start_method else None
        self.worker_threads = (
            worker_threads_default()
            if worker_threads == "default"
            else check_threads(worker_threads, "PreCache", "worker_threads")
        )
        self._lock = threading.Lock()
        self._pool: WorkerPool | None = None
        self._reset_run()
        self.hits = 0
        self.misses = 0
        if self.num_workers > 0:
            warm_up(self.start_method or default_start_method())

    def _reset_run(self) -> None:
        self._plain: BatchRequest | None = None  # the current run's request, seed removed
        self._base = 0  # the seed that started the run: unseeded request k gets derive_seed
        self._position = 0  # requests served in this run
        self._last_given: int | None = None  # the seed of the last seeded request
        self._plan: _Plan | None = None  # what the workers compute

    @property
    def hit_rate(self) -> float | None:
        """The fraction of requests served from batches computed ahead (None: none yet)."""
        total = self.hits + self.misses
        return self.hits / total if total else None

    def setup(self, upstream_spec: ProviderSpec) -> ProviderSpec:
        return upstream_spec.copy()

    def serve(self, request: BatchRequest, rng: np.random.Generator, fetch: Any) -> Batch:
        with self._lock:
            given = seed_given(request)
            plain = request.with_seed(None)
            if self._plain is None or self._plain != plain:
                self._reset_run()
                self._plain = plain
                own = request.random_seed
                self._base = int(own) if own is not None else int(rng.integers(_MAX_SEED))
            position = self._position
            self._position += 1
            seed = int(request.random_seed) if given else derive_seed(self._base, position)  # type: ignore[arg-type]
            step = None if not given or self._last_given is None else seed - self._last_given
            if given:
                self._last_given = seed
            if self.num_workers == 0 or in_worker():
                return make_batch(self._upstream(), plain.with_seed(seed))
            t0 = time.perf_counter()
            pool = self._ensure_pool()
            if self._plan is not None and pool.next_seed() == seed:
                batch = pool.next_batch()
                self.hits += 1
                outcome = "hit"
            else:
                if given:
                    plan = progression_plan(seed, 1 if step is None else step)
                else:
                    plan = stream_plan(self._base, position + 1)
                self._plan = plan
                pool.begin(plain, self._base, plan.limit, self.cache_size, plan.seeds)
                batch = make_batch(self._upstream(), plain.with_seed(seed))  # meanwhile ahead
                self.misses += 1
                outcome = "miss"
            batch.profiling_stats.add(self.name, outcome, time.perf_counter() - t0)
            return batch

    def _upstream(self) -> Pipeline:
        if not self.upstream_pipelines:
            raise PipelineSetupError("PreCache has no upstream provider")
        return self.upstream_pipelines[0]

    def _ensure_pool(self) -> WorkerPool:
        failure = None if self._pool is None else self._pool.failure()
        if failure is not None:  # a failed pool stays failed (until teardown)
            self._pool.close()  # type: ignore[union-attr]
            raise failure
        if self._pool is None or self._pool.closed:
            upstream = self._upstream()
            self._plan = None
            self._pool = WorkerPool(
                upstream,
                self.num_workers,
                self.start_method,
                owner="PreCache",
                local=partial(make_batch, upstream),  # the first batches, while workers start
                threads=self.worker_threads,
            )
        return self._pool

    @property
    def worker_pids(self) -> list[int]:
        pool = self._pool
        return [] if pool is None or pool.closed else pool.pids

    def teardown(self) -> None:
        pool, self._pool = self._pool, None
        self._reset_run()
        if pool is not None:
            pool.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_lock=None, _pool=None, _plain=None, _plan=None, _position=0)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
