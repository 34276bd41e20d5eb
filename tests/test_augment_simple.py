"""SimpleAugment: every output voxel comes from one source voxel by a signed axis permutation
about an on-grid centre, the same map for all arrays and graphs of a batch."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_elastic_augment import Arrays

import gunpowder as gp
from gunpowder.errors import PipelineRequestError, PipelineSetupError
from gunpowder.graph import Graph
from gunpowder.nodes import SimpleAugment
from gunpowder.transforms.augment_simple import allowed_permutations, permutation_weights

A, B = gp.ArrayKey("SIMPLE_A"), gp.ArrayKey("SIMPLE_B")
POINTS = gp.GraphKey("SIMPLE_POINTS")
SHAPE = (24, 24, 24)


def id_volume(voxel_size):
    """Voxel ids (decode with np.unravel_index) over a ROI starting at -8 voxels."""
    vs = gp.Coordinate(voxel_size)
    roi = gp.Roi(gp.Coordinate(-8, -8, -8) * vs, gp.Coordinate(SHAPE) * vs)
    ids = np.arange(np.prod(SHAPE), dtype=np.int64).reshape(SHAPE)
    return gp.Array(ids, gp.ArraySpec(roi=roi, voxel_size=vs, interpolatable=False))


def source_centres(array, source):
    """World centres (N, 3) of the source voxels whose ids `array` holds."""
    index = np.stack(np.unravel_index(array.data.ravel(), SHAPE), axis=1)
    vs = np.array(source.spec.voxel_size)
    return np.array(source.spec.roi.offset) + (index + 0.5) * vs


def target_centres(array):
    vs = np.array(array.spec.voxel_size)
    grids = np.meshgrid(*[np.arange(n) for n in array.data.shape], indexing="ij")
    index = np.stack([g.ravel() for g in grids], axis=1)
    return np.array(array.spec.roi.offset) + (index + 0.5) * vs


def fit_map(x, y):
    """The affine map y = x @ M.T + t through the points (least squares)."""
    X = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    sol, *_ = np.linalg.lstsq(X, y, rcond=None)
    return sol[:3].T, sol[3]


rois = st.tuples(
    st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.integers(-3, 3)),
    st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
)


@given(st.integers(0, 2**31), rois, rois, st.sampled_from([(4, 4, 4), (40, 4, 4)]))
def test_one_signed_permutation_for_all_arrays_and_points(seed, roi_a, roi_b, voxel_size):
    vs = gp.Coordinate(voxel_size)
    sources = {A: id_volume(vs), B: id_volume(vs)}
    request = gp.BatchRequest(random_seed=seed)
    for key, (off, shp) in ((A, roi_a), (B, roi_b)):
        request[key] = gp.ArraySpec(roi=gp.Roi(gp.Coordinate(off) * vs, gp.Coordinate(shp) * vs))
    with gp.build(Arrays(sources) + SimpleAugment()) as pipeline:
        batch = pipeline.request_batch(request)
    maps = []
    for key in (A, B):
        array = batch[key]
        assert array.spec.roi == request[key].roi and array.data.dtype == np.int64
        assert array.data.shape == tuple(request[key].roi.shape / vs)
        assert len(np.unique(array.data)) == array.data.size  # a bijection onto a box
        x, y = target_centres(array), source_centres(array, sources[key])
        if min(array.data.shape) >= 2:  # the map is determined
            M, t = fit_map(x, y)
            np.testing.assert_allclose(x @ M.T + t, y, atol=1e-6)
            maps.append((M, t))
            assert np.allclose(np.abs(M).sum(axis=0), 1) and np.allclose(np.abs(M).sum(axis=1), 1)
            if voxel_size == (40, 4, 4):
                assert abs(M[0, 0]) == pytest.approx(1)  # z is never transposed with y or x
    if len(maps) == 2:
        np.testing.assert_allclose(maps[0][0], maps[1][0], atol=1e-6)
        np.testing.assert_allclose(maps[0][1], maps[1][1], atol=1e-6)


@given(st.integers(0, 2**31))
def test_graph_points_follow_their_voxels(seed):
    vs = gp.Coordinate(4, 4, 4)
    source = id_volume(vs)
    roi = gp.Roi((-8, 0, -12), (20, 24, 16))
    rng = np.random.default_rng(seed)
    request = gp.BatchRequest(random_seed=seed)
    request[A] = gp.ArraySpec(roi=roi)
    request[POINTS] = gp.GraphSpec(roi=roi)

    class WithPoints(Arrays):
        def setup(self, upstream_spec=None):
            spec = super().setup()
            spec[POINTS] = gp.GraphSpec(roi=source.spec.roi)
            return spec

        def provide(self, request, rng_):
            batch = super().provide(gp.BatchRequest({A: request[A]}), rng_)
            r = request[POINTS].roi
            locations = np.array(r.begin) + rng.random((10, 3)) * np.array(r.shape)
            batch[POINTS] = Graph.from_arrays(locations, spec=gp.GraphSpec(roi=r))
            return batch

    with gp.build(WithPoints({A: source}) + SimpleAugment()) as pipeline:
        batch = pipeline.request_batch(request)
    array, graph = batch[A], batch[POINTS]
    assert graph.spec.roi == roi and len(graph) == 10  # a bijection: no point lost
    M, t = fit_map(target_centres(array), source_centres(array, source))
    # each point's source position maps back through the inverse of the voxel map
    for location in graph.locations:
        source_location = M @ location + t
        voxel = np.floor((source_location - np.array(source.spec.roi.offset)) / 4).astype(int)
        target_voxel = np.floor((location - np.array(roi.offset)) / 4).astype(int)
        if (target_voxel >= 0).all() and (target_voxel < np.array(array.data.shape)).all():
            assert array.data[tuple(target_voxel)] == np.ravel_multi_index(tuple(voxel), SHAPE)


def test_options_force_mirror_and_transpose():
    vs = gp.Coordinate(4, 4, 4)
    source = id_volume(vs)
    roi = gp.Roi((-8, -8, -8), (16, 16, 16))  # centred on a grid point
    request = gp.BatchRequest()
    request[A] = gp.ArraySpec(roi=roi)
    crop = source.crop(roi).data
    cases = [
        (dict(mirror_probs=[1, 1, 1], transpose_probs={(0, 1, 2): 1}), np.flip(crop)),
        (dict(mirror_probs=[0, 0, 0], transpose_probs=[0, 1, 1]), np.transpose(crop, (0, 2, 1))),
        (dict(mirror_only=[2], mirror_probs=[1, 1, 1], transpose_only=[]), np.flip(crop, 2)),
        (dict(p=0.0), crop),
    ]
    for kwargs, expected in cases:
        with gp.build(Arrays({A: source}) + SimpleAugment(**kwargs)) as pipeline:
            for seed in range(4):
                out = pipeline.request_batch(request.with_seed(seed))[A].data
                np.testing.assert_array_equal(out, expected)


def test_probability_and_errors():
    vs = gp.Coordinate(40, 4, 4)
    source = id_volume(vs)
    request = gp.BatchRequest()
    request[A] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (160, 16, 16)))
    crop = source.crop(request[A].roi).data
    with gp.build(Arrays({A: source}) + SimpleAugment(p=0.5)) as pipeline:
        same = sum(
            np.array_equal(pipeline.request_batch(request.with_seed(s))[A].data, crop)
            for s in range(80)
        )
    # with p=0.5 about half skip, and an applied draw is the identity 1/16 of the time
    assert 25 <= same <= 60
    with pytest.raises(PipelineRequestError, match="voxel sizes"):
        with gp.build(Arrays({A: source}) + SimpleAugment(transpose_only=[0, 1])) as pipeline:
            pipeline.request_batch(request)
    with pytest.raises(PipelineSetupError, match="SimpleAugment: mirror_probs"):
        with gp.build(Arrays({A: source}) + SimpleAugment(mirror_probs=[1, 1])) as pipeline:
            pipeline.request_batch(request)


def test_permutation_weights():
    perms = allowed_permutations(3, (1, 2))
    assert perms == [(0, 1, 2), (0, 2, 1)]
    np.testing.assert_allclose(permutation_weights(perms, None), [0.5, 0.5])
    np.testing.assert_allclose(permutation_weights(perms, {(0, 2, 1): 3.0, (1, 0, 2): 1}), [0, 1])
    np.testing.assert_allclose(
        permutation_weights(perms, [0.0, 0.3, 0.3]), [0.49 / 0.58, 0.09 / 0.58]
    )
    np.testing.assert_allclose(permutation_weights(perms, {}), [1, 0])
