"""An isotropic FIB-SEM-like training workload (`python -m benchmarks.isotropic`).

8 nm voxels in every axis; ZarrSource (raw uint8, labels uint64, mask uint8) -> Normalize ->
Pad(raw, None) -> RandomLocation(min_masked=0.5, mask) -> DeformAugment (full 3D rotations,
or none with `--no-rotate`) -> SimpleAugment (every mirror and transpose) -> NoiseAugment ->
AddAffinities (long-range neighbourhood). Raw 84x268x268 voxels, labels/affinities/mask
56^3 (the mask decides where labels are cut; raw may reach beyond the data: Pad).

The data (a 192x512x512 volume: smooth noise for raw, a Voronoi-like labelling, a blob mask)
is generated into a temporary directory and deleted afterwards (`--keep DIR` keeps it).
Reports the first batch (from before `build`) and the median per-batch time after warm-up,
with rotation and without. Written against the 1.x API: `--peer [PYTHON]` runs the same
workload on gunpowder 1.5 (default: the peer venv ~/.cache/gunpowder-bench/peer-venv, made
by ../shared/bench/compare.sh) beside ours, each run a fresh process, ours and the peer's
alternating in every round, and prints both medians and the ratio. The data is generated
once (by this interpreter) and read by both. `--profile` adds the median time per node.

    python -m benchmarks.isotropic [--iterations 10] [--rounds 2] [--peer [PYTHON]]
                                   [--keep DIR] [--profile] [--no-rotate | --only-rotate]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = (192, 512, 512)
PEER_PYTHON = Path.home() / ".cache" / "gunpowder-bench" / "peer-venv" / "bin" / "python"
VS = 8
NEIGHBORHOOD = [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
    [3, 0, 0],
    [0, 3, 0],
    [0, 0, 3],
    [9, 0, 0],
    [0, 9, 0],
    [0, 0, 9],
]


def make_data(path: Path, shape: tuple[int, int, int] = SHAPE, seed: int = 0) -> None:
    import zarr
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    group = zarr.open_group(str(path), mode="w")
    raw = ndimage.gaussian_filter(rng.random(shape, dtype=np.float32), 2.0)
    raw = (255 * (raw - raw.min()) / (np.ptp(raw) + 1e-9)).astype(np.uint8)
    seeds = (np.array(shape)[:, None] * rng.random((3, 400))).astype(int)
    markers = np.zeros(shape, np.uint32)
    markers[tuple(seeds)] = np.arange(1, 401)
    _, index = ndimage.distance_transform_edt(markers == 0, return_indices=True)
    labels = markers[tuple(index)].astype(np.uint64)
    del index
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    mask = sum(((g - s / 2) / (0.6 * s)) ** 2 for g, s in zip(grid, shape)) < 1
    for name, data in (("raw", raw), ("labels", labels), ("mask", mask.astype(np.uint8))):
        a = group.create_array(name, shape=shape, chunks=(64, 128, 128), dtype=data.dtype)
        a[...] = data
        a.attrs["resolution"] = (VS,) * 3
        a.attrs["offset"] = (0, 0, 0)


def build_pipeline(path: Path, rotate: bool):
    import gunpowder as gp

    raw, labels, mask, affs = (gp.ArrayKey(n) for n in ("RAW", "LABELS", "MASK", "AFFS"))
    specs = {
        labels: gp.ArraySpec(interpolatable=False),
        mask: gp.ArraySpec(interpolatable=False),
    }
    p = gp.ZarrSource(str(path), {raw: "raw", labels: "labels", mask: "mask"}, specs)
    p += gp.Normalize(raw)
    p += gp.Pad(raw, None)
    p += gp.RandomLocation(min_masked=0.5, mask=mask)
    p += gp.DeformAugment(
        control_point_spacing=(40 * VS,) * 3,
        jitter_sigma=(2 * VS,) * 3,
        scale_interval=(0.9, 1.1),
        rotate=rotate,
        subsample=4,
    )
    p += gp.SimpleAugment()
    p += gp.NoiseAugment(raw, var=0.01)
    p += gp.AddAffinities(NEIGHBORHOOD, labels, affs)

    def request(seed: int):
        """The request for batch `seed` (1.x has no `with_seed`: a new request each time)."""
        r = gp.BatchRequest(random_seed=seed)
        r.add(raw, gp.Coordinate(84, 268, 268) * VS)
        out = gp.Coordinate(56, 56, 56) * VS
        context = (gp.Coordinate(84, 268, 268) * VS - out) / 2
        r[labels] = gp.ArraySpec(roi=gp.Roi(context, out))
        r[affs] = gp.ArraySpec(roi=gp.Roi(context, out))
        r[mask] = gp.ArraySpec(roi=gp.Roi(context, out))  # locations by the labelled part
        return r

    return gp, p, request


def _node_times(stats, totals: dict[str, list[float]]) -> None:
    """Append this batch's seconds per (node, phase) of `stats` (1.x's ProfilingStats API)."""
    for (node, phase), summary in stats.get_timing_summaries().items():
        times = summary.times() if callable(summary.times) else summary.times  # 1.x: a list
        totals.setdefault(f"{node} {phase}", []).append(sum(times))


def run(path: Path, rotate: bool, iterations: int, warmup: int, profile: bool = False) -> dict:
    """Build the pipeline and time `warmup + iterations` batches (seeds 0, 1, ...)."""
    t0 = time.perf_counter()
    gp, p, request = build_pipeline(path, rotate)
    times = []
    nodes: dict[str, list[float]] = {}
    with gp.build(p):
        for i in range(warmup + iterations):
            t = time.perf_counter()
            batch = p.request_batch(request(i))
            times.append(time.perf_counter() - t)
            if i == 0:
                first = time.perf_counter() - t0
            if profile and i >= warmup:
                _node_times(batch.profiling_stats, nodes)
    steady = times[warmup:]
    result = {"first_s": first, "median_s": statistics.median(steady), "min_s": min(steady)}
    if profile:
        result["nodes_ms"] = {k: 1e3 * statistics.median(v) for k, v in nodes.items()}
    return result


def _run_in(python: str, path: Path, rotate: bool, args: argparse.Namespace) -> dict:
    """`run` in a fresh process of `python` (whose gunpowder it imports: started from this
    folder, so never this checkout's unless that interpreter has it installed)."""
    job = {"path": str(path), "rotate": rotate, "iterations": args.iterations}
    job.update(warmup=args.warmup, profile=args.profile)
    cmd = [python, str(Path(__file__).resolve()), "--child", json.dumps(job)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=str(Path(__file__).resolve().parent)
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def _print_nodes(label: str, runs: list[dict]) -> None:
    """Median over runs of each node's median ms per batch, slowest first."""
    keys = {k for r in runs for k in r.get("nodes_ms", {})}
    rows = [
        (statistics.median(r["nodes_ms"][k] for r in runs if k in r["nodes_ms"]), k) for k in keys
    ]
    print(f"  {label} per node (ms/batch):")
    for ms, k in sorted(rows, reverse=True):
        if ms >= 1.0:
            print(f"    {ms:8.1f}  {k}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", help="keep the generated data in this directory (reused)")
    parser.add_argument(
        "--peer",
        nargs="?",
        const=str(PEER_PYTHON),
        help=f"also run on gunpowder 1.5 with this interpreter (default {PEER_PYTHON})",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter for ours (--peer)")
    parser.add_argument("--profile", action="store_true", help="median ms per node")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--no-rotate", action="store_true", help="only the unrotated case")
    group.add_argument("--only-rotate", action="store_true", help="only the rotated case")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one run, as JSON, in this process
    args = parser.parse_args(argv)
    if args.child:
        job = json.loads(args.child)
        res = run(
            Path(job["path"]), job["rotate"], job["iterations"], job["warmup"], job["profile"]
        )
        print(json.dumps(res), flush=True)
        return
    if args.peer and not Path(args.peer).exists():
        raise SystemExit(f"--peer: no interpreter {args.peer} (run ../shared/bench/compare.sh)")
    impls = [("ours", args.python)] + ([("peer", args.peer)] if args.peer else [])
    cases = [False] if args.no_rotate else [True] if args.only_rotate else [True, False]
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gp-iso-", dir="/tmp"))
    path = base / "isotropic.zarr"
    results: dict[tuple[str, bool], list[dict]] = {}
    try:
        if not (path / "raw").exists():
            t = time.perf_counter()
            make_data(path)
            print(f"generated {path} in {time.perf_counter() - t:.1f} s", flush=True)
        print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
        for r in range(args.rounds):
            order = [
                (rot, impl)
                for rot in (cases if r % 2 == 0 else cases[::-1])
                for impl in (impls if r % 2 == 0 else impls[::-1])
            ]
            for rotate, (impl, python) in order:
                if args.peer:
                    res = _run_in(python, path, rotate, args)
                else:
                    res = run(path, rotate, args.iterations, args.warmup, args.profile)
                results.setdefault((impl, rotate), []).append(res)
                print(
                    f"round {r} {impl} rotate={rotate!s:>5}: first batch {res['first_s']:.2f} s, "
                    f"median {res['median_s'] * 1e3:.0f} ms/batch (min {res['min_s'] * 1e3:.0f})",
                    flush=True,
                )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    med = {k: statistics.median(x["median_s"] for x in v) for k, v in results.items()}
    for impl, _ in impls:
        line = ", ".join(
            f"{'rotated' if rot else 'unrotated'} {med[(impl, rot)] * 1e3:.0f}" for rot in cases
        )
        if len(cases) == 2:
            line += f" (rotated/unrotated {med[(impl, True)] / med[(impl, False)]:.2f})"
        print(f"{impl} median ms/batch: {line}")
        if args.profile:
            for rot in cases:
                _print_nodes(f"{impl} rotate={rot}", results[(impl, rot)])
    if args.peer:
        for rot in cases:
            ratio = med[("peer", rot)] / med[("ours", rot)]
            print(f"rotate={rot}: ours/peer batches/s {ratio:.2f}")


if __name__ == "__main__":
    main()
