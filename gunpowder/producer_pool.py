"""1.x's `ProducerPool`: callables run over and over in worker processes, results queued.

What `PreCache` uses here is `gunpowder.parallel.pool` (ordered, seeded, shared memory); this
module keeps 1.x's small generic pool for scripts that import it directly.

Example::

    pool = ProducerPool([make_sample] * 4, queue_size=8)
    pool.start()
    sample = pool.get()
    pool.stop()
"""

from __future__ import annotations

import multiprocessing
import queue as _queue
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .parallel.pool import WorkerDiedError

WorkerDiedException = WorkerDiedError  # 1.x name

__all__ = ["NoResult", "ProducerPool", "WorkerDiedException"]


class NoResult(Exception):
    """`get(timeout)` found nothing in time."""


class _Failure:
    def __init__(self, text: str) -> None:
        self.text = text


def _produce(fn: Callable[[], Any], results: Any, stop: Any) -> None:
    while not stop.is_set():
        try:
            item: Any = fn()
        except Exception:
            item = _Failure(traceback.format_exc())
        while not stop.is_set():
            try:
                results.put(item, timeout=0.1)
                break
            except _queue.Full:
                continue
        if isinstance(item, _Failure):
            return


class ProducerPool:
    """Run each of `callables` repeatedly in its own process; `get()` returns the next result.

    Args:
        callables: functions without arguments, one worker process each.
        queue_size: how many results may wait in the queue (default 10).

    A worker whose callable raises stops, and `get` re-raises its traceback as
    `WorkerDiedException`; `stop()` ends every worker (also on garbage collection).
    """

    def __init__(self, callables: Sequence[Callable[[], Any]], queue_size: int = 10) -> None:
        self.callables = list(callables)
        self.queue_size = queue_size
        self._processes: list[Any] = []
        self._results: Any = None
        self._stop: Any = None

    def start(self) -> None:
        """Start one process per callable."""
        ctx = multiprocessing.get_context()
        self._results = ctx.Queue(self.queue_size)
        self._stop = ctx.Event()
        for fn in self.callables:
            p = ctx.Process(target=_produce, args=(fn, self._results, self._stop), daemon=True)
            p.start()
            self._processes.append(p)

    def get(self, timeout: float = 0) -> Any:
        """The next result, waiting up to `timeout` seconds (0: without limit)."""
        if self._results is None:
            raise RuntimeError("ProducerPool.get called before start()")
        while True:
            try:
                item = self._results.get(timeout=timeout if timeout else 1.0)
            except _queue.Empty:
                if timeout:
                    raise NoResult(f"no result within {timeout} s") from None
                if self._processes and not any(p.is_alive() for p in self._processes):
                    raise WorkerDiedException("every ProducerPool worker has exited") from None
                continue
            if isinstance(item, _Failure):
                raise WorkerDiedException(f"a ProducerPool worker failed:\n{item.text}")
            return item

    def stop(self) -> None:
        """End every worker."""
        if self._stop is not None:
            self._stop.set()
        for p in self._processes:
            p.join(timeout=1)
            if p.is_alive():
                p.terminate()
                p.join(timeout=1)
        self._processes = []

    def __del__(self) -> None:
        try:
            self.stop()
        except Exception:
            pass
