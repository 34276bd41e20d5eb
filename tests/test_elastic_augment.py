"""Node tests of ElasticAugment and DeformAugment: ROIs, dtypes, seeds, p, and the warp itself."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.nodes import DeformAugment, ElasticAugment
from gunpowder.nodes._warp import move_graph
from gunpowder.pipeline import Source, check_request, node_rng

RAW, LABELS, MASK = gp.ArrayKey("RAW"), gp.ArrayKey("GT_LABELS"), gp.ArrayKey("GT_MASK")


class Arrays(Source):
    """A source of several in-memory arrays (each with its own ROI and voxel size)."""

    def __init__(self, arrays):
        self.arrays = arrays

    def setup(self, upstream_spec=None):
        return gp.ProviderSpec({k: a.spec.copy() for k, a in self.arrays.items()})

    def provide(self, request, rng):
        batch = gp.Batch()
        for key, spec in request.items():
            batch[key] = self.arrays[key].crop(spec.roi)
        return batch


def volume(seed, shape=(20, 40, 40), voxel_size=(40, 4, 4), offset=(0, 0, 0)):
    """Raw (float32), labels (uint64, few ids) and a mask (uint8) over the same ROI."""
    rng = np.random.default_rng(seed)
    vs = gp.Coordinate(voxel_size)
    roi = gp.Roi(gp.Coordinate(offset) * vs, gp.Coordinate(shape) * vs)
    raw = rng.random(shape).astype(np.float32)
    labels = rng.choice(np.array([5, 9, 2**40], dtype=np.uint64), size=shape)
    mask = (rng.random(shape) > 0.3).astype(np.uint8)
    return {
        RAW: gp.Array(raw, gp.ArraySpec(roi=roi, voxel_size=vs, interpolatable=True)),
        LABELS: gp.Array(labels, gp.ArraySpec(roi=roi, voxel_size=vs, interpolatable=False)),
        MASK: gp.Array(mask, gp.ArraySpec(roi=roi, voxel_size=vs, interpolatable=False)),
    }


def request_for(voxel_size, raw_shape, label_shape, centre, seed=None):
    vs = gp.Coordinate(voxel_size)
    request = gp.BatchRequest(random_seed=seed)
    for key, shape in ((RAW, raw_shape), (LABELS, label_shape), (MASK, label_shape)):
        size = gp.Coordinate(shape) * vs
        offset = (gp.Coordinate(centre) - gp.Coordinate(shape) // 2) * vs
        request[key] = gp.ArraySpec(roi=gp.Roi(offset, size))
    return request


def cremi_like(**kwargs):
    args = dict(
        control_point_spacing=[4, 10, 10],
        jitter_sigma=[0, 2, 2],
        rotation_interval=[0, math.pi / 2],
        prob_slip=0.1,
        prob_shift=0.1,
        max_misalign=3,
        subsample=4,
    )
    args.update(kwargs)
    return ElasticAugment(**args)


@given(
    st.integers(0, 2**31),
    st.tuples(st.integers(1, 6), st.integers(2, 12), st.integers(2, 12)),
    st.tuples(st.integers(1, 4), st.integers(1, 8), st.integers(1, 8)),
)
def test_output_roi_shape_and_dtype_as_requested(seed, raw_shape, label_shape):
    pipeline = Arrays(volume(seed)) + cremi_like()
    request = request_for((40, 4, 4), raw_shape, label_shape, (10, 20, 20), seed=seed)
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    for key, spec in request.items():
        array = batch[key]
        assert array.spec.roi == spec.roi
        assert array.data.shape == tuple(spec.roi.shape / gp.Coordinate(40, 4, 4))
    assert batch[RAW].data.dtype == np.float32
    assert batch[LABELS].data.dtype == np.uint64 and batch[MASK].data.dtype == np.uint8
    assert set(np.unique(batch[LABELS].data)) <= {5, 9, 2**40}
    assert set(np.unique(batch[MASK].data)) <= {0, 1}


@settings(max_examples=15)
@given(st.integers(0, 2**31), st.integers(1, 4))
def test_zero_jitter_zero_rotation_is_identity(seed, subsample):
    arrays = volume(seed)
    node = ElasticAugment([2, 5, 5], [0, 0, 0], [0, 0], subsample=subsample)
    request = request_for((40, 4, 4), (8, 20, 20), (4, 10, 10), (10, 20, 20), seed=seed)
    with gp.build(Arrays(arrays) + node) as pipeline:
        batch = pipeline.request_batch(request)
    for key, spec in request.items():
        expected = arrays[key].crop(spec.roi).data
        if key == RAW:
            np.testing.assert_allclose(batch[key].data, expected, atol=1e-5)
        else:
            np.testing.assert_array_equal(batch[key].data, expected)


def test_upstream_request_is_the_source_bounding_box():
    node = cremi_like(p=1.0)
    request = request_for((40, 4, 4), (8, 20, 20), (4, 10, 10), (10, 20, 20))
    with gp.build(Arrays(volume(0, shape=(40, 100, 100), offset=(-10, -30, -30))) + node):
        for seed in range(10):
            upstream, plan = node.prepare(request, np.random.default_rng(seed))
            for key, spec in request.items():
                vs = gp.Coordinate(40, 4, 4)
                source = upstream[key].roi
                assert source.offset.is_multiple_of(vs) and source.shape.is_multiple_of(vs)
                coords = plan.transform.source_coordinates(
                    source.offset, vs, spec.roi.offset, spec.roi.shape / vs
                ).reshape(3, -1)
                size = np.array(source.shape / vs)
                if key == RAW:
                    lo, hi = np.floor(coords.min(1) + 1e-3), np.ceil(coords.max(1) - 1e-3)
                else:
                    lo, hi = np.floor(coords.min(1) + 0.5), np.floor(coords.max(1) + 0.5)
                assert (lo >= 0).all() and (hi <= size - 1).all()
                # tight: the box is no larger than the coordinates need (plus rounding)
                assert (lo <= 1).all() and (hi >= size - 2).all()


def test_same_seed_same_batch_and_seeds_differ():
    pipeline = Arrays(volume(1)) + cremi_like()
    with gp.build(pipeline):
        batches = [
            pipeline.request_batch(request_for((40, 4, 4), (6, 16, 16), (4, 8, 8), (10, 20, 20), s))
            for s in (7, 7, 8)
        ]
    for key in (RAW, LABELS, MASK):
        np.testing.assert_array_equal(batches[0][key].data, batches[1][key].data)
    assert not np.array_equal(batches[0][RAW].data, batches[2][RAW].data)


def test_probability_p():
    arrays = volume(2)
    request = request_for((40, 4, 4), (6, 16, 16), (4, 8, 8), (10, 20, 20))
    expected = arrays[RAW].crop(request[RAW].roi).data
    with gp.build(Arrays(arrays) + cremi_like(p=0.0)) as pipeline:
        for seed in range(5):
            batch = pipeline.request_batch(request.with_seed(seed))
            np.testing.assert_array_equal(batch[RAW].data, expected)
    with gp.build(Arrays(arrays) + cremi_like(p=0.5)) as pipeline:
        changed = [
            not np.array_equal(pipeline.request_batch(request.with_seed(s))[RAW].data, expected)
            for s in range(60)
        ]
    assert 15 <= sum(changed) <= 45
    with pytest.raises(ValueError, match="p must be"):
        cremi_like(p=1.5)


@settings(max_examples=10)
@given(st.integers(0, 2**31), st.integers(2, 12))
def test_rotation_by_90_degrees_matches_rot90(seed, n):
    arrays = volume(seed)
    node = ElasticAugment([1, 10, 10], [0, 0, 0], [math.pi / 2, math.pi / 2])
    request = gp.BatchRequest(random_seed=seed)
    roi = gp.Roi((200, 40, 40), (160, 4 * n, 4 * n))
    request[RAW] = gp.ArraySpec(roi=roi)
    request[LABELS] = gp.ArraySpec(roi=roi)
    with gp.build(Arrays(arrays) + node) as pipeline:
        batch = pipeline.request_batch(request)
    for key in (RAW, LABELS):
        expected = np.rot90(arrays[key].crop(roi).data, k=-1, axes=(1, 2))
        np.testing.assert_allclose(batch[key].data, expected, atol=1e-5)


def test_arrays_of_different_voxel_sizes_share_the_transform():
    rng = np.random.default_rng(3)
    fine = gp.Array(
        rng.random((40, 40, 40)).astype(np.float32),
        gp.ArraySpec(roi=gp.Roi((0, 0, 0), (160, 160, 160)), voxel_size=(4, 4, 4)),
    )
    coarse_labels = np.arange(20**3, dtype=np.uint32).reshape(20, 20, 20)
    coarse = gp.Array(
        coarse_labels, gp.ArraySpec(roi=gp.Roi((0, 0, 0), (160, 160, 160)), voxel_size=(8, 8, 8))
    )
    arrays = {RAW: fine, LABELS: coarse}
    roi = gp.Roi((40, 40, 40), (80, 80, 80))
    request = gp.BatchRequest(random_seed=1)
    request[RAW] = gp.ArraySpec(roi=roi)
    request[LABELS] = gp.ArraySpec(roi=roi)
    node = ElasticAugment([10, 10, 10], [0, 0, 0], [math.pi / 2, math.pi / 2])
    with gp.build(Arrays(arrays) + node) as pipeline:
        batch = pipeline.request_batch(request)
    assert batch[RAW].data.shape == (20, 20, 20) and batch[LABELS].data.shape == (10, 10, 10)
    np.testing.assert_allclose(
        batch[RAW].data, np.rot90(fine.crop(roi).data, k=-1, axes=(1, 2)), atol=1e-5
    )
    np.testing.assert_array_equal(
        batch[LABELS].data, np.rot90(coarse.crop(roi).data, k=-1, axes=(1, 2))
    )
    # and with jitter: each label voxel's value comes from where the transform says
    node = ElasticAugment([4, 4, 4], [1, 1, 1], [0, math.pi], subsample=2)
    with gp.build(Arrays(arrays) + node):
        upstream, plan = node.prepare(request, np.random.default_rng(5))
    centres = np.stack(
        np.meshgrid(*[40 + (np.arange(10) + 0.5) * 8] * 3, indexing="ij"), axis=-1
    ).reshape(-1, 3)
    source = plan.transform.to_source(centres)
    assert (np.floor(source / 8) >= 0).all()
    batch = Arrays(arrays) + node
    with gp.build(batch) as pipeline:
        warped = node.process(Arrays(arrays).provide(upstream, None), plan)[LABELS].data
    expected = coarse_labels[tuple(np.floor(source / 8).astype(int).T)].reshape(10, 10, 10)
    assert (warped == expected).mean() > 0.99  # float32 vs float64 at voxel borders


def test_spatial_dims_two_never_mixes_sections():
    arrays = volume(4)
    z = np.arange(20, dtype=np.uint64)[:, None, None]
    arrays[LABELS].data = (arrays[LABELS].data % 3) + 10 * z
    node = ElasticAugment([1, 8, 8], [0, 2, 2], [0, math.pi], spatial_dims=2, subsample=2)
    request = request_for((40, 4, 4), (8, 16, 16), (6, 10, 10), (10, 20, 20), seed=3)
    with gp.build(Arrays(arrays) + node) as pipeline:
        for seed in range(5):
            batch = pipeline.request_batch(request.with_seed(seed))
            first = request[LABELS].roi.offset[0] // 40
            for i, section in enumerate(batch[LABELS].data):
                assert set(np.unique(section) // 10) <= {first + i}


def test_misalignment_moves_whole_sections():
    arrays = volume(5)
    shape = arrays[LABELS].data.shape
    arrays[LABELS].data = np.arange(np.prod(shape), dtype=np.uint64).reshape(shape)
    node = ElasticAugment([1, 8, 8], [0, 0, 0], [0, 0], prob_shift=0.5, max_misalign=3)
    request = request_for((40, 4, 4), (8, 12, 12), (8, 12, 12), (10, 20, 20), seed=11)
    with gp.build(Arrays(arrays) + node) as pipeline:
        batch = pipeline.request_batch(request)
    data = batch[LABELS].data
    z0 = request[LABELS].roi.offset[0] // 40
    offsets = []
    for i, section in enumerate(data):
        z, y, x = np.unravel_index(section.astype(np.int64), shape)
        assert (z == z0 + i).all()
        dy, dx = y - y[0, 0], x - x[0, 0]
        assert (dy == np.arange(12)[:, None]).all() and (dx == np.arange(12)[None, :]).all()
        offsets.append((y[0, 0], x[0, 0]))
    assert len(set(offsets)) > 1  # some sections moved


def test_deform_augment_rotates_in_world_units():
    arrays = volume(6, shape=(30, 60, 60), voxel_size=(8, 4, 4))
    node = DeformAugment([40, 40, 40], [0, 0, 0], rotate=True, subsample=2)
    request = request_for((8, 4, 4), (10, 20, 20), (6, 10, 10), (15, 30, 30), seed=0)
    with gp.build(Arrays(arrays) + node) as pipeline:
        for seed in range(4):
            upstream, plan = node.prepare(request, np.random.default_rng(seed))
            centre = np.array(request.get_total_roi().center, dtype=float)
            points = centre + np.random.default_rng(seed).uniform(-30, 30, (10, 3))
            mapped = plan.transform.to_source(points)
            np.testing.assert_allclose(
                np.linalg.norm(mapped - centre, axis=1),
                np.linalg.norm(points - centre, axis=1),
                rtol=1e-4,
            )
            batch = pipeline.request_batch(request.with_seed(seed))
            assert batch[RAW].data.shape == (10, 20, 20)
            assert set(np.unique(batch[LABELS].data)) <= {5, 9, 2**40}


def test_deform_augment_rotation_axes_and_scale():
    arrays = volume(7)
    z = np.arange(20, dtype=np.uint64)[:, None, None]
    arrays[LABELS].data = (arrays[LABELS].data % 3) + 10 * z
    node = DeformAugment(
        [40, 20, 20], [0, 4, 4], scale_interval=(0.9, 1.1), rotation_axes=[1, 2], subsample=2
    )
    request = request_for((40, 4, 4), (8, 16, 16), (6, 10, 10), (10, 20, 20))
    with gp.build(Arrays(arrays) + node) as pipeline:
        for seed in range(4):
            batch = pipeline.request_batch(request.with_seed(seed))
            first = request[LABELS].roi.offset[0] // 40
            for i, section in enumerate(batch[LABELS].data):
                assert set(np.unique(section) // 10) <= {first + i}
    with pytest.raises(ValueError, match="DeformAugment: rotation_axes"):
        DeformAugment([40, 20, 20], [0, 0, 0], rotation_axes=[1, 3])


def test_graph_nodes_move_with_the_transform():
    from gunpowder.graph import Graph

    node = cremi_like(prob_slip=0, prob_shift=0)
    request = request_for((40, 4, 4), (8, 20, 20), (4, 10, 10), (10, 20, 20))
    with gp.build(Arrays(volume(0)) + node):
        _, plan = node.prepare(request, np.random.default_rng(0))
    roi = request[RAW].roi
    targets = np.array(roi.center, dtype=float) + np.array([[0, 0, 0], [40, 8, -8], [-40, 4, 4]])
    outside = np.array(roi.end, dtype=float) + 100
    sources = np.concatenate([plan.transform.to_source(targets), outside[None]])
    graph = Graph.from_arrays(sources, spec=gp.GraphSpec(roi=roi.grow(400, 400)))
    moved = move_graph(graph, plan.transform, roi, "ElasticAugment", gp.GraphKey("POINTS"))
    assert moved.spec.roi == roi and len(moved) == 3
    np.testing.assert_allclose(moved.locations, targets, atol=1e-2)


def test_points_and_channels_through_the_pipeline():
    from gunpowder.graph import Graph

    points_key = gp.GraphKey("ELASTIC_POINTS")
    arrays = volume(8)
    raw = arrays[RAW]
    arrays[RAW] = gp.Array(np.stack([raw.data, 1 - raw.data]), raw.spec)
    locations = np.array(arrays[LABELS].spec.roi.center, dtype=float) + np.random.default_rng(
        0
    ).uniform(-150, 150, (30, 3)) * np.array([1, 0.3, 0.3])

    class WithPoints(Arrays):
        def setup(self, upstream_spec=None):
            spec = super().setup()
            spec[points_key] = gp.GraphSpec(roi=raw.spec.roi)
            return spec

        def provide(self, request, rng):
            arrays_request = gp.BatchRequest({k: s for k, s in request.array_specs.items()})
            batch = super().provide(arrays_request, rng)
            roi = request[points_key].roi
            graph = Graph.from_arrays(locations, spec=gp.GraphSpec(roi=raw.spec.roi))
            batch[points_key] = graph.crop(roi)
            return batch

    node = cremi_like(prob_slip=0, prob_shift=0)
    request = request_for((40, 4, 4), (8, 20, 20), (6, 12, 12), (10, 20, 20), seed=2)
    request[points_key] = gp.GraphSpec(roi=request[LABELS].roi)
    with gp.build(WithPoints(arrays) + node) as pipeline:
        batch = pipeline.request_batch(request)
        _, plan = node.prepare(check_request(node, request), node_rng(2, ()))
    assert batch[RAW].data.shape == (2, 8, 20, 20)
    np.testing.assert_allclose(batch[RAW].data[0] + batch[RAW].data[1], 1, atol=1e-5)
    graph = batch[points_key]
    assert graph.spec.roi == request[LABELS].roi
    expected = plan.transform.to_target(locations)
    inside = np.array([request[LABELS].roi.contains(tuple(p)) for p in expected])
    assert len(graph) == inside.sum() > 0
    np.testing.assert_allclose(graph.locations, expected[graph.node_ids], atol=1e-3)
