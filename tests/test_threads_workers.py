"""A PreCache worker decodes zarr chunks with one thread (its share of the cores), not with
zarr's default pool of cores + 4 threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zarr

import gunpowder as gp

RAW = gp.ArrayKey("RAW")

pytestmark = pytest.mark.timeout(120)


class _RecordThreads(gp.BatchFilter):
    """Puts the names of the threads alive in this process into the array's attrs."""

    def process(self, batch, request):
        array = batch[RAW]
        names = sorted(t.name for t in threading.enumerate())
        batch[RAW] = gp.Array(array.data, array.spec, {**array.attrs, "threads": names})


def test_a_worker_decodes_zarr_with_one_thread(tmp_path):
    path = str(tmp_path / "raw.zarr")
    group = zarr.open_group(path, mode="w")
    a = group.create_array("raw", shape=(32, 128, 128), chunks=(8, 32, 32), dtype="uint8")
    a[:] = np.arange(32 * 128 * 128, dtype=np.uint64).reshape(a.shape) % 251
    pipeline = (
        gp.ZarrSource(path, {RAW: "raw"}, {RAW: gp.ArraySpec(interpolatable=True)})
        + _RecordThreads()
        + gp.PreCache(num_workers=1, cache_size=2)
    )
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (32, 128, 128)))
    with gp.build(pipeline):
        batches = [pipeline.request_batch(request) for _ in range(6)]
    # batches made in a worker (it watches its parent); the first ones are made here while
    # the worker starts
    worker_threads = [
        names for b in batches if "gunpowder-parent-watch" in (names := b[RAW].attrs["threads"])
    ]
    assert worker_threads, "no batch came from the worker"
    np.testing.assert_array_equal(batches[-1][RAW].data, a[:])
    for names in worker_threads:
        pool = [n for n in names if n.startswith(("zarr_pool", "asyncio_"))]
        assert len(pool) <= 1, f"the worker runs {len(pool)} decoding threads: {names}"
