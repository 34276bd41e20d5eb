"""Building a pipeline makes glibc keep freed batch-sized buffers for reuse: a second buffer
of the same size takes no new page faults (it did without, every batch)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

_CHILD = textwrap.dedent(
    """
    import resource, numpy as np, gunpowder as gp
    key = gp.ArrayKey("RAW")
    source = gp.ArraySource(key, gp.Array(np.zeros((4, 4), np.float32), gp.ArraySpec(
        roi=gp.Roi((0, 0), (4, 4)), voxel_size=gp.Coordinate((1, 1)))))
    with gp.build(source):  # building a pipeline configures the allocator
        pass
    n = 64 << 20
    a = np.ones(n // 8); del a  # a batch-sized buffer, touched and freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    b = np.ones(n // 8); del b  # the next batch's buffer of the same size
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _faults(env_value: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "GUNPOWDER_MALLOC"}
    if env_value is not None:
        env["GUNPOWDER_MALLOC"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


def test_freed_buffers_are_reused_after_a_pipeline_is_built():
    # at least one fault per 2 MiB (numpy asks for huge pages for large buffers), more with
    # 4 KiB pages
    least = (64 << 20) // (2 << 20)
    system = _faults("system")
    configured = _faults(None)
    assert system >= least, f"glibc did not map the buffer afresh ({system} faults)"
    assert configured <= system // 10, f"{configured} page faults for a reused buffer"
