"""DaisyRequestBlocks: blocks handed out by a daisy scheduler are requested upstream at their
read/write ROIs; with a real `daisy.run_blockwise` (worker processes) the blocks written by
ZarrWrite into a prepared dataset assemble the whole output."""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import zarr

from gunpowder.batch import Array
from gunpowder.errors import PipelineRequestError
from gunpowder.geometry import Coordinate, Roi
from gunpowder.nodes import ArraySource, ZarrWrite
from gunpowder.nodes.daisy_request_blocks import DaisyRequestBlocks
from gunpowder.nodes.hdf5like_write_base import open_or_create_zarr
from gunpowder.pipeline import Node, build
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest

RAW = ArrayKey("RAW")
OUT = ArrayKey("DAISY_OUT")


class Inner(Node):
    """A 'valid convolution' of one voxel: OUT is RAW + 1 without its one-voxel border."""

    def setup(self, spec):
        out = spec.copy()
        vs = spec[RAW].voxel_size
        out[OUT] = spec[RAW].replace(roi=spec[RAW].roi.grow(-vs, -vs))
        return out

    def prepare(self, request, rng):
        up = request.copy()
        want = up.pop(OUT)
        vs = self.upstream_spec[RAW].voxel_size
        up[RAW] = ArraySpec(roi=want.roi.grow(vs, vs))
        return up, None

    def process(self, batch, ctx):
        raw = batch[RAW]
        vs = raw.spec.voxel_size
        data = raw.data[(slice(1, -1),) * raw.data.ndim] + 1
        batch[OUT] = Array(data, raw.spec.replace(roi=raw.spec.roi.grow(-vs, -vs)))
        return batch


class Recorder(Node):
    def __init__(self):
        self.seen = []
        self.lock = threading.Lock()

    def prepare(self, request, rng):
        with self.lock:
            self.seen.append(request.copy())
        return request, None


@dataclass
class FakeBlock:
    block_id: Any
    read_roi: Roi
    write_roi: Roi


class FakeClient:
    """daisy's worker protocol: `acquire_block()` is a context manager yielding blocks, then
    None; it records which blocks succeeded or failed (`old=True`: daisy 0.x's
    acquire/release_block instead)."""

    def __init__(self, blocks, log, old=False):
        self.blocks, self.log, self.old = blocks, log, old

    def _next(self):
        with self.log["lock"]:
            return self.blocks.pop(0) if self.blocks else None

    def acquire_block(self):
        if self.old:
            return self._next()

        @contextlib.contextmanager
        def cm():
            block = self._next()
            try:
                yield block
            except Exception:
                self.log["failed"].append(block.block_id)
                raise
            if block is not None:
                self.log["done"].append(block.block_id)

        return cm()

    def release_block(self, block, ret):
        self.log["failed" if ret else "done"].append(block.block_id)


def blocks_of(total: Roi, read: Roi, write: Roi):
    out = []
    shift_range = [range(0, t - r + 1, w) for t, r, w in zip(total.shape, read.shape, write.shape)]
    import itertools

    for i, shift in enumerate(itertools.product(*shift_range)):
        s = Coordinate(shift) + total.offset
        out.append(FakeBlock(i, read.shift(s), write.shift(s)))
    return out


def make(raw_shape=(10, 10)):
    data = np.random.default_rng(0).random(raw_shape).astype(np.float32)
    return Array(data, ArraySpec(roi=Roi((0, 0), raw_shape), voxel_size=(1, 1)))


@pytest.mark.parametrize("workers,old", [(1, False), (3, False), (1, True)])
def test_every_block_is_requested_at_its_read_and_write_roi(workers, old):
    array = make()
    read, write = Roi((0, 0), (4, 4)), Roi((1, 1), (2, 2))
    blocks = blocks_of(array.spec.roi, read, write)
    expected = {b.block_id: b for b in blocks}
    log = {"lock": threading.Lock(), "done": [], "failed": []}
    finished = []
    reference = BatchRequest({RAW: ArraySpec(roi=read), OUT: ArraySpec(roi=write)})
    node = DaisyRequestBlocks(
        reference,
        {RAW: "read_roi", OUT: "write_roi"},
        num_workers=workers,
        block_done_callback=lambda b, start, duration: finished.append((b.block_id, duration)),
    )
    node.client_factory = lambda: FakeClient(blocks, log, old)
    recorder = Recorder()
    pipeline = ArraySource(RAW, array) + Inner() + recorder + node
    with build(pipeline) as p:
        batch = p.request_batch(BatchRequest())
    assert len(batch) == 0
    assert sorted(log["done"]) == sorted(expected) and not log["failed"]
    assert sorted(i for i, _ in finished) == sorted(expected)
    assert all(d >= 0 for _, d in finished)
    got = sorted((r[RAW].roi.begin, r[OUT].roi.begin) for r in recorder.seen)
    want = sorted((b.read_roi.begin, b.write_roi.begin) for b in expected.values())
    assert got == want
    assert all(r[OUT].roi.shape == write.shape for r in recorder.seen)


def test_a_failing_block_is_reported_failed_and_raised():
    array = make()
    read, write = Roi((0, 0), (4, 4)), Roi((1, 1), (2, 2))
    blocks = blocks_of(array.spec.roi, read, write)
    blocks[1] = FakeBlock(99, Roi((8, 8), (4, 4)), Roi((9, 9), (2, 2)))  # outside the source
    log = {"lock": threading.Lock(), "done": [], "failed": []}
    node = DaisyRequestBlocks(
        BatchRequest({RAW: ArraySpec(roi=read), OUT: ArraySpec(roi=write)}),
        {RAW: "read_roi", OUT: "write_roi"},
    )
    node.client_factory = lambda: FakeClient(blocks, log)
    with build(ArraySource(RAW, array) + Inner() + node) as p:
        with pytest.raises(PipelineRequestError, match="outside the provided ROI"):
            p.request_batch(BatchRequest())
    assert log["failed"] == [99] and log["done"] == [0]


def test_arguments_and_requests_are_checked():
    ref = BatchRequest({RAW: ArraySpec(roi=Roi((0, 0), (4, 4)))})
    with pytest.raises(ValueError, match="roi_map does not map"):
        DaisyRequestBlocks(ref, {})
    with pytest.raises(ValueError, match="'read_roi' or 'write_roi'"):
        DaisyRequestBlocks(ref, {RAW: "roi"})
    node = DaisyRequestBlocks(ref, {RAW: "read_roi"})
    node.client_factory = lambda: pytest.fail("no client for a bad request")
    with build(ArraySource(RAW, make()) + node) as p:
        with pytest.raises(PipelineRequestError, match="request must be empty"):
            p.request_batch(BatchRequest({RAW: ArraySpec(roi=Roi((0, 0), (4, 4)))}))


@pytest.mark.skipif(importlib.util.find_spec("daisy") is None, reason="daisy is not installed")
def test_real_daisy_run_blockwise_writes_the_whole_output(tmp_path, monkeypatch):
    """daisy.run_blockwise starts worker processes; each builds the pipeline and drains its
    blocks. ZarrWrite fills a dataset prepared over the total write ROI (its upstream ROI is
    larger: it writes only inside the dataset)."""
    import daisy

    array = make((14, 14))
    total = array.spec.roi
    read, write = Roi((0, 0), (6, 6)), Roi((1, 1), (4, 4))
    out_roi = total.grow((-1, -1), (-1, -1))
    container = str(tmp_path / "out.zarr")
    open_or_create_zarr(container, "out", out_roi, Coordinate(1, 1), (), np.float32, (4, 4))
    done_file = str(tmp_path / "done.txt")

    def worker():
        reference = BatchRequest({RAW: ArraySpec(roi=read), OUT: ArraySpec(roi=write)})

        def record(block, start, duration):
            with open(done_file, "a") as f:
                f.write(f"{block.write_roi.begin}\n")

        pipeline = (
            ArraySource(RAW, array)
            + Inner()
            + ZarrWrite({OUT: "out"}, store=container)
            + DaisyRequestBlocks(
                reference, {RAW: "read_roi", OUT: "write_roi"}, block_done_callback=record
            )
        )
        with build(pipeline) as p:
            p.request_batch(BatchRequest())

    monkeypatch.chdir(tmp_path)  # daisy writes its worker logs to ./daisy_logs
    daisy.set_tracking_basedir(str(tmp_path / "tracking"))
    task = daisy.Task(
        task_id="gp_daisy_test",
        total_roi=total,
        read_roi=read,
        write_roi=write,
        process_function=worker,
        read_write_conflict=False,
        max_workers=2,
        fit="valid",
    )
    assert daisy.run_blockwise([task], progress=False, summary=False)
    stored = zarr.open_array(container, path="out", mode="r")[:]
    np.testing.assert_array_equal(stored, array.data[1:13, 1:13] + 1)
    with open(done_file) as f:
        lines = f.read().splitlines()
    assert len(lines) == len(set(lines)) == 9  # 3 x 3 blocks, each once


def test_block_requests_do_not_depend_on_the_worker():
    """A block's request seed comes from the run's seed and the block id only."""
    ref = BatchRequest({RAW: ArraySpec(roi=Roi((0, 0), (4, 4)))})
    node = DaisyRequestBlocks(ref, {RAW: "read_roi"})
    from gunpowder.nodes.daisy_request_blocks import _block_seed

    a = FakeBlock(("task", 3), Roi((0, 0), (4, 4)), Roi((0, 0), (4, 4)))
    b = FakeBlock(("task", 4), Roi((0, 0), (4, 4)), Roi((0, 0), (4, 4)))
    assert _block_seed(7, a) == _block_seed(7, a) != _block_seed(7, b)
    assert node.block_request(a, 5).random_seed == 5
    assert node.block_request(a)[RAW].roi == a.read_roi
