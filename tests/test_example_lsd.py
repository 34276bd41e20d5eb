"""Smoke test of examples/lsd: both networks (affinities, MTLSD) on a tiny budget."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def lsd():
    """examples/lsd's modules (and examples/cremi's they import), forgotten afterwards."""
    names = ("make_volume", "unet", "train", "predict", "demo", "mtlsd", "compare")
    paths = [str(EXAMPLES / "lsd"), str(EXAMPLES / "cremi")]
    before = list(sys.path)
    sys.path[:0] = paths
    try:
        yield {name: importlib.import_module(name) for name in ("mtlsd", "compare")}
    finally:
        sys.path[:] = before
        for name in names:
            sys.modules.pop(name, None)


def test_mtlsd_net_shapes_and_loss(lsd):
    import torch

    mtlsd = lsd["mtlsd"]
    model = mtlsd.make_mtlsd_model(2)
    shape = model.unet.valid_input_shape((6, 44, 44))
    with torch.no_grad():
        lsds, affs = model(torch.zeros(shape))
    out = model.output_shape(shape)
    assert lsds.shape == (10, *out) and affs.shape == (3, *out)
    assert float(lsds.min()) >= 0 and float(lsds.max()) <= 1
    ones = torch.ones_like(affs)
    # the LSD term counts only where its weights are non-zero
    base = mtlsd.mtlsd_loss(lsds, lsds, torch.ones_like(lsds), affs, ones, ones)
    off = mtlsd.mtlsd_loss(lsds, lsds + 0.5, torch.zeros_like(lsds), affs, ones, ones)
    on = mtlsd.mtlsd_loss(lsds, lsds + 0.5, torch.ones_like(lsds), affs, ones, ones)
    assert float(off) == pytest.approx(float(base)) and float(on) == pytest.approx(
        float(base) + 0.25, rel=1e-5
    )


def test_compare_runs_both_networks(lsd, tmp_path):
    compare = lsd["compare"]
    summary = compare.run(
        tmp_path, iterations=3, train_shape=(12, 128, 128), test_shape=(9, 72, 72),
        num_fmaps=2, input_shape=(6, 44, 44), progress=False,
    )  # fmt: skip
    for name in ("affinities", "mtlsd"):
        m = summary[name]
        assert np.isfinite(m["voi_split"]) and np.isfinite(m["voi_merge"])
        assert 0 <= m["arand"] <= 1 and m["objects"] > 1
    assert (tmp_path / "mtlsd" / "model_checkpoint_3").exists()
    snapshot = next((tmp_path / "mtlsd" / "snapshots").iterdir())
    import zarr

    lsds = zarr.open_group(str(snapshot), mode="r")["volumes/labels/lsds/s0"]
    assert lsds.shape[0] == 10 and 0 <= float(np.min(lsds[...])) <= float(np.max(lsds[...])) <= 1
    assert json.loads((tmp_path / "summary.json").read_text())["iterations"] == 3
    table = compare.format_table(summary)
    assert "mtlsd" in table and "affinities" in table
