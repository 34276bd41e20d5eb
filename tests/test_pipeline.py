"""The functional core: composition, build, seeds, checks at every node, plain functions."""

import numpy as np
import pytest
import toolz
from hypothesis import given
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.pipeline import Node, node_rng

RAW = gp.ArrayKey("RAW")
VS = gp.Coordinate(40, 4, 4)


def make_source(offset=(40, 8, 8), shape=(10, 20, 20), dtype=np.float32):
    data = np.arange(np.prod(shape), dtype=dtype).reshape(shape)
    roi = gp.Roi(gp.Coordinate(offset), gp.Coordinate(shape) * VS)
    return gp.ArraySource(RAW, gp.Array(data, gp.ArraySpec(roi=roi, voxel_size=VS))), data


class AddNoise(Node):
    """A random node: adds noise drawn in prepare."""

    def prepare(self, request, rng):
        return request, float(rng.normal())

    def process(self, batch, ctx):
        batch[RAW].data = batch[RAW].data + ctx
        return batch


def request_for(roi, seed=None):
    request = gp.BatchRequest(random_seed=seed)
    request[RAW] = gp.ArraySpec(roi=roi)
    return request


def test_plus_pipe_and_call_build_the_same_tree():
    src, _ = make_source()
    a, b = AddNoise(), AddNoise()
    p1 = src + a + b
    src2, _ = make_source()
    p2 = toolz.pipe(src2, AddNoise(), AddNoise())
    assert repr(p1) == repr(p2)
    roi = gp.Roi((80, 16, 16), (120, 16, 16))
    with gp.build(p1), gp.build(p2):
        assert np.array_equal(
            p1.request_batch(request_for(roi, 3))[RAW].data,
            p2.request_batch(request_for(roi, 3))[RAW].data,
        )


def test_open_pipeline_grafts_onto_source():
    src, data = make_source()
    augment = AddNoise() + gp.lift(lambda x: x * 0, RAW)
    p = src + augment
    with gp.build(p):
        b = p.request_batch(request_for(gp.Roi((40, 8, 8), (40, 4, 4))))
    assert b[RAW].data.sum() == 0


@given(st.integers(0, 2**40))
def test_same_seed_same_batch_and_different_seed_different(seed):
    src, _ = make_source()
    p = src + AddNoise()
    roi = gp.Roi((80, 16, 16), (120, 16, 16))
    with gp.build(p):
        b1 = p.request_batch(request_for(roi, seed))
        b2 = p.request_batch(request_for(roi, seed))
        b3 = p.request_batch(request_for(roi, seed + 1))
    assert np.array_equal(b1[RAW].data, b2[RAW].data)
    assert not np.array_equal(b1[RAW].data, b3[RAW].data)
    assert b1.random_seed == seed


def test_unseeded_requests_get_fresh_seeds():
    src, _ = make_source()
    p = src + AddNoise()
    roi = gp.Roi((80, 16, 16), (120, 16, 16))
    with gp.build(p):
        a = p.request_batch(request_for(roi))
        b = p.request_batch(request_for(roi))
    assert a.random_seed != b.random_seed
    assert not np.array_equal(a[RAW].data, b[RAW].data)


def test_inserting_upstream_node_keeps_downstream_draws():
    roi = gp.Roi((80, 16, 16), (120, 16, 16))
    src, _ = make_source()
    p_short = src + AddNoise()
    src2, _ = make_source()
    p_long = src2 + gp.lift(lambda x: x, RAW) + AddNoise()
    with gp.build(p_short), gp.build(p_long):
        a = p_short.request_batch(request_for(roi, 7))
        b = p_long.request_batch(request_for(roi, 7))
    assert np.array_equal(a[RAW].data, b[RAW].data)


def test_no_global_rng_use():
    src, _ = make_source()
    p = src + AddNoise()
    state = np.random.get_state()[1].copy()
    with gp.build(p):
        p.request_batch(request_for(gp.Roi((80, 16, 16), (40, 4, 4)), 1))
    assert np.array_equal(state, np.random.get_state()[1])


def test_node_rng_depends_on_path_and_seed():
    draws = {(s, path): node_rng(s, path).random() for s in (1, 2) for path in ((), (0,), (0, 0))}
    assert len(set(draws.values())) == len(draws)


def test_stream_is_reproducible_and_indexed():
    src, _ = make_source()
    p = src + AddNoise()
    roi = gp.Roi((80, 16, 16), (40, 4, 4))
    first = [b[RAW].data.copy() for b in gp.stream(p, request_for(roi), seed=5, num_batches=3)]
    again = [b[RAW].data.copy() for b in gp.stream(p, request_for(roi), seed=5, num_batches=3)]
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not np.array_equal(first[0], first[1])
    with gp.build(p):
        single = p.request_batch(request_for(roi, gp.derive_seed(5, 2)))
    assert np.array_equal(single[RAW].data, first[2])


def test_request_outside_provided_roi_names_node_and_key():
    src, _ = make_source()
    p = src + AddNoise()
    with gp.build(p):
        with pytest.raises(gp.PipelineRequestError, match=r"AddNoise: RAW requested .* outside"):
            p.request_batch(request_for(gp.Roi((0, 0, 0), (40, 4, 4))))


def test_request_off_voxel_grid_is_an_error():
    src, _ = make_source()
    with gp.build(src):
        with pytest.raises(gp.PipelineRequestError, match="multiple of its voxel size"):
            src.request_batch(request_for(gp.Roi((41, 8, 8), (40, 4, 4))))


def test_voxel_size_and_dtype_mismatch_are_errors():
    src, _ = make_source()
    with gp.build(src):
        r = request_for(gp.Roi((40, 8, 8), (40, 4, 4)))
        r[RAW] = gp.ArraySpec(roi=gp.Roi((40, 8, 8), (40, 4, 4)), voxel_size=(40, 2, 2))
        with pytest.raises(gp.PipelineRequestError, match="voxel size"):
            src.request_batch(r)
        r[RAW] = gp.ArraySpec(roi=gp.Roi((40, 8, 8), (40, 4, 4)), dtype=np.uint8)
        with pytest.raises(gp.PipelineRequestError, match="dtype"):
            src.request_batch(r)


def test_unknown_key_is_an_error():
    src, _ = make_source()
    other = gp.ArrayKey("OTHER")
    with gp.build(src):
        r = gp.BatchRequest()
        r[other] = gp.ArraySpec(roi=gp.Roi((40, 8, 8), (40, 4, 4)))
        with pytest.raises(
            gp.PipelineRequestError, match="OTHER was requested but is not provided"
        ):
            src.request_batch(r)


class Shrinker(Node):
    def process(self, batch, ctx):
        batch[RAW] = batch[RAW].crop(gp.Roi(batch[RAW].spec.roi.offset, (40, 4, 4)))
        return batch


def test_batch_not_matching_request_is_an_error():
    src, _ = make_source()
    p = src + Shrinker()
    with gp.build(p):
        with pytest.raises(gp.PipelineRequestError, match="Shrinker: returned RAW with ROI"):
            p.request_batch(request_for(gp.Roi((40, 8, 8), (80, 8, 8))))


class Broken(Node):
    def process(self, batch, ctx):
        raise ValueError("boom")


def test_exception_in_node_names_node():
    src, _ = make_source()
    p = src + Broken()
    with gp.build(p):
        with pytest.raises(
            gp.PipelineRequestError, match="Broken failed with ValueError: boom"
        ) as e:
            p.request_batch(request_for(gp.Roi((40, 8, 8), (40, 4, 4))))
    assert e.value.node_name == "Broken"
    assert isinstance(e.value.__cause__, ValueError)


def test_request_without_build_is_a_clear_error():
    src, _ = make_source()
    p = src + AddNoise()
    with pytest.raises(gp.PipelineSetupError, match="build"):
        p.request_batch(request_for(gp.Roi((40, 8, 8), (40, 4, 4))))


def test_same_node_twice_is_rejected():
    src, _ = make_source()
    n = AddNoise()
    with pytest.raises(gp.PipelineSetupError, match="twice"):
        with gp.build(src + n + n):
            pass


def test_teardown_runs_on_error():
    closed = []

    class Closing(Node):
        def teardown(self):
            closed.append(True)

    src, _ = make_source()
    p = src + Closing()
    with pytest.raises(RuntimeError):
        with gp.build(p):
            raise RuntimeError("user code failed")
    assert closed == [True]


def test_lift_array_and_batch_functions():
    src, data = make_source()
    doubled = gp.ArrayKey("DOUBLED")

    def tag(batch):
        batch[RAW].attrs["seen"] = True
        return batch

    p = src + gp.lift(lambda x: x * 2, RAW, target=doubled, dtype=np.float64) + gp.lift(tag)
    roi = gp.Roi((40, 8, 8), (80, 8, 8))
    r = request_for(roi)
    r[doubled] = gp.ArraySpec(roi=roi)
    with gp.build(p):
        b = p.request_batch(r)
    assert np.array_equal(b[doubled].data, data[:2, :2, :2] * 2)
    assert b[RAW].attrs["seen"]


def test_batch_request_add_centres_rois():
    r = gp.BatchRequest()
    gt = gp.ArrayKey("GT_LABELS")
    r.add(RAW, gp.Coordinate(84, 268, 268) * VS)
    r.add(gt, gp.Coordinate(56, 56, 56) * VS)
    assert r[RAW].roi.center == r[gt].roi.center
    assert r == r.with_seed(5)


def test_profiling_stats_record_every_node():
    src, _ = make_source()
    p = src + AddNoise()
    with gp.build(p):
        b = p.request_batch(request_for(gp.Roi((40, 8, 8), (40, 4, 4))))
    names = set(b.profiling_stats.node_names())
    assert {"ArraySource", "AddNoise"} <= names
