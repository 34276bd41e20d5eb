#!/usr/bin/env python
"""Write a deterministic, CREMI-sample-like HDF5 volume for benchmarking.

Layout (mirrors a CREMI training sample):

    volumes/raw                 uint8   (125, 1250, 1250)
    volumes/labels/neuron_ids   uint64  (125, 1250, 1250)
    volumes/labels/mask         uint8   (125, 1250, 1250)

Every dataset carries attrs resolution=(40., 4., 4.) [nm, zyx] and
offset=(0., 0., 0.) [nm], as float64 arrays like the CREMI files.

Labels: exact 3D Voronoi partition (Euclidean metric in nm, so anisotropy is
respected) of one jittered seed per cell of a (4, 22, 22) grid = 1936
segments, i.e. neurite-like cells ~1250 nm tall and ~230 nm wide. Segment ids
are sparse random uint64 values (not 1..N). Computed with numpy only: the
volume is processed in blocks, and for every block only seeds that can
possibly be nearest (min-distance-to-block <= min over seeds of
max-distance-to-block) are tested, so the result is the exact Voronoi
partition.

Raw: per-segment cytoplasm intensity + dark membranes (label changes within
the xy plane, ~3 px thick) + 3x3 xy box blur + Gaussian noise + per-section
brightness jitter, clipped to uint8. So raw is correlated with labels.

Mask: 1 everywhere except a 2-section band at top/bottom and a 50 px band on
the xy border (0 there), so masked code paths get exercised.

Only numpy and h5py are used. Deterministic for a given --seed.
"""

import argparse
import os
import time

import h5py
import numpy as np

SHAPE = (125, 1250, 1250)
RESOLUTION = np.array([40.0, 4.0, 4.0])
GRID = (4, 22, 22)  # seed grid -> 1936 segments
SLAB_Z = 5  # sections per processing slab
BLOCK_XY = 125  # xy block edge for the nearest-seed search


def make_seeds(rng):
    extent = np.array(SHAPE) * RESOLUTION  # nm
    cell = extent / np.array(GRID)
    idx = np.stack(np.meshgrid(*[np.arange(g) for g in GRID], indexing="ij"), -1)
    idx = idx.reshape(-1, 3).astype(np.float64)
    seeds = (idx + rng.uniform(0.0, 1.0, size=idx.shape)) * cell  # nm
    n = len(seeds)
    # sparse, realistic-looking uint64 ids (CREMI ids are not contiguous)
    ids = rng.choice(2_000_000, size=n, replace=False).astype(np.uint64) + 1
    return seeds, ids


def voronoi_slab(z0, z1, seeds, ids):
    """Exact nearest-seed labels for sections z0:z1 (all of y, x)."""
    ny, nx = SHAPE[1], SHAPE[2]
    out = np.empty((z1 - z0, ny, nx), dtype=np.uint64)
    zc = (np.arange(z0, z1) + 0.5) * RESOLUTION[0]  # voxel centres in nm
    for y0 in range(0, ny, BLOCK_XY):
        y1 = min(y0 + BLOCK_XY, ny)
        yc = (np.arange(y0, y1) + 0.5) * RESOLUTION[1]
        for x0 in range(0, nx, BLOCK_XY):
            x1 = min(x0 + BLOCK_XY, nx)
            xc = (np.arange(x0, x1) + 0.5) * RESOLUTION[2]
            lo = np.array([zc[0], yc[0], xc[0]])
            hi = np.array([zc[-1], yc[-1], xc[-1]])
            # distance from each seed to the block's box (min) and far corner (max)
            dmin = np.maximum(np.maximum(lo - seeds, seeds - hi), 0.0)
            dmin = (dmin**2).sum(1)
            dmax = np.maximum(np.abs(seeds - lo), np.abs(seeds - hi))
            dmax = (dmax**2).sum(1)
            cand = np.nonzero(dmin <= dmax.min())[0]
            s = seeds[cand].astype(np.float32)
            dz = (zc[None, :].astype(np.float32) - s[:, 0:1]) ** 2
            dy = (yc[None, :].astype(np.float32) - s[:, 1:2]) ** 2
            dx = (xc[None, :].astype(np.float32) - s[:, 2:3]) ** 2
            d2 = (
                dz[:, :, None, None] + dy[:, None, :, None] + dx[:, None, None, :]
            )  # (k, bz, by, bx)
            nearest = np.argmin(d2, axis=0)
            out[:, y0:y1, x0:x1] = ids[cand][nearest]
    return out


def raw_slab(labels, seg_intensity_lut, rng, z0):
    """Synthetic EM-like raw for a slab of labels (zyx)."""
    # per-segment cytoplasm intensity via lookup on the sorted id table
    ids_sorted, intens_sorted = seg_intensity_lut
    base = intens_sorted[np.searchsorted(ids_sorted, labels)].astype(np.float32)

    # membranes: label change within +-1/+-2 px in x or y -> ~3-4 px thick
    boundary = np.zeros(labels.shape, dtype=bool)
    for d in (1, 2):
        bx = labels[:, :, d:] != labels[:, :, :-d]
        boundary[:, :, d:] |= bx
        boundary[:, :, :-d] |= bx
        by = labels[:, d:, :] != labels[:, :-d, :]
        boundary[:, d:, :] |= by
        boundary[:, :-d, :] |= by
    img = np.where(boundary, np.float32(55.0), base)

    # cheap 3x3 box blur in xy (edge-padded)
    p = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="edge")
    acc = np.zeros_like(img)
    for dy in range(3):
        for dx in range(3):
            acc += p[:, dy : dy + img.shape[1], dx : dx + img.shape[2]]
    img = acc / 9.0

    # per-section brightness jitter + pixel noise
    section_shift = rng.normal(0.0, 6.0, size=(img.shape[0], 1, 1)).astype(np.float32)
    img += section_shift
    img += rng.standard_normal(size=img.shape, dtype=np.float32) * np.float32(14.0)
    return np.clip(img, 0, 255).astype(np.uint8)


def mask_slab(z0, z1):
    m = np.ones((z1 - z0, SHAPE[1], SHAPE[2]), dtype=np.uint8)
    for i, z in enumerate(range(z0, z1)):
        if z < 2 or z >= SHAPE[0] - 2:
            m[i] = 0
    b = 50
    m[:, :b, :] = 0
    m[:, -b:, :] = 0
    m[:, :, :b] = 0
    m[:, :, -b:] = 0
    return m


def default_data_path():
    """$GP_BENCH_DATA, else ~/.cache/gunpowder-bench/cremi_like.hdf (outside any repo)."""
    return os.environ.get(
        "GP_BENCH_DATA",
        os.path.join(os.path.expanduser("~"), ".cache", "gunpowder-bench", "cremi_like.hdf"),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=default_data_path())
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument(
        "--compression",
        default=None,
        choices=[None, "gzip", "lzf"],
        help="optional h5py compression (default: none, contiguous layout)",
    )
    args = ap.parse_args()

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    seeds, ids = make_seeds(rng)
    intens = rng.uniform(150.0, 215.0, size=len(ids)).astype(np.float32)
    order = np.argsort(ids)
    lut = (ids[order], intens[order])

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    kw = {}
    if args.compression:
        kw = dict(compression=args.compression, chunks=(8, 128, 128))
    with h5py.File(tmp, "w") as f:
        dsets = {
            "volumes/raw": f.create_dataset("volumes/raw", SHAPE, np.uint8, **kw),
            "volumes/labels/neuron_ids": f.create_dataset(
                "volumes/labels/neuron_ids", SHAPE, np.uint64, **kw
            ),
            "volumes/labels/mask": f.create_dataset("volumes/labels/mask", SHAPE, np.uint8, **kw),
        }
        for ds in dsets.values():
            ds.attrs["resolution"] = RESOLUTION
            ds.attrs["offset"] = np.zeros(3)
        for z0 in range(0, SHAPE[0], SLAB_Z):
            z1 = min(z0 + SLAB_Z, SHAPE[0])
            lab = voronoi_slab(z0, z1, seeds, ids)
            dsets["volumes/labels/neuron_ids"][z0:z1] = lab
            dsets["volumes/raw"][z0:z1] = raw_slab(lab, lut, rng, z0)
            dsets["volumes/labels/mask"][z0:z1] = mask_slab(z0, z1)
            if z0 % 25 == 0:
                print(f"  z {z0:4d}/{SHAPE[0]}  {time.perf_counter() - t0:6.1f}s", flush=True)
    os.replace(tmp, args.out)
    print(
        f"wrote {args.out} ({os.path.getsize(args.out) / 2**30:.2f} GiB, "
        f"{len(ids)} segments) in {time.perf_counter() - t0:.1f}s"
    )


if __name__ == "__main__":
    main()
