"""`PrintProfilingStats`: print where the time of the last `every` batches went, per node.

The table covers every node upstream (also those that ran in worker processes: their stats
travel with the batch) plus two totals: "upstream" (from this node's request to the batch's
arrival) and "downstream" (from handing a batch on to the next request: the consumer's time).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

import numpy as np

from ..batch import Batch
from ..node import Node
from ..profiling import ProfilingStats
from ..spec import BatchRequest


class PrintProfilingStats(Node):
    """Every `every` batches, print a table of per-node timings (min/median/max/total).

    A reporting node: it accumulates over batches by design (under a lock). `file` defaults to
    standard output; the last table printed is kept as `last_report`. Put it at the end of a
    pipeline to see which node is the bottleneck.

    Args:
        every: print after every this many batches (at least 1); the table covers those
            batches only. Default 1.
        file: a text stream to print to. Default None: standard output. (It is not pickled:
            a copy in another process prints to its standard output.)

    Example::

        pipeline += gp.PreCache(num_workers=8)
        pipeline += gp.PrintProfilingStats(every=100)
    """

    def __init__(self, every: int = 1, file: TextIO | None = None) -> None:
        if int(every) < 1:
            raise ValueError(f"PrintProfilingStats: every must be at least 1, got {every}")
        self.every = int(every)
        self.file = file
        self.last_report: str | None = None
        self._init_state()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._stats = ProfilingStats()
        self._count = 0
        self._handed_on: float | None = None  # when the previous batch left this node

    def prepare(self, request: BatchRequest, rng: np.random.Generator) -> tuple[Any, Any]:
        now = time.perf_counter()
        with self._lock:
            if self._handed_on is not None:
                self._stats.add("PrintProfilingStats", "downstream", now - self._handed_on)
                self._handed_on = None
        return request, now

    def process(self, batch: Batch, ctx: Any) -> Batch:
        now = time.perf_counter()
        with self._lock:
            self._stats.merge_with(batch.profiling_stats)
            self._stats.add("PrintProfilingStats", "upstream", now - ctx)
            self._count += 1
            report = None
            if self._count % self.every == 0:
                report = self._stats.table(
                    f"Profiling stats of the last {self.every} batch(es) "
                    f"(up to batch {self._count})"
                )
                self._stats = ProfilingStats()
                self.last_report = report
        if report is not None:
            print(report, file=self.file or sys.stdout, flush=True)
        with self._lock:
            self._handed_on = time.perf_counter()
        return batch

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_lock", "_stats", "_count", "_handed_on", "file"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.file = None
        self._init_state()


__all__ = ["PrintProfilingStats"]
