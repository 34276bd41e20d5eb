"""`python -m gunpowder.warmup` compiles the kernels once; later processes load them from cache.

Checked through numba's own bookkeeping (`dispatcher.stats`: signatures compiled in this
process vs loaded from the on-disk cache), not through timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gunpowder import warmup

#: a CREMI-like training pipeline at sizes other than warm-up's own, several seeds (so the
#: mirror/transpose branches and section slips are taken); prints numba's stats per kernel
PIPELINE = textwrap.dedent(
    """
    import json, math, sys
    import h5py, numpy as np
    import gunpowder as gp
    from gunpowder.warmup import kernels

    path = sys.argv[1]
    z, y, x = np.indices((16, 100, 1024))  # wide, as CREMI sections: narrow reads by rows
    with h5py.File(path, "w") as f:
        f["raw"] = (100 + 50 * np.sin(y / 4.0) + x % 7).astype(np.uint8)
        f["labels"] = (1 + y // 20 + 10 * (x // 20)).astype(np.uint64)
        for name in ("raw", "labels"):
            f[name].attrs["resolution"] = (40, 4, 4)
    RAW, LABELS, AFFS = gp.ArrayKey("RAW"), gp.ArrayKey("LABELS"), gp.ArrayKey("AFFS")
    pipeline = (
        gp.Hdf5Source(path, {RAW: "raw", LABELS: "labels"},
                      array_specs={RAW: gp.ArraySpec(interpolatable=True),
                                   LABELS: gp.ArraySpec(interpolatable=False)})
        + gp.Normalize(RAW)
        + gp.RandomLocation()
        + gp.ElasticAugment([4, 40, 40], [0, 2, 2], [0, math.pi / 2.0], prob_slip=0.1,
                            prob_shift=0.1, max_misalign=5, subsample=8)
        + gp.SimpleAugment(transpose_only=[1, 2])
        + gp.IntensityAugment(RAW, 0.9, 1.1, -0.1, 0.1, z_section_wise=True)
        + gp.AddAffinities([[-1, 0, 0], [0, -1, 0], [0, 0, -1]], LABELS, AFFS)
    )
    request = gp.BatchRequest()
    request.add(RAW, gp.Coordinate(12, 64, 64) * gp.Coordinate(40, 4, 4))
    request.add(LABELS, gp.Coordinate(8, 32, 32) * gp.Coordinate(40, 4, 4))
    request.add(AFFS, gp.Coordinate(8, 32, 32) * gp.Coordinate(40, 4, 4))
    with gp.build(pipeline):
        for seed in range(12):
            pipeline.request_batch(request.with_seed(seed))
    print(json.dumps({name: [len(d.stats.cache_misses), len(d.stats.cache_hits)]
                      for name, d in kernels()}))
    """
)


def _run(args: list[str], cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONWARNINGS="ignore")
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr
    return out


def test_kernels_are_discovered() -> None:
    names = {name for name, _ in warmup.kernels()}
    assert "transforms.elastic_kernels.warp_linear" in names
    assert "transforms.elastic_kernels.nearest_indices" in names
    assert "transforms.augment_intensity._scale_shift_blocks" in names


def test_report_lines_name_failures_and_counts() -> None:
    report = warmup.WarmUpReport(cache_dir="/c", exercises={"a": 0.5, "b": 1.0})
    report.failures["b"] = "ValueError: bad"
    report.kernels = [
        warmup.KernelReport("k1", compiled=["(float32,)"]),
        warmup.KernelReport("k2", loaded=["(int64,)", "(uint8,)"]),
        warmup.KernelReport("k3"),
    ]
    text = "\n".join(report.lines())
    assert "FAILED: ValueError: bad" in text
    assert "k1: 1 compiled, 0 from cache" in text
    assert "k2: 0 compiled, 2 from cache" in text
    assert "not called directly" in text and "k3" in text
    assert (report.compiled, report.loaded) == (1, 2)


@pytest.mark.slow
def test_warm_up_fills_the_cache_for_a_fresh_process(tmp_path: Path) -> None:
    cache = tmp_path / "numba-cache"
    first = json.loads(_run(["-m", "gunpowder.warmup", "--json"], cache).stdout)
    assert first["cache_dir"] == str(cache)
    assert not first["failures"]
    compiled = {k["name"] for k in first["kernels"] if k["compiled"]}
    assert "transforms.elastic_kernels.warp_linear" in compiled
    assert "transforms.augment_intensity._scale_shift_blocks" in compiled
    assert any(cache.rglob("*.nbi")), "numba wrote no cache index"

    # a fresh process running a training pipeline compiles nothing: all from the cache
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    stats = json.loads(_run([str(script), str(tmp_path / "d.hdf")], cache).stdout)
    compiled_later = {name: s for name, s in stats.items() if s[0]}
    assert not compiled_later, f"compiled after warm-up: {compiled_later}"
    for name in ("elastic_kernels.warp_linear", "elastic_kernels.nearest_indices"):
        assert stats[f"transforms.{name}"][1] >= 1
    assert stats["transforms.augment_intensity._scale_shift_blocks"][1] >= 1

    # idempotent: a second warm-up loads everything and compiles nothing
    second = json.loads(_run(["-m", "gunpowder.warmup", "--json"], cache).stdout)
    assert sum(len(k["compiled"]) for k in second["kernels"]) == 0
    loaded = {k["name"]: sorted(k["loaded"]) for k in second["kernels"] if k["loaded"]}
    assert {
        name: sorted(k["compiled"])
        for k in first["kernels"]
        for name in [k["name"]]
        if name in loaded
    } == loaded
    assert "transforms.elastic_kernels.warp_linear" in loaded
