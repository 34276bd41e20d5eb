"""Time to the first batch and peak memory with a mask-constrained RandomLocation over a 2 GB
mask (`python -m benchmarks.masked_first_batch`).

Writes an uncompressed zarr mask of 1000x1400x1400 uint8 (about 2 GB on disk, a blob that
covers about half of the volume) to a temporary directory, runs each measurement in a fresh
subprocess (so the page cache of the generator and imports of earlier runs do not count
towards its peak memory), and deletes the data afterwards. `--eager` also measures the
summary read over the whole mask up front (what RandomLocation did before).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPE = (1000, 1400, 1400)
VOXEL_SIZE = (8, 8, 8)


def make_mask(path: Path, shape: tuple[int, int, int] = SHAPE) -> None:
    """An ellipsoid blob (about half the volume masked in), written slab by slab."""
    import numpy as np
    import zarr

    group = zarr.open_group(str(path.parent), mode="a")
    z = group.create_array(
        path.name, shape=shape, chunks=(64, 128, 128), dtype=np.uint8, compressors=None
    )
    z.attrs["resolution"] = VOXEL_SIZE
    z.attrs["offset"] = (0, 0, 0)
    c = np.array(shape) / 2
    r = np.array(shape) * 0.55
    yy, xx = np.ogrid[: shape[1], : shape[2]]
    plane = ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2
    slab = 64
    for z0 in range(0, shape[0], slab):
        zs = np.arange(z0, min(z0 + slab, shape[0]))[:, None, None]
        z[z0 : z0 + len(zs)] = (((zs - c[0]) / r[0]) ** 2 + plane < 1).astype(np.uint8)


CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import gunpowder as gp
t_import = time.perf_counter() - t0
path, eager, n = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
mask = gp.ArrayKey("MASK")
node = gp.RandomLocation(min_masked=0.5, mask=mask)
if eager:
    node.mask_eager_voxels = 2**62
pipeline = gp.ZarrSource(path, {mask: "mask"}) + node
request = gp.BatchRequest()
request.add(mask, gp.Coordinate(84, 268, 268) * 8)
t1 = time.perf_counter()
with gp.build(pipeline):
    times = []
    for i in range(n):
        t = time.perf_counter()
        pipeline.request_batch(request.with_seed(i))
        times.append(time.perf_counter() - t)
        if i == 0:
            build_to_first = time.perf_counter() - t1
    summary = node._summary
    read = getattr(summary, "voxels_read", None)
print(json.dumps({
    "import_s": t_import,
    "first_batch_s": times[0],
    "build_to_first_s": build_to_first,
    "next_batches_median_s": sorted(times[1:])[len(times[1:]) // 2] if n > 1 else None,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "mask_voxels_read": read,
    "summary": type(summary).__name__,
}))
"""


def measure(path: Path, eager: bool, batches: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), "1" if eager else "0", str(batches)],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"the measurement failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=10, help="batches per run")
    parser.add_argument("--eager", action="store_true", help="also time the full summary")
    parser.add_argument("--keep", help="keep the mask in this directory (not deleted)")
    args = parser.parse_args(argv)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gp-mask-", dir="/tmp"))
    path = base / "mask.zarr"
    try:
        if not (path / "mask").exists():
            t = time.perf_counter()
            make_mask(path / "mask")
            size = sum(f.stat().st_size for f in (path / "mask").rglob("*") if f.is_file())
            print(f"wrote {path} ({size / 2**30:.2f} GiB) in {time.perf_counter() - t:.1f} s")
        results = []
        for r in range(args.rounds):
            for eager in (False, True) if args.eager else (False,):
                res = measure(path, eager, args.batches) | {"eager": eager, "round": r}
                print(json.dumps(res))
                results.append(res)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    for eager in (False, True) if args.eager else (False,):
        rows = [x for x in results if x["eager"] == eager]
        firsts = sorted(x["first_batch_s"] for x in rows)
        peaks = sorted(x["peak_rss_mib"] for x in rows)
        print(
            f"{'eager' if eager else 'lazy '}: first batch median {firsts[len(firsts) // 2]:.3f} s "
            f"(min {firsts[0]:.3f}, max {firsts[-1]:.3f}); peak RSS max {peaks[-1]:.0f} MiB"
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
