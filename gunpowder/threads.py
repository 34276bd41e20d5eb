"""Thread pools of numpy's BLAS, OpenMP, numba and torch: sized to the cores a process may use.

Every library that parallelises starts one thread per core by default. N PreCache workers
that each start as many threads as there are cores ask for N x cores threads; they then
wait for each other (oversubscription, and OpenMP threads that spin while waiting). So:

- each worker process limits itself to `GUNPOWDER_WORKER_THREADS` threads (default 1) at
  start-up (`limit_threads`, called by the worker pool; `PreCache(worker_threads=...)`);
- the main process (the training loop) calls `configure_main_threads()` once: torch's
  intra-op threads get the cores left to it, so workers are not starved;
- OpenMP threads sleep when idle instead of spinning (`OMP_WAIT_POLICY=PASSIVE`, as
  `make demo` sets). OpenMP reads the variable once, when its runtime is loaded (torch loads
  it at import), so importing gunpowder sets it, unless the user has set it: a training
  script then runs as fast without environment variables as the demo (unset, idle torch
  threads spin and made the demo's training loop 3x slower on a busy 2-core machine).
  Where torch was imported before gunpowder, it is too late; `configure_main_threads` then
  warns once, saying what to set.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

WORKER_THREADS_ENV = "GUNPOWDER_WORKER_THREADS"

#: environment variables read by the thread pools of BLAS/OpenMP libraries when they start
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

_main_configured: int | None = None
_keep: list[Any] = []  # threadpoolctl limiters stay active for the life of the process


class ThreadsWarning(RuntimeWarning):
    """A thread setting gunpowder could not apply (it says what to set instead)."""


def _apply_wait_policy() -> str:
    """Set `OMP_WAIT_POLICY=PASSIVE` unless set; how it stands for torch's OpenMP runtime:
    "user" (the user chose a policy), "applied" (set before torch loaded its runtime) or
    "late" (torch, and so its OpenMP runtime, was loaded before: the runtime spins)."""
    if os.environ.get("OMP_WAIT_POLICY"):
        return "user"
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # for runtimes loaded from now on
    return "late" if "torch" in sys.modules else "applied"


#: how `OMP_WAIT_POLICY` stood when gunpowder was imported (see `_apply_wait_policy`)
WAIT_POLICY_STATE = _apply_wait_policy()
_warned_late = False


def _warn_wait_policy_late(threads: int) -> None:
    global _warned_late
    if WAIT_POLICY_STATE != "late" or _warned_late or threads < 2:
        return  # with one intra-op thread there is no OpenMP team to spin
    _warned_late = True
    warnings.warn(
        "gunpowder: torch was imported before gunpowder, with OMP_WAIT_POLICY unset, so "
        "torch's idle OpenMP threads spin and can slow training several times on a busy "
        "machine. Set OMP_WAIT_POLICY=PASSIVE in the environment (or import gunpowder "
        "before torch).",
        ThreadsWarning,
        stacklevel=3,
    )


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity; `os.cpu_count()` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def worker_threads_default() -> int | None:
    """Threads per worker process: `$GUNPOWDER_WORKER_THREADS` (0 or "none": leave the
    libraries' own defaults), else 1."""
    value = os.environ.get(WORKER_THREADS_ENV, "").strip().lower()
    if not value:
        return 1
    if value in ("0", "none", "off"):
        return None
    try:
        n = int(value)
    except ValueError:
        raise ValueError(
            f"${WORKER_THREADS_ENV} must be a number of threads (or 0/none), got {value!r}"
        ) from None
    if n < 0:
        raise ValueError(f"${WORKER_THREADS_ENV} must be >= 0, got {n}")
    return n


def check_threads(threads: Any, owner: str, argument: str) -> int | None:
    """`threads` as an int >= 1, or None (leave the libraries alone); errors name `owner`."""
    if threads is None:
        return None
    try:
        n = int(threads)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {argument} must be an int or None, got {threads!r}") from None
    if n < 1:
        raise ValueError(f"{owner}: {argument} must be >= 1 (or None), got {threads}")
    return n


#: zarr 3's (donfig) environment name for `threading.max_workers`, read when zarr is imported
ZARR_WORKERS_ENV = "ZARR_THREADING__MAX_WORKERS"


def limit_threads(n: int) -> None:
    """Limit this process's BLAS/OpenMP, numba, torch and zarr thread pools to `n` threads.

    Environment variables cover libraries loaded later (spawned workers); already-loaded
    ones are limited through threadpoolctl, `numba.set_num_threads`, `torch.set_num_threads`
    and zarr's `threading.max_workers` (its chunk-decoding pool, by default cores + 4
    threads; a pool already started keeps its size) (numba's pool only once started: the
    library's kernels run serially, and starting it would cost each worker threads).
    Missing libraries are skipped.
    """
    n = max(1, int(n))
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    os.environ["NUMBA_NUM_THREADS"] = os.environ.get("NUMBA_NUM_THREADS") or str(n)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ[ZARR_WORKERS_ENV] = str(n)
    zarr = sys.modules.get("zarr")
    if zarr is not None:
        try:
            zarr.config.set({"threading.max_workers": n})
        except Exception:  # zarr 2 has no such setting
            pass
    try:
        from threadpoolctl import threadpool_limits

        _keep.append(threadpool_limits(limits=n))
    except Exception:  # not installed, or a library it can not control
        pass
    numba = sys.modules.get("numba")
    if numba is not None and _numba_threads_started():  # else it starts with the env above
        try:
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        except Exception:
            pass
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            torch.set_num_threads(n)
        except Exception:
            pass


def _numba_threads_started() -> bool:
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    return bool(getattr(parallel, "_is_initialized", False))


def configure_main_threads(threads: int | None = None, workers: int = 0) -> int:
    """Size torch's intra-op thread pool for the main process, once; the number chosen.

    Default: the available cores minus `workers` (the PreCache workers, one core each), at
    least 1. Warns once (`ThreadsWarning`) if torch's OpenMP threads spin because torch was
    imported before gunpowder without `OMP_WAIT_POLICY` set (see the module docstring).
    A later call with other arguments changes the number again; a repeated call is free.
    """
    global _main_configured
    n = threads if threads is not None else max(1, available_cores() - max(0, int(workers)))
    n = max(1, int(n))
    if _main_configured == n:
        return n
    _warn_wait_policy_late(n)
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch
        except ImportError:
            _main_configured = n
            return n
    torch.set_num_threads(n)
    _main_configured = n
    return n


__all__ = [
    "WAIT_POLICY_STATE",
    "WORKER_THREADS_ENV",
    "ThreadsWarning",
    "available_cores",
    "configure_main_threads",
    "limit_threads",
    "worker_threads_default",
]
