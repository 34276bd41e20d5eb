"""PreCache honours each request's seed: the batch a seed gives without PreCache, in any order,
for any number of workers; predicted seeds are computed ahead, others on demand."""

import numpy as np
import pytest

import gunpowder as gp
from gunpowder.nodes import PreCache
from gunpowder.nodes.precache import progression_plan, stream_plan
from gunpowder.parallel import in_worker, make_batch
from gunpowder.pipeline import ArrayFunction, Node, derive_seed

pytestmark = pytest.mark.timeout(90)

RAW = gp.ArrayKey("RAW")
LABELS = gp.ArrayKey("LABELS")
THREADS = gp.ArrayKey("THREADS")
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


class ThreadCount(Node):
    """Adds THREADS: the largest BLAS/OpenMP thread pool of the process that made the batch."""

    def setup(self, upstream_spec):
        spec = upstream_spec.copy()
        spec[THREADS] = gp.ArraySpec(nonspatial=True, dtype=np.int64)
        return spec

    def prepare(self, request, rng):
        upstream = request.copy()
        upstream.pop(THREADS, None)
        return upstream, THREADS in request

    def process(self, batch, wanted):
        if wanted:
            from threadpoolctl import threadpool_info

            n = max((info["num_threads"] for info in threadpool_info()), default=1)
            value = np.array([n, int(in_worker())], dtype=np.int64)
            batch[THREADS] = gp.Array(value, gp.ArraySpec(nonspatial=True, dtype=np.int64))
        return batch


def upstream():
    shape = (12, 40, 30)
    raw = np.random.default_rng(0).random(shape, dtype=np.float32)
    roi = gp.Roi((0, 0, 0), gp.Coordinate(shape) * VS)
    source = gp.ArraySource(RAW, gp.Array(raw, gp.ArraySpec(roi=roi, voxel_size=VS)))
    labels = ArrayFunction(RAW, lambda d: (d * 1000).astype(np.uint64), LABELS, dtype=np.uint64)
    return source + labels + Jitter()


def make_request(seed=None):
    request = gp.BatchRequest(random_seed=seed)
    roi = gp.Roi((4, 8, 4), gp.Coordinate(8, 20, 20) * VS)
    request[RAW] = gp.ArraySpec(roi=roi)
    request[LABELS] = gp.ArraySpec(roi=roi)
    return request


def as_bytes(batch):
    return {k: (a.data.dtype.str, a.data.shape, a.data.tobytes()) for k, a in batch.arrays.items()}


def without_precache(seeds):
    p = upstream()
    with gp.build(p):
        return [as_bytes(make_batch(p, make_request(s))) for s in seeds]


def through_precache(seeds, num_workers, cache_size=4):
    node = PreCache(cache_size=cache_size, num_workers=num_workers)
    pipeline = upstream() + node
    with gp.build(pipeline):
        batches = [pipeline.request_batch(make_request(s)) for s in seeds]
    return batches, node


@pytest.mark.parametrize("num_workers", [1, 2])
@pytest.mark.parametrize("order", ["forward", "reversed"])
def test_seeded_requests_give_the_batches_their_seeds_give_without_precache(num_workers, order):
    seeds = list(range(6)) if order == "forward" else list(range(5, -1, -1))
    batches, node = through_precache(seeds, num_workers)
    assert [as_bytes(b) for b in batches] == without_precache(seeds)
    assert [b.random_seed for b in batches] == seeds
    # forward: only the first is unpredicted; reversed: the second too (the first guess is +1)
    assert node.misses == (1 if order == "forward" else 2)
    assert node.hits == len(seeds) - node.misses


def test_a_mispredicted_seed_is_computed_correctly_and_the_prediction_follows_it():
    seeds = [0, 1, 2, 17, 3, 10, 13, 16, 19]
    batches, node = through_precache(seeds, num_workers=2)
    assert [as_bytes(b) for b in batches] == without_precache(seeds)
    # misses: 0 (first), 17, 3 (guessed 32), 10 (guessed none: 3 - 14 < 0), 13 (guessed 17)
    assert node.misses == 5 and node.hits == 4


def test_the_same_seed_twice_gives_the_same_batch():
    batches, _ = through_precache([4, 4, 4], num_workers=1)
    assert as_bytes(batches[0]) == as_bytes(batches[1]) == as_bytes(batches[2])


def test_without_workers_seeds_are_honoured_too():
    seeds = [3, 1, 2]
    batches, _ = through_precache(seeds, num_workers=0)
    assert [as_bytes(b) for b in batches] == without_precache(seeds)


def test_hits_and_misses_are_in_the_profiling_stats():
    batches, node = through_precache([7, 8, 9], num_workers=1)
    first, later = batches[0].profiling_stats, batches[2].profiling_stats
    assert first.get_timing_summary("PreCache", "miss").counts() == 1
    assert first.get_timing_summary("PreCache", "hit") is None
    assert later.get_timing_summary("PreCache", "hit").counts() == 1
    assert node.hit_rate == pytest.approx(2 / 3)


def test_seed_predictions_stay_non_negative():
    plan = progression_plan(4, -2)
    assert [plan.seeds(i) for i in range(plan.limit)] == [2, 0]
    assert progression_plan(1, -2).limit == 0
    plan = progression_plan(5, 3)
    assert [plan.seeds(i) for i in range(3)] == [8, 11, 14]
    stream = stream_plan(11, 4)
    assert stream.limit is None and stream.seeds(2) == derive_seed(11, 6)


def test_workers_limit_their_thread_pools():
    pytest.importorskip("threadpoolctl")
    pipeline = upstream() + ThreadCount() + PreCache(cache_size=2, num_workers=1)
    request = make_request()
    request[THREADS] = gp.ArraySpec(nonspatial=True)
    with gp.build(pipeline):
        counts = [pipeline.request_batch(request.with_seed(s))[THREADS].data for s in range(4)]
    from_workers = [c for c in counts if c[1] == 1]
    assert from_workers, "no batch came from a worker"
    assert all(c[0] == 1 for c in from_workers)


def test_worker_threads_must_be_positive():
    with pytest.raises(ValueError, match="PreCache: worker_threads"):
        PreCache(num_workers=1, worker_threads=0)
    with pytest.raises(TypeError, match="PreCache: worker_threads"):
        PreCache(num_workers=1, worker_threads="many")
