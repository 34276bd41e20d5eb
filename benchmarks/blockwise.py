#!/usr/bin/env python
"""Blocks per second of blockwise prediction, and its overhead over calling the model directly.

    python benchmarks/blockwise.py [--shape 96 256 256] [--block 32 64 64] [--workers 2] [--json]

A small valid-convolution 3D CNN (3 layers, context 3 voxels a side) predicts on a uint8 zarr
volume. Timed on the same blocks:
  direct     read each block's input from zarr, run the model (torch, no_grad), nothing else;
  +write     the same, plus writing each output block into a zarr array;
  blockwise  `run_blockwise` in this process (workers=0): ZarrSource + Predict, done markers;
  dask       `run_blockwise` on a LocalCluster of `--workers` processes (cluster start-up
             excluded; pipeline set-up once per worker included).
torch runs on one thread everywhere, so a block costs the same compute in each row.
Overhead = time / direct time - 1; for Dask, per worker: workers * time / direct time - 1.
Each row is the best of `--repeats` runs (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from functools import partial

import numpy as np
import torch
import zarr

from gunpowder.blockwise import plan_for, run_blockwise
from gunpowder.geometry import Coordinate
from gunpowder.io_metadata import write_spatial_metadata
from gunpowder.predict import PREDICTION, block_request, predict_pipeline

CONTEXT = 3


def make_net() -> torch.nn.Module:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3), torch.nn.ReLU(),
        torch.nn.Conv3d(4, 4, 3), torch.nn.ReLU(),
        torch.nn.Conv3d(4, 3, 3), torch.nn.Sigmoid(),
    )  # fmt: skip


def make_input(path: str, shape: tuple[int, ...]) -> None:
    z = zarr.open_array(path, path="raw", mode="w", shape=shape, chunks=(32, 64, 64),
                        dtype=np.uint8, zarr_format=2)  # fmt: skip
    z[...] = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    write_spatial_metadata(z.attrs, (8, 8, 8), (0, 0, 0))


def best(fn, repeats: int) -> tuple[float, float]:
    """The smallest wall-clock and CPU (this process) seconds of `repeats` calls of fn()."""
    walls, cpus = [], []
    for i in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn(i)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def direct(src: str, plan, net, write_to: str | None) -> None:
    """The model on every block's input, read straight from zarr (the baseline)."""
    raw = zarr.open_array(src, path="raw", mode="r")
    out = None
    if write_to is not None:
        shape = (3,) + tuple(plan.total_roi.shape / plan.voxel_size)
        out = zarr.open_array(write_to, mode="w", shape=shape,
                              chunks=(3,) + tuple(plan.chunk_shape), dtype=np.float32,
                              zarr_format=2)  # fmt: skip
    vs = plan.voxel_size
    with torch.no_grad():
        for block in plan.blocks():
            request = plan.request(block)
            x = raw[(request[next(k for k in request if k != PREDICTION)].roi / vs).to_slices()]
            y = net(torch.as_tensor(x[None, None].astype(np.float32) / 255.0))[0].numpy()
            if out is not None:
                rel = (block.write_roi - request[PREDICTION].roi.offset) / vs
                dst = (block.write_roi - plan.total_roi.offset) / vs
                out[(slice(None),) + dst.to_slices()] = y[(slice(None),) + rel.to_slices()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[64, 256, 256])
    ap.add_argument("--block", type=int, nargs=3, default=[32, 64, 64], help="output voxels")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="gp-bench-blockwise-")
    try:
        src = os.path.join(tmp, "in.zarr")
        make_input(src, tuple(args.shape))
        block_in = [b + 2 * CONTEXT for b in args.block]
        reference = block_request(block_in, args.block, Coordinate(8, 8, 8))
        pipeline = partial(predict_pipeline, make_net, f"{src}/raw", None, "auto", "cpu")
        plan = plan_for(pipeline, reference, {PREDICTION: "pred"}, os.path.join(tmp, "x.zarr"))
        n = plan.num_blocks
        net = make_net().eval()
        direct(src, plan, net, None)  # warm up (allocator, kernels)
        t_direct = best(lambda i: direct(src, plan, net, None), args.repeats)
        t_write = best(
            lambda i: direct(src, plan, net, os.path.join(tmp, f"direct{i}.zarr")), args.repeats
        )

        def run(name: str, **kwargs) -> None:
            out = os.path.join(tmp, f"{name}.zarr")
            summary = run_blockwise(pipeline, reference, {PREDICTION: "pred"}, out,
                                    progress=False, overwrite=True, **kwargs)  # fmt: skip
            assert summary.ok, str(summary)

        t_local = best(lambda i: run("local", workers=0), args.repeats)

        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:  # fmt: skip
            t_dask = best(lambda i: run("dask", client=client), args.repeats)
        same = np.array_equal(zarr.open_array(os.path.join(tmp, "local.zarr"), path="pred")[...],
                              zarr.open_array(os.path.join(tmp, "dask.zarr"), path="pred")[...])  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = {
        "direct (model only)": t_direct,
        "direct + zarr write": t_write,
        "blockwise, in-process": t_local,
        f"blockwise, Dask {args.workers} workers": t_dask,
    }
    result = {
        "volume_voxels": args.shape,
        "block_output_voxels": args.block,
        "blocks": n,
        "torch_threads": 1,
        "outputs_identical_local_vs_dask": bool(same),
        "rows": {
            k: {
                "seconds": wall,
                "blocks_per_s": n / wall,
                "overhead_vs_direct": wall / t_direct[0] - 1,
                "cpu_seconds_here": cpu,
                "cpu_overhead_vs_direct": cpu / t_direct[1] - 1,
            }
            for k, (wall, cpu) in rows.items()
        },
        "dask_overhead_per_worker": args.workers * t_dask[0] / t_direct[0] - 1,
        "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"volume {args.shape} voxels, blocks of {args.block} output voxels: {n} blocks")
    for k, r in result["rows"].items():
        cpu = (
            f"  cpu here {r['cpu_seconds_here']:6.2f} s ({100 * r['cpu_overhead_vs_direct']:+6.1f}%)"
            if "Dask" not in k
            else ""
        )
        print(f"  {k:32s} {r['seconds']:7.2f} s  {r['blocks_per_s']:7.2f} blocks/s  "
              f"overhead {100 * r['overhead_vs_direct']:+6.1f}%{cpu}")  # fmt: skip
    print(f"  Dask overhead per worker (workers x time / direct - 1): "
          f"{100 * result['dask_overhead_per_worker']:+.1f}%")  # fmt: skip
    print(f"  outputs identical (in-process vs Dask): {same}")
    print(f"  load average during the run: {result['load_average']}")


if __name__ == "__main__":
    main()
