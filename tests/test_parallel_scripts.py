"""A 1.x-style script with PreCache at top level (no `__main__` guard) runs unchanged."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import gunpowder as gp

    raw = gp.ArrayKey("RAW")

    class AddOne(gp.BatchFilter):
        def process(self, batch, request):
            batch[raw].data = batch[raw].data + 1

    data = np.arange(400, dtype=np.float32).reshape(20, 20)
    spec = gp.ArraySpec(roi=gp.Roi((0, 0), (20, 20)), voxel_size=(1, 1))
    pipeline = gp.ArraySource(raw, gp.Array(data, spec)) + gp.RandomLocation() + AddOne()
    pipeline += gp.PreCache(cache_size=4, num_workers=2)
    request = gp.BatchRequest(random_seed=1)
    request.add(raw, (4, 4))
    with gp.build(pipeline):
        sums = [float(pipeline.request_batch(request)[raw].data.sum()) for _ in range(4)]
    print("sums", sums)
    """
)


def test_unguarded_script_with_precache_runs(tmp_path):
    script = tmp_path / "train_like_1x.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sums" in done.stdout
