"""`python -m benchmarks`: the CREMI-style workload for workers = 0, 1, 2, optionally beside
gunpowder 1.5, printed as a table (batches/s, time to first batch, peak memory of all processes).

    python -m benchmarks [--workers 0 1 2] [--elastic both|yes|no] [--iterations 40]
                         [--rounds 1] [--peer] [--steady] [--machine] [--json FILE]
                         [--load N] [--compare -- ARGS...]

`--peer` runs the same workload on gunpowder 1.5 from the peer venv
(~/.cache/gunpowder-bench/peer-venv, made by ../shared/bench/compare.sh), alternating with
ours in every round; each figure is the median over rounds. `--steady` measures instead,
after a warm-up, wall time and CPU time of all processes per batch: CPU time does not depend
on the machine's load, and W * cpu(0 workers) / cpu(W workers) is the speed-up W idle cores
can give. `--machine` prints how two processes scale here (a Python loop, memory copies).
`--compare -- ARGS` only runs ../shared/bench/compare.sh with ARGS and exits. `--load N`
keeps N other processes busy (a pure Python loop each, one core's worth) for the whole run,
to measure both libraries on a machine that other jobs share.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import DATA, REPO, SHARED_BENCH, machine_scaling, peer_python, run_workload, steady_state


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _summarise(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "batches_per_s": _median([r["batches_per_s"] for r in runs]),
        "first_batch_s": _median([r["first_batch_s"] for r in runs]),
        "peak_tree_pss_mib": _median([r["peak_tree_pss_mib"] for r in runs]),
        "peak_tree_anon_mib": _median([r["peak_tree_anon_mib"] for r in runs]),
        "peak_tree_rss_mib": _median([r["peak_tree_rss_mib"] for r in runs]),
        "rounds": len(runs),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'impl':<6} {'elastic':<7} {'workers':>7} {'batches/s':>10} {'x w=0':>6} "
        f"{'first s':>8} {'PSS MiB':>8} {'anon MiB':>8} {'RSS MiB':>8} {'ours/peer':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = r.get("ratio_to_peer")
        lines.append(
            f"{r['impl']:<6} {str(r['elastic']):<7} {r['workers']:>7} "
            f"{r['batches_per_s']:>10.2f} {r.get('speedup', float('nan')):>6.2f} "
            f"{r['first_batch_s']:>8.3f} {r['peak_tree_pss_mib']:>8.0f} "
            f"{r['peak_tree_anon_mib']:>8.0f} {r['peak_tree_rss_mib']:>8.0f} {'' if ratio is None else f'{ratio:.2f}':>9}"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def busy_processes(n: int) -> Iterator[list[subprocess.Popen]]:
    """`n` processes spinning a Python loop (each loads one core) while the block runs."""
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(n)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="The CREMI-style workload: batches/s, time to first batch, peak memory.",
    )
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--elastic", choices=["both", "yes", "no"], default="both")
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--python", default=sys.executable, help="interpreter for our gunpowder")
    ap.add_argument("--peer", action="store_true", help="also run gunpowder 1.5 (peer venv)")
    ap.add_argument("--steady", action="store_true", help="steady-state wall and CPU per batch")
    ap.add_argument(
        "--machine", action="store_true", help="2-process scaling of a loop and of memory copies"
    )
    ap.add_argument("--json", type=Path, help="write every run and the summary here")
    ap.add_argument(
        "--load", type=int, default=0, help="keep this many other processes busy meanwhile"
    )
    ap.add_argument("--compare", nargs=argparse.REMAINDER, help="run compare.sh with these args")
    args = ap.parse_args(argv)
    with busy_processes(args.load):
        return _run(args)


def _run(args: argparse.Namespace) -> int:

    if args.machine:
        for _ in range(args.rounds):
            print(json.dumps(machine_scaling()), flush=True)
        return 0

    if args.compare is not None:
        extra = [a for a in args.compare if a != "--"]
        compare = SHARED_BENCH / "compare.sh"
        if not compare.exists():
            print(f"{compare} is missing: the gunpowder 1.5 comparison needs ../shared/bench")
            return 2
        cmd = [str(compare), args.python, "--", *extra]
        print("$", " ".join(cmd), flush=True)
        return subprocess.call(cmd, cwd=str(REPO))

    peer = peer_python() if args.peer else None
    if args.peer and peer is None:
        print("no peer venv: run ../shared/bench/compare.sh once to create it", file=sys.stderr)
        return 2
    elastic_modes = {"both": [False, True], "yes": [True], "no": [False]}[args.elastic]
    impls = [("ours", args.python)] + ([("peer", str(peer))] if peer else [])
    if args.steady:
        return _steady(args, impls, elastic_modes)
    runs: dict[tuple[str, bool, int], list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        for elastic in elastic_modes:
            for workers in args.workers:
                for impl, python in impls:
                    result = run_workload(
                        python, workers, elastic, args.iterations, args.warmup, args.data
                    )
                    runs.setdefault((impl, elastic, workers), []).append(result)
                    print(
                        f"[round {round_ + 1}] {impl} elastic={elastic} workers={workers}: "
                        f"{result['batches_per_s']:.2f} batches/s, first "
                        f"{result['first_batch_s']:.3f} s, PSS {result['peak_tree_pss_mib']} MiB",
                        flush=True,
                    )
    rows = []
    for (impl, elastic, workers), group in runs.items():
        rows.append({"impl": impl, "elastic": elastic, "workers": workers, **_summarise(group)})
    by_key = {(r["impl"], r["elastic"], r["workers"]): r for r in rows}
    for r in rows:
        base = by_key.get((r["impl"], r["elastic"], 0))
        if base:
            r["speedup"] = r["batches_per_s"] / base["batches_per_s"]
        peer_row = by_key.get(("peer", r["elastic"], r["workers"]))
        if r["impl"] == "ours" and peer_row:
            r["ratio_to_peer"] = r["batches_per_s"] / peer_row["batches_per_s"]
    rows.sort(key=lambda r: (r["elastic"], r["workers"], r["impl"]))
    print()
    print(_table(rows))
    if args.json:
        payload = {"summary": rows, "runs": {str(k): v for k, v in runs.items()}}
        args.json.write_text(json.dumps(payload, indent=1))
    return 0


def _steady(args: argparse.Namespace, impls: list, elastic_modes: list) -> int:
    runs: dict[tuple[str, bool, int], list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        for elastic in elastic_modes:
            for workers in args.workers:
                for impl, python in impls:
                    r = steady_state(
                        python, workers, elastic, args.iterations, max(args.warmup, 5), args.data
                    )
                    runs.setdefault((impl, elastic, workers), []).append(r)
                    print(f"[round {round_ + 1}] {impl}: {json.dumps(r)}", flush=True)
    head = (
        f"{'impl':<6} {'elastic':<7} {'workers':>7} {'wall ms':>8} {'cpu ms':>8} "
        f"{'x w=0 wall':>10} {'x w=0 bound':>11}"
    )
    lines = [head, "-" * len(head)]
    summary = []
    for (impl, elastic, workers), group in sorted(runs.items(), key=lambda kv: kv[0][1:]):
        wall = _median([r["wall_ms_per_batch"] for r in group])
        cpu = _median([r["cpu_ms_per_batch"] for r in group])
        base = runs.get((impl, elastic, 0))
        base_wall = _median([r["wall_ms_per_batch"] for r in base]) if base else float("nan")
        base_cpu = _median([r["cpu_ms_per_batch"] for r in base]) if base else float("nan")
        bound = max(workers, 1) * base_cpu / cpu
        row = dict(impl=impl, elastic=elastic, workers=workers, wall_ms=wall, cpu_ms=cpu)
        summary.append({**row, "speedup_wall": base_wall / wall, "speedup_bound": bound})
        lines.append(
            f"{impl:<6} {str(elastic):<7} {workers:>7} {wall:>8.1f} {cpu:>8.1f} "
            f"{base_wall / wall:>10.2f} {bound:>11.2f}"
        )
    print()
    print("\n".join(lines))
    if args.json:
        args.json.write_text(
            json.dumps({"summary": summary, "runs": {str(k): v for k, v in runs.items()}}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
