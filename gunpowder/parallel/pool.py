"""Batches computed ahead in worker processes, in request order: `PreCache` and `stream(workers=N)`.

A batch is a pure function of (pipeline, request seed), so batch `i` of a run started with
seed `s` is the pipeline's batch for `derive_seed(s, i)` whichever process makes it: content
and order never depend on the number of workers. Workers set up their own copy of the
pipeline (files open per process) and send batches back with pickle protocol 5: array data
is copied once, into a reusable shared-memory slot that the main process maps (no copy
there). Errors carry the worker's traceback and the node's name; a dead worker is reported
at once; workers never outlive their owner (teardown, garbage collection, Ctrl-C, exit).
"""

from __future__ import annotations

import glob
import itertools
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import wait
from typing import Any

from ..allocator import configure_allocator
from ..batch import Batch
from ..engine import derive_seed, run_request
from ..errors import GunpowderError, PipelineRequestError, PipelineSetupError
from ..pipeline import Pipeline
from ..spec import BatchRequest, ProviderSpec
from ..threads import limit_threads, worker_threads_default
from .wire import (
    _SHM_DIR,
    SlotReceiver,
    SlotSender,
    _grow_pipe,
    _unlink,
    receive_message,
    send_message,
    shm_available,
)

START_METHOD_ENV = "GUNPOWDER_START_METHOD"


TASKS_PER_WORKER = 2  # one being computed, one queued, so a worker never waits for the next


LOCAL_BATCHES = 1  # batches PreCache makes itself while its workers start (more would slow them)


_GRACE_S = 0.5  # how long a closing pool waits for workers to exit before SIGTERM/SIGKILL


_in_worker = False  # True inside a worker process: nested pools compute in-process instead


class WorkerError(PipelineRequestError):
    """A node raised in a worker process; `node_name` names it, `worker_traceback` is its text."""

    def __init__(self, message: str, node_name: str | None, worker_traceback: str) -> None:
        super().__init__(message)
        self.node_name = node_name
        self.worker_traceback = worker_traceback


class WorkerDiedError(GunpowderError):
    """A worker process ended without being asked to (killed by the OS, crashed)."""

    def __init__(self, message: str, node_name: str | None = None) -> None:
        super().__init__(message)
        self.node_name = node_name


def default_start_method() -> str:
    """`$GUNPOWDER_START_METHOD`, else "fork" on Linux (as gunpowder 1.x: no pickling, and
    scripts without an `if __name__ == "__main__":` guard keep working), else "spawn".

    "forkserver" is the choice when the main process already runs many threads (it forks
    workers from a clean server that has gunpowder loaded); set it with the variable or
    `PreCache(..., start_method="forkserver")`.
    """
    default = "fork" if sys.platform.startswith("linux") else "spawn"
    method = os.environ.get(START_METHOD_ENV) or default
    return check_start_method(method)


def check_start_method(method: str) -> str:
    available = multiprocessing.get_all_start_methods()
    if method not in available:
        raise ValueError(
            f"start method {method!r} is not available here; choose one of {available}"
        )
    return method


def warm_up(method: str) -> None:
    """Start the forkserver in the background now, so the first workers fork from a server
    that is already up (it imports gunpowder once, which takes a while)."""
    if method != "forkserver" or _in_worker:
        return

    def start() -> None:
        try:
            _context(method)
            from multiprocessing import forkserver

            forkserver.ensure_running()
        except Exception:  # the pool will try again, and report what goes wrong
            pass

    threading.Thread(target=start, name="gunpowder-forkserver-warm-up", daemon=True).start()


def _context(method: str) -> Any:
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["__main__", "gunpowder"])  # no-op once the server runs
    return ctx


def _fresh(p: Pipeline) -> Pipeline:
    """A new, not set-up tree of the same nodes (set up again in this process)."""
    return Pipeline(p.original, tuple(_fresh(u) for u in p.upstream))


def make_batch(p: Pipeline, request: BatchRequest) -> Batch:
    """The batch of `p` for the seeded `request`, `p` taken as a pipeline of its own (node
    paths counted from its output end), also when it was set up as part of a larger one."""
    seed = request.random_seed
    batch = run_request(p, request, seed, ())
    batch.random_seed = seed
    return batch


def _describe_exception(e: BaseException) -> dict[str, Any]:
    return {
        "node_name": getattr(e, "node_name", None),
        "summary": f"{type(e).__name__}: {e}",
        "traceback": "".join(traceback.format_exception(e)),
        "setup": isinstance(e, PipelineSetupError),
        "pid": os.getpid(),
    }


def _exit_with_parent(sender: SlotSender) -> None:
    """A thread that ends this process as soon as the process that started it is gone."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        sender.unlink_all()  # nobody will map them now
        os._exit(3)

    threading.Thread(target=watch, name="gunpowder-parent-watch", daemon=True).start()


def _worker_main(
    payload: Any,
    tasks: Any,
    results: Any,
    index: int,
    shm_prefix: str | None,
    threads: int | None = 1,
) -> None:
    """Set up the pipeline, then answer ("task", generation, i, request) until told to stop."""
    global _in_worker
    _in_worker = True
    if threads is not None:  # N workers of 1 thread each use N cores, not N x cores
        limit_threads(threads)
    configure_allocator()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    sender = SlotSender(shm_prefix)
    _exit_with_parent(sender)
    fd = results.fileno()
    _grow_pipe(fd)
    pipeline = None
    try:
        pipeline = _fresh(pickle.loads(payload) if isinstance(payload, bytes) else payload)
        for _, p in pipeline.nodes():
            p.node.spec = None  # set again by this process's setup
        pipeline.setup()
    except BaseException as e:
        described = _describe_exception(e)
        if not described["node_name"] and pipeline is not None:
            described["node_name"] = _first_not_set_up(pipeline)
        try:
            send_message(fd, ("setup_error", index, -1, -1, described))
        except OSError:
            pass
        return
    try:
        send_message(fd, ("ready", index, -1, -1, pipeline.spec))
        _serve_tasks(pipeline, tasks, fd, index, sender)
    except OSError:  # the main process closed the pool (broken pipe): nothing left to do
        pass
    finally:
        sender.unlink_all()
        try:
            pipeline.teardown()
        except Exception:
            pass


def _first_not_set_up(p: Pipeline) -> str | None:
    """The node whose setup failed: the first, in setup order (upstream first), without spec."""
    for u in p.upstream:
        name = _first_not_set_up(u)
        if name is not None:
            return name
    return p.node.name if p.node.spec is None else None


def _read_control(tasks: Any, queue: deque, sender: SlotSender, block: bool) -> bool:
    """Take what the main process sent (tasks, freed slots); False once told to stop."""
    while block or tasks.poll():
        block = False
        try:
            message = tasks.recv()
        except (EOFError, OSError):
            return False
        if message is None:
            return False
        if message[0] == "free":
            sender.free(message[1])
        else:
            queue.append(message)
    return True


def _serve_tasks(pipeline: Pipeline, tasks: Any, fd: int, index: int, sender: SlotSender) -> None:
    queue: deque = deque()
    while True:
        if not _read_control(tasks, queue, sender, block=not queue):
            return
        if not queue:
            continue
        _, generation, i, request = queue.popleft()
        if any(task[1] > generation for task in queue):  # the run was restarted: skip
            send_message(fd, ("skipped", index, generation, i, None))
            continue
        try:
            message: tuple = ("batch", index, generation, i, make_batch(pipeline, request))
        except Exception as e:
            message = ("error", index, generation, i, _describe_exception(e))
        if not _read_control(tasks, queue, sender, block=False):
            return
        try:
            send_message(fd, message, sender)
        except OSError:
            raise
        except Exception as e:  # the batch could not be pickled (nothing was written yet)
            send_message(fd, ("error", index, generation, i, _describe_exception(e)))
        del message


class _Worker:
    """The main process's view of one worker."""

    def __init__(self, index: int, process: Any, tasks: Any, results: Any, on_free: Any) -> None:
        self.index = index
        self.process = process
        self.tasks = tasks
        self.results = results
        self.receiver = SlotReceiver(on_free)
        self.outstanding: list[tuple[int, int]] = []  # (generation, i) sent, not answered
        self.alive = True
        self.ready = False  # set up, taking tasks


class _PoolCore:
    """State shared by a pool's owner and its collector thread (never refers to the owner)."""

    def __init__(
        self, owner: str, num_workers: int, start_method: str, threads: int | None = 1
    ) -> None:
        self.owner = owner
        self.num_workers = num_workers
        self.start_method = start_method
        self.threads = threads
        self.cond = threading.Condition(threading.Lock())
        self.workers: list[_Worker] = []
        self.spec: ProviderSpec | None = None
        self.fatal: tuple[type, str, str] | None = None  # (class, message, node name)
        self.closed = False
        self.generation = 0
        self.request: BatchRequest | None = None
        self.base_seed = 0
        self.seed_of: Callable[[int], int] = partial(derive_seed, 0)  # task index -> seed
        self.limit: int | None = None
        self.window = 1
        self.next_task = 0  # index of the next task to send
        self.next_claim = 0  # index the next consumer call will get
        self.results: dict[int, tuple] = {}
        self.wake_r, self.wake_w = os.pipe()
        self.thread: threading.Thread | None = None
        self.local: Any = None  # makes batch i in this process while no worker is ready
        self.local_left = LOCAL_BATCHES
        self.starter: threading.Thread | None = None
        self.freed: deque[tuple[int, int]] = deque()  # (worker, slot) to report free
        self.shm_prefix = (
            f"{_SHM_DIR}/gunpowder-{os.getpid()}-{next(_pool_ids)}-" if shm_available() else None
        )

    # starting ---------------------------------------------------------------------------
    def start(self, pipeline: Pipeline) -> None:
        """Start the collector and the workers; with spawn/forkserver the workers start in the
        background, so the caller can make the first batches meanwhile."""
        ctx = _context(self.start_method)
        payload: Any = pipeline if self.start_method == "fork" else _dump(pipeline, self.owner)
        self.thread = threading.Thread(
            target=self._collect, name=f"gunpowder-{self.owner}-collector", daemon=True
        )
        self.thread.start()
        _live_pools.add(self)
        if self.start_method == "fork":  # fork here: a fork from another thread copies its locks
            try:
                self._start_workers(ctx, payload, raise_errors=True)
            except BaseException:
                self.close()
                raise
        else:
            self.starter = threading.Thread(
                target=self._start_workers,
                args=(ctx, payload),
                name=f"gunpowder-{self.owner}-starter",
                daemon=True,
            )
            self.starter.start()

    def _start_workers(self, ctx: Any, payload: Any, raise_errors: bool = False) -> None:
        try:
            for index in range(self.num_workers):
                if self.closed:
                    return
                task_r, task_w = ctx.Pipe(duplex=False)
                result_r, result_w = ctx.Pipe(duplex=False)
                prefix = None if self.shm_prefix is None else f"{self.shm_prefix}{index}-"
                process = ctx.Process(
                    target=_worker_main,
                    args=(payload, task_r, result_w, index, prefix, self.threads),
                    name=f"gunpowder-{self.owner}-worker-{index}",
                    daemon=True,
                )
                process.start()
                task_r.close()
                result_w.close()  # the worker holds the only write end: its death is EOF
                on_free = partial(_report_free, self.freed, index)
                with self.cond:
                    self.workers.append(_Worker(index, process, task_w, result_r, on_free))
            os.write(self.wake_w, b"s")  # the collector waits on the new workers now
        except BaseException as e:
            if raise_errors:
                raise
            with self.cond:
                if self.fatal is None and not self.closed:
                    self.fatal = (
                        WorkerDiedError,
                        f"{self.owner}: could not start a worker process: {type(e).__name__}: {e}",
                        self.owner,
                    )
                self.cond.notify_all()

    # the collector thread ------------------------------------------------------------------
    def _collect(self) -> None:
        try:
            while True:
                with self.cond:
                    if self.closed:
                        return
                    alive = [w for w in self.workers if w.alive]
                by_conn = {w.results: w for w in alive}
                by_sentinel = {w.process.sentinel: w for w in alive}
                ready = wait([*by_conn, *by_sentinel, self.wake_r], timeout=0.1)
                if self.closed:
                    return
                if self.freed:
                    with self.cond:
                        self._send_frees()
                for obj in ready:
                    if obj in by_conn:
                        self._receive(by_conn[obj])
                for obj in ready:
                    w = by_sentinel.get(obj)
                    if w is not None and w.alive:
                        self._drain(w)
                        self._died(w)
                if self.wake_r in ready:
                    os.read(self.wake_r, 1 << 16)
        except BaseException as e:  # a bug here must not leave the consumer waiting forever
            with self.cond:
                if not self.closed:
                    self.fatal = (
                        WorkerDiedError,
                        f"{self.owner}: the thread collecting batches from the workers failed: "
                        f"{type(e).__name__}: {e}\n{traceback.format_exc()}",
                        self.owner,
                    )
                self.cond.notify_all()

    def _receive(self, w: _Worker) -> None:
        try:
            message = receive_message(w.results.fileno(), w.receiver)
        except (EOFError, OSError):
            self._died(w)
            return
        self._on_message(w, message)

    def _drain(self, w: _Worker) -> None:
        """Read what a worker wrote before it ended."""
        try:
            while w.alive and w.results.poll(0):
                self._on_message(w, receive_message(w.results.fileno(), w.receiver))
        except (EOFError, OSError):
            pass

    def _on_message(self, w: _Worker, message: tuple) -> None:
        kind, _, generation, i, body = message
        with self.cond:
            if kind == "ready":
                w.ready = True
                if self.spec is None:
                    self.spec = body
                self._dispatch()
            elif kind == "setup_error":
                w.alive = False
                if self.fatal is None:
                    self.fatal = (
                        PipelineSetupError,
                        f"{body['node_name'] or self.owner}: setup failed in worker process "
                        f"{body['pid']}: {body['summary']}\n\n--- traceback in the worker ---\n"
                        f"{body['traceback']}",
                        body["node_name"] or self.owner,
                    )
            else:
                if (generation, i) in w.outstanding:
                    w.outstanding.remove((generation, i))
                if generation == self.generation and kind != "skipped":
                    self.results[i] = message
                self._dispatch()
            self.cond.notify_all()

    def _died(self, w: _Worker) -> None:
        with self.cond:
            if not w.alive or self.closed:
                w.alive = False
                return
            w.alive = False
        w.process.join(timeout=2.0)
        code = w.process.exitcode
        if code is None:
            how = "closed its pipe and did not exit"
        elif code < 0:
            try:
                how = f"was killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        hint = ""
        if code == -signal.SIGKILL:
            hint = " (the OS may have run out of memory: see `dmesg` for the OOM killer)"
        elif code == 1 and self.start_method != "fork":
            hint = (
                f" (with start method {self.start_method!r}, a script that starts workers "
                "needs an `if __name__ == '__main__':` guard; see the worker's output above)"
            )
        with self.cond:
            busy = sorted(i for g, i in w.outstanding if g == self.generation)
            doing = f" while computing batch {busy}" if busy else ""
            if self.fatal is None:
                self.fatal = (
                    WorkerDiedError,
                    f"{self.owner}: worker process {w.process.pid} {how}{doing}{hint}",
                    self.owner,
                )
            self.cond.notify_all()

    # tasks ---------------------------------------------------------------------------------
    def begin(
        self,
        request: BatchRequest,
        seed: int,
        limit: int | None,
        window: int,
        seeds: Callable[[int], int] | None = None,
    ) -> None:
        """Start computing batch i for `request` seeded `seeds(i)` (default
        `derive_seed(seed, i)`), i = 0, 1, ... (below `limit`, if given)."""
        with self.cond:
            self.generation += 1
            self.request = request.with_seed(None)
            self.base_seed = int(seed)
            self.seed_of = seeds if seeds is not None else partial(derive_seed, int(seed))
            self.limit = limit
            self.window = max(1, int(window))
            self.next_task = 0
            self.next_claim = 0
            self.results.clear()
            self._dispatch()

    def _dispatch(self) -> None:
        """Send tasks while the window and the workers allow (holding the lock)."""
        if self.fatal is not None or self.closed:
            return
        self._send_frees()
        if self.request is None:
            return
        while (self.limit is None or self.next_task < self.limit) and (
            self.next_task - self.next_claim < self.window
        ):
            free = [
                w
                for w in self.workers
                if w.alive and w.ready and len(w.outstanding) < TASKS_PER_WORKER
            ]
            if not free:
                return
            w = min(free, key=lambda w: len(w.outstanding))
            i = self.next_task
            request = self.request.with_seed(self.seed_of(i))
            try:
                w.tasks.send(("task", self.generation, i, request))
            except (OSError, ValueError):
                return  # the worker is gone: its sentinel tells the collector
            w.outstanding.append((self.generation, i))
            self.next_task += 1

    def _send_frees(self) -> None:
        """Tell workers which of their slots the main process no longer uses (holding the lock)."""
        by_worker: dict[int, list[int]] = {}
        while self.freed:
            index, slot = self.freed.popleft()
            by_worker.setdefault(index, []).append(slot)
        for index, slots in by_worker.items():
            w = self.workers[index]
            if w.alive:
                try:
                    w.tasks.send(("free", slots))
                except (OSError, ValueError):
                    pass

    def next_batch(self) -> Batch:
        """The next batch in order (blocks); raises what its worker raised."""
        with self.cond:
            if self.request is None:
                raise RuntimeError(f"{self.owner}: no request started")
            i = self.next_claim
            self.next_claim += 1
            self._dispatch()
            if (
                self.local is not None
                and self.local_left > 0
                and self.fatal is None
                and i == self.next_task
                and not any(w.ready for w in self.workers)
            ):  # no worker is up yet: make this one here, the same batch a worker would make
                self.next_task += 1
                self.local_left -= 1
                local, request = self.local, self.request.with_seed(self.seed_of(i))
            else:
                local = None
        if local is not None:
            return local(request)
        with self.cond:
            while self.fatal is None and i not in self.results:
                if self.closed:
                    raise PipelineRequestError(f"{self.owner}: the worker pool was closed")
                if self.thread is not None and not self.thread.is_alive():
                    raise PipelineRequestError(f"{self.owner}: the collector thread stopped")
                self.cond.wait(timeout=1.0)
            fatal = self.fatal
            message = self.results.pop(i, None) if fatal is None else None
            self._dispatch()
        if fatal is not None:
            self.close()
            raise self.failure()  # type: ignore[misc]
        kind, index, _, _, body = message  # type: ignore[misc]
        if kind == "error":
            node = body["node_name"] or self.owner
            raise WorkerError(
                f"{node}: {body['summary']}\n  (in worker process {body['pid']} of {self.owner}, "
                f"batch {i}, seed {self.seed_of(i)})\n\n"
                f"--- traceback in the worker ---\n{body['traceback']}",
                node,
                body["traceback"],
            )
        return body

    def failure(self) -> BaseException | None:
        """The error that ended the pool (a worker died or failed to set up), if any."""
        if self.fatal is None:
            return None
        cls, text, node_name = self.fatal
        err = cls(text)
        err.node_name = node_name  # type: ignore[attr-defined]
        return err

    def next_seed(self) -> int | None:
        """The seed of the batch the next `next_batch()` returns (None: the run is over)."""
        with self.cond:
            if self.request is None or (self.limit is not None and self.next_claim >= self.limit):
                return None
            return self.seed_of(self.next_claim)

    def ready_count(self) -> int:
        """How many batches of the run are computed and waiting for the consumer."""
        with self.cond:
            return len(self.results)

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers if w.process.pid is not None]

    # stopping ------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the collector and every worker (ask, then SIGTERM, then SIGKILL). Idempotent."""
        with self.cond:
            if self.closed:
                return
            self.closed = True
            self.local = None
            self.cond.notify_all()
        _live_pools.discard(self)
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        starter = self.starter
        if starter is not None and starter is not threading.current_thread():
            starter.join(timeout=30.0)  # no worker may start after the others were stopped
        for w in self.workers:
            for conn in (w.results,):
                conn.close()  # a worker blocked writing a batch gets a broken pipe and exits
            try:
                w.tasks.send(None)
            except (OSError, ValueError):
                pass
        _stop_processes([w.process for w in self.workers])
        for w in self.workers:
            w.tasks.close()
            w.alive = False
        if self.shm_prefix is not None:  # slots no process mapped yet
            for path in glob.glob(glob.escape(self.shm_prefix) + "*"):
                _unlink(path)
        if thread is None or not thread.is_alive():
            for fd in (self.wake_r, self.wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass


def _report_free(freed: deque, worker: int, slot: int) -> None:
    """Runs wherever the last array of a batch is collected: only queue it (deque is atomic)."""
    freed.append((worker, slot))


_pool_ids = itertools.count()


def _stop_processes(processes: list[Any]) -> None:
    started = [p for p in processes if p.pid is not None]
    for p in started:
        p.join(timeout=_GRACE_S / max(1, len(started)))
    for p in started:
        if p.is_alive():
            p.terminate()
    for p in started:
        p.join(timeout=1.0)
        if p.is_alive():
            p.kill()
            p.join(timeout=1.0)


def _dump(pipeline: Pipeline, owner: str) -> bytes:
    """The pipeline as bytes for spawn/forkserver workers (cloudpickle if available)."""
    try:
        import cloudpickle

        dumps = cloudpickle.dumps
    except ImportError:  # pragma: no cover
        dumps = pickle.dumps
    try:
        return dumps(pipeline, protocol=5)
    except Exception as e:
        culprit = next(
            (p.node.name for _, p in pipeline.nodes() if not _picklable(p.original, dumps)),
            "a node",
        )
        raise PipelineSetupError(
            f"{owner}: {culprit} can not be sent to worker processes ({type(e).__name__}: {e}); "
            "make it picklable, or use start method 'fork' "
            f"(e.g. ${START_METHOD_ENV}=fork)"
        ) from e


def _picklable(obj: Any, dumps: Any) -> bool:
    try:
        dumps(obj, protocol=5)
    except Exception:
        return False
    return True


class WorkerPool:
    """Worker processes, each with its own copy of `pipeline`, computing batches in order.

    `begin(request, seed)` starts (or restarts) the run; `next_batch()` returns batch 0, 1, ...
    The workers stop on `close()`, when the pool is garbage collected, and at exit. Each
    worker limits its BLAS/OpenMP, numba and torch threads to `threads` (default
    `worker_threads_default()`, 1; None: no limit).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        num_workers: int,
        start_method: str | None = None,
        owner: str = "stream",
        local: Any = None,
        threads: int | None | str = "default",
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"{owner}: a worker pool needs num_workers >= 1, got {num_workers}")
        method = check_start_method(start_method) if start_method else default_start_method()
        if threads == "default":  # None: leave the libraries' thread pools alone
            threads = worker_threads_default()
        self._core = _PoolCore(owner, int(num_workers), method, threads)
        self._core.local = local
        self._finalizer = weakref.finalize(self, self._core.close)
        self._core.start(pipeline)

    def begin(
        self,
        request: BatchRequest,
        seed: int,
        limit: int | None = None,
        window: int = 2,
        seeds: Callable[[int], int] | None = None,
    ) -> None:
        self._core.begin(request, seed, limit, window, seeds)

    def next_batch(self) -> Batch:
        return self._core.next_batch()

    def next_seed(self) -> int | None:
        return self._core.next_seed()

    def failure(self) -> BaseException | None:
        return self._core.failure()

    def ready_count(self) -> int:
        return self._core.ready_count()

    @property
    def pids(self) -> list[int]:
        return self._core.pids

    @property
    def closed(self) -> bool:
        return self._core.closed

    def close(self) -> None:
        self._finalizer()


_live_pools: weakref.WeakSet[_PoolCore] = weakref.WeakSet()


def worker_pids() -> list[int]:
    """The process ids of all workers of this process's open pools (for monitoring and tests)."""
    return [pid for core in list(_live_pools) for pid in core.pids]


def in_worker() -> bool:
    """True inside a gunpowder worker process."""
    return _in_worker


def _plain_request(request: Any) -> BatchRequest:
    if isinstance(request, BatchRequest):
        return request.with_seed(None)
    if isinstance(request, ProviderSpec):
        return BatchRequest(dict(request))
    raise TypeError(f"stream needs a BatchRequest, got {type(request).__name__}")


def parallel_stream(
    pipeline: Pipeline,
    request: BatchRequest,
    base_seed: int,
    workers: int,
    num_batches: int | None = None,
    cache_size: int | None = None,
    start_method: str | None = None,
) -> Any:
    """`stream(pipeline, request, seed=base_seed)` computed by `workers` processes, same order
    and content; at most `cache_size` batches (default 2 per worker) in flight or waiting."""
    p = Pipeline.of(pipeline)
    plain = _plain_request(request)
    if _in_worker:  # a worker can not start workers: the same batches, made here
        from ..streams import stream

        yield from stream(p, plain, seed=base_seed, workers=0, num_batches=num_batches)
        return
    pool = WorkerPool(p, workers, start_method, owner="stream")
    try:
        pool.begin(plain, base_seed, num_batches, cache_size or 2 * workers)
        i = 0
        while num_batches is None or i < num_batches:
            yield pool.next_batch()
            i += 1
    finally:
        pool.close()
