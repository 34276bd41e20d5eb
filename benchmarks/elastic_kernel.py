#!/usr/bin/env python
"""Time the elastic warp on the CREMI workload's geometry (40x4x4 nm, one core).

    python benchmarks/elastic_kernel.py [--repeats 20] [--peer PYTHON] [--json]

ElasticAugment([4,40,40], [0,2,2], [0, pi/2], prob_slip=0.05, prob_shift=0.05,
max_misalign=10, subsample=8) as in the CREMI example, with raw requested at 84x268x268
(float32, linear) and nearest-neighbour arrays at 56^3. Reports medians of:

- kernels (CPU seconds, one thread): drawing the transform, the source boxes, warping
  raw, warping 5 label arrays (uint64/uint8, sharing one coordinate computation);
- node: ElasticAugment alone in a pipeline over in-memory arrays (raw + 5 label arrays),
  seconds per batch, written against the 1.x API so that the same code runs on gunpowder
  1.5: with `--peer PYTHON` (e.g. ~/.cache/gunpowder-bench/peer-venv/bin/python) it is run
  there too and the ratio is printed;
- first call: the first warp in this process (numba loads its compile cache; the first
  run after a change compiles, once).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np

VOXEL_SIZE = (40, 4, 4)
RAW_SHAPE = (84, 268, 268)
OUT_SHAPE = (56, 56, 56)
N_LABELS = 5
ELASTIC = dict(
    control_point_spacing=[4, 40, 40],
    jitter_sigma=[0, 2, 2],
    rotation_interval=[0, math.pi / 2.0],
    prob_slip=0.05,
    prob_shift=0.05,
    max_misalign=10,
    subsample=8,
)


def median_time(fn, repeats: int, clock=time.perf_counter) -> float:
    times = []
    for i in range(repeats):
        t0 = clock()
        fn(i)
        times.append(clock() - t0)
    return statistics.median(times)


def cpu_time(fn, repeats: int) -> float:
    """Median CPU seconds of this process (the kernels use one thread): robust to a busy
    machine, unlike wall time."""
    return median_time(fn, repeats, time.process_time)


def time_node(repeats: int) -> dict:
    """Seconds per batch of ElasticAugment alone, through the public (1.x) API."""
    import gunpowder as gp

    elastic = getattr(gp, "ElasticAugment", None)
    if elastic is None:  # this project, before the lead exports it
        from gunpowder.nodes import ElasticAugment as elastic

    class MemorySource(gp.BatchProvider):
        """In-memory arrays through the 1.x provider API (works on both libraries)."""

        def __init__(self, arrays):
            self.arrays = arrays  # key -> (data, interpolatable)

        def setup(self):
            for key, (data, interpolatable) in self.arrays.items():
                spec = gp.ArraySpec(roi=roi, voxel_size=vs, interpolatable=interpolatable)
                spec.dtype = data.dtype
                self.provides(key, spec)

        def provide(self, request):
            batch = gp.Batch()
            for key, spec in request.array_specs.items():
                data = self.arrays[key][0][((spec.roi - roi.offset) / vs).to_slices()]
                spec = spec.copy()
                spec.voxel_size = vs
                spec.dtype = data.dtype
                spec.interpolatable = self.arrays[key][1]
                batch[key] = gp.Array(data.copy(), spec)
            return batch

    rng = np.random.default_rng(0)
    vs = gp.Coordinate(VOXEL_SIZE)
    total = gp.Coordinate((120, 420, 420))
    roi = gp.Roi((0, 0, 0), total * vs)
    raw = gp.ArrayKey("BENCH_RAW")
    labels = [gp.ArrayKey(f"BENCH_LABELS_{i}") for i in range(N_LABELS)]
    arrays = {raw: (rng.random(tuple(total)).astype(np.float32), True)}
    for i, key in enumerate(labels):
        dtype = np.uint64 if i % 2 == 0 else np.uint8
        arrays[key] = (rng.integers(0, 200, tuple(total)).astype(dtype), False)
    pipeline = MemorySource(arrays) + elastic(**ELASTIC)
    request = gp.BatchRequest()
    request.add(raw, gp.Coordinate(RAW_SHAPE) * vs)
    for key in labels:
        request.add(key, gp.Coordinate(OUT_SHAPE) * vs)
    # centre the request in the volume
    centre = total * vs / 2
    shifted = gp.BatchRequest()
    for key, spec in request.items():
        spec = spec.copy()
        spec.roi = spec.roi.shift(centre - request[raw].roi.center)
        shifted[key] = spec
    with gp.build(pipeline):
        t0 = time.perf_counter()
        pipeline.request_batch(shifted)
        first = time.perf_counter() - t0
        seconds = median_time(lambda i: pipeline.request_batch(shifted), repeats)
    return {
        "implementation": os.path.dirname(gp.__file__),
        "node_s_per_batch": round(seconds, 4),
        "node_first_batch_s": round(first, 3),
    }


def time_kernels(repeats: int) -> dict:
    """Medians of the kernel steps for one batch of the workload."""
    from gunpowder.transforms.elastic import (
        build_transform,
        draw_jitter,
        draw_misalignment,
        rotation_2d,
    )

    rng = np.random.default_rng(1)
    vs = np.array(VOXEL_SIZE)
    raw_offset = np.zeros(3)
    out_offset = (np.array(RAW_SHAPE) - np.array(OUT_SHAPE)) // 2 * vs

    def draw(rng):
        jitter = draw_jitter(
            rng, RAW_SHAPE, ELASTIC["control_point_spacing"], ELASTIC["jitter_sigma"]
        )
        affine = np.eye(3)
        affine[1:, 1:] = rotation_2d(rng.uniform(0, math.pi / 2))
        shifts = draw_misalignment(rng, RAW_SHAPE[0], 0.05, 0.05, 10)
        return build_transform(
            raw_offset,
            vs,
            RAW_SHAPE,
            affine=affine,
            jitter=jitter,
            section_shifts=shifts,
            subsample=ELASTIC["subsample"],
        )

    transforms = [draw(np.random.default_rng(i)) for i in range(repeats)]
    boxes = [
        (
            t.source_box(vs, raw_offset, RAW_SHAPE, True),
            t.source_box(vs, out_offset, OUT_SHAPE, False),
        )
        for t in transforms
    ]
    raws = [rng.random(tuple((e - b) // vs)).astype(np.float32) for (b, e), _ in boxes]
    labels = [
        [
            rng.integers(0, 200, tuple((e - b) // vs)).astype(np.uint64 if i % 2 == 0 else np.uint8)
            for i in range(N_LABELS)
        ]
        for _, (b, e) in boxes
    ]

    t0 = time.perf_counter()
    transforms[0].warp(raws[0], boxes[0][0][0], vs, raw_offset, RAW_SHAPE, True)
    first_raw = time.perf_counter() - t0
    t0 = time.perf_counter()
    transforms[0].warp(labels[0][0], boxes[0][1][0], vs, out_offset, OUT_SHAPE, False)
    first_labels = time.perf_counter() - t0

    def warp_labels(i):
        cache: dict = {}
        for data in labels[i]:
            transforms[i].warp(data, boxes[i][1][0], vs, out_offset, OUT_SHAPE, False, cache)

    result = {
        "draw_transform_s": cpu_time(lambda i: draw(np.random.default_rng(i)), repeats),
        "source_boxes_s": cpu_time(
            lambda i: (
                transforms[i].source_box(vs, raw_offset, RAW_SHAPE, True),
                transforms[i].source_box(vs, out_offset, OUT_SHAPE, False),
            ),
            repeats,
        ),
        "warp_raw_s": cpu_time(
            lambda i: transforms[i].warp(raws[i], boxes[i][0][0], vs, raw_offset, RAW_SHAPE, True),
            repeats,
        ),
        "warp_5_labels_s": cpu_time(warp_labels, repeats),
        "first_warp_raw_s": first_raw,
        "first_warp_labels_s": first_labels,
        "raw_source_voxels_median": int(statistics.median(r.size for r in raws)),
    }
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--peer", help="python of a gunpowder 1.x venv to time its ElasticAugment")
    ap.add_argument("--node-only", action="store_true", help="only the node timing (for --peer)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    if args.node_only:
        print(json.dumps(time_node(args.repeats)))
        return
    result = {"kernels": time_kernels(args.repeats), "ours": time_node(args.repeats)}
    if args.peer:
        out = subprocess.run(
            [args.peer, os.path.abspath(__file__), "--node-only", "--repeats", str(args.repeats)],
            capture_output=True,
            text=True,
            check=True,
            cwd="/",
        )
        result["peer"] = json.loads(out.stdout.strip().splitlines()[-1])
        result["node_ratio_peer_over_ours"] = round(
            result["peer"]["node_s_per_batch"] / result["ours"]["node_s_per_batch"], 2
        )
    if args.json:
        print(json.dumps(result))
        return
    for section, values in result.items():
        if isinstance(values, dict):
            print(section)
            for k, v in values.items():
                print(f"  {k:28s} {v}")
        else:
            print(f"{section:30s} {values}")


if __name__ == "__main__":
    sys.exit(main())
