"""Importing gunpowder makes torch's idle OpenMP threads sleep (`OMP_WAIT_POLICY=PASSIVE`)
unless the user chose a policy; where torch was imported first, a training run warns once.

Each case runs in a fresh process: OpenMP reads the variable once, when torch loads it.
Whether the runtime took the setting is read from the runtime itself (GNU OpenMP prints its
settings with OMP_DISPLAY_ENV=VERBOSE: spin count 0 means idle threads sleep at once).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch")

REPORT = (
    "import json, os, warnings, gunpowder.threads as t\n"
    "with warnings.catch_warnings(record=True) as w:\n"
    "    warnings.simplefilter('always')\n"
    "    t.configure_main_threads(threads=1)\n"
    "    t.configure_main_threads(threads=2)\n"
    "    t.configure_main_threads(threads=3)\n"
    "print(json.dumps({'state': t.WAIT_POLICY_STATE, 'env': os.environ.get('OMP_WAIT_POLICY'),"
    " 'warnings': [(x.category.__name__, str(x.message)) for x in w]}))\n"
)


def _run(code: str, **env: str | None) -> subprocess.CompletedProcess:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_DISPLAY_ENV")
    }
    environ.update({k: v for k, v in env.items() if v is not None})
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return out


def _report(code: str, **env: str | None) -> dict:
    return json.loads(_run(code + REPORT, **env).stdout.strip().splitlines()[-1])


def test_import_sets_passive_when_unset() -> None:
    r = _report("import gunpowder\n")
    assert (r["state"], r["env"], r["warnings"]) == ("applied", "PASSIVE", [])


def test_users_policy_is_kept() -> None:
    r = _report("import gunpowder\n", OMP_WAIT_POLICY="ACTIVE")
    assert (r["state"], r["env"], r["warnings"]) == ("user", "ACTIVE", [])
    r = _report("import torch, gunpowder\n", OMP_WAIT_POLICY="ACTIVE")
    assert (r["state"], r["warnings"]) == ("user", [])


def test_torch_imported_first_warns_once_saying_what_to_set() -> None:
    r = _report("import torch, gunpowder\n")
    assert r["state"] == "late"
    # threads=1: no OpenMP team that could spin, no warning; threads=2 warns; 3 not again
    assert len(r["warnings"]) == 1, r["warnings"]
    category, message = r["warnings"][0]
    assert category == "ThreadsWarning"
    assert "OMP_WAIT_POLICY=PASSIVE" in message and "before torch" in message


def _spin_count(code: str) -> int:
    err = _run(code, OMP_DISPLAY_ENV="VERBOSE").stderr
    match = re.search(r"GOMP_SPINCOUNT = '(\d+)'", err)
    if match is None:
        pytest.skip("torch's OpenMP runtime is not GNU OpenMP (no GOMP_SPINCOUNT shown)")
    return int(match.group(1))


def test_torchs_openmp_runtime_takes_the_setting() -> None:
    assert _spin_count("import gunpowder, torch; torch.ones(2).sum()") == 0
    # the same script with torch imported first: the runtime spins (hence the warning)
    assert _spin_count("import torch, gunpowder; torch.ones(2).sum()") > 0
