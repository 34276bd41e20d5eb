"""RandomLocation, SpecifiedLocation and Reject, checked against brute-force enumerations of
the admissible locations."""

import itertools
import logging
import pickle

import numpy as np
import pytest
from _shared import SpySource
from hypothesis import given, settings
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.graph import Graph
from gunpowder.nodes import GraphSource, MergeProvider, RandomLocation, Reject, SpecifiedLocation
from gunpowder.nodes._location import LazyMaskSummary, MaskSummary

RAW = gp.ArrayKey("RAW")
MASK = gp.ArrayKey("LOC_MASK")
LABELS = gp.ArrayKey("LOC_LABELS")
SHIFT = gp.ArrayKey("LOC_SHIFT")
POINTS = gp.GraphKey("LOC_POINTS")


def source(key, data, offset, vs):
    vs = gp.Coordinate(vs)
    roi = gp.Roi(gp.Coordinate(offset), gp.Coordinate(data.shape[-len(vs) :]) * vs)
    return SpySource(key, gp.Array(data, gp.ArraySpec(roi=roi, voxel_size=vs)))


def request(rois, seed=0, shift=True):
    r = gp.BatchRequest(random_seed=seed)
    for key, roi in rois.items():
        r[key] = gp.ArraySpec(roi=roi)
    if shift:
        r[SHIFT] = gp.ArraySpec(nonspatial=True)
    return r


def valid_shifts(requested, provided, step):
    """All shifts on the `step` grid that keep every requested ROI in its provided ROI."""
    ranges = []
    for d, s in enumerate(step):
        lo = max(provided[k].begin[d] - r.begin[d] for k, r in requested.items())
        hi = min(provided[k].end[d] - r.end[d] for k, r in requested.items())
        ranges.append(range(-(-lo // s) * s, hi + 1, s))
    return {tuple(c) for c in itertools.product(*ranges)}


def crop(src, roi):
    spec = src.array.spec
    rel = (roi - spec.roi.offset) / spec.voxel_size
    return src.array.data[(Ellipsis,) + rel.to_slices()]


@settings(max_examples=30)
@given(st.data())
def test_random_location_returns_requested_rois_cut_inside_the_data(data):
    vs_raw = gp.Coordinate(data.draw(st.sampled_from([(4, 2, 2), (2, 2, 2), (1, 1, 1)])))
    factor = gp.Coordinate(data.draw(st.sampled_from([(1, 1, 1), (1, 2, 2), (2, 1, 3)])))
    vs_lab = vs_raw * factor
    shape = gp.Coordinate(data.draw(st.tuples(*[st.integers(2, 6)] * 3))) * factor
    offset = gp.Coordinate(data.draw(st.tuples(*[st.integers(-3, 3)] * 3))) * vs_lab
    raw = source(
        RAW, np.random.default_rng(0).random(tuple(shape), dtype=np.float32), offset, vs_raw
    )
    labels = source(
        LABELS, np.arange(np.prod(shape / factor)).reshape(tuple(shape / factor)), offset, vs_lab
    )
    pipeline = (raw, labels) + MergeProvider() + RandomLocation(random_shift_key=SHIFT)
    size = gp.Coordinate(data.draw(st.integers(1, s)) for s in shape / factor) * vs_lab
    where = gp.Coordinate(data.draw(st.tuples(*[st.integers(-50, 50)] * 3))) * vs_lab
    roi = gp.Roi(where, size)
    seed = data.draw(st.integers(0, 2**32))
    with gp.build(pipeline):
        assert pipeline.spec[RAW].roi.unbounded and pipeline.spec[SHIFT].nonspatial
        batch = pipeline.request_batch(request({RAW: roi, LABELS: roi}, seed))
        again = pipeline.request_batch(request({RAW: roi, LABELS: roi}, seed))
    shift = gp.Coordinate(batch[SHIFT].data)
    assert np.array_equal(batch[SHIFT].data, again[SHIFT].data)
    assert shift.is_multiple_of(vs_lab)
    for key, src in ((RAW, raw), (LABELS, labels)):
        assert batch[key].spec.roi == roi
        assert src.array.spec.roi.contains(roi.shift(shift))
        np.testing.assert_array_equal(batch[key].data, crop(src, roi.shift(shift)))


def test_random_location_reaches_every_admissible_shift_and_no_other():
    raw = source(RAW, np.zeros((3, 10, 10), np.uint8), (0, 0, 0), (4, 2, 2))
    labels = source(LABELS, np.zeros((3, 6, 5), np.uint8), (0, 4, 0), (4, 2, 4))
    pipeline = (raw, labels) + MergeProvider() + RandomLocation(random_shift_key=SHIFT)
    rois = {RAW: gp.Roi((0, 0, 0), (8, 8, 12)), LABELS: gp.Roi((4, 0, 0), (4, 4, 8))}
    provided = {RAW: raw.array.spec.roi, LABELS: labels.array.spec.roi}
    expected = valid_shifts(rois, provided, (4, 2, 4))
    seen = {}
    with gp.build(pipeline):
        for seed in range(400):
            shift = tuple(pipeline.request_batch(request(rois, seed))[SHIFT].data)
            seen[shift] = seen.get(shift, 0) + 1
    assert set(seen) == expected
    # uniform: no admissible shift is drawn much more often than another
    assert max(seen.values()) < 4 * min(seen.values())


def test_random_location_errors():
    raw = source(RAW, np.zeros((4, 4, 4), np.uint8), (0, 0, 0), (1, 1, 1))
    pipeline = raw + RandomLocation()
    with gp.build(pipeline):
        with pytest.raises(gp.PipelineRequestError, match=r"RandomLocation.*RAW.*requested shape"):
            pipeline.request_batch(request({RAW: gp.Roi((0, 0, 0), (5, 2, 2))}, shift=False))
    with pytest.raises(TypeError, match="GraphKey"):
        RandomLocation(ensure_nonempty=RAW)
    with pytest.raises(ValueError, match="needs a mask"):
        RandomLocation(min_masked=0.5)
    with pytest.raises(gp.PipelineSetupError, match=r"RandomLocation.*LOC_MASK"):
        with gp.build(
            source(RAW, np.zeros((4, 4, 4)), (0, 0, 0), (1, 1, 1)) + RandomLocation(0.5, MASK)
        ):
            pass
    with pytest.raises(gp.PipelineSetupError, match="already provided"):
        with gp.build(
            source(RAW, np.zeros((4, 4, 4)), (0, 0, 0), (1, 1, 1))
            + RandomLocation(random_shift_key=RAW)
        ):
            pass


class EvenOnly(RandomLocation):
    def accepts(self, request):
        return request[RAW].roi.begin[0] % 2 == 0


def test_accepts_can_veto_locations():
    pipeline = source(RAW, np.zeros((9, 2), np.uint8), (0, 0), (1, 1)) + EvenOnly(
        random_shift_key=SHIFT
    )
    with gp.build(pipeline):
        shifts = {
            int(pipeline.request_batch(request({RAW: gp.Roi((0, 0), (1, 2))}, s))[SHIFT].data[0])
            for s in range(60)
        }
    assert shifts == {0, 2, 4, 6, 8}


# ---------------------------------------------------------------------------------------------
# masks


def mask_pipeline(mask_data, vs=(2, 2, 2), offset=(2, 0, -4), **kwargs):
    raw = source(RAW, np.zeros(mask_data.shape, np.float32), offset, vs)
    msk = source(MASK, mask_data, offset, vs)
    node = RandomLocation(random_shift_key=SHIFT, **kwargs)
    return (raw, msk) + MergeProvider() + node, raw, msk, node


def brute_force_masked(mask, src, roi, vs, min_masked):
    """Shifts (on the voxel grid) whose shifted ROI has at least `min_masked` masked in."""
    provided = {RAW: src.array.spec.roi}
    good = set()
    for s in valid_shifts({RAW: roi}, provided, vs):
        if np.count_nonzero(crop(src, roi.shift(gp.Coordinate(s)))) >= min_masked * (
            roi.size / np.prod(vs)
        ):
            good.add(s)
    return good


@settings(max_examples=25)
@given(
    st.integers(0, 2**32),
    st.sampled_from([0.1, 0.5, 0.9, 1.0]),
    st.sampled_from([2**21, 7]),
    st.booleans(),
)
def test_mask_locations_are_exactly_those_with_enough_masked_in(seed, min_masked, blocks, ask_mask):
    rng = np.random.default_rng(seed)
    mask = (rng.random((4, 7, 6)) < rng.uniform(0.2, 0.8)).astype(np.uint8)
    vs = (2, 2, 2)
    pipeline, raw, msk, node = mask_pipeline(mask, vs, min_masked=min_masked, mask=MASK)
    node.mask_summary_blocks = blocks
    roi = gp.Roi((0, 0, 0), (4, 6, 4))
    good = brute_force_masked(mask, msk, roi, vs, min_masked)
    rois = {RAW: roi, MASK: roi} if ask_mask else {RAW: roi}
    with gp.build(pipeline):
        if not good:
            with pytest.raises(gp.PipelineRequestError, match="LOC_MASK"):
                pipeline.request_batch(request(rois, seed))
            return
        seen = set()
        for s in range(40):
            batch = pipeline.request_batch(request(rois, seed + s))
            shift = tuple(batch[SHIFT].data)
            assert shift in good
            seen.add(shift)
            if ask_mask:
                frac = np.count_nonzero(batch[MASK].data) / batch[MASK].data.size
                assert frac >= min_masked
    if len(good) <= 3:
        assert seen == good


def test_mask_summary_bounds_contain_the_exact_fraction():
    rng = np.random.default_rng(3)
    mask = (rng.random((9, 14, 11)) < 0.3).astype(np.uint8)
    vs = gp.Coordinate(4, 2, 2)
    roi = gp.Roi((8, -2, 6), gp.Coordinate(mask.shape) * vs)

    def read(r):
        rel = (r - roi.offset) / vs
        return mask[rel.to_slices()]

    exact = MaskSummary.build(roi, vs, read)
    coarse = MaskSummary.build(roi, vs, read, max_blocks=20, chunk_voxels=64)
    assert coarse.block.prod() > 1 and exact.block.prod() == 1
    assert coarse.total == exact.total == mask.sum()
    for _ in range(200):
        a = rng.integers(0, mask.shape)
        b = np.minimum(a + rng.integers(1, 8, size=3), mask.shape)
        begins = (np.array(roi.begin) + a * np.array(vs))[None]
        ends = (np.array(roi.begin) + b * np.array(vs))[None]
        truth = mask[tuple(slice(x, y) for x, y in zip(a, b))].mean()
        lo, hi = exact.fraction_bounds(begins, ends)
        assert lo[0] == pytest.approx(truth) == hi[0]
        lo, hi = coarse.fraction_bounds(begins, ends)
        assert lo[0] - 1e-12 <= truth <= hi[0] + 1e-12


def test_mask_is_read_blockwise_once_then_only_request_sized():
    mask = np.zeros((8, 16, 16), np.uint8)
    mask[2:6, 4:12, 4:12] = 1
    pipeline, raw, msk, node = mask_pipeline(mask, min_masked=0.8, mask=MASK)
    node.mask_read_voxels = 256
    node.mask_summary_blocks = 64
    roi = gp.Roi((0, 0, 0), (4, 8, 8))
    with gp.build(pipeline):
        pipeline.request_batch(request({RAW: roi}, 1))
        # the first reads summarise the mask: chunks of at most 256 voxels tiling it
        total, chunks = msk.array.spec.roi.size, 0
        covered = 0
        while covered < total:
            assert msk.seen[chunks].size / 8 <= 256
            covered += msk.seen[chunks].size
            chunks += 1
        assert covered == total and chunks > 1
        msk.seen.clear()
        for s in range(20):
            pipeline.request_batch(request({RAW: roi}, s))
    assert all(r.size <= roi.size for r in msk.seen)


@settings(max_examples=15)
@given(st.integers(0, 2**32), st.sampled_from([0.1, 0.5, 0.9]), st.sampled_from([2**21, 7]))
def test_a_lazy_mask_summary_gives_the_locations_of_the_full_one(seed, min_masked, blocks):
    rng = np.random.default_rng(seed)
    mask = (rng.random((6, 9, 8)) < rng.uniform(0.3, 0.9)).astype(np.uint8)
    roi = gp.Roi((0, 0, 0), (4, 6, 4))
    shifts = {}
    for lazy in (False, True):
        pipeline, raw, msk, node = mask_pipeline(mask, min_masked=min_masked, mask=MASK)
        node.mask_summary_blocks = blocks
        node.mask_eager_voxels = 0 if lazy else 2**40
        with gp.build(pipeline):
            try:
                shifts[lazy] = [
                    tuple(pipeline.request_batch(request({RAW: roi}, seed + s))[SHIFT].data)
                    for s in range(12)
                ]
            except gp.PipelineRequestError:
                shifts[lazy] = "no location"
            summary_type = type(node._summary).__name__
        assert summary_type == ("LazyMaskSummary" if lazy else "MaskSummary")
    assert shifts[True] == shifts[False]


def test_a_lazy_mask_summary_reads_about_one_request_for_the_first_batch():
    mask = np.ones((40, 64, 64), np.uint8)
    pipeline, raw, msk, node = mask_pipeline(mask, min_masked=0.5, mask=MASK)
    node.mask_eager_voxels = 1000
    node.mask_summary_blocks = 4096
    roi = gp.Roi((0, 0, 0), (8, 16, 16))
    with gp.build(pipeline):
        pipeline.request_batch(request({RAW: roi}, 1))
        read = sum(r.size for r in msk.seen)
        assert 0 < read <= 8 * roi.size  # a request grown to whole blocks, not the mask
        assert read < msk.array.spec.roi.size / 20
        summary = node._summary
        for s in range(30):
            pipeline.request_batch(request({RAW: roi}, s))
        assert summary.known.any() and not summary.known.all()


def test_lazy_mask_summary_bounds_contain_the_exact_fraction():
    rng = np.random.default_rng(5)
    mask = (rng.random((9, 14, 11)) < 0.4).astype(np.uint8)
    vs = gp.Coordinate(4, 2, 2)
    roi = gp.Roi((8, -2, 6), gp.Coordinate(mask.shape) * vs)

    def read(r):
        rel = (r - roi.offset) / vs
        return mask[rel.to_slices()]

    lazy = LazyMaskSummary(roi, vs, max_blocks=200)
    assert lazy.block.prod() > 1
    for _ in range(200):
        a = rng.integers(0, mask.shape)
        b = np.minimum(a + rng.integers(1, 10, size=3), mask.shape)
        begins = (np.array(roi.begin) + a * np.array(vs))[None]
        ends = (np.array(roi.begin) + b * np.array(vs))[None]
        truth = mask[tuple(slice(x, y) for x, y in zip(a, b))].mean()
        lo, hi = lazy.fraction_bounds(begins, ends)
        assert lo[0] - 1e-12 <= truth <= hi[0] + 1e-12
        if rng.random() < 0.3:
            world = gp.Roi(gp.Coordinate(begins[0]), gp.Coordinate(ends[0] - begins[0]))
            assert lazy.exact_fraction(world, read) == pytest.approx(truth)
    assert lazy.known.any() and not lazy.known.all()
    for index in zip(*np.nonzero(lazy.known)):  # a known block's count is its true count
        lo = np.array(index) * lazy.block
        block = mask[tuple(slice(x, x + k) for x, k in zip(lo, lazy.block))]
        assert lazy.counts[index] == block.sum()


def test_mask_without_any_masked_in_voxel_is_a_clear_error():
    pipeline, *_ = mask_pipeline(np.zeros((4, 4, 4), np.uint8), min_masked=0.1, mask=MASK)
    with gp.build(pipeline):
        with pytest.raises(gp.PipelineRequestError, match="LOC_MASK has no masked-in voxel"):
            pipeline.request_batch(request({RAW: gp.Roi((0, 0, 0), (2, 2, 2))}))


def test_unreachable_min_masked_fails_after_max_tries():
    mask = np.zeros((6, 6, 6), np.uint8)
    mask[0, 0, 0] = 1
    pipeline, *_ = mask_pipeline(mask, min_masked=0.5, mask=MASK, max_tries=100)
    with gp.build(pipeline):
        with pytest.raises(gp.PipelineRequestError, match=r"after 100 random tries"):
            pipeline.request_batch(request({RAW: gp.Roi((0, 0, 0), (4, 4, 4))}))


def test_location_nodes_pickle_for_worker_processes():
    mask = np.ones((4, 4, 4), np.uint8)
    pipeline, *_ = mask_pipeline(mask, min_masked=0.5, mask=MASK)
    roi = gp.Roi((0, 0, 0), (4, 4, 4))
    with gp.build(pipeline):
        expected = pipeline.request_batch(request({RAW: roi}, 11))[SHIFT].data
    copy = pickle.loads(pickle.dumps(pipeline))
    with gp.build(copy):
        np.testing.assert_array_equal(
            copy.request_batch(request({RAW: roi}, 11))[SHIFT].data, expected
        )
    node = pickle.loads(pickle.dumps(SpecifiedLocation([(1, 1, 1)])))
    assert node._next_index(np.random.default_rng(0)) == 0


# ---------------------------------------------------------------------------------------------
# SpecifiedLocation


def specified_pipeline(**kwargs):
    raw = source(RAW, np.arange(20 * 20).reshape(20, 20), (0, 0), (2, 2))
    return raw + SpecifiedLocation(**kwargs), raw


def test_specified_location_centres_requests_in_turn():
    locations = [(10, 10), (20, 6), (30, 30)]
    pipeline, raw = specified_pipeline(locations=locations, extra_data=["a", "b", "c"])
    roi = gp.Roi((100, 100), (8, 8))
    with gp.build(pipeline):
        for i in range(6):
            batch = pipeline.request_batch(request({RAW: roi}, seed=0, shift=False))
            assert batch[RAW].spec.roi == roi
            centre = gp.Coordinate(locations[i % 3])
            shifted = gp.Roi(centre - gp.Coordinate(4, 4), (8, 8))
            np.testing.assert_array_equal(batch[RAW].data, crop(raw, shifted))
            assert batch[RAW].attrs["specified_location_extra_data"] == "abc"[i % 3]


def test_specified_location_random_choice_depends_on_seed_only_and_jitter_is_bounded():
    locations = [(10, 10), (20, 20), (30, 12)]
    pipeline, raw = specified_pipeline(locations=locations, choose_randomly=True, jitter=(2, 4))
    roi = gp.Roi((0, 0), (4, 4))
    with gp.build(pipeline):
        for seed in range(30):
            a = pipeline.request_batch(request({RAW: roi}, seed, shift=False))[RAW].data
            b = pipeline.request_batch(request({RAW: roi}, seed, shift=False))[RAW].data
            np.testing.assert_array_equal(a, b)
            # values encode the position: top-left voxel (y, x) = divmod(value, 20)
            y, x = divmod(int(a[0, 0]), 20)
            centre = gp.Coordinate(y * 2 + 2, x * 2 + 2)
            assert any(
                abs(centre[0] - c[0]) <= 2 + 1 and abs(centre[1] - c[1]) <= 4 + 1 for c in locations
            )


def test_specified_location_skips_outside_locations_with_a_warning(caplog):
    pipeline, raw = specified_pipeline(locations=[(1000, 1000), (10, 10)])
    roi = gp.Roi((0, 0), (4, 4))
    with gp.build(pipeline), caplog.at_level(logging.WARNING):
        batch = pipeline.request_batch(request({RAW: roi}, shift=False))
    np.testing.assert_array_equal(batch[RAW].data, crop(raw, gp.Roi((8, 8), (4, 4))))
    assert "outside the upstream data" in caplog.text
    pipeline, _ = specified_pipeline(locations=[(1000, 1000)])
    with gp.build(pipeline), pytest.raises(gp.PipelineRequestError, match="SpecifiedLocation"):
        pipeline.request_batch(request({RAW: roi}, shift=False))


# ---------------------------------------------------------------------------------------------
# Reject


def reject_pipeline(mask, **kwargs):
    raw = source(RAW, np.zeros(mask.shape, np.float32), (0, 0, 0), (1, 1, 1))
    msk = source(MASK, mask, (0, 0, 0), (1, 1, 1))
    return (
        (raw, msk)
        + MergeProvider()
        + RandomLocation(random_shift_key=SHIFT)
        + Reject(MASK, **kwargs)
    )


def test_reject_returns_only_batches_with_enough_masked_in():
    mask = np.zeros((6, 6, 6), np.uint8)
    mask[:3] = 1
    pipeline = reject_pipeline(mask, min_masked=0.7)
    roi = gp.Roi((0, 0, 0), (2, 2, 2))
    with gp.build(pipeline):
        for seed in range(20):
            batch = pipeline.request_batch(request({RAW: roi, MASK: roi}, seed))
            assert batch[MASK].data.mean() >= 0.7
            again = pipeline.request_batch(request({RAW: roi, MASK: roi}, seed))
            np.testing.assert_array_equal(batch[SHIFT].data, again[SHIFT].data)
        # the mask need not be requested: it is read for the request's box and left out
        batch = pipeline.request_batch(request({RAW: roi}, 5))
        assert MASK not in batch
        assert tuple(batch[SHIFT].data)[0] < 3


def test_reject_probability_zero_accepts_the_first_batch():
    mask = np.zeros((6, 6, 6), np.uint8)
    mask[:3] = 1
    pipeline = reject_pipeline(mask, min_masked=0.7, reject_probability=0.0)
    roi = gp.Roi((0, 0, 0), (2, 2, 2))
    with gp.build(pipeline):
        fractions = [
            pipeline.request_batch(request({RAW: roi, MASK: roi}, s))[MASK].data.mean()
            for s in range(40)
        ]
    assert min(fractions) < 0.7


def test_reject_gives_up_with_a_clear_error():
    pipeline = reject_pipeline(np.zeros((4, 4, 4), np.uint8), max_tries=20)
    with gp.build(pipeline):
        with pytest.raises(gp.PipelineRequestError, match=r"Reject.*LOC_MASK.*after 20 tries"):
            pipeline.request_batch(request({RAW: gp.Roi((0, 0, 0), (2, 2, 2))}))
    with pytest.raises(TypeError, match="GraphKey"):
        Reject(MASK, ensure_nonempty=RAW)
    with pytest.raises(ValueError, match="needs a mask"):
        Reject()


# ---------------------------------------------------------------------------------------------
# graphs: shifted with the arrays, ensure_nonempty


def points_pipeline(locations, *nodes):
    """RAW over [0, 40)^3 (voxel size 2) and a graph with points at `locations`."""
    raw = source(RAW, np.zeros((20, 20, 20), np.uint8), (0, 0, 0), (2, 2, 2))
    roi = gp.Roi((0, 0, 0), (40, 40, 40))
    graph = Graph.from_arrays(np.asarray(locations, float), spec=gp.GraphSpec(roi=roi))
    pipeline = (raw, GraphSource(POINTS, graph)) + MergeProvider()
    for node in nodes:
        pipeline = pipeline + node
    return pipeline


def graph_request(roi, seed, shift=True):
    r = request({RAW: roi}, seed, shift)
    r[POINTS] = gp.GraphSpec(roi=roi)
    return r


def test_graphs_move_with_the_arrays():
    rng = np.random.default_rng(0)
    locations = rng.uniform(0, 40, size=(200, 3))
    pipeline = points_pipeline(locations, RandomLocation(random_shift_key=SHIFT))
    roi = gp.Roi((100, 100, 100), (10, 12, 8))
    with gp.build(pipeline):
        for seed in range(10):
            batch = pipeline.request_batch(graph_request(roi, seed))
            shift = np.array(batch[SHIFT].data, float)
            assert batch[POINTS].spec.roi == roi
            inside = np.all((locations >= np.array(roi.begin) + shift), axis=1) & np.all(
                locations < np.array(roi.end) + shift, axis=1
            )
            got = np.sort(batch[POINTS].locations, axis=0)
            np.testing.assert_allclose(got, np.sort(locations[inside] - shift, axis=0))


@settings(max_examples=10)
@given(st.integers(0, 2**32), st.booleans())
def test_ensure_nonempty_places_a_point_in_every_batch(seed, centered):
    locations = [[5.5, 31.0, 7.2], [33.3, 3.1, 30.9]]
    node = RandomLocation(ensure_nonempty=POINTS, ensure_centered=centered, random_shift_key=SHIFT)
    pipeline = points_pipeline(locations, node)
    roi = gp.Roi((0, 0, 0), (6, 6, 6))
    with gp.build(pipeline):
        for s in range(5):
            batch = pipeline.request_batch(graph_request(roi, seed + s))
            points = batch[POINTS].locations
            assert len(points) >= 1
            if centered:
                centre_voxel = gp.Roi((2, 2, 2), (2, 2, 2))
                assert any(centre_voxel.contains(tuple(np.floor(p).astype(int))) for p in points)


def test_p_nonempty_zero_is_uniform_and_reject_can_ensure_points():
    locations = [[5.0, 5.0, 5.0]]
    roi = gp.Roi((0, 0, 0), (20, 20, 20))
    uniform = points_pipeline(locations, RandomLocation(ensure_nonempty=POINTS, p_nonempty=0))
    with gp.build(uniform):
        counts = [
            len(uniform.request_batch(graph_request(roi, s, False))[POINTS]) for s in range(30)
        ]
    assert 0 in counts
    rejecting = points_pipeline(locations, RandomLocation(), Reject(ensure_nonempty=POINTS))
    with gp.build(rejecting):
        for s in range(5):
            assert len(rejecting.request_batch(graph_request(roi, s, False))[POINTS]) == 1
        # the graph need not be requested: Reject reads it for the request's box
        batch = rejecting.request_batch(request({RAW: roi}, 3, shift=False))
        assert POINTS not in batch


def test_specified_location_lies_inside_the_request_at_ties():
    """A one-voxel request centred on a location at a voxel border still contains it."""
    import gunpowder as gp

    key = gp.ArrayKey("TIE_RAW")
    seen = []
    data = np.arange(100, dtype=np.float32).reshape(10, 10)
    source = gp.ArraySource(
        key, gp.Array(data, gp.ArraySpec(roi=gp.Roi((0, 0), (20, 20)), voxel_size=(2, 2)))
    )
    record = gp.lift(lambda b: (seen.append(b[key].spec.roi), b)[1])
    pipeline = source + record + gp.SpecifiedLocation([gp.Coordinate(2, 2), gp.Coordinate(7, 9)])
    request = gp.BatchRequest()
    request[key] = gp.ArraySpec(roi=gp.Roi((0, 0), (2, 2)))
    with gp.build(pipeline):
        pipeline.request_batch(request)
        pipeline.request_batch(request)
    assert seen[0].contains((2, 2)) and seen[1].contains((7, 9))
