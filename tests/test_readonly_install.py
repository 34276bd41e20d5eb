"""A read-only install without a writable home directory imports and runs (issue 13)."""

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import gunpowder
from gunpowder.transforms import _jit

SCRIPT = textwrap.dedent(
    """
    import numpy as np, gunpowder as gp
    from gunpowder.transforms import _jit
    raw = gp.ArrayKey("RAW")
    data = np.random.default_rng(0).random((20, 40, 40), dtype=np.float32)
    spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (20, 40, 40)), voxel_size=gp.Coordinate(1, 1, 1),
                        interpolatable=True)
    p = (gp.ArraySource(raw, gp.Array(data, spec))
         + gp.ElasticAugment([4, 10, 10], [0, 1, 1], [0, 0.5])
         + gp.IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1))
    req = gp.BatchRequest(random_seed=1)
    req[raw] = gp.ArraySpec(roi=gp.Roi((5, 10, 10), (10, 20, 20)))
    with gp.build(p):
        b = p.request_batch(req)
    assert b[raw].data.shape == (10, 20, 20)
    print("ok", gp.__file__, repr(_jit.cache_dir()))
    """
)


def _drop_write_privileges() -> list[str]:
    """A command prefix that runs without root's power to write anywhere (as a user would)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: can not drop the override of file modes")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"]


def test_read_only_package_without_home_imports_and_runs(tmp_path):
    copy = tmp_path / "site"
    shutil.copytree(
        Path(gunpowder.__file__).parent,
        copy / "gunpowder",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    home = tmp_path / "home"
    home.mkdir()
    for path in [copy, home, *copy.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(copy), TMPDIR=str(tmp_path))
    env.pop("NUMBA_CACHE_DIR", None)
    try:
        out = subprocess.run(
            [*_drop_write_privileges(), sys.executable, "-c", SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            cwd=tmp_path,
        )
    finally:
        for path in [copy, home, *copy.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{copy}/gunpowder/__init__.py" in out.stdout
    assert "__pycache__" not in out.stdout.split()[-1]  # not the read-only package folder


def test_no_writable_cache_location_compiles_without_cache(monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(_jit, "_writable", lambda path: False)
    assert _jit._choose_cache_dir() is None


def test_configured_cache_dir_is_used_when_writable(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert _jit._choose_cache_dir() == str(tmp_path)
