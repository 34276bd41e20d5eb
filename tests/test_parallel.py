"""PreCache and stream(workers=N): same batches for any number of workers, clear failures,
no worker left behind (exceptions, SIGKILL, Ctrl-C, garbage collection), the pipe wire format."""

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gunpowder as gp
from gunpowder.errors import PipelineSetupError
from gunpowder.nodes import PreCache
from gunpowder.parallel import (
    SlotReceiver,
    SlotSender,
    WorkerDiedError,
    WorkerError,
    in_worker,
    make_batch,
    receive_message,
    send_message,
    worker_pids,
)
from gunpowder.pipeline import ArrayFunction, Node, derive_seed

pytestmark = pytest.mark.timeout(60)

RAW = gp.ArrayKey("RAW")
LABELS = gp.ArrayKey("LABELS")
VS = gp.Coordinate(2, 1, 1)


class Jitter(Node):
    """Random: shifts the request by a drawn offset and adds drawn noise to RAW."""

    def prepare(self, request, rng):
        shift = gp.Coordinate(2 * int(rng.integers(0, 3)), int(rng.integers(0, 5)), 0)
        upstream = request.copy()
        for key, spec in upstream.items():
            upstream[key] = spec.replace(roi=spec.roi.shift(shift))
        noise = rng.normal(size=request[RAW].roi.shape / VS).astype(np.float32)
        return upstream, (shift, noise)

    def process(self, batch, ctx):
        shift, noise = ctx
        out = gp.Batch()
        for key, array in batch.arrays.items():
            out[key] = gp.Array(array.data, array.spec.replace(roi=array.spec.roi.shift(-shift)))
        out[RAW].data = out[RAW].data + noise
        return out


class Sleep(Node):
    def __init__(self, seconds):
        self.seconds = seconds

    def process(self, batch, ctx):
        time.sleep(self.seconds)
        return batch


class Explode(Node):
    """Raises in process for every request (only in a worker if `only_in_worker`)."""

    def __init__(self, only_in_worker=False):
        self.only_in_worker = only_in_worker

    def process(self, batch, ctx):
        if in_worker() or not self.only_in_worker:
            raise ValueError("boom from Explode")
        return batch


class FailSetupInWorker(Node):
    def setup(self, upstream_spec):
        if in_worker():
            raise RuntimeError("no such file in this process")
        return upstream_spec


class Unpicklable(Node):
    def __init__(self):
        self.lock = threading.Lock()


def to_labels(data):
    return (data * 1000).astype(np.uint64)


def sources():
    shape = (12, 40, 30)
    raw = np.random.default_rng(0).random(shape, dtype=np.float32)
    roi = gp.Roi((0, 0, 0), gp.Coordinate(shape) * VS)
    source = gp.ArraySource(RAW, gp.Array(raw, gp.ArraySpec(roi=roi, voxel_size=VS)))
    return source + ArrayFunction(RAW, to_labels, target=LABELS, dtype=np.uint64)


def upstream():
    return sources() + Jitter()


def make_request(size=(8, 20, 20), seed=None):
    request = gp.BatchRequest(random_seed=seed)
    roi = gp.Roi((4, 8, 4), gp.Coordinate(size) * VS)
    request[RAW] = gp.ArraySpec(roi=roi)
    request[LABELS] = gp.ArraySpec(roi=roi)
    return request


def as_bytes(batch):
    return {
        k: (a.data.dtype.str, a.data.shape, a.data.tobytes(), a.spec.roi)
        for k, a in batch.arrays.items()
    }


def precache_batches(num_workers, n=5, seed=123, start_method=None, request=None):
    node = PreCache(cache_size=4, num_workers=num_workers, start_method=start_method)
    pipeline = upstream() + node
    request = make_request() if request is None else request
    with gp.build(pipeline):
        first = pipeline.request_batch(request.with_seed(seed))  # made here if no worker is up
        if num_workers:
            wait_ready(node, num_workers)  # the rest come from the workers
        rest = [pipeline.request_batch(request) for _ in range(n - 1)]  # unseeded: fresh seeds
    return [first] + rest


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pids, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def started(get_pids, n, timeout=20.0):
    """The pids once `n` workers run (they start in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = get_pids()
        if len(pids) == n and all(alive(p) for p in pids):
            return pids
        time.sleep(0.02)
    raise AssertionError(f"{n} workers did not start within {timeout} s: {get_pids()}")


def wait_ready(node, n, timeout=20.0):
    core = node._pool._core
    deadline = time.monotonic() + timeout
    while sum(w.ready for w in list(core.workers)) < n:
        assert time.monotonic() < deadline, f"{n} workers not ready within {timeout} s"
        time.sleep(0.02)


def request_until_workers_answer(pipeline, timeout=20.0):
    """Request batches for a while: the first ones may be made here while the workers start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pipeline.request_batch(make_request())


def our_children():
    return [p for p in __import__("multiprocessing").active_children() if "gunpowder" in p.name]


# --------------------------------------------------------------------------------------------
# same seeds, same bytes


def run_batches(n=5, seed=123):
    """What `precache_batches` must give: the seeded first request its own seed's batch, the
    unseeded k-th request after it the run's stream, `derive_seed(seed, k)`."""
    p = upstream()
    seeds = [seed] + [derive_seed(seed, k) for k in range(1, n)]
    with gp.build(p):
        return [as_bytes(make_batch(p, make_request().with_seed(s))) for s in seeds]


def test_precache_batches_are_identical_for_0_1_3_workers_and_equal_the_upstream_batches():
    expected = run_batches()
    for workers in (0, 1, 3):
        got = [as_bytes(b) for b in precache_batches(workers)]
        assert got == expected, f"num_workers={workers}"
    assert not our_children()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_start_methods_give_the_same_batches(method):
    expected = [as_bytes(b) for b in precache_batches(0, n=3)]
    assert [as_bytes(b) for b in precache_batches(2, n=3, start_method=method)] == expected


def test_stream_with_workers_equals_stream_in_process():
    pipeline = upstream()
    expected = [as_bytes(b) for b in gp.stream(pipeline, make_request(), seed=9, num_batches=6)]
    got = [
        as_bytes(b)
        for b in gp.stream(pipeline, make_request(), seed=9, num_batches=6, workers=2, cache_size=3)
    ]
    assert got == expected
    assert not our_children()


def test_kth_unseeded_batch_is_the_upstream_batch_for_the_derived_seed():
    batches = precache_batches(2, n=3, seed=77)
    p = upstream()
    with gp.build(p):
        for k, batch in enumerate(batches):
            seed = 77 if k == 0 else derive_seed(77, k)
            again = make_batch(p, make_request().with_seed(seed))
            assert as_bytes(again) == as_bytes(batch)
            assert batch.random_seed is not None


def test_a_different_request_restarts_the_run_from_its_seed():
    small, large = make_request((4, 10, 10)), make_request((6, 12, 12))
    node = PreCache(cache_size=3, num_workers=2)
    pipeline = upstream() + node
    with gp.build(pipeline):
        a = [pipeline.request_batch(small.with_seed(5)), pipeline.request_batch(small)]
        b = [pipeline.request_batch(large.with_seed(6)), pipeline.request_batch(large)]
        c = pipeline.request_batch(small.with_seed(7))
    p = upstream()
    with gp.build(p):
        for k, (s_a, s_b) in enumerate([(5, 6), (derive_seed(5, 1), derive_seed(6, 1))]):
            assert as_bytes(a[k]) == as_bytes(make_batch(p, small.with_seed(s_a)))
            assert as_bytes(b[k]) == as_bytes(make_batch(p, large.with_seed(s_b)))
        assert as_bytes(c) == as_bytes(make_batch(p, small.with_seed(7)))


def test_nested_precache_in_a_worker_computes_in_process_with_the_same_result():
    inner = upstream() + PreCache(cache_size=2, num_workers=2)
    expected = [as_bytes(b) for b in gp.stream(inner, make_request(), seed=3, num_batches=3)]
    got = gp.stream(
        upstream() + PreCache(cache_size=2, num_workers=2),
        make_request(),
        seed=3,
        num_batches=3,
        workers=1,
    )
    assert [as_bytes(b) for b in got] == expected


def test_profiling_stats_travel_with_batches_from_workers():
    batch = precache_batches(2, n=2)[-1]
    names = set(batch.profiling_stats.node_names())
    assert {"ArraySource", "Jitter", "PreCache"} <= names
    summary = batch.profiling_stats.get_timing_summary("Jitter", "process")
    assert summary is not None and summary.counts() == 1


# --------------------------------------------------------------------------------------------
# failures


def test_an_exception_in_a_worker_names_the_node_and_carries_the_traceback():
    pipeline = upstream() + Explode(only_in_worker=True) + PreCache(cache_size=2, num_workers=2)
    with gp.build(pipeline):
        with pytest.raises(WorkerError) as info:
            request_until_workers_answer(pipeline)
        # the pool survives a batch's error: the next batch fails the same way, no hang
        with pytest.raises(WorkerError):
            pipeline.request_batch(make_request())
    err = info.value
    assert err.node_name == "Explode"
    assert "boom from Explode" in str(err)
    assert "raise ValueError" in err.worker_traceback
    assert "test_parallel.py" in str(err)
    assert isinstance(err, gp.PipelineRequestError)
    assert not our_children()


def test_an_exception_in_a_stream_worker_propagates():
    with pytest.raises(WorkerError, match="Explode"):
        list(gp.stream(upstream() + Explode(), make_request(), seed=1, num_batches=3, workers=2))
    assert not our_children()


def test_a_killed_worker_raises_within_seconds_and_the_others_stop():
    node = PreCache(cache_size=4, num_workers=2)
    pipeline = upstream() + Sleep(0.2) + node
    with gp.build(pipeline):
        pipeline.request_batch(make_request())
        pids = started(lambda: node.worker_pids, 2)
        os.kill(pids[0], signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(WorkerDiedError, match="SIGKILL") as info:
            for _ in range(20):
                pipeline.request_batch(make_request())
        assert time.monotonic() - t0 < 5
        assert info.value.node_name == "PreCache"
        assert not wait_gone(pids)  # the surviving worker was stopped too
        with pytest.raises(WorkerDiedError):  # and the pool stays failed
            pipeline.request_batch(make_request())


def test_setup_failing_in_a_worker_is_a_setup_error_naming_the_node():
    pipeline = upstream() + FailSetupInWorker() + PreCache(cache_size=2, num_workers=1)
    with gp.build(pipeline):
        with pytest.raises(PipelineSetupError, match="FailSetupInWorker.*no such file") as info:
            request_until_workers_answer(pipeline)
    assert info.value.node_name == "FailSetupInWorker"


def test_an_unpicklable_node_is_named_for_spawn():
    pipeline = (
        upstream() + Unpicklable() + PreCache(cache_size=2, num_workers=1, start_method="spawn")
    )
    with gp.build(pipeline):
        with pytest.raises(PipelineSetupError, match="Unpicklable.*fork"):
            pipeline.request_batch(make_request())


# --------------------------------------------------------------------------------------------
# no worker outlives its owner


def test_no_worker_remains_after_build_exit_or_error():
    node = PreCache(cache_size=4, num_workers=3)
    pipeline = upstream() + node
    with pytest.raises(KeyError):
        with gp.build(pipeline):
            pipeline.request_batch(make_request())
            pids = started(lambda: node.worker_pids, 3)
            raise KeyError("user error")
    assert not wait_gone(pids)
    assert not our_children()
    assert not set(pids) & set(worker_pids())


def test_garbage_collection_stops_workers():
    batches = gp.stream(upstream(), make_request(), seed=1, workers=2)
    next(batches)
    pids = started(worker_pids, 2)
    del batches
    gc.collect()
    assert not wait_gone(pids)

    node = PreCache(cache_size=2, num_workers=2)
    pipeline = upstream() + node
    pipeline.setup()  # never torn down: only garbage collection can stop the workers
    pipeline.request_batch(make_request())
    core = node._pool._core  # not the node: the node must be collectable
    pids = started(lambda: core.pids, 2)
    del pipeline, node
    gc.collect()
    assert not wait_gone(pids)


CTRL_C_SCRIPT = """
import sys, time
import numpy as np
import gunpowder as gp
from gunpowder.parallel import PreCache
from gunpowder.pipeline import Node

RAW = gp.ArrayKey("RAW")

class Slow(Node):
    def process(self, batch, ctx):
        time.sleep(0.3)
        return batch

if __name__ == "__main__":
    node = PreCache(cache_size=4, num_workers=2, start_method=sys.argv[1])
    pipeline = gp.ArraySource(RAW, np.zeros((8, 8, 8), np.float32)) + Slow() + node
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (4, 4, 4)))
    with gp.build(pipeline):
        while len(node.worker_pids) < 2:
            pipeline.request_batch(request)
        print(" ".join(map(str, node.worker_pids)), flush=True)
        while True:
            pipeline.request_batch(request)
"""


@pytest.mark.parametrize("method", ["forkserver", "fork"])
def test_ctrl_c_stops_all_workers_and_returns(tmp_path, method):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(CTRL_C_SCRIPT))
    proc = subprocess.Popen(
        [sys.executable, str(script), method],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2, proc.stderr.read()
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole group
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "KeyboardInterrupt" in proc.stderr.read()
    assert not wait_gone(pids)


# --------------------------------------------------------------------------------------------
# the wire


def _roundtrip(message, sender=None, receiver=None):
    r, w = os.pipe()
    try:
        writer = threading.Thread(target=send_message, args=(w, message, sender))
        writer.start()
        got = receive_message(r, receiver)
        writer.join()
    finally:
        os.close(r)
        os.close(w)
    return got


@settings(max_examples=25, deadline=None)
@given(
    arrays=st.lists(
        hnp.arrays(
            dtype=st.sampled_from([np.uint8, np.float32, np.int64, np.uint64, np.bool_]),
            shape=hnp.array_shapes(min_dims=0, max_dims=4, max_side=40),
        ),
        max_size=4,
    ),
    transpose=st.booleans(),
)
def test_messages_cross_the_pipe_unchanged(arrays, transpose):
    if transpose:
        arrays = [a.T for a in arrays] + [a[..., ::2] for a in arrays if a.ndim]
    got = _roundtrip(("batch", arrays))
    assert got[0] == "batch"
    for a, b in zip(arrays, got[1], strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def test_large_arrays_travel_out_of_band_and_arrive_writable():
    big = np.arange(3_000_000, dtype=np.float32).reshape(30, 100, 1000)
    batch = gp.Batch()
    batch[RAW] = gp.Array(big, gp.ArraySpec(roi=gp.Roi((0, 0, 0), (30, 100, 1000))))
    got = _roundtrip(batch)
    data = got[RAW].data
    assert isinstance(data.base, (bytearray, memoryview)) or data.base is not None
    np.testing.assert_array_equal(data, big)
    data[0, 0, 0] = -1  # writable: nodes downstream may work in place


def test_shared_memory_slots_are_reused_once_the_arrays_are_gone(tmp_path):
    sender = SlotSender(f"{tmp_path}/slot-")
    receiver = SlotReceiver(on_free=lambda slot: sender.free([slot]))
    big = np.arange(600_000, dtype=np.float32).reshape(600, 1000)  # 2.4 MB: goes in a slot
    for k in range(5):
        got = _roundtrip((k, big.T), sender, receiver)
        np.testing.assert_array_equal(got[1], big.T)
        assert not list(tmp_path.iterdir())  # the receiver unlinked the slot file on mapping
        del got  # the last array of the message: its slot is free again
    assert len(sender.slots) == 1 and len(receiver.maps) == 1
    kept = _roundtrip(big, sender, receiver)  # held: the next message needs another slot
    again = _roundtrip(big + 1, sender, receiver)
    assert len(sender.slots) == 2
    np.testing.assert_array_equal(kept, big)
    np.testing.assert_array_equal(again, big + 1)
    huge = np.zeros(2_000_000, np.float32)  # too big for the free slots: they are retired
    del kept, again
    _roundtrip(huge, sender, receiver)
    assert len(sender.slots) == 1 and len(receiver.maps) == 1


def test_large_batches_from_workers_use_few_slots_and_leave_no_files():
    prefix_glob = f"/dev/shm/gunpowder-{os.getpid()}-*"
    node = PreCache(cache_size=2, num_workers=1)
    raw = np.ones((20, 160, 160), np.float32)
    source = gp.ArraySource(RAW, gp.Array(raw, gp.ArraySpec(gp.Roi((0, 0, 0), (40, 160, 160)), VS)))
    labels = ArrayFunction(RAW, to_labels, target=LABELS, dtype=np.uint64)
    pipeline = source + labels + Jitter() + node
    request = make_request((8, 120, 120))  # 1.4 MB of arrays per batch: through a slot
    with gp.build(pipeline):
        pipeline.request_batch(request)
        core = node._pool._core
        deadline = time.monotonic() + 20
        while not (core.workers and core.workers[0].ready) and time.monotonic() < deadline:
            time.sleep(0.02)
        for _ in range(12):
            batch = pipeline.request_batch(request)
            assert batch[LABELS].data.shape == (8, 120, 120)
        maps = core.workers[0].receiver.maps
        assert 1 <= len(maps) <= 5  # cache_size + the batch in hand, not one per batch
    assert not __import__("glob").glob(prefix_glob)
