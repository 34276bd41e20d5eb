"""The project's benchmarks: the CREMI-style training workload (`python -m benchmarks`) and
kernel scripts (`python benchmarks/<name>.py`).

The workload is `../shared/bench/workload.py`, written against the 1.x API so that it runs
unchanged on this gunpowder and on gunpowder 1.5. Each run is a subprocess; while it runs,
the memory of its whole process tree (workers and the forkserver included) is sampled, so
"peak memory" counts every process, each shared page once (PSS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
# the CREMI workload and its data generator ship in benchmarks/cremi/ (the same files as the
# project's ../shared/bench, whose compare.sh also sets up the gunpowder 1.5 peer)
SHARED_BENCH = REPO.parent / "shared" / "bench"
BENCH_DIR = Path(os.environ.get("GP_BENCH_DIR", Path(__file__).resolve().parent / "cremi"))
CACHE = Path.home() / ".cache" / "gunpowder-bench"
DATA = Path(os.environ.get("GP_BENCH_DATA", CACHE / "cremi_like.hdf"))
PEER_VENV = Path(os.environ.get("GP_PEER_VENV", CACHE / "peer-venv"))
MIB = 1024 * 1024


@dataclass
class TreeMemory:
    """Peaks over time of memory summed over a process and all its descendants.

    pss: everything, each shared page split between the processes that map it;
    pss_anon: the same without file-backed pages (page cache of mapped files), i.e. anonymous
    memory plus shared memory; rss: everything, shared pages counted once per process.
    """

    peak_pss: int = 0
    peak_pss_anon: int = 0
    peak_rss: int = 0
    peak_processes: int = 0
    samples: int = 0

    def sample(self, root: psutil.Process) -> None:
        try:
            procs = [root] + root.children(recursive=True)
        except psutil.Error:
            return
        total = {"Pss": 0, "Pss_Anon": 0, "Pss_Shmem": 0, "Rss": 0}
        for p in procs:
            for key, value in _rollup(p.pid).items():
                if key in total:
                    total[key] += value
        self.peak_pss = max(self.peak_pss, total["Pss"])
        self.peak_pss_anon = max(self.peak_pss_anon, total["Pss_Anon"] + total["Pss_Shmem"])
        self.peak_rss = max(self.peak_rss, total["Rss"])
        self.peak_processes = max(self.peak_processes, len(procs))
        self.samples += 1


def _rollup(pid: int) -> dict[str, int]:
    """Bytes per field of /proc/PID/smaps_rollup (Linux); empty if the process is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return {}
    out = {}
    for line in lines:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[key] = int(parts[0]) * 1024
    return out


def _watch(proc: subprocess.Popen, memory: TreeMemory, interval: float) -> None:
    try:
        root = psutil.Process(proc.pid)
    except psutil.Error:
        return
    while proc.poll() is None:
        memory.sample(root)
        time.sleep(interval)


def run_workload(
    python: str | Path,
    workers: int = 0,
    elastic: bool = True,
    iterations: int = 40,
    warmup: int = 3,
    data: Path = DATA,
    interval: float = 0.05,
    env: dict[str, str] | None = None,
    timeout: float = 1800,
) -> dict[str, Any]:
    """Run the workload once with `python` and return its JSON line plus the tree's memory.

    Adds, over all processes of the run: `peak_tree_pss_mib` (shared pages split between the
    processes), `peak_tree_anon_mib` (the same without pages of mapped files),
    `peak_tree_rss_mib` (shared pages counted in each process); and `wall_s`.
    """
    workload = BENCH_DIR / "workload.py"
    if not workload.exists():
        raise FileNotFoundError(f"{workload} is missing: set GP_BENCH_DIR to its folder")
    if not Path(data).exists():  # generated once, then cached
        Path(data).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, str(BENCH_DIR / "make_data.py"), "--out", str(data)], check=True
        )
    python = os.path.abspath(python) if os.sep in str(python) else str(python)  # cwd changes
    cmd = [python, str(workload), "--data", str(data), "--workers", str(workers)]
    cmd += ["--iterations", str(iterations), "--warmup", str(warmup)]
    if not elastic:
        cmd.append("--no-elastic")
    memory = TreeMemory()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(BENCH_DIR),  # the workload imports its gunpowder from `python`, never from here
        env={**os.environ, **(env or {})},
    )
    watcher = threading.Thread(target=_watch, args=(proc, memory, interval), daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise RuntimeError(f"{' '.join(cmd)} ran over {timeout} s\n{err[-3000:]}") from None
    watcher.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(cmd)} printed no JSON line:\n{out[-2000:]}\n{err[-2000:]}")
    result = json.loads(lines[-1])
    result.update(
        command=" ".join(cmd),
        wall_s=round(wall, 2),
        peak_tree_pss_mib=round(memory.peak_pss / MIB),
        peak_tree_anon_mib=round(memory.peak_pss_anon / MIB),
        peak_tree_rss_mib=round(memory.peak_rss / MIB),
        peak_processes=memory.peak_processes,
        memory_samples=memory.samples,
    )
    return result


# Runs in the measured interpreter (ours or the peer's: only the standard library besides
# gunpowder), from BENCH_DIR so that `workload` imports and `gunpowder` is that venv's.
_STEADY_CHILD = r"""
import json, os, sys, time
import gunpowder as gp
import workload

def tree_cpu_s():
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += [c for c, (pp, _) in parents.items() if pp == pid and c not in tree]
    ticks = sum(parents[p][1] for p in tree if p in parents)
    return ticks / os.sysconf("SC_CLK_TCK"), len(tree)

a = json.loads(sys.argv[1])
pipeline, request, _ = workload.build_pipeline(a["data"], a["elastic"], a["workers"])
t_start = time.perf_counter()
with gp.build(pipeline):
    pipeline.request_batch(request)
    first = time.perf_counter() - t_start
    for _ in range(a["warmup"]):
        pipeline.request_batch(request)
    cpu0, _ = tree_cpu_s()
    times = []
    t0 = time.perf_counter()
    for _ in range(a["batches"]):
        t = time.perf_counter()
        pipeline.request_batch(request)
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    cpu1, processes = tree_cpu_s()
times.sort()
print(json.dumps({
    "workers": a["workers"], "elastic": a["elastic"], "batches": a["batches"],
    "first_batch_s": round(first, 3),
    "wall_ms_per_batch": round(1e3 * wall / a["batches"], 2),
    "median_ms_per_batch": round(1e3 * times[len(times) // 2], 2),
    "cpu_ms_per_batch": round(1e3 * (cpu1 - cpu0) / a["batches"], 2),
    "processes": processes,
}))
"""


def steady_state(
    python: str | Path,
    workers: int = 0,
    elastic: bool = True,
    batches: int = 40,
    warmup: int = 8,
    data: Path = DATA,
    env: dict[str, str] | None = None,
    timeout: float = 1800,
) -> dict[str, Any]:
    """Wall time and CPU time (all processes) per batch after `warmup` batches.

    CPU time per batch does not depend on what else runs on the machine, so
    `workers * cpu(0 workers) / cpu(W workers)` bounds the speed-up W idle cores can give.
    """
    python = os.path.abspath(python) if os.sep in str(python) else str(python)
    args = {"data": str(data), "workers": workers, "elastic": elastic}
    args.update(batches=batches, warmup=warmup)
    cmd = [python, "-c", _STEADY_CHILD, json.dumps(args)]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=str(BENCH_DIR),
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"steady-state run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def _loop(n: int) -> float:
    t = time.perf_counter()
    x = 0
    for i in range(n):
        x += i * i
    return time.perf_counter() - t


def _copies(n: int) -> float:
    import numpy as np

    a = np.ones(32 << 20, np.uint8)
    b = np.empty_like(a)
    np.copyto(b, a)
    t = time.perf_counter()
    for _ in range(n):
        np.copyto(b, a)
    return time.perf_counter() - t


def machine_scaling() -> dict[str, float]:
    """How much faster two processes get through two jobs than one process through one, for a
    pure Python loop and for 32 MiB memory copies: the ceiling for 2 workers on this machine."""
    import multiprocessing

    out = {}
    for name, fn, n in (("python_loop", _loop, 10_000_000), ("memory_copy", _copies, 100)):
        one = fn(n)
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            two = pool.map(fn, [n, n])
        out[name] = round(2 * one / max(two), 2)
    return out


def peer_python() -> Path | None:
    """The peer venv's interpreter (gunpowder 1.5), if it exists."""
    python = PEER_VENV / "bin" / "python"
    return python if python.exists() else None


__all__ = [
    "run_workload",
    "steady_state",
    "peer_python",
    "TreeMemory",
    "BENCH_DIR",
    "SHARED_BENCH",
    "DATA",
    "PEER_VENV",
]
