"""Blockwise processing on Dask: equals the whole-volume result, resumes after a killed worker or
an interrupted driver without recomputing done blocks, reports failing blocks, bounded memory.

One LocalCluster (2 worker processes, 1 thread each) is shared by the module. Run as a script,
this file is the driver that the interruption test starts and interrupts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zarr
from _shared import box_sum
from hypothesis import given, settings
from hypothesis import strategies as st

from gunpowder.batch import Array
from gunpowder.blockwise import (
    BlockwiseInterrupted,
    done_blocks,
    make_plan,
    plan_for,
    run_blockwise,
)
from gunpowder.geometry import Coordinate, Roi
from gunpowder.io_metadata import write_spatial_metadata
from gunpowder.nodes import ZarrSource
from gunpowder.pipeline import Node
from gunpowder.spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec

RAW = ArrayKey("RAW")
PRED = ArrayKey("BW_PRED")
VS = Coordinate(4, 2, 2)
OFFSET = Coordinate(40, 0, -20)
SHAPE = (30, 34, 38)  # input voxels; the output is 2 smaller per axis
OUT_BLOCK = (8, 10, 12)  # output block voxels: divides none of 28, 32, 36


class BoxSum(Node):
    """PRED = 3x3x3 box sum of RAW (a valid convolution), with test hooks: `log` (append the
    block's ROI and pid), `fail_at` (always raise for blocks containing that point),
    `kill_at` + `kill_trigger` (the first block containing the point while the trigger file
    exists kills its worker process), `sleep`, `noise` (a random offset drawn from the rng)."""

    def __init__(self, log=None, fail_at=None, kill_at=None, kill_trigger=None, sleep=0.0,
                 noise=False):  # fmt: skip
        self.log, self.fail_at, self.sleep, self.noise = log, fail_at, sleep, noise
        self.kill_at, self.kill_trigger = kill_at, kill_trigger

    def setup(self, spec):
        out = spec.copy()
        out[PRED] = ArraySpec(roi=spec[RAW].roi.grow(-VS, -VS), voxel_size=VS, dtype=np.float32)
        return out

    def prepare(self, request, rng):
        up = request.copy()
        want = up.pop(PRED)
        up[RAW] = ArraySpec(roi=want.roi.grow(VS, VS))
        return up, (want, float(rng.random()) if self.noise else 0.0)

    def process(self, batch, ctx):
        want, offset = ctx
        if self.fail_at is not None and want.roi.contains(self.fail_at):
            raise RuntimeError(f"broken block at {self.fail_at}")
        if self.kill_at is not None and want.roi.contains(self.kill_at):
            try:
                os.remove(self.kill_trigger)
            except FileNotFoundError:
                pass
            else:
                os._exit(1)
        time.sleep(self.sleep)
        raw = batch[RAW]
        data = box_sum(raw.data.astype(np.float32), np.float32) + np.float32(offset)
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{','.join(map(str, want.roi.begin))} {os.getpid()}\n")
        batch[PRED] = Array(data, raw.spec.replace(roi=want.roi, dtype=np.float32))
        return batch


def reference(out_block=OUT_BLOCK) -> BatchRequest:
    out = Coordinate(out_block)
    request = BatchRequest()
    request[RAW] = ArraySpec(roi=Roi((0, 0, 0), (out + 2) * VS))
    request[PRED] = ArraySpec(roi=Roi(VS, out * VS))
    return request


def pipeline(path, **kwargs):
    source = ZarrSource(path, {RAW: "raw"}, array_specs={RAW: ArraySpec(interpolatable=True)})
    return source + BoxSum(**kwargs)


def make_input(path, shape, chunks=(32, 32, 32)) -> None:
    """A uint8 volume written chunk by chunk (never whole in memory): a smooth pattern."""
    z = zarr.open_array(path, path="raw", mode="w", shape=shape, chunks=chunks, dtype=np.uint8,
                        zarr_format=2)  # fmt: skip
    write_spatial_metadata(z.attrs, VS, OFFSET)
    for begin in np.ndindex(*(-(-s // c) for s, c in zip(shape, chunks))):
        sl = tuple(slice(b * c, min((b + 1) * c, s)) for b, c, s in zip(begin, chunks, shape))
        grid = np.meshgrid(*[np.arange(s.start, s.stop) for s in sl], indexing="ij")
        z[sl] = ((grid[0] * 7 + grid[1] * 13 + grid[2] * 29) % 251).astype(np.uint8)


def read(container, dataset="pred"):
    return zarr.open_array(container, path=dataset, mode="r")[...]


def logged(log) -> list[tuple[int, ...]]:
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [tuple(int(v) for v in line.split()[0].split(",")) for line in f if line.strip()]


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)  # fmt: skip
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("bw") / "in.zarr")
    rng = np.random.default_rng(0)
    z = zarr.open_array(path, path="raw", mode="w", shape=SHAPE, chunks=(16, 16, 16),
                        dtype=np.uint8, zarr_format=2)  # fmt: skip
    raw = rng.integers(0, 255, SHAPE, dtype=np.uint8)
    z[...] = raw
    write_spatial_metadata(z.attrs, VS, OFFSET)
    return path, box_sum(raw.astype(np.float32), np.float32)


# --------------------------------------------------------------------------------------------
# the plan


@settings(max_examples=40, deadline=None)
@given(
    total=st.tuples(*[st.integers(1, 30)] * 3),
    block=st.tuples(*[st.integers(1, 12)] * 3),
    context=st.integers(0, 3),
    chunk_div=st.sampled_from([1, 2]),
)
def test_blocks_partition_the_output_along_chunks(total, block, context, chunk_div):
    block = tuple(min(b, t) for b, t in zip(block, total))
    block = tuple(b * chunk_div if b * chunk_div <= t else b for b, t in zip(block, total))
    chunks = tuple(b // chunk_div if b % chunk_div == 0 else b for b in block)
    vs = Coordinate(2, 3, 1)
    ref = BatchRequest()
    ref[RAW] = ArraySpec(roi=Roi((0, 0, 0), (Coordinate(block) + 2 * context) * vs))
    ref[PRED] = ArraySpec(roi=Roi(vs * context, Coordinate(block) * vs))
    raw_roi = Roi(vs * -5, (Coordinate(total) + 2 * context) * vs)
    provided = ProviderSpec({RAW: ArraySpec(roi=raw_roi, voxel_size=vs)})
    provided[PRED] = ArraySpec(roi=raw_roi, voxel_size=vs)
    plan = make_plan(provided, ref, {PRED: "p"}, "x.zarr", chunk_shape=chunks)
    assert plan.total_roi == raw_roi.grow(vs * -context, vs * -context)
    covered = np.zeros(total, np.int32)
    for b in plan.blocks():
        request = plan.request(b)
        assert raw_roi.contains(request[RAW].roi)  # inputs stay inside the volume
        assert request[PRED].roi.contains(b.write_roi)  # the block computes what it writes
        rel = (b.write_roi - plan.total_roi.offset) / vs
        assert rel.offset.is_multiple_of(chunks)  # a cell starts on a chunk boundary ...
        ends_at_edge = [e == t for e, t in zip(rel.end, total)]
        assert all(e or s % c == 0 for e, s, c in zip(ends_at_edge, rel.shape, chunks))
        covered[rel.to_slices()] += 1  # ... and cells partition the output
    assert (covered == 1).all()


def test_plan_rejects_bad_geometry():
    provided = ProviderSpec({RAW: ArraySpec(roi=Roi((0, 0, 0), (40, 40, 40)), voxel_size=VS)})
    provided[PRED] = provided[RAW].copy()
    with pytest.raises(ValueError, match="chunk shape"):
        make_plan(provided, reference((4, 4, 4)), {PRED: "p"}, "x.zarr", chunk_shape=(3, 4, 4))
    with pytest.raises(ValueError, match="does not fit into the provided ROIs"):
        make_plan(provided, reference((40, 4, 4)), {PRED: "p"}, "x.zarr")
    with pytest.raises(ValueError, match="smaller than one output block"):
        make_plan(provided, reference((5, 4, 4)), {PRED: "p"}, "x.zarr", Roi(VS, VS * 4))
    with pytest.raises(ValueError, match="not provided"):
        make_plan(provided, reference(), {ArrayKey("BW_OTHER"): "p"}, "x.zarr")


# --------------------------------------------------------------------------------------------
# runs


def test_two_workers_equal_one_process_and_the_definition(client, volume, tmp_path, capsys):
    src, expected = volume
    outs = {}
    for name, kwargs in (("local", {"workers": 0}), ("dask", {"client": client})):
        out = str(tmp_path / f"{name}.zarr")
        summary = run_blockwise(pipeline(src, noise=True), reference(), {PRED: "pred"}, out,
                                progress=False, seed=3, **kwargs)  # fmt: skip
        assert summary.ok and summary.done == summary.plan.num_blocks == 4 * 4 * 3
        outs[name] = read(out)
    np.testing.assert_array_equal(outs["local"], outs["dask"])  # bit-identical, seeds included
    # without noise: the definition, with the voxel size and offset of the output
    out = str(tmp_path / "plain.zarr")
    assert run_blockwise(pipeline(src), reference(), {PRED: "pred"}, out, client=client,
                         progress=False).ok  # fmt: skip
    np.testing.assert_array_equal(read(out), expected)
    attrs = zarr.open_array(out, path="pred").attrs
    assert attrs["resolution"] == list(VS) and attrs["offset"] == list(OFFSET + VS)
    # a dry run prints the plan and touches nothing
    summary = run_blockwise(pipeline(src), reference(), {PRED: "pred"}, str(tmp_path / "n.zarr"),
                            dry_run=True, progress=False)  # fmt: skip
    printed = capsys.readouterr().out
    assert "4 x 4 x 3 = 48 blocks" in printed and "(8, 10, 12) voxels" in printed
    assert summary.dry_run and not os.path.exists(tmp_path / "n.zarr")


def test_killed_worker_then_rerun(client, volume, tmp_path):
    src, expected = volume
    out, log, trigger = (str(tmp_path / n) for n in ("out.zarr", "log", "trigger"))
    open(trigger, "w").close()
    kill_at = OFFSET + VS * Coordinate(15, 17, 19)  # a block in the middle of the run
    p = pipeline(src, log=log, kill_at=kill_at, kill_trigger=trigger)
    summary = run_blockwise(p, reference(), {PRED: "pred"}, out, client=client, progress=False)
    assert not os.path.exists(trigger)  # a worker did die
    assert summary.ok, str(summary)  # Dask ran its block again elsewhere
    np.testing.assert_array_equal(read(out), expected)
    before = len(logged(log))
    again = run_blockwise(p, reference(), {PRED: "pred"}, out, client=client, progress=False)
    assert again.ok and again.done == 0 and again.skipped == again.plan.num_blocks
    assert len(logged(log)) == before  # nothing recomputed
    client.wait_for_workers(2, timeout=30)


def test_interrupted_driver_then_rerun(client, volume, tmp_path):
    src, expected = volume
    out, log = str(tmp_path / "out.zarr"), str(tmp_path / "log")
    address = client.scheduler.address
    driver = subprocess.Popen(
        [sys.executable, __file__, address, src, out, log],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    plan = plan_for(pipeline(src), reference(), {PRED: "pred"}, out)
    deadline = time.time() + 40
    while len(done_blocks(plan)) < 6 and driver.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=30)
    assert driver.returncode == 130, err
    assert "blockwise interrupted" in err and "rerun" in err
    # blocks still running on workers when the driver stopped finish on their own
    settled, last = time.time(), None
    while time.time() - settled < 0.8:
        now = (len(done_blocks(plan)), len(logged(log)))
        if now != last:
            settled, last = time.time(), now
        time.sleep(0.05)
    done_before = {plan.block(i).write_roi.begin for i in done_blocks(plan)}
    assert 6 <= len(done_before) < plan.num_blocks
    computed_before = len(logged(log))
    summary = run_blockwise(pipeline(src, log=log), reference(), {PRED: "pred"}, out,
                            client=client, progress=False)  # fmt: skip
    assert summary.ok and summary.skipped == len(done_before)
    rerun = {Coordinate(b) for b in logged(log)[computed_before:]}
    # the rerun computes exactly the blocks that were not done: their tiles' output begins
    expected_tiles = {
        plan.request(plan.block(i))[PRED].roi.begin
        for i in range(plan.num_blocks)
        if plan.block(i).write_roi.begin not in done_before
    }
    assert rerun == expected_tiles
    np.testing.assert_array_equal(read(out), expected)


def test_failing_block_is_reported_and_the_others_go_on(client, volume, tmp_path):
    src, expected = volume
    out = str(tmp_path / "out.zarr")
    bad = OFFSET + VS * 2  # inside the first block only
    summary = run_blockwise(pipeline(src, fail_at=bad), reference(), {PRED: "pred"}, out,
                            client=client, retries=1, progress=False)  # fmt: skip
    assert not summary.ok and len(summary.failed) == 1
    failed = summary.failed[0]
    assert failed.index == (0, 0, 0) and failed.write_roi.contains(bad)
    assert failed.attempts == 2 and "broken block" in failed.traceback
    text = str(summary)
    assert "FAILED block (0, 0, 0)" in text and str(failed.write_roi) in text and "rerun" in text
    assert summary.done == summary.plan.num_blocks - 1
    got = read(out)
    n = Coordinate(OUT_BLOCK)
    np.testing.assert_array_equal(got[n[0] :], expected[n[0] :])
    markers = zarr.open_array(out, path=summary.plan.done_path)[...].ravel()
    np.testing.assert_array_equal(done_blocks(summary.plan), np.flatnonzero(markers))
    assert 0 not in done_blocks(summary.plan) and len(done_blocks(summary.plan)) == summary.done
    # fixed: the rerun computes only that block
    fixed = run_blockwise(pipeline(src), reference(), {PRED: "pred"}, out, client=client,
                          progress=False)  # fmt: skip
    assert fixed.ok and fixed.done == 1
    np.testing.assert_array_equal(read(out), expected)


def test_memory_is_bounded_by_the_blocks_in_flight(client, tmp_path):
    import psutil

    shape = (258, 258, 258)  # output: 256^3 float32 = 64 MiB; blocks of 64^3 (1 MiB)
    src, out = str(tmp_path / "big.zarr"), str(tmp_path / "out.zarr")
    make_input(src, shape)
    me, samples, stop = psutil.Process(), [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(me.memory_info().rss)
            time.sleep(0.01)

    baseline = me.memory_info().rss
    thread = threading.Thread(target=sample)
    thread.start()
    try:
        summary = run_blockwise(pipeline(src), reference((64, 64, 64)), {PRED: "pred"}, out,
                                client=client, max_in_flight=4, progress=False)  # fmt: skip
    finally:
        stop.set()
        thread.join()
    assert summary.ok and summary.plan.num_blocks == 64
    output_bytes = 256**3 * 4
    assert max(samples) - baseline < output_bytes / 8, (max(samples) - baseline) / 2**20
    assert len(summary.worker_rss) == 2
    # after each worker's first block; freed block buffers stay in the worker for reuse
    # (gunpowder/allocator.py), so its RSS follows a few blocks' working set, not the output
    for first, peak, count in summary.worker_rss.values():
        assert count > 5 and peak - first < output_bytes / 4, (peak - first) / 2**20
    spot = zarr.open_array(out, path="pred")[100:102, 30:33, 200:204]
    grid = np.meshgrid(
        *[np.arange(100, 104), np.arange(30, 35), np.arange(200, 206)], indexing="ij"
    )
    raw = ((grid[0] * 7 + grid[1] * 13 + grid[2] * 29) % 251).astype(np.float32)
    np.testing.assert_array_equal(spot, box_sum(raw, np.float32))


NET_SOURCE = """
import torch

def build():
    torch.manual_seed(1)  # weights differ from the checkpoint's
    return torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3), torch.nn.ReLU(), torch.nn.Conv3d(2, 3, 3))
"""


def test_predict_command_line(client, volume, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from gunpowder.predict import main

    src, _ = volume
    (tmp_path / "net.py").write_text(NET_SOURCE)
    torch.manual_seed(7)
    trained = torch.nn.Sequential(
        torch.nn.Conv3d(1, 2, 3), torch.nn.ReLU(), torch.nn.Conv3d(2, 3, 3)
    )
    torch.save({"model_state_dict": trained.state_dict()}, tmp_path / "ckpt")
    raw = zarr.open_array(src, path="raw")[...]
    with torch.no_grad():
        expected = trained(torch.as_tensor(raw[None, None] / 255.0, dtype=torch.float32))[0]
    common = ["--model", f"{tmp_path / 'net.py'}:build", "--checkpoint", str(tmp_path / "ckpt"),
              "--input", f"{src}/raw", "--input-shape", "14", "16", "18", "--no-progress",
              "--device", "cpu"]  # fmt: skip
    out = str(tmp_path / "pred.zarr")
    assert main([*common, "--output", f"{out}/volumes/aff", "--dry-run"]) == 0
    printed = capsys.readouterr()
    assert "3 x 3 x 3 = 27 blocks" in printed.out and "(10, 12, 14) voxels" in printed.out
    assert not os.path.exists(out)
    address = ["--scheduler-address", client.scheduler.address]
    assert main([*common, "--output", f"{out}/volumes/aff", *address]) == 0
    got = zarr.open_array(out, path="volumes/aff")
    assert got.shape == (3, 26, 30, 34) and got.attrs["offset"] == list(OFFSET + VS * 2)
    np.testing.assert_allclose(got[...], expected.numpy(), rtol=1e-5, atol=1e-6)
    # the same command again resumes: everything is done already
    assert main([*common, "--output", f"{out}/volumes/aff", "--workers", "0"]) == 0
    assert "0 computed now, 27 already done" in capsys.readouterr().err
    assert main([*common, "--output", f"{out}.h5/x"]) == 2  # outputs must be zarr
    # an HDF5 input, in this process
    import h5py

    with h5py.File(tmp_path / "raw.hdf", "w") as f:
        f["raw"] = raw
        f["raw"].attrs["resolution"], f["raw"].attrs["offset"] = list(VS), list(OFFSET)
    hdf = [a if a != f"{src}/raw" else str(tmp_path / "raw.hdf/raw") for a in common]
    assert main([*hdf, "--output", f"{tmp_path / 'h.zarr'}/aff", "--workers", "0"]) == 0
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "h.zarr"), path="aff")[...],
                                  got[...])  # fmt: skip


def _driver(address: str, src: str, out: str, log: str) -> int:
    """The interruption test's driver: a slow run on the test's cluster, until SIGINT."""
    try:
        run_blockwise(pipeline(src, log=log, sleep=0.15), reference(), {PRED: "pred"}, out,
                      scheduler_address=address, max_in_flight=2, progress=False)  # fmt: skip
    except BlockwiseInterrupted as e:
        print(e.summary, file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(_driver(*sys.argv[1:5]))
