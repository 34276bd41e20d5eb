"""Segmentation from predicted affinities, and its quality against ground truth.

Affinities → fragments (a seeded watershed per section, `skimage`) → agglomeration (mutex
clustering of the fragments' region graph by mean affinity, `mwatershed`) → a label volume; VOI split/merge and adapted Rand error against ground truth (the CREMI metrics, with
the definitions of `skimage.metrics`). On the output of `python -m gunpowder.predict`:

    python -m gunpowder.segment --affinities predictions.zarr/volumes/affinities \\
        --output seg.zarr/volumes/segmentation --gt data.hdf/volumes/labels/neuron_ids

The whole volume is segmented at once (in memory), so the segmentation never depends on
where the prediction's blocks were cut.

Affinities follow `AddAffinities`: channel `c` of voxel `v` is the affinity between `v` and
`v + neighborhood[c]` (1: same object, 0: boundary).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def default_neighborhood(dims: int) -> list[list[int]]:
    """`-e_d` for every axis `d`: the affinity of each voxel to the previous one along `d`."""
    return [[-1 if i == d else 0 for i in range(dims)] for d in range(dims)]


def _check(affinities: np.ndarray, neighborhood: Sequence[Sequence[int]], what: str) -> np.ndarray:
    affinities = np.asarray(affinities)
    if affinities.ndim < 2:
        raise ValueError(
            f"{what}: affinities need (channels, *spatial) axes, got {affinities.shape}"
        )
    dims = affinities.ndim - 1
    if len(neighborhood) != affinities.shape[0]:
        raise ValueError(
            f"{what}: {affinities.shape[0]} affinity channels but a neighborhood of "
            f"{len(neighborhood)} offsets"
        )
    for offset in neighborhood:
        if len(offset) != dims or not any(offset):
            raise ValueError(
                f"{what}: neighborhood offset {list(offset)} must be {dims} integers, not all 0"
            )
    return affinities


def _pairs(shape: Sequence[int], offset: Sequence[int]) -> tuple[tuple[slice, ...], ...]:
    """(slices of the voxels v, slices of v + offset) over the voxels where both are inside."""
    here, there = [], []
    for n, o in zip(shape, offset):
        o = int(o)
        here.append(slice(max(0, -o), n - max(0, o)))
        there.append(slice(max(0, o), n - max(0, -o)))
    return tuple(here), tuple(there)


def relabel_consecutive(labels: np.ndarray, keep_zero: bool = True) -> np.ndarray:
    """`labels` with ids 1..n in order of their value (0 stays 0 with `keep_zero`), uint64."""
    ids, inverse = np.unique(labels, return_inverse=True)
    start = 0 if (keep_zero and ids.size and ids[0] == 0) else 1
    return (inverse.reshape(labels.shape) + start).astype(np.uint64)


def _incident_mean(affinities: np.ndarray, channels: Sequence[tuple[int, int]]) -> np.ndarray:
    """Per voxel, the mean of the affinities of its edges along `channels` ((channel, axis)
    pairs of offsets -1 along `axis`): the edge to the previous and to the next voxel."""
    total = np.zeros(affinities.shape[1:], np.float64)
    count = np.zeros(affinities.shape[1:], np.float64)
    for c, axis in channels:
        total += affinities[c]
        count += 1
        here = [slice(None)] * total.ndim
        after = [slice(None)] * total.ndim
        here[axis], after[axis] = slice(0, -1), slice(1, None)
        total[tuple(here)] += affinities[c][tuple(after)]
        count[tuple(here)] += 1
    return total / np.maximum(count, 1)


def _seeded_watershed(connected: np.ndarray, threshold: float, min_seed_distance: int):
    """Watershed of `1 - connected` from the maxima of the distance to `connected <=
    threshold` (one seed at least per inside component); (labels from 1, count)."""
    import edt
    from scipy import ndimage
    from skimage.segmentation import watershed

    inside = connected > threshold
    if not inside.any():
        return np.ones(connected.shape, np.int64), 1
    distance = edt.edt(inside.astype(np.uint8))
    size = 2 * int(min_seed_distance) + 1
    seeds = inside & (distance == ndimage.maximum_filter(distance, size=size))
    components, n = ndimage.label(inside)
    missing = np.setdiff1d(np.arange(1, n + 1), np.unique(components[seeds]))
    if missing.size:  # a small component next to a larger one's maximum: seed it too
        for position in ndimage.maximum_position(distance, components, missing):
            seeds[position] = True
    markers, count = ndimage.label(seeds)
    return watershed(1.0 - connected, markers), count


def fragments(
    affinities: np.ndarray,
    neighborhood: Sequence[Sequence[int]] | None = None,
    threshold: float = 0.5,
    min_seed_distance: int = 3,
    in_plane: bool = True,
    method: str = "watershed",
    cut_threshold: float = 0.0,
) -> np.ndarray:
    """An over-segmentation (uint64 ids from 1) of the affinities' voxels.

    `method="watershed"` (default): per voxel, the mean affinity of its nearest-neighbour
    edges (both directions) is its "connectedness"; seeds are the maxima (at least
    `min_seed_distance` voxels apart) of the distance to voxels of connectedness <=
    `threshold`, and every voxel joins a seed by a watershed of 1 - connectedness
    (`skimage.segmentation.watershed`). With `in_plane` (3D only) each section is cut on its
    own, from the in-plane affinities: the usual choice for anisotropic EM, where z
    affinities are the least reliable; the agglomeration then joins the sections. Fragments
    are split where a closed surface of affinities <= `cut_threshold` (default 0: certain
    boundaries, as affinities made from labels have) cuts through them, so that perfect
    affinities give pure fragments; higher values cut along false predicted boundaries too
    (organelles), which the agglomeration can then not undo.

    `method="mutex"`: mutex watershed (`mwatershed.agglom`) of the voxel graph with weights
    `affinity - threshold`, all offsets of the neighbourhood (long-range ones help it most).
    """
    if neighborhood is None:
        neighborhood = default_neighborhood(np.ndim(affinities) - 1)
    affinities = _check(affinities, neighborhood, "fragments")
    dims = affinities.ndim - 1
    if method == "mutex":
        import mwatershed

        weights = affinities.astype(np.float64) - float(threshold)
        labels = mwatershed.agglom(weights, [list(map(int, o)) for o in neighborhood])
        return relabel_consecutive(labels, keep_zero=False)
    if method != "watershed":
        raise ValueError(f"fragments: method must be 'watershed' or 'mutex', got {method!r}")
    unit = [
        (c, int(np.flatnonzero(o)[0]))
        for c, o in enumerate(np.asarray(neighborhood))
        if np.abs(o).sum() == 1 and o.sum() == -1
    ]
    sections = in_plane and dims == 3
    channels = [(c, a) for c, a in unit if a != 0] if sections else unit
    if not channels:
        raise ValueError(
            f"fragments: the neighborhood {[list(o) for o in neighborhood]} has no offset -1 "
            f"along {'an in-plane axis' if sections else 'an axis'} (needed by the watershed)"
        )
    connected = _incident_mean(affinities, channels)
    if not sections:
        labels, _ = _seeded_watershed(connected, threshold, min_seed_distance)
    else:
        labels = np.zeros(connected.shape, np.int64)
        next_id = 0
        for z in range(connected.shape[0]):
            section, count = _seeded_watershed(connected[z], threshold, min_seed_distance)
            labels[z] = section + next_id
            next_id += count
    # where a voxel's affinities tie between two seeds, the watershed may take the wrong one:
    # split fragments along closed cuts of affinities <= cut_threshold (single voxels stay)
    pieces = _components(affinities, channels, cut_threshold, 2)
    return relabel_consecutive(labels * (int(pieces.max()) + 1) + pieces, keep_zero=False)


def _components(
    affinities: np.ndarray, channels: Sequence[tuple[int, int]], threshold: float, min_size: int
) -> np.ndarray:
    """Connected components (ids from 1) of the voxels joined by affinities > `threshold`
    along `channels`; the voxels of components smaller than `min_size` get 0."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    shape = affinities.shape[1:]
    size = int(np.prod(shape))
    index = np.arange(size, dtype=np.int64).reshape(shape)
    rows, cols = [], []
    for c, axis in channels:
        offset = [0] * len(shape)
        offset[axis] = -1
        here, there = _pairs(shape, offset)
        joined = affinities[c][here] > threshold
        rows.append(index[here][joined])
        cols.append(index[there][joined])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(r.size, np.int8), (r, c)), shape=(size, size))
    _, components = connected_components(graph, directed=False)
    small = np.bincount(components)[components] < min_size
    return np.where(small, 0, components + 1).reshape(shape)


def region_graph(
    fragments: np.ndarray,
    affinities: np.ndarray,
    neighborhood: Sequence[Sequence[int]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fragments' adjacencies: (u, v, mean affinity, voxel pairs), u < v, one row each.

    A pair of voxels joined by an affinity of the neighbourhood and lying in different
    fragments (neither 0) contributes that affinity to the edge of their fragments.
    """
    if neighborhood is None:
        neighborhood = default_neighborhood(np.ndim(affinities) - 1)
    affinities = _check(affinities, neighborhood, "region_graph")
    if fragments.shape != affinities.shape[1:]:
        raise ValueError(
            f"region_graph: fragments of shape {fragments.shape} do not match affinities "
            f"of shape {affinities.shape}"
        )
    us, vs, ws = [], [], []
    for c, offset in enumerate(neighborhood):
        here, there = _pairs(fragments.shape, offset)
        a = fragments[here].ravel()
        b = fragments[there].ravel()
        cut = (a != b) & (a != 0) & (b != 0)
        us.append(np.minimum(a[cut], b[cut]))
        vs.append(np.maximum(a[cut], b[cut]))
        ws.append(affinities[c][here].ravel()[cut].astype(np.float64))
    u = np.concatenate(us).astype(np.uint64)
    v = np.concatenate(vs).astype(np.uint64)
    w = np.concatenate(ws)
    if u.size == 0:
        empty = np.zeros(0, np.uint64)
        return empty, empty, np.zeros(0), np.zeros(0, np.int64)
    base = np.uint64(int(v.max()) + 1)
    keys, inverse, counts = np.unique(u * base + v, return_inverse=True, return_counts=True)
    means = np.bincount(inverse.ravel(), weights=w) / counts
    return keys // base, keys % base, means, counts


def agglomerate(
    fragments: np.ndarray,
    affinities: np.ndarray,
    neighborhood: Sequence[Sequence[int]] | None = None,
    threshold: float = 0.5,
) -> np.ndarray:
    """Merge fragments whose mean boundary affinity exceeds `threshold` (uint64 ids from 1).

    Mutex clustering of the region graph (`mwatershed.cluster`): edges in decreasing
    |mean - threshold|; an attractive edge (mean > threshold) merges two clusters unless a
    stronger repulsive edge between them came first. Fragment 0 stays 0.
    """
    import mwatershed

    u, v, means, _ = region_graph(fragments, affinities, neighborhood)
    weights = means - float(threshold)
    order = np.argsort(-np.abs(weights), kind="stable")
    edges = list(
        zip((weights[order] > 0).tolist(), u[order].tolist(), v[order].tolist(), strict=True)
    )
    mapping = mwatershed.cluster(edges) if edges else []
    ids = np.unique(fragments)
    target = ids.copy()
    if mapping:
        table = np.asarray(mapping, dtype=np.uint64)
        at = np.searchsorted(ids, table[:, 0])
        target[at] = table[:, 1]
    merged = target[np.searchsorted(ids, fragments)]
    return relabel_consecutive(merged, keep_zero=True)


def segment(
    affinities: np.ndarray,
    neighborhood: Sequence[Sequence[int]] | None = None,
    threshold: float = 0.5,
    fragments_threshold: float = 0.5,
    **fragments_args: Any,
) -> np.ndarray:
    """Affinities → fragments → agglomeration at `threshold`: the segmentation (uint64).

    `fragments_args` go to `fragments` (min_seed_distance, in_plane, method)."""
    frags = fragments(affinities, neighborhood, fragments_threshold, **fragments_args)
    return agglomerate(frags, affinities, neighborhood, threshold)


# --------------------------------------------------------------------------------------------
# metrics


def contingency(
    truth: np.ndarray, test: np.ndarray, ignore_labels: Iterable[int] = (0,)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The contingency table over the voxels whose true label is not in `ignore_labels`:
    (n_ij > 0, its true object i, its test segment j, sizes of the true objects, sizes of the
    test segments); objects and segments are numbered from 0 in order of their ids."""
    truth = np.asarray(truth)
    test = np.asarray(test)
    if truth.shape != test.shape:
        raise ValueError(
            f"metrics: ground truth {truth.shape} and segmentation {test.shape} differ"
        )
    keep = ~np.isin(truth, list(ignore_labels))
    _, t = np.unique(truth[keep], return_inverse=True)
    _, s = np.unique(test[keep], return_inverse=True)
    t = t.ravel().astype(np.int64)
    s = s.ravel().astype(np.int64)
    if t.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty, empty
    base = int(s.max()) + 1
    keys, overlaps = np.unique(t * base + s, return_counts=True)
    return overlaps, keys // base, keys % base, np.bincount(t), np.bincount(s)


def evaluate(
    segmentation: np.ndarray, ground_truth: np.ndarray, ignore_labels: Iterable[int] = (0,)
) -> dict[str, float]:
    """VOI split/merge (bits) and adapted Rand error of `segmentation` against
    `ground_truth`, ignoring the voxels whose true label is in `ignore_labels`.

    voi_split = H(segmentation | truth) (false splits), voi_merge = H(truth | segmentation)
    (false merges), as `skimage.metrics.variation_of_information(truth, segmentation)`;
    arand = 1 - F-score of the Rand precision and recall over pairs of distinct voxels, as
    `skimage.metrics.adapted_rand_error(truth, segmentation)`. Lower is better; 0 is perfect.
    """
    n_ij, i, j, a, b = contingency(ground_truth, segmentation, ignore_labels)
    n = int(a.sum())
    if n == 0:
        raise ValueError("metrics: no voxel of the ground truth is labelled (all ignored)")
    p = n_ij / n
    split = float(-(p * np.log2(n_ij / a[i])).sum())
    merge = float(-(p * np.log2(n_ij / b[j])).sum())
    pairs_both = float((n_ij.astype(np.float64) ** 2).sum() - n)
    pairs_truth = float((a.astype(np.float64) ** 2).sum() - n)
    pairs_test = float((b.astype(np.float64) ** 2).sum() - n)
    denominator = pairs_truth + pairs_test
    return {
        "voi_split": abs(split),  # abs: -0.0 → 0.0
        "voi_merge": abs(merge),
        "voi": abs(split + merge),
        "arand": 1.0 - 2 * pairs_both / denominator if denominator else 0.0,
        "rand_precision": pairs_both / pairs_test if pairs_test else 1.0,
        "rand_recall": pairs_both / pairs_truth if pairs_truth else 1.0,
        "segments": int(b.size),
        "objects": int(a.size),
    }


# --------------------------------------------------------------------------------------------
# the command line


def _read(path: str, what: str) -> tuple[np.ndarray, dict[str, Any]]:
    """(data, attributes) of the dataset `path` ('c.zarr/ds' or 'f.hdf/ds')."""
    from .predict import split_dataset_path

    container, dataset, kind = split_dataset_path(path)
    if kind == "zarr":
        import zarr

        try:
            array = zarr.open_array(container, path=dataset, mode="r")
        except Exception as e:
            raise ValueError(f"{what} {path}: can not open ({type(e).__name__}: {e})") from None
        data, attrs = array[...], dict(array.attrs)
    else:
        import h5py

        try:
            with h5py.File(container, "r") as f:
                data, attrs = f[dataset][...], dict(f[dataset].attrs)
        except (OSError, KeyError) as e:
            raise ValueError(f"{what} {path}: can not open ({e})") from None
    return data, attrs


def _spatial(path: str, what: str, dims: int) -> tuple[np.ndarray, Any, Any]:
    """(data, voxel size, offset) of the dataset `path` with `dims` spatial axes."""
    from .geometry import Coordinate
    from .io_metadata import read_spatial_metadata

    data, attrs = _read(path, what)
    if data.ndim < dims:
        raise ValueError(f"{what} {path}: {data.ndim} axes, expected at least {dims}")
    meta = read_spatial_metadata(attrs, dims)
    voxel_size = meta.voxel_size if meta.voxel_size is not None else Coordinate((1,) * dims)
    offset = meta.offset if meta.offset is not None else Coordinate((0,) * dims)
    if len(voxel_size) != dims:
        raise ValueError(f"{what} {path}: resolution {tuple(voxel_size)} is not {dims}D")
    return data, voxel_size, offset


def crop_to(
    labels: np.ndarray, voxel_size: Any, offset: Any, roi: Any, what: str = "--gt"
) -> np.ndarray:
    """The part of `labels` (at `offset`, `voxel_size`) inside the world region `roi`."""
    from .geometry import Coordinate, Roi

    have = Roi(Coordinate(offset), Coordinate(labels.shape) * Coordinate(voxel_size))
    if not have.contains(roi):
        raise ValueError(f"{what}: the ground truth covers {have}, not the segmentation's {roi}")
    begin = (roi.begin - have.begin) / Coordinate(voxel_size)
    shape = roi.shape / Coordinate(voxel_size)
    return labels[tuple(slice(b, b + s) for b, s in zip(begin, shape))]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gunpowder.segment",
        description="Segment predicted affinities (whole volume); with --gt, measure VOI and "
        "ARAND.",
    )
    p.add_argument("--affinities", required=True, help="zarr/hdf5 dataset (channels, *spatial)")
    p.add_argument("--output", help="zarr dataset to write, e.g. seg.zarr/volumes/segmentation")
    p.add_argument("--gt", help="ground-truth labels (zarr/hdf5 dataset) to evaluate against")
    p.add_argument("--threshold", type=float, default=0.5, help="agglomeration threshold")
    p.add_argument("--fragments-threshold", type=float, default=0.5, help="fragments' seeds")
    p.add_argument("--fragments-method", default="watershed", choices=["watershed", "mutex"])
    p.add_argument("--min-seed-distance", type=int, default=3, help="voxels between seeds")
    p.add_argument("--fragments-3d", action="store_true", help="not section by section")
    p.add_argument(
        "--neighborhood", type=int, nargs="+", help="offsets, flattened (default: -1 per axis)"
    )
    p.add_argument("--ignore-label", type=int, nargs="*", default=[0], help="gt ids to ignore")
    p.add_argument("--json", help="write the metrics to this JSON file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad arguments or input)."""
    from .geometry import Coordinate, Roi
    from .nodes.hdf5like_write_base import open_or_create_zarr
    from .predict import split_dataset_path

    args = _parser().parse_args(argv)
    try:
        if args.output is None and args.gt is None:
            raise ValueError("give --output, --gt or both")
        if args.output is not None and split_dataset_path(args.output)[2] != "zarr":
            raise ValueError(f"--output must be a zarr dataset (out.zarr/name), got {args.output}")
        affinities, attrs = _read(args.affinities, "--affinities")
        dims = affinities.ndim - 1
        affinities, voxel_size, offset = _spatial(args.affinities, "--affinities", dims)
        if args.neighborhood is None:
            neighborhood = default_neighborhood(dims)
        else:
            flat = list(args.neighborhood)
            if len(flat) % dims:
                raise ValueError(f"--neighborhood: {len(flat)} values are not offsets of {dims}")
            neighborhood = [flat[i : i + dims] for i in range(0, len(flat), dims)]
        _check(affinities, neighborhood, "--affinities")
        roi = Roi(offset, Coordinate(affinities.shape[1:]) * voxel_size)
        gt = None
        if args.gt is not None:
            labels, gt_voxel_size, gt_offset = _spatial(args.gt, "--gt", dims)
            if gt_voxel_size != voxel_size:
                raise ValueError(
                    f"--gt: voxel size {tuple(gt_voxel_size)} differs from the affinities' "
                    f"{tuple(voxel_size)}"
                )
            gt = crop_to(labels, gt_voxel_size, gt_offset, roi)
    except ValueError as e:
        print(f"gunpowder.segment: {e}", file=sys.stderr)
        return 2
    seg = segment(
        affinities, neighborhood, args.threshold, args.fragments_threshold,
        min_seed_distance=args.min_seed_distance, in_plane=not args.fragments_3d,
        method=args.fragments_method,
    )  # fmt: skip
    print(f"{int(seg.max())} segments over {roi}", file=sys.stderr)
    if args.output is not None:
        container, dataset, _ = split_dataset_path(args.output)
        target = open_or_create_zarr(
            container, dataset, roi, voxel_size, (), np.uint64, tuple(min(64, s) for s in seg.shape)
        )
        target[...] = seg
        print(f"wrote {args.output}", file=sys.stderr)
    if gt is not None:
        metrics = evaluate(seg, gt, args.ignore_label)
        print(
            f"VOI split {metrics['voi_split']:.3f}  VOI merge {metrics['voi_merge']:.3f}  "
            f"ARAND {metrics['arand']:.3f}  ({metrics['segments']} segments, "
            f"{metrics['objects']} objects)"
        )
        if args.json:
            with open(args.json, "w") as f:
                json.dump({**metrics, "threshold": args.threshold}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
