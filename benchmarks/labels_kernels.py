#!/usr/bin/env python
"""Time the label kernels on the training workload's sizes (56^3 uint64 labels, 40x4x4 nm).

    python benchmarks/labels_kernels.py [--repeats 50] [--labels 150] [--json]

Times, per kernel, the median of `--repeats` runs on neuron-like labels (a Voronoi
tessellation in world units with `--labels` cells, a mask with 10% unknown slabs):
GrowBoundary(only_xy, mask) on the 57^3 context, AddAffinities (nearest neighbour, with
mask), BalanceLabels on the 3x56^3 affinities, and the three nodes chained in a pipeline.
For reference it also times straightforward per-label/per-channel versions of the first
three (one binary erosion per label as 1.x describes it, masks via np.pad and loops).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

import gunpowder as gp
from gunpowder.nodes import AddAffinities, BalanceLabels, GrowBoundary
from gunpowder.pipeline import Source
from gunpowder.transforms import labels as K

VOXEL_SIZE = np.array([40, 4, 4])
OUT = 56
NEAREST = [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]


def neuron_like(shape, n_labels, rng) -> np.ndarray:
    """Voronoi cells (in world units) with uint64 ids, plus 2% background."""
    seeds = rng.random((n_labels, 3)) * np.array(shape) * VOXEL_SIZE
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    _, nearest = cKDTree(seeds).query(grid.reshape(-1, 3) * VOXEL_SIZE)
    ids = rng.integers(1, 2**40, n_labels)
    labels = ids[nearest].reshape(shape).astype(np.uint64)
    labels[rng.random(shape) < 0.02] = 0
    return labels


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# straightforward versions, for scale -------------------------------------------------------


def grow_per_label(labels, mask, steps=1):
    out = labels.copy()
    for z in range(labels.shape[0]):
        masked = mask[z] == 0
        keep = np.zeros(labels.shape[1:], bool)
        for label in np.unique(labels[z]):
            if label == 0:
                continue
            keep |= ndimage.binary_erosion(
                (labels[z] == label) | masked, iterations=steps, border_value=1
            )
        out[z][~keep & ~masked] = 0
    return out


def affinities_loop(labels, mask):
    out_shape = tuple(s - 1 for s in labels.shape)
    affs = np.zeros((3,) + out_shape, np.uint8)
    amask = np.zeros((3,) + out_shape, np.uint8)
    here = labels[1:, 1:, 1:]
    mhere = mask[1:, 1:, 1:]
    for c, offset in enumerate(NEAREST):
        there = labels[tuple(slice(1 + o, s + o) for o, s in zip(offset, labels.shape))]
        mthere = mask[tuple(slice(1 + o, s + o) for o, s in zip(offset, labels.shape))]
        affs[c] = (here == there) & (here > 0)
        amask[c] = (mhere > 0) & (mthere > 0)
    return affs, amask


def balance_loop(affs, mask, num_classes=2, clipmin=0.05, clipmax=0.95):
    scale = mask.astype(np.float32)
    masked_in = scale.sum()
    classes, counts = np.unique(affs[np.nonzero(scale)], return_counts=True)
    fracs = np.clip(counts / masked_in, clipmin, clipmax)
    w = np.zeros(num_classes)
    w[classes] = 1.0 / num_classes / fracs
    return scale * np.take(w, affs)


class Arrays(Source):
    def __init__(self, arrays):
        self.arrays = arrays

    def setup(self, upstream_spec=None):
        return gp.ProviderSpec({k: a.spec for k, a in self.arrays.items()})

    def provide(self, request, rng):
        batch = gp.Batch()
        for key, spec in request.items():
            batch[key] = self.arrays[key].crop(spec.roi, copy=False)
        return batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--labels", type=int, default=150)
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args()
    rng = np.random.default_rng(0)

    # GrowBoundary sees the 56^3 output plus AddAffinities' context (1 voxel before), plus
    # its own 1 voxel of xy context on each side
    shape = (OUT + 1, OUT + 3, OUT + 3)
    labels = neuron_like(shape, args.labels, rng)
    mask = np.ones(shape, np.uint8)
    mask[:3] = 0  # an unknown slab, as in CREMI's padded volumes
    grown = K.grow_boundary(labels, 1, 0, mask, axes=(1, 2))
    inner = grown[:, 1:-1, 1:-1]
    inner_mask = mask[:, 1:-1, 1:-1]
    affs, amask = K.compute_affinities(inner, NEAREST, inner_mask)
    assert affs.shape == (3, OUT, OUT, OUT)

    results = {
        "grow_boundary_only_xy_mask": median_time(
            lambda: K.grow_boundary(labels, 1, 0, mask, axes=(1, 2)), args.repeats
        ),
        "add_affinities_with_mask": median_time(
            lambda: K.compute_affinities(inner, NEAREST, inner_mask), args.repeats
        ),
        "balance_labels": median_time(lambda: K.balance_weights(affs, [amask]), args.repeats),
    }
    reference = {
        "grow_boundary_only_xy_mask": median_time(
            lambda: grow_per_label(labels, mask), max(3, args.repeats // 10)
        ),
        "add_affinities_with_mask": median_time(
            lambda: affinities_loop(inner, inner_mask), args.repeats
        ),
        "balance_labels": median_time(lambda: balance_loop(affs, amask), args.repeats),
    }
    # the same results as the straightforward versions
    assert np.array_equal(grow_per_label(labels, mask), grown)
    ref_affs, ref_mask = affinities_loop(inner, inner_mask)
    assert np.array_equal(ref_affs, affs) and np.array_equal(ref_mask, amask)
    np.testing.assert_allclose(balance_loop(affs, amask), K.balance_weights(affs, [amask]))

    # the three nodes in a pipeline, from an in-memory source
    vs = gp.Coordinate(VOXEL_SIZE)
    big = neuron_like((OUT + 8, OUT + 8, OUT + 8), args.labels, rng)
    roi = gp.Roi((0, 0, 0), gp.Coordinate(big.shape) * vs)
    keys = [gp.ArrayKey(n) for n in ("B_LABELS", "B_MASK", "B_AFFS", "B_AFFS_MASK", "B_SCALE")]
    lab, msk, aff, amk, scl = keys
    spec = gp.ArraySpec(roi=roi, voxel_size=vs, interpolatable=False)
    source = Arrays(
        {
            lab: gp.Array(big, spec.replace(dtype=np.uint64)),
            msk: gp.Array(np.ones(big.shape, np.uint8), spec.replace(dtype=np.uint8)),
        }
    )
    pipeline = (
        source
        + GrowBoundary(lab, msk, steps=1, only_xy=True)
        + AddAffinities(NEAREST, lab, aff, labels_mask=msk, affinities_mask=amk)
        + BalanceLabels(aff, scl, amk)
    )
    out_roi = gp.Roi(vs * 4, vs * OUT)
    request = gp.BatchRequest({k: gp.ArraySpec(roi=out_roi) for k in keys}, random_seed=0)
    with gp.build(pipeline):
        results["three_nodes_in_pipeline"] = median_time(
            lambda: pipeline.request_batch(request), args.repeats
        )

    if args.json:
        print(
            json.dumps(
                {
                    "ms": {k: round(v * 1e3, 3) for k, v in results.items()},
                    "reference_ms": {k: round(v * 1e3, 3) for k, v in reference.items()},
                    "labels": args.labels,
                    "repeats": args.repeats,
                }
            )
        )
        return
    print(f"{'kernel':32s} {'ms':>9s} {'straightforward ms':>20s}")
    for key, value in results.items():
        ref = reference.get(key)
        ref_s = f"{ref * 1e3:20.2f}" if ref is not None else f"{'':20s}"
        print(f"{key:32s} {value * 1e3:9.2f} {ref_s}")


if __name__ == "__main__":
    main()
