"""gunpowder.segment: affinities → fragments → agglomeration, and the VOI / ARAND metrics."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree
from skimage.measure import label as connected_components
from skimage.metrics import adapted_rand_error, variation_of_information

from gunpowder import segment as gs
from gunpowder.geometry import Coordinate, Roi
from gunpowder.nodes.hdf5like_write_base import open_or_create_zarr
from gunpowder.transforms.labels import seg_to_affinities

NH = [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]


def voronoi(shape, cells, seed, anisotropy=(1.0, 1.0, 1.0)):
    """Labels 1..cells of the nearest of `cells` random points (3D Voronoi cells)."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, shape, size=(cells, 3)) * anisotropy
    grid = np.stack(np.meshgrid(*map(np.arange, shape), indexing="ij"), -1).reshape(-1, 3)
    _, nearest = cKDTree(points).query(grid * anisotropy)
    return (nearest.reshape(shape) + 1).astype(np.uint64)


def perfect_affinities(labels, neighborhood=NH):
    """AddAffinities' affinities of `labels`, with the missing context repeated from the edge."""
    pad = [(max(0, -min(o[d] for o in neighborhood)), max(0, max(o[d] for o in neighborhood)))
           for d in range(labels.ndim)]  # fmt: skip
    return seg_to_affinities(np.pad(labels, pad, mode="edge"), neighborhood, np.float32)


def same_partition(a, b):
    """a and b split the voxels the same way (ids may differ)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(pairs[0]) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_perfect_affinities_give_the_ground_truth(seed):
    gt = voronoi((12, 40, 40), 25, seed, anisotropy=(10.0, 1.0, 1.0))
    gt = connected_components(gt, connectivity=1).astype(np.uint64)
    seg = gs.segment(perfect_affinities(gt), NH)
    assert same_partition(seg, gt)
    metrics = gs.evaluate(seg, gt)
    assert metrics["voi_split"] == metrics["voi_merge"] == metrics["arand"] == 0.0
    assert metrics["segments"] == metrics["objects"] == len(np.unique(gt))


def test_agglomeration_merges_an_oversegmentation_back():
    gt = voronoi((8, 30, 30), 10, 5)
    affs = perfect_affinities(gt)
    # split every object into two fragments along x: agglomeration must undo exactly that
    frags = gt * 2 - (np.arange(30)[None, None, :] < 15)
    assert len(np.unique(frags)) > len(np.unique(gt))
    merged = gs.agglomerate(frags.astype(np.uint64), affs, NH, threshold=0.5)
    assert same_partition(merged, gt)
    # a threshold above every mean affinity merges nothing
    kept = gs.agglomerate(frags.astype(np.uint64), affs, NH, threshold=1.5)
    assert same_partition(kept, frags)


def test_noisy_affinities_still_segment_well():
    gt = voronoi((10, 48, 48), 20, 3, anisotropy=(10.0, 1.0, 1.0))
    gt = connected_components(gt, connectivity=1).astype(np.uint64)
    rng = np.random.default_rng(0)
    affs = np.clip(perfect_affinities(gt) + rng.normal(0, 0.25, (3, *gt.shape)), 0, 1)
    metrics = gs.evaluate(gs.segment(affs, NH), gt)
    assert metrics["voi_split"] + metrics["voi_merge"] < 0.5
    assert metrics["arand"] < 0.1
    # the single object of all-ones affinities and all-zeros' singletons score badly
    merged = gs.evaluate(np.ones_like(gt), gt)
    assert merged["voi_split"] == 0.0 and merged["voi_merge"] > 3 and merged["arand"] > 0.8


def test_region_graph_means_and_counts():
    frags = np.array([[[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3]]], dtype=np.uint64)
    affs = np.zeros((3, *frags.shape))
    affs[1] = 0.2  # y: (row r, row r-1)
    affs[2] = np.arange(4)[None, None, :] / 10  # x: (col c, col c-1)
    u, v, means, counts = gs.region_graph(frags, affs, NH)
    edges = {(int(a), int(b)): (m, int(c)) for a, b, m, c in zip(u, v, means, counts)}
    assert set(edges) == {(1, 2), (1, 3), (2, 3)}
    assert edges[(1, 2)] == (pytest.approx(0.2), 2)  # column 2 against column 1, two rows
    assert edges[(1, 3)] == (pytest.approx(0.2), 2) and edges[(2, 3)][1] == 2


def test_2d_and_argument_errors():
    gt = voronoi((1, 30, 30), 6, 1)[0]
    nh = [[-1, 0], [0, -1]]
    assert same_partition(gs.segment(perfect_affinities(gt, nh), nh), gt)
    with pytest.raises(ValueError, match="3 affinity channels but a neighborhood of 2"):
        gs.segment(np.zeros((3, 4, 4)), nh)
    with pytest.raises(ValueError, match="must be 2 integers"):
        gs.fragments(np.zeros((2, 4, 4)), [[-1, 0, 0], [0, -1]])
    with pytest.raises(ValueError, match="differ"):
        gs.evaluate(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="no voxel of the ground truth"):
        gs.evaluate(np.ones((2, 2)), np.zeros((2, 2)))


labels = st.integers(0, 4)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 60).flatmap(
        lambda n: st.tuples(
            st.lists(labels, min_size=n, max_size=n),
            st.lists(st.integers(0, 6), min_size=n, max_size=n),
        )  # fmt: skip
    ),
    st.booleans(),
)
def test_metrics_agree_with_skimage(pair, big_ids):
    truth, test = (np.asarray(x, dtype=np.uint64) for x in pair)
    if big_ids:  # ids far apart must not matter (skimage indexes a sparse table by them)
        test = test * np.uint64(10_007) + np.uint64(7)
    keep = truth != 0
    if keep.sum() < 2:
        return
    ours = gs.evaluate(test, truth)  # ignores truth 0, as skimage's adapted_rand_error
    split, merge = variation_of_information(truth[keep], test[keep])
    assert ours["voi_split"] == pytest.approx(split, abs=1e-9)
    assert ours["voi_merge"] == pytest.approx(merge, abs=1e-9)
    assert ours["voi"] == pytest.approx(split + merge, abs=1e-9)
    with np.errstate(invalid="ignore", divide="ignore"):
        are, _, _ = adapted_rand_error(truth, test)
    if np.isfinite(are):
        assert ours["arand"] == pytest.approx(are, abs=1e-9)
    # and with nothing ignored, VOI against skimage on the whole volume
    everything = gs.evaluate(test, truth, ignore_labels=())
    split, merge = variation_of_information(truth, test)
    assert everything["voi_split"] == pytest.approx(split, abs=1e-9)
    assert everything["voi_merge"] == pytest.approx(merge, abs=1e-9)


def test_voi_by_hand():
    # truth: one object of 4 voxels; test: split in halves → H(test|truth) = 1 bit, no merge
    m = gs.evaluate(np.array([1, 1, 2, 2]), np.array([5, 5, 5, 5]))
    assert m["voi_split"] == pytest.approx(1.0) and m["voi_merge"] == 0.0
    # 4 pairs together in truth... 6 pairs in truth, 2 in test, 2 in both: F = 2*2/(6+2)
    assert m["arand"] == pytest.approx(1 - 2 * 2 / (6 + 2))


def _write_prediction(path, affs, voxel_size, offset):
    roi = Roi(offset, Coordinate(affs.shape[1:]) * Coordinate(voxel_size))
    array = open_or_create_zarr(
        str(path), "volumes/affinities", roi, Coordinate(voxel_size), (3,), np.float32, (8, 8, 8)
    )
    array[...] = affs


def test_command_line_on_a_predicted_volume(tmp_path, capsys):
    voxel_size = (40, 4, 4)
    gt = voronoi((14, 40, 40), 20, 7, anisotropy=(10.0, 1.0, 1.0))
    gt = connected_components(gt, connectivity=1).astype(np.uint64)
    with h5py.File(tmp_path / "data.hdf", "w") as f:
        ds = f.create_dataset("volumes/labels/neuron_ids", data=gt)
        ds.attrs["resolution"] = voxel_size
        ds.attrs["offset"] = (0, 0, 0)
    # the prediction covers the volume less 2 sections and 4 voxels at each side (as a valid
    # network's does), at its own offset
    inner = (slice(2, -2), slice(4, -4), slice(4, -4))
    _write_prediction(tmp_path / "pred.zarr", perfect_affinities(gt)[(slice(None),) + inner],
                      voxel_size, (80, 16, 16))  # fmt: skip
    rc = gs.main([
        "--affinities", str(tmp_path / "pred.zarr/volumes/affinities"),
        "--output", str(tmp_path / "seg.zarr/volumes/segmentation"),
        "--gt", str(tmp_path / "data.hdf/volumes/labels/neuron_ids"),
        "--json", str(tmp_path / "metrics.json"),
    ])  # fmt: skip
    assert rc == 0
    assert "VOI split 0.000  VOI merge 0.000  ARAND 0.000" in capsys.readouterr().out
    seg = zarr.open_array(str(tmp_path / "seg.zarr"), path="volumes/segmentation", mode="r")
    assert seg.dtype == np.uint64 and tuple(seg.attrs["offset"]) == (80, 16, 16)
    assert tuple(seg.attrs["resolution"]) == voxel_size
    assert same_partition(seg[...], connected_components(gt[inner], connectivity=1))
    assert json.loads((tmp_path / "metrics.json").read_text())["voi_split"] == 0.0


def test_command_line_errors(tmp_path, capsys):
    gt = np.ones((4, 10, 10), np.uint64)
    with h5py.File(tmp_path / "gt.hdf", "w") as f:
        f.create_dataset("labels", data=gt).attrs["resolution"] = (40, 8, 8)
    _write_prediction(tmp_path / "pred.zarr", np.ones((3, 4, 10, 10), np.float32), (40, 4, 4),
                      (0, 0, 0))  # fmt: skip
    affs = str(tmp_path / "pred.zarr/volumes/affinities")
    assert gs.main(["--affinities", affs, "--gt", str(tmp_path / "gt.hdf/labels")]) == 2
    assert "--gt: voxel size (40, 8, 8) differs from the affinities' (40, 4, 4)" in (
        capsys.readouterr().err
    )
    assert gs.main(["--affinities", affs, "--output", str(tmp_path / "seg.hdf/x")]) == 2
    assert "--output must be a zarr dataset" in capsys.readouterr().err
    assert gs.main(["--affinities", str(tmp_path / "nothing.zarr/a"), "--output", "s.zarr/s"]) == 2
    assert "--affinities" in capsys.readouterr().err
    assert gs.main(["--affinities", affs, "--neighborhood", "-1", "0", "--gt", "x.hdf/y"]) == 2
    assert "--neighborhood" in capsys.readouterr().err
