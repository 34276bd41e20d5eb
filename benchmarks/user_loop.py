"""A user's training loop without environment variables against the demo's
(`python -m benchmarks.user_loop [--rounds 2] [--iterations 10] [--workers 1]`).

The demo (`make demo`) trains with the Makefile's `OMP_WAIT_POLICY=PASSIVE` exported; a
user's own script runs in a plain shell. Both run the same training (benchmarks/_training.py:
the CREMI example's pipeline and U-Net, PreCache with `--workers` workers, as the demo) in
fresh processes, alternating, `--rounds` times:

- demo: the Makefile's environment;
- user: OMP_WAIT_POLICY, OMP_NUM_THREADS, MKL/OPENBLAS/NUMBA thread variables removed,
  gunpowder imported before torch;
- user, torch first: the same, torch imported before gunpowder (OpenMP then starts before
  gunpowder can set anything up).

Prints the median iteration time of each (all measured iterations of all rounds), the
ratio to the demo and load averages; exits 1 if a user loop is more than `--limit` (20%)
slower than the demo.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._training import (
    data_path,
    demo_environment,
    load_average,
    median,
    run_training,
    user_environment,
)

CONFIGS = {
    "demo": {"env": demo_environment, "user": False, "torch_first": False},
    "user": {"env": user_environment, "user": True, "torch_first": False},
    "user, torch first": {"env": user_environment, "user": True, "torch_first": True},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=10, help="measured per run")
    parser.add_argument("--warmup", type=int, default=2, help="iterations not measured")
    parser.add_argument("--workers", type=int, default=1, help="PreCache workers (demo: 1)")
    parser.add_argument("--small", action="store_true", help="a smaller U-Net and input")
    parser.add_argument("--limit", type=float, default=1.2, help="allowed user/demo ratio")
    parser.add_argument("--data", default=str(data_path()))
    parser.add_argument("--json", help="write all per-iteration figures to this file")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    runs = []
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_average())}")
    for round_ in range(args.rounds):
        for name, config in CONFIGS.items():
            r = run_training(
                args.workers,
                args.iterations,
                args.warmup,
                env=config["env"](),
                user=config["user"],
                torch_first=config["torch_first"],
                small=args.small,
                data=Path(args.data),
            )
            r.update(config=name, round=round_, load_after=load_average())
            runs.append(r)
            times[name] += r["iteration_s"]
            print(
                f"round {round_ + 1} {name:<18} median {r['median_iteration_s']:.3f} s/it "
                f"(wait {r['median_wait_s']:.3f} s), torch threads {r['torch_threads']}, "
                f"OMP_WAIT_POLICY at start {r['omp_wait_policy_at_start']}, "
                f"gunpowder: {r['wait_policy_state']}",
                flush=True,
            )
    demo = median(times["demo"])
    worst = 0.0
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_average())}")
    for name, values in times.items():
        ratio = median(values) / demo
        worst = max(worst, ratio)
        print(f"{name:<18} median {median(values):.3f} s/iteration  ({ratio:.2f}x the demo)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)
    if worst > args.limit:
        print(f"FAIL: a user loop is {worst:.2f}x the demo (limit {args.limit:.2f}x)")
        return 1
    print(f"ok: user loops within {args.limit:.2f}x of the demo")
    return 0


if __name__ == "__main__":
    sys.exit(main())
