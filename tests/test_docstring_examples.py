"""Every public node's `Example::` runs: a docstring example that does not is a bug.

Each example is executed in a namespace where its free names mean something (modules,
keys, small in-memory sources, models, files in a temporary folder; see
tests/_example_context.py); a pipeline it leaves is built and asked for one small batch.
"""

from __future__ import annotations

import numpy as np
import pytest
from _example_context import (
    extract_example,
    imported_modules,
    needs_torch,
    public_nodes,
    run_example,
)

import gunpowder as gp

# examples known to be wrong; strict: fixing the docstring turns the test red until the
# mark is removed
# examples known to be wrong (each a strict xfail, so fixing the docstring turns it red):
# none at present
WRONG: dict[str, str] = {}


def _params() -> list:
    params = []
    for name, cls in public_nodes():
        example = extract_example(name, cls)
        marks = []
        if name in WRONG:
            marks.append(
                pytest.mark.xfail(reason=f"docstring example wrong: {WRONG[name]}", strict=True)
            )
        params.append(pytest.param(name, example, id=name, marks=marks))
    return params


@pytest.mark.parametrize("name,example", _params())
def test_docstring_example_runs(name, example, tmp_path, monkeypatch):
    assert example is not None, f"{name}: docstring has no Example:: block"
    for module in sorted(
        imported_modules(example.code) | ({"torch"} if needs_torch(example) else set())
    ):
        pytest.importorskip(module)  # optional dependencies (torch, monai, torchio)
    monkeypatch.chdir(tmp_path)
    try:
        results = run_example(example, tmp_path)
    except Exception as e:
        e.add_note(f"in the Example:: of {name}, {example.file}:{example.line}")
        raise
    for target, request, batch in results:
        for key, spec in request.items():
            assert key in batch, f"{name}: `{target}` gave no {key} for {request}"
            if isinstance(key, gp.ArrayKey) and spec.roi is not None:
                array = batch[key]
                voxels = tuple(spec.roi.shape / array.spec.voxel_size)
                assert array.data.shape[-len(voxels) :] == voxels, (name, key)
                assert np.isfinite(array.data.astype(np.float64)).all(), (name, key)
            elif isinstance(key, gp.GraphKey):
                assert len(list(batch[key].nodes)) > 0, f"{name}: {key} is empty in {request}"
