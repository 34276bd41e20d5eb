"""End-to-end CPU training: how long `gunpowder.torch.Train` waits for data, per worker count
(`python -m benchmarks.train_loop [--workers 0 1 2] [--iterations 10] [--small]`).

Each worker count runs in a fresh process (benchmarks/_training.py): the CREMI example's
pipeline and U-Net (examples/cremi, 6 feature maps, input 10x100x100 voxels; `--small`: 3
feature maps, 8x76x76) fed by PreCache(num_workers=W), in the environment `make` gives
(OMP_WAIT_POLICY=PASSIVE; `--user-env` removes the thread variables instead). Per iteration
after the warm-up iterations: the wall time of `request_batch`, the time of Train's
forward/backward/step (`Train.process` in the batch's profiling stats) and the rest, the time
Train waited for its batch from PreCache. Prints medians per worker count, and load averages.
"""

from __future__ import annotations

import argparse
import json

from ._training import (
    data_path,
    demo_environment,
    load_average,
    median,
    run_training,
    user_environment,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=10, help="measured iterations")
    parser.add_argument("--warmup", type=int, default=2, help="iterations not measured")
    parser.add_argument("--small", action="store_true", help="a smaller U-Net and input")
    parser.add_argument("--user-env", action="store_true", help="without thread variables")
    parser.add_argument("--data", default=str(data_path()))
    parser.add_argument("--json", help="write all per-iteration figures to this file")
    args = parser.parse_args(argv)
    from pathlib import Path

    env = user_environment() if args.user_env else demo_environment()
    results = []
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_average())}")
    header = (
        f"{'workers':>7} {'iteration s':>12} {'wait s':>8} {'step s':>8} {'wait %':>7} "
        f"{'first it. s':>11} {'torch threads':>13}"
    )
    print(header)
    for workers in args.workers:
        r = run_training(
            workers,
            args.iterations,
            args.warmup,
            env=env,
            small=args.small,
            data=Path(args.data),
        )
        r["load_after"] = load_average()
        results.append(r)
        it, wait = r["median_iteration_s"], r["median_wait_s"]
        print(
            f"{workers:>7} {it:>12.3f} {wait:>8.3f} {r['median_step_s']:>8.3f} "
            f"{100 * median([w / i for w, i in zip(r['wait_s'], r['iteration_s'])]):>6.0f}% "
            f"{r['first_iteration_s']:>11.2f} {r['torch_threads']:>13}",
            flush=True,
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_average())}")
    if results:
        r = results[0]
        print(f"model: {r['num_fmaps']} feature maps, input {r['input_shape']} voxels")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
