#!/usr/bin/env python
"""The CREMI-style training-data workload, written against gunpowder's public 1.x API.

The same file runs on this project's gunpowder and on gunpowder 1.5 from PyPI, so the two
can be compared in one run (see compare.sh). Pipeline, as in the CREMI example:

    Hdf5Source(raw, labels, mask) -> Normalize(raw) -> RandomLocation
    -> ElasticAugment([4,40,40], [0,2,2], [0, pi/2], prob_slip=0.05, prob_shift=0.05,
                      max_misalign=10, subsample=8)            (dropped by --no-elastic)
    -> SimpleAugment(transpose_only=[1, 2])
    -> IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1, z_section_wise=True)
    -> GrowBoundary(labels, mask, steps=1, only_xy=True)
    -> AddAffinities(nearest-neighbour, labels_mask=mask, affinities_mask=affs_mask)
    -> BalanceLabels(affs, scale, affs_mask)
    -> [PreCache(cache_size=2W, num_workers=W)]                (--workers W > 0)

Request: raw (84, 268, 268) voxels, everything else (56, 56, 56) voxels, at 40x4x4 nm.
Prints one JSON line: batches/s (median over steady-state batches), time to first batch,
peak RSS of this process and of its largest child.
"""

import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np
from make_data import default_data_path  # noqa: E402  (this folder)

import gunpowder as gp  # noqa: E402  (whichever gunpowder this python has)

VOXEL_SIZE = gp.Coordinate((40, 4, 4))
INPUT_SHAPE = gp.Coordinate((84, 268, 268))
OUTPUT_SHAPE = gp.Coordinate((56, 56, 56))


def build_pipeline(data, elastic, workers):
    raw, labels, mask = gp.ArrayKey("RAW"), gp.ArrayKey("GT_LABELS"), gp.ArrayKey("GT_MASK")
    affs, affs_mask = gp.ArrayKey("GT_AFFINITIES"), gp.ArrayKey("GT_AFFINITIES_MASK")
    scale = gp.ArrayKey("GT_AFFINITIES_SCALE")

    pipeline = gp.Hdf5Source(
        data,
        datasets={
            raw: "volumes/raw",
            labels: "volumes/labels/neuron_ids",
            mask: "volumes/labels/mask",
        },
        array_specs={
            raw: gp.ArraySpec(interpolatable=True),
            labels: gp.ArraySpec(interpolatable=False),
            mask: gp.ArraySpec(interpolatable=False),
        },
    )
    pipeline += gp.Normalize(raw)
    pipeline += gp.RandomLocation()
    if elastic:
        pipeline += gp.ElasticAugment(
            control_point_spacing=[4, 40, 40],
            jitter_sigma=[0, 2, 2],
            rotation_interval=[0, math.pi / 2.0],
            prob_slip=0.05,
            prob_shift=0.05,
            max_misalign=10,
            subsample=8,
        )
    pipeline += gp.SimpleAugment(transpose_only=[1, 2])
    pipeline += gp.IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1, z_section_wise=True)
    pipeline += gp.GrowBoundary(labels, mask, steps=1, only_xy=True)
    pipeline += gp.AddAffinities(
        affinity_neighborhood=[[-1, 0, 0], [0, -1, 0], [0, 0, -1]],
        labels=labels,
        affinities=affs,
        labels_mask=mask,
        affinities_mask=affs_mask,
    )
    pipeline += gp.BalanceLabels(affs, scale, affs_mask)
    if workers > 0:
        pipeline += gp.PreCache(cache_size=2 * workers, num_workers=workers)

    request = gp.BatchRequest()
    request.add(raw, INPUT_SHAPE * VOXEL_SIZE)
    for key in (labels, mask, affs, affs_mask, scale):
        request.add(key, OUTPUT_SHAPE * VOXEL_SIZE)
    return pipeline, request, (raw, affs, scale)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=default_data_path())
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--no-elastic", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(args.data):
        sys.exit(f"{args.data} is missing: run make_data.py first")

    pipeline, request, (raw, affs, scale) = build_pipeline(
        args.data, not args.no_elastic, args.workers
    )
    times = []
    t_start = time.perf_counter()
    with gp.build(pipeline):
        for i in range(args.iterations):
            t0 = time.perf_counter()
            batch = pipeline.request_batch(request)
            t1 = time.perf_counter()
            times.append(t1 - t0)
            if i == 0:
                first = t1 - t_start
                shapes = {
                    "raw": list(batch[raw].data.shape),
                    "affs": list(batch[affs].data.shape),
                    "scale": list(batch[scale].data.shape),
                }
                assert shapes["raw"][-3:] == list(INPUT_SHAPE), shapes
                assert shapes["affs"] == [3] + list(OUTPUT_SHAPE), shapes
                assert 0.0 <= float(batch[raw].data.mean()) <= 1.0
    steady = np.array(times[args.warmup :] or times)
    median = float(np.median(steady))
    kib = 1024.0
    print(
        json.dumps(
            {
                "implementation": getattr(gp, "__file__", "?"),
                "workers": args.workers,
                "elastic": not args.no_elastic,
                "iterations": args.iterations,
                "batches_per_s": round(1.0 / median, 4),
                "median_s_per_batch": round(median, 4),
                "first_batch_s": round(first, 3),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib),
                "peak_child_rss_mib": round(
                    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib
                ),
                "shapes": shapes,
            }
        )
    )


if __name__ == "__main__":
    main()
