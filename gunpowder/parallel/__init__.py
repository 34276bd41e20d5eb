"""Worker processes: `wire` (shared-memory transport) and `pool` (the worker pool that
`PreCache` and `stream(workers=N)` use). `gunpowder.parallel.PreCache` is kept for old imports."""

from typing import Any

from .pool import (
    WorkerDiedError,
    WorkerError,
    WorkerPool,
    check_start_method,
    default_start_method,
    in_worker,
    make_batch,
    parallel_stream,
    worker_pids,
)
from .wire import SlotReceiver, SlotSender, receive_message, send_message, shm_available


def __getattr__(name: str) -> Any:
    if name == "PreCache":
        from ..nodes.precache import PreCache

        return PreCache
    raise AttributeError(f"module 'gunpowder.parallel' has no attribute {name!r}")


__all__ = [
    "PreCache",
    "SlotReceiver",
    "SlotSender",
    "WorkerDiedError",
    "WorkerError",
    "WorkerPool",
    "check_start_method",
    "default_start_method",
    "in_worker",
    "make_batch",
    "parallel_stream",
    "receive_message",
    "send_message",
    "shm_available",
    "worker_pids",
]
