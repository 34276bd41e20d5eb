"""A short CPU training loop fed by PreCache, with and without `configure_main_threads`
(`python -m benchmarks.threads`).

Each configuration runs in a fresh process (OpenMP reads `OMP_WAIT_POLICY` when it starts):
"default" leaves torch's intra-op threads at one per core and OpenMP spinning; "configured"
calls `gunpowder.threads.configure_main_threads(workers=W)` before the first torch
operation. Reports seconds per iteration (median after warm-up) and the time the loop waited
for data.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, os, statistics, sys, time
configured, workers, iterations = sys.argv[1] == "1", int(sys.argv[2]), int(sys.argv[3])
if not configured:  # torch first: importing gunpowder would set OMP_WAIT_POLICY=PASSIVE
    import torch
import numpy as np
import gunpowder as gp
from gunpowder.threads import configure_main_threads
if configured:
    configure_main_threads(workers=workers)
import torch
RAW = gp.ArrayKey("RAW")
data = np.random.default_rng(0).random((64, 160, 160), dtype=np.float32)
source = gp.ArraySource(RAW, gp.Array(data, gp.ArraySpec(roi=gp.Roi((0, 0, 0), data.shape))))
p = source + gp.RandomLocation() + gp.NoiseAugment(RAW) + gp.SimpleAugment(transpose_only=[1, 2])
p += gp.PreCache(cache_size=2 * workers, num_workers=workers)
model = torch.nn.Sequential(
    torch.nn.Conv3d(1, 12, 3), torch.nn.ReLU(), torch.nn.Conv3d(12, 12, 3), torch.nn.ReLU(),
    torch.nn.Conv3d(12, 1, 3))
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
request = gp.BatchRequest()
request.add(RAW, (24, 64, 64))
steps, waits = [], []
with gp.build(p):
    for i in range(iterations + 3):
        t0 = time.perf_counter()
        batch = p.request_batch(request)
        t1 = time.perf_counter()
        x = torch.from_numpy(np.ascontiguousarray(batch[RAW].data))[None, None]
        loss = model(x).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        t2 = time.perf_counter()
        if i >= 3:
            steps.append(t2 - t0); waits.append(t1 - t0)
print(json.dumps({"s_per_iteration": statistics.median(steps),
                  "wait_s": statistics.median(waits), "torch_threads": torch.get_num_threads(),
                  "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}))
"""


def run(configured: bool, workers: int, iterations: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, "1" if configured else "0", str(workers), str(iterations)],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    for r in range(args.rounds):
        for configured in (False, True) if r % 2 == 0 else (True, False):
            res = run(configured, args.workers, args.iterations)
            name = "configured" if configured else "default"
            print(f"round {r} {name:>10}: {json.dumps(res)}")


if __name__ == "__main__":
    main()
