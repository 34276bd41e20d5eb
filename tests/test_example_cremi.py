"""Smoke test of examples/cremi: make a tiny volume, train a few iterations, predict, report."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cremi"


@pytest.fixture(scope="module")
def cremi():
    """The example's modules, imported from examples/cremi and forgotten afterwards (their
    names -- train, predict, ... -- are too generic to leave in sys.modules)."""
    names = ("make_volume", "unet", "train", "predict", "demo")
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield {name: importlib.import_module(name) for name in names}
    finally:
        sys.path.remove(str(EXAMPLE))
        for name in names:
            sys.modules.pop(name, None)


def test_volume_is_cremi_like(cremi, tmp_path):
    mv = cremi["make_volume"]
    raw, labels = mv.make_volume((6, 64, 64), seed=3)
    assert raw.dtype == np.uint8 and labels.dtype == np.uint64 and labels.min() >= 1
    again = mv.make_volume((6, 64, 64), seed=3)
    np.testing.assert_array_equal(raw, again[0])
    # membranes (label changes in-plane) are darker than the inside of neurons
    edge = mv.membranes(labels)
    assert raw[edge].mean() < raw[~edge].mean() - 50
    path = mv.write_cremi(tmp_path / "v.hdf", raw, labels)
    with h5py.File(path, "r") as f:
        assert tuple(f["volumes/raw"].attrs["resolution"]) == (40, 4, 4)
        assert tuple(f["volumes/labels/neuron_ids"].attrs["offset"]) == (0, 0, 0)
        np.testing.assert_array_equal(f["volumes/labels/neuron_ids"][...], labels)


def test_unet_shape_arithmetic_matches_torch(cremi):
    import torch

    unet = cremi["unet"].small_unet(2)
    for request in [(5, 44, 44), (7, 61, 70)]:
        shape = unet.valid_input_shape(request)
        assert all(s >= r for s, r in zip(shape, request))
        with torch.no_grad():
            out = unet(torch.zeros((1, 1) + shape))
        assert tuple(out.shape[2:]) == unet.output_shape(shape)
    assert unet.output_shape((5, 45, 44)) is None  # odd size before pooling


def test_demo_runs_end_to_end(cremi, tmp_path, capsys):
    demo = cremi["demo"]
    summary = demo.run(
        tmp_path,
        iterations=6,
        train_shape=(10, 80, 80),
        test_shape=(9, 72, 72),
        num_fmaps=2,
        input_shape=(6, 44, 44),
        progress=False,
    )
    assert summary["iterations"] == 6
    assert 0 <= summary["accuracy"] <= 1 and 0 <= summary["baseline"] <= 1
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "summary.json").read_text())["iterations"] == 6
    assert Path(summary["checkpoint"]).name == "model_checkpoint_6"
    snapshots = sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir())
    assert snapshots[0] == "batch_1.zarr"
    pred = zarr.open_group(str(tmp_path / "prediction.zarr"), mode="r")[
        "volumes/predicted_affinities"
    ]
    assert pred.shape[0] == 3 and tuple(pred.attrs["resolution"]) == (40, 4, 4)
    seg = summary["segmentation"]
    for key in ("voi_split", "voi_merge", "arand", "best_voi"):
        assert np.isfinite(seg[key]) and seg[key] >= 0
    assert 0 <= seg["arand"] <= 1 and seg["objects"] > 1 and seg["fragments"] >= seg["segments"]
    assert seg["best_voi"] <= seg["voi"] + 1e-12
    assert set(seg["sweep"]) == {str(t) for t in demo.SWEEP}
    demo.print_summary(summary)
    out = capsys.readouterr().out
    assert "VOI split" in out and "ARAND" in out


def test_segmentation_of_perfect_affinities_scores_zero(cremi):
    """The demo's segmentation step on the held-out labels' own affinities: perfect."""
    import gunpowder as gp
    from gunpowder.transforms.labels import seg_to_affinities

    demo = cremi["demo"]
    _, labels = cremi["make_volume"].make_volume((8, 64, 64), seed=4)
    voxel_size = gp.Coordinate(40, 4, 4)
    spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), gp.Coordinate(8, 64, 64) * voxel_size),
                        voxel_size=voxel_size)  # fmt: skip
    inner = gp.Roi((40, 4, 4), gp.Coordinate(7, 63, 63) * voxel_size)
    affs = seg_to_affinities(labels, demo.NEIGHBORHOOD, np.float32)
    seg, m = demo.segment_and_evaluate(
        gp.Array(affs, spec.replace(roi=inner)), gp.Array(labels, spec)
    )
    # the generated neurons may touch themselves only diagonally (two pieces in 6-connectivity):
    # those splits are all the VOI there is; no merges
    assert m["voi_merge"] == 0.0 and m["voi_split"] < 0.05 and m["arand"] < 0.01
    assert seg.spec.roi == inner and seg.data.dtype == np.uint64
