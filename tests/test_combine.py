"""MergeProvider, RandomProvider and Stack: routing of keys, choice of upstreams, stacking
of independently seeded repetitions."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.nodes import MergeProvider, RandomLocation, RandomProvider, Stack

RAW = gp.ArrayKey("RAW")
LABELS = gp.ArrayKey("CMB_LABELS")
WHICH = gp.ArrayKey("CMB_WHICH")
SHIFT = gp.ArrayKey("CMB_SHIFT")


class CountingSource(gp.ArraySource):
    """An ArraySource that counts the requests it serves."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def provide(self, request, rng):
        self.calls += 1
        return super().provide(request, rng)


def src(key, data, offset=None, vs=None):
    data = np.asarray(data)
    vs = gp.Coordinate(vs or (1,) * data.ndim)
    offset = gp.Coordinate(offset or (0,) * data.ndim)
    roi = gp.Roi(offset, gp.Coordinate(data.shape) * vs)
    return CountingSource(key, gp.Array(data, gp.ArraySpec(roi=roi, voxel_size=vs)))


def request(rois, seed=0, extra=()):
    r = gp.BatchRequest(random_seed=seed)
    for key, roi in rois.items():
        r[key] = gp.ArraySpec(roi=roi)
    for key in extra:
        r[key] = gp.ArraySpec(nonspatial=True)
    return r


def test_merge_provider_routes_each_key_to_its_upstream():
    raw = src(RAW, np.arange(16.0).reshape(4, 4))
    labels = src(LABELS, np.arange(36).reshape(6, 6), offset=(-2, -2))
    pipeline = (raw, labels) + MergeProvider()
    with gp.build(pipeline):
        assert set(pipeline.spec) == {RAW, LABELS}
        assert pipeline.spec[LABELS].roi == gp.Roi((-2, -2), (6, 6))
        batch = pipeline.request_batch(request({LABELS: gp.Roi((-2, -2), (2, 2))}))
        assert set(batch) == {LABELS} and (raw.calls, labels.calls) == (0, 1)
        batch = pipeline.request_batch(
            request({RAW: gp.Roi((1, 1), (2, 2)), LABELS: gp.Roi((1, 1), (2, 2))})
        )
    np.testing.assert_array_equal(batch[RAW].data, [[5, 6], [9, 10]])
    np.testing.assert_array_equal(batch[LABELS].data, [[21, 22], [27, 28]])


def test_merge_provider_rejects_duplicate_keys():
    with pytest.raises(gp.PipelineSetupError, match=r"MergeProvider.*RAW.*upstream 0.*upstream 1"):
        with gp.build((src(RAW, np.zeros((2, 2))), src(RAW, np.zeros((2, 2)))) + MergeProvider()):
            pass


@settings(max_examples=20)
@given(st.lists(st.integers(0, 5), min_size=2, max_size=4), st.integers(0, 2**32))
def test_random_provider_follows_probabilities_and_the_seed(weights, seed):
    if sum(weights) == 0:
        weights = [1] * len(weights)
    sources = [src(RAW, np.full((3, 3), i, dtype=np.int32)) for i in range(len(weights))]
    pipeline = tuple(sources) + RandomProvider(weights, random_provider_key=WHICH)
    roi = gp.Roi((0, 0), (2, 2))
    counts = np.zeros(len(weights))
    with gp.build(pipeline):
        assert pipeline.spec[WHICH].nonspatial
        for i in range(60):
            batch = pipeline.request_batch(request({RAW: roi}, seed + i, extra=[WHICH]))
            chosen = int(batch[WHICH].data)
            assert np.all(batch[RAW].data == chosen)
            counts[chosen] += 1
            again = pipeline.request_batch(request({RAW: roi}, seed + i, extra=[WHICH]))
            assert int(again[WHICH].data) == chosen
    assert sum(s.calls for s in sources) == 120
    for c, w in zip(counts, weights):
        if w == 0:
            assert c == 0


def test_random_provider_offers_common_keys_and_rois():
    a = (src(RAW, np.zeros((4, 4))), src(LABELS, np.zeros((4, 4), np.uint8))) + MergeProvider()
    b = src(RAW, np.ones((4, 4)), offset=(2, 0))
    pipeline = (a, b) + RandomProvider()
    with gp.build(pipeline):
        assert set(pipeline.spec) == {RAW}
        assert pipeline.spec[RAW].roi == gp.Roi((2, 0), (2, 4))
    with pytest.raises(gp.PipelineSetupError, match=r"RandomProvider.*probabilities"):
        with gp.build(
            (src(RAW, np.zeros((2, 2))), src(RAW, np.zeros((2, 2)))) + RandomProvider([1])
        ):
            pass
    with pytest.raises(gp.PipelineSetupError, match=r"RandomProvider.*RAW.*voxel_size"):
        with gp.build(
            (src(RAW, np.zeros((2, 2))), src(RAW, np.zeros((2, 2)), vs=(2, 2))) + RandomProvider()
        ):
            pass


def test_stack_stacks_independently_seeded_repetitions():
    data = np.arange(20 * 20, dtype=np.float32).reshape(20, 20)
    pipeline = src(RAW, data) + RandomLocation(random_shift_key=SHIFT) + Stack(5)
    roi = gp.Roi((0, 0), (3, 4))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request({RAW: roi}, 7, extra=[SHIFT]))
        again = pipeline.request_batch(request({RAW: roi}, 7, extra=[SHIFT]))
        other = pipeline.request_batch(request({RAW: roi}, 8, extra=[SHIFT]))
    assert batch[RAW].data.shape == (5, 3, 4) and batch[RAW].spec.roi == roi
    assert batch[SHIFT].data.shape == (5, 2)
    for shift, sample in zip(batch[SHIFT].data, batch[RAW].data):
        np.testing.assert_array_equal(
            sample, data[shift[0] : shift[0] + 3, shift[1] : shift[1] + 4]
        )
    assert len({tuple(s) for s in batch[SHIFT].data}) > 1
    np.testing.assert_array_equal(batch[RAW].data, again[RAW].data)
    assert not np.array_equal(batch[RAW].data, other[RAW].data)


def test_stack_rejects_a_bad_count():
    with pytest.raises(ValueError, match="num_repetitions"):
        Stack(0)
