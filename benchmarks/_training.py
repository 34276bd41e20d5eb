"""Shared code of the training benchmarks (`train_loop`, `user_loop`): one CPU training run of
the CREMI example in a fresh process, and the helpers that start it and summarise it.

The child (`python -m benchmarks._training --workers W --iterations N ...`) trains the
example's U-Net (examples/cremi: `small_unet`, affinity loss, Adam) on the example's pipeline
(Hdf5Source → Normalize → RandomLocation → ElasticAugment → SimpleAugment → IntensityAugment
→ GrowBoundary → AddAffinities → BalanceLabels → PreCache → gunpowder.torch.Train) and prints
one JSON line with, per iteration after `--warmup` iterations: the wall time of
`request_batch` (the iteration), the time `Train.process` took (forward, backward and
optimiser step, from the batch's profiling stats), and the rest: the time Train waited for
its upstream (PreCache) to hand over the batch.

`--user` makes the child behave like a user's own script: the environment it was started
with is left as it is (the callers remove the OpenMP variables) and the example's module,
which sets `OMP_WAIT_POLICY` at import, is imported only after torch and gunpowder, with the
variable removed again, so nothing but gunpowder itself can set up the threads.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "cremi"

#: variables a user's shell does not set: removed for the "user" runs
THREAD_VARIABLES = (
    "OMP_WAIT_POLICY",
    "OMP_NUM_THREADS",
    "OMP_PROC_BIND",
    "OMP_DYNAMIC",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "GUNPOWDER_WORKER_THREADS",
)


def data_path() -> Path:
    """$GP_BENCH_DATA, else ~/.cache/gunpowder-bench/cremi_like.hdf (benchmarks/cremi)."""
    default = Path.home() / ".cache" / "gunpowder-bench" / "cremi_like.hdf"
    return Path(os.environ.get("GP_BENCH_DATA", default))


def load_average() -> tuple[float, float, float]:
    """The machine's 1, 5 and 15 minute load averages (what `uptime` shows)."""
    return os.getloadavg()


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def demo_environment() -> dict[str, str]:
    """The environment `make demo` runs in: this one plus the Makefile's OMP_WAIT_POLICY."""
    return dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONWARNINGS="ignore")


def user_environment() -> dict[str, str]:
    """A plain shell's environment: the thread variables of `THREAD_VARIABLES` removed."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env["PYTHONWARNINGS"] = "ignore"
    return env


def run_training(
    workers: int,
    iterations: int,
    warmup: int = 3,
    env: dict[str, str] | None = None,
    user: bool = False,
    torch_first: bool = False,
    small: bool = False,
    data: Path | None = None,
    timeout: float = 600,
) -> dict[str, Any]:
    """One training run in a fresh process (see the module docstring); its JSON summary."""
    data = data or data_path()
    if not data.exists():
        sys.exit(f"{data} is missing: run benchmarks/cremi/make_data.py --out {data} first")
    cmd = [
        sys.executable,
        "-m",
        "benchmarks._training",
        "--workers",
        str(workers),
        "--iterations",
        str(iterations),
        "--warmup",
        str(warmup),
        "--data",
        str(data),
    ]
    cmd += ["--user"] * user + ["--torch-first"] * torch_first + ["--small"] * small
    t0 = time.perf_counter()
    out = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout, check=False
    )
    if out.returncode:
        raise RuntimeError(f"training run failed ({' '.join(cmd)}):\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t0
    return result


# ---- the child -------------------------------------------------------------------------------


def _child(args: argparse.Namespace) -> None:
    policy_at_start = os.environ.get("OMP_WAIT_POLICY")
    t_start = time.perf_counter()
    for name in ("torch", "gunpowder") if args.torch_first else ("gunpowder", "torch"):
        importlib.import_module(name)
    import torch

    import gunpowder as gp
    import gunpowder.threads

    policy_after_imports = os.environ.get("OMP_WAIT_POLICY")  # what gunpowder set, if it did
    sys.path.insert(0, str(EXAMPLE))
    import train as example  # sets OMP_WAIT_POLICY, but torch is loaded already

    if args.user:  # undo the example's setting: a user's script would not have it
        if policy_after_imports is None:
            os.environ.pop("OMP_WAIT_POLICY", None)
        else:
            os.environ["OMP_WAIT_POLICY"] = policy_after_imports
    import numpy as np

    import gunpowder.torch as gp_torch

    torch.manual_seed(0)
    num_fmaps = 3 if args.small else 6
    input_shape = (8, 76, 76) if args.small else example.DEFAULT_INPUT_SHAPE
    model = example.make_model(num_fmaps)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    trainer = gp_torch.Train(
        model,
        example.affinity_loss,
        optimizer,
        inputs={0: example.RAW},
        outputs={0: example.PRED_AFFINITIES},
        loss_inputs={0: example.PRED_AFFINITIES, 1: example.GT_AFFINITIES, 2: example.LOSS_WEIGHTS},
        checkpoint_basename=os.path.join(args.out, "model"),
        save_every=0,
    )
    pipeline = (
        example.sources([args.data])
        + example.augmentations()
        + example.affinity_targets()
        + gp.PreCache(cache_size=max(4, 2 * args.workers), num_workers=args.workers)
        + trainer
    )
    request = example.training_request(
        model, input_shape, example.read_voxel_size(args.data)
    ).with_seed(0)
    rows = []
    with gp.build(pipeline):
        t_built = time.perf_counter()
        for i in range(args.warmup + args.iterations):
            t0 = time.perf_counter()
            batch = pipeline.request_batch(request)
            seconds = time.perf_counter() - t0
            stats = batch.profiling_stats
            step = stats.get_timing_summary(trainer.name, "process")
            prepare = stats.get_timing_summary(trainer.name, "prepare")
            step_s = step.total() if step is not None else float("nan")
            prepare_s = prepare.total() if prepare is not None else 0.0
            rows.append((seconds, max(0.0, seconds - step_s - prepare_s), step_s))
            if i == 0:
                first = time.perf_counter() - t_built
    measured = rows[args.warmup :]
    print(
        json.dumps(
            {
                "workers": args.workers,
                "user": args.user,
                "torch_first": args.torch_first,
                "small": args.small,
                "num_fmaps": num_fmaps,
                "input_shape": list(example.shapes(model, input_shape)[0]),
                "omp_wait_policy_at_start": policy_at_start,
                "omp_wait_policy_after_imports": policy_after_imports,
                "wait_policy_state": gunpowder.threads.WAIT_POLICY_STATE,
                "torch_threads": torch.get_num_threads(),
                "startup_s": t_built - t_start,
                "first_iteration_s": first,
                "iteration_s": [r[0] for r in measured],
                "wait_s": [r[1] for r in measured],
                "step_s": [r[2] for r in measured],
                "median_iteration_s": median([r[0] for r in measured]),
                "median_wait_s": median([r[1] for r in measured]),
                "median_step_s": median([r[2] for r in measured]),
                "loss": float(np.asarray(batch.loss)),
            }
        )
    )


def main(argv: list[str] | None = None) -> None:
    import tempfile

    parser = argparse.ArgumentParser(description="one CPU training run (see the docstring)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--data", default=str(data_path()))
    parser.add_argument("--user", action="store_true", help="behave like a user's script")
    parser.add_argument("--torch-first", action="store_true", help="import torch first")
    parser.add_argument("--small", action="store_true", help="3 feature maps, 8x76x76 input")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gp-train-bench-") as out:
        args.out = out
        _child(args)


if __name__ == "__main__":
    main()
