"""PreCache rate with seeded requests (a constant-step seed sequence) against unseeded ones
(`python -m benchmarks.precache_seeds`).

The upstream is CPU-bound (about 20 ms of augmentation per batch on a 2-vCPU machine):
ArraySource (160^3) -> RandomLocation -> SimpleAugment -> NoiseAugment -> IntensityAugment,
48x128x128 float32.
Rounds alternate between the modes; each reports batches/s over `--iterations` batches
after `--warmup` batches, and PreCache's hit rate.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import gunpowder as gp

RAW = gp.ArrayKey("RAW")


def pipeline(workers: int) -> tuple[gp.Pipeline, gp.nodes.PreCache]:
    data = np.random.default_rng(0).random((160, 160, 160), dtype=np.float32)
    source = gp.ArraySource(RAW, gp.Array(data, gp.ArraySpec(roi=gp.Roi((0, 0, 0), data.shape))))
    node = gp.PreCache(cache_size=2 * workers, num_workers=workers)
    p = (
        source
        + gp.RandomLocation()
        + gp.SimpleAugment()
        + gp.NoiseAugment(RAW)
        + gp.IntensityAugment(RAW, 0.9, 1.1, -0.1, 0.1)
        + node
    )
    return p, node


def run(mode: str, workers: int, iterations: int, warmup: int, step: int) -> tuple[float, float]:
    p, node = pipeline(workers)
    request = gp.BatchRequest()
    request.add(RAW, (48, 128, 128))
    with gp.build(p):
        for i in range(warmup + iterations):
            if i == warmup:
                t0 = time.perf_counter()
            seed = None if mode == "unseeded" else 1000 + step * i
            p.request_batch(request.with_seed(seed))
        elapsed = time.perf_counter() - t0
    return iterations / elapsed, node.hit_rate or 0.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--step", type=int, default=7, help="seed step of the seeded mode")
    args = parser.parse_args(argv)
    rates: dict[str, list[float]] = {"unseeded": [], "seeded": []}
    for r in range(args.rounds):
        for mode in ("unseeded", "seeded") if r % 2 == 0 else ("seeded", "unseeded"):
            rate, hits = run(mode, args.workers, args.iterations, args.warmup, args.step)
            rates[mode].append(rate)
            print(f"round {r} {mode:>8}: {rate:6.1f} batches/s, hit rate {hits:.2f}")
    u, s = statistics.median(rates["unseeded"]), statistics.median(rates["seeded"])
    print(
        f"median: unseeded {u:.1f}, seeded (step {args.step}) {s:.1f} batches/s; ratio {s / u:.2f}"
    )


if __name__ == "__main__":
    main()
