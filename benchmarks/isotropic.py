"""An isotropic FIB-SEM-like training workload (`python -m benchmarks.isotropic`).

8 nm voxels in every axis; ZarrSource (raw uint8, labels uint64, mask uint8) -> Normalize ->
Pad(raw, None) -> RandomLocation(min_masked=0.5, mask) -> DeformAugment (full 3D rotations,
or none with `--no-rotate`) -> SimpleAugment (every mirror and transpose) -> NoiseAugment ->
AddAffinities (long-range neighbourhood). Raw 84x268x268 voxels, labels/affinities/mask
56^3 (the mask decides where labels are cut; raw may reach beyond the data: Pad).

The data (a 192x512x512 volume: smooth noise for raw, a Voronoi-like labelling, a blob mask)
is generated into a temporary directory and deleted afterwards (`--keep DIR` keeps it).
Reports the first batch (from before `build`) and the median per-batch time after warm-up,
with rotation and without. Written against the 1.x API (gunpowder 1.5 could run it
unchanged, with its DeformAugment).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = (192, 512, 512)
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
    request = gp.BatchRequest()
    request.add(raw, gp.Coordinate(84, 268, 268) * VS)
    out = gp.Coordinate(56, 56, 56) * VS
    context = (gp.Coordinate(84, 268, 268) * VS - out) / 2
    request[labels] = gp.ArraySpec(roi=gp.Roi(context, out))
    request[affs] = gp.ArraySpec(roi=gp.Roi(context, out))
    request[mask] = gp.ArraySpec(roi=gp.Roi(context, out))  # locations by the labelled part
    return gp, p, request


def run(path: Path, rotate: bool, iterations: int, warmup: int) -> dict:
    t0 = time.perf_counter()
    gp, p, request = build_pipeline(path, rotate)
    times = []
    with gp.build(p):
        for i in range(warmup + iterations):
            t = time.perf_counter()
            p.request_batch(request.with_seed(i))
            times.append(time.perf_counter() - t)
            if i == 0:
                first = time.perf_counter() - t0
    steady = times[warmup:]
    return {"first_s": first, "median_s": statistics.median(steady), "min_s": min(steady)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", help="keep the generated data in this directory")
    args = parser.parse_args(argv)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gp-iso-", dir="/tmp"))
    path = base / "isotropic.zarr"
    try:
        if not (path / "raw").exists():
            t = time.perf_counter()
            make_data(path)
            print(f"generated {path} in {time.perf_counter() - t:.1f} s")
        results: dict[bool, list[dict]] = {True: [], False: []}
        for r in range(args.rounds):
            for rotate in (True, False) if r % 2 == 0 else (False, True):
                res = run(path, rotate, args.iterations, args.warmup)
                results[rotate].append(res)
                print(
                    f"round {r} rotate={rotate!s:>5}: first batch {res['first_s']:.2f} s, "
                    f"median {res['median_s'] * 1e3:.0f} ms/batch (min {res['min_s'] * 1e3:.0f})"
                )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    med = {k: statistics.median(x["median_s"] for x in v) for k, v in results.items()}
    print(
        f"median ms/batch: rotated {med[True] * 1e3:.0f}, unrotated {med[False] * 1e3:.0f} "
        f"(rotated/unrotated {med[True] / med[False]:.2f})"
    )


if __name__ == "__main__":
    main()
