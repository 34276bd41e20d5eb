"""The label nodes in pipelines: ROIs, context requests, results equal to the kernels on the
whole volume, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.errors import PipelineRequestError, PipelineSetupError
from gunpowder.nodes import (
    AddAffinities,
    AddBoundaryDistance,
    BalanceLabels,
    ExcludeLabels,
    GrowBoundary,
    RenumberConnectedComponents,
)
from gunpowder.pipeline import Source
from gunpowder.transforms import labels as K

VS = gp.Coordinate((40, 4, 4))
SHAPE = (12, 16, 16)
TOTAL = gp.Roi((80, -32, 0), gp.Coordinate(SHAPE) * VS)

LABELS, MASK, UNLABELLED = gp.ArrayKey("T_LABELS"), gp.ArrayKey("T_MASK"), gp.ArrayKey("T_UNL")
AFFS, AFFS_MASK = gp.ArrayKey("T_AFFS"), gp.ArrayKey("T_AFFS_MASK")
SCALES, IGNORE, DIST = gp.ArrayKey("T_SCALES"), gp.ArrayKey("T_IGNORE"), gp.ArrayKey("T_DIST")


class Arrays(Source):
    """Several in-memory arrays; records every request it serves."""

    def __init__(self, arrays: dict) -> None:
        self.arrays = arrays
        self.requests: list = []

    def setup(self, upstream_spec=None) -> gp.ProviderSpec:
        return gp.ProviderSpec({k: a.spec for k, a in self.arrays.items()})

    def provide(self, request, rng) -> gp.Batch:
        self.requests.append(request.copy())
        batch = gp.Batch()
        for key, spec in request.items():
            batch[key] = self.arrays[key].crop(spec.roi)
        return batch


def make_source(seed: int = 0, n_labels: int = 6) -> tuple[Arrays, dict]:
    rng = np.random.default_rng(seed)
    # blocky labels so that objects are bigger than a voxel
    coarse = rng.integers(0, n_labels, (6, 8, 8)).astype(np.uint64)
    labels = np.kron(coarse, np.ones((2, 2, 2), np.uint64))
    data = {
        LABELS: labels,
        MASK: (rng.random(SHAPE) > 0.2).astype(np.uint8),
        UNLABELLED: (rng.random(SHAPE) > 0.2).astype(np.uint8),
    }
    spec = gp.ArraySpec(roi=TOTAL, voxel_size=VS, interpolatable=False)
    return Arrays({k: gp.Array(v, spec.replace(dtype=v.dtype)) for k, v in data.items()}), data


def voxels(roi: gp.Roi) -> tuple[slice, ...]:
    """Index of `roi` into the full arrays."""
    return ((roi - TOTAL.offset) / VS).to_slices()


def request_for(keys_rois: dict, seed: int = 1) -> gp.BatchRequest:
    return gp.BatchRequest({k: gp.ArraySpec(roi=r) for k, r in keys_rois.items()}, random_seed=seed)


def inner_roi(draw, margin_voxels=(3, 3, 3)) -> gp.Roi:
    """A grid-aligned ROI at least `margin_voxels` away from the source's border."""
    begin, shape = [], []
    for n, m in zip(SHAPE, margin_voxels):
        size = draw(st.integers(1, n - 2 * m))
        start = draw(st.integers(m, n - m - size))
        begin.append(start)
        shape.append(size)
    return gp.Roi(TOTAL.offset + gp.Coordinate(begin) * VS, gp.Coordinate(shape) * VS)


# -------------------------------------------------------------------------------- affinities

NEAREST = [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]


@settings(deadline=None, max_examples=25)
@given(st.data())
def test_add_affinities_equals_kernel_on_whole_volume(data):
    offsets = st.lists(st.integers(-3, 3), min_size=3, max_size=3)
    nh = data.draw(
        st.one_of(
            st.sampled_from([NEAREST, [[1, 0, 0], [0, 2, 0], [0, 0, -3]]]),
            st.lists(offsets, min_size=1, max_size=4),
        )
    )
    source, arrays = make_source(data.draw(st.integers(0, 5)))
    neg, pos = K.affinity_context(nh)
    roi = inner_roi(data.draw)
    also_labels = data.draw(st.booleans())
    keys = {AFFS: roi, AFFS_MASK: roi}
    if also_labels:
        keys[LABELS] = roi.grow(VS, (0, 0, 0))
    pipeline = source + AddAffinities(
        nh, LABELS, AFFS, labels_mask=MASK, unlabelled=UNLABELLED, affinities_mask=AFFS_MASK
    )
    with gp.build(pipeline):
        batch = pipeline.request_batch(request_for(keys))
    # upstream was asked for exactly the context the offsets need
    context = roi.grow(gp.Coordinate(neg) * VS, gp.Coordinate(pos) * VS)
    asked = source.requests[-1][LABELS].roi
    expected_ask = context.union(keys[LABELS]) if also_labels else context
    assert asked == expected_ask
    assert source.requests[-1][MASK].roi == context
    # results equal the kernel on the whole volume
    affs, mask = K.compute_affinities(arrays[LABELS], nh, arrays[MASK], arrays[UNLABELLED])
    full = gp.Roi(
        TOTAL.offset + gp.Coordinate(neg) * VS,
        TOTAL.shape - (gp.Coordinate(neg) + gp.Coordinate(pos)) * VS,
    )
    index = (slice(None),) + ((roi - full.offset) / VS).to_slices()
    assert batch[AFFS].spec.roi == roi and batch[AFFS_MASK].spec.roi == roi
    assert batch[AFFS].data.shape == (len(nh),) + tuple(roi.shape / VS)
    assert batch[AFFS].data.dtype == np.uint8
    np.testing.assert_array_equal(batch[AFFS].data, affs[index])
    np.testing.assert_array_equal(batch[AFFS_MASK].data, mask[index])
    if also_labels:
        assert batch[LABELS].spec.roi == keys[LABELS]
        np.testing.assert_array_equal(batch[LABELS].data, arrays[LABELS][voxels(keys[LABELS])])
    assert np.array_equal(batch.affinity_neighborhood, nh)


def test_add_affinities_spec_and_dtype():
    source, _ = make_source()
    node = AddAffinities(
        [[-1, 0, 0], [0, 2, 0]], LABELS, AFFS, affinities_mask=AFFS_MASK, dtype=np.float32
    )
    with gp.build(source + node) as p:
        spec = p.spec[AFFS]
        assert spec.roi == TOTAL.grow(-VS * gp.Coordinate(1, 0, 0), -VS * gp.Coordinate(0, 2, 0))
        assert spec.voxel_size == VS and spec.dtype == np.float32
        roi = gp.Roi(spec.roi.offset, VS * gp.Coordinate(2, 2, 2))
        batch = p.request_batch(request_for({AFFS: roi, AFFS_MASK: roi}))
    assert batch[AFFS].data.dtype == np.float32
    assert np.all(batch[AFFS_MASK].data == 1)  # no labels_mask: ones everywhere
    assert set(batch) == {AFFS, AFFS_MASK}


def test_add_affinities_only_mask_requested_and_errors():
    source, arrays = make_source()
    node = AddAffinities(NEAREST, LABELS, AFFS, labels_mask=MASK, affinities_mask=AFFS_MASK)
    roi = gp.Roi(TOTAL.offset + VS * 2, VS * 3)
    with gp.build(source + node) as p:
        batch = p.request_batch(request_for({AFFS_MASK: roi}))
        assert set(batch) == {AFFS_MASK}
        outside = gp.Roi(TOTAL.offset, VS * 3)  # needs context before the source begins
        with pytest.raises(PipelineRequestError, match="outside"):
            p.request_batch(request_for({AFFS: outside}))
    with pytest.raises(PipelineSetupError, match="AddAffinities"):
        with gp.build(source + AddAffinities(NEAREST, gp.ArrayKey("T_NOPE"), AFFS)):
            pass
    with pytest.raises(PipelineSetupError, match="dimensions"):
        with gp.build(source + AddAffinities([[-1, 0]], LABELS, AFFS)):
            pass


# ---------------------------------------------------------------------------- boundaries


@settings(deadline=None, max_examples=20)
@given(st.data())
def test_grow_boundary_node_is_independent_of_the_crop(data):
    steps = data.draw(st.integers(1, 2))
    only_xy = data.draw(st.booleans())
    source, arrays = make_source(data.draw(st.integers(0, 5)))
    roi = inner_roi(data.draw)
    pipeline = source + GrowBoundary(LABELS, MASK, steps=steps, only_xy=only_xy)
    with gp.build(pipeline):
        batch = pipeline.request_batch(request_for({LABELS: roi, MASK: roi}))
    axes = (1, 2) if only_xy else (0, 1, 2)
    whole = K.grow_boundary(arrays[LABELS], steps, 0, arrays[MASK], axes)
    assert batch[LABELS].spec.roi == roi and batch[MASK].spec.roi == roi
    np.testing.assert_array_equal(batch[LABELS].data, whole[voxels(roi)])
    np.testing.assert_array_equal(batch[MASK].data, arrays[MASK][voxels(roi)])
    # the source itself was not modified
    np.testing.assert_array_equal(source.arrays[LABELS].data, arrays[LABELS])


def test_grow_boundary_at_the_source_border_and_without_mask():
    source, arrays = make_source()
    pipeline = source + GrowBoundary(LABELS, steps=1, only_xy=True)
    with gp.build(pipeline):
        batch = pipeline.request_batch(request_for({LABELS: TOTAL}))
    # z is not grown: the request was not grown along z, nor beyond the source
    assert source.requests[-1][LABELS].roi == TOTAL
    np.testing.assert_array_equal(
        batch[LABELS].data, K.grow_boundary(arrays[LABELS], 1, 0, None, (1, 2))
    )


# ----------------------------------------------------------------------------- balancing


def test_balance_labels_node_on_affinities():
    source, arrays = make_source()
    roi = gp.Roi(TOTAL.offset + VS * 2, VS * gp.Coordinate(6, 8, 8))
    pipeline = (
        source
        + AddAffinities(NEAREST, LABELS, AFFS, labels_mask=MASK, affinities_mask=AFFS_MASK)
        + BalanceLabels(AFFS, SCALES, AFFS_MASK, slab=(-1, 2, -1, -1))
    )
    with gp.build(pipeline):
        batch = pipeline.request_batch(request_for({SCALES: roi, AFFS: roi}))
    assert set(batch) == {SCALES, AFFS}
    scales = batch[SCALES]
    assert scales.spec.roi == roi and scales.data.dtype == np.float32
    affs, mask = K.compute_affinities(
        arrays[LABELS][voxels(roi.grow(VS * gp.Coordinate(1, 1, 1), gp.Coordinate(0, 0, 0)))],
        NEAREST,
        arrays[MASK][voxels(roi.grow(VS * gp.Coordinate(1, 1, 1), gp.Coordinate(0, 0, 0)))],
    )
    expected = K.balance_weights(affs, [mask], slab=(-1, 2, -1, -1))
    np.testing.assert_array_equal(scales.data, expected)
    assert np.all(scales.data[mask == 0] == 0)


def test_balance_labels_several_masks_and_spatial_slab():
    source, arrays = make_source()
    binary = gp.ArrayKey("T_BINARY")
    pipeline = (
        source
        + gp.ArrayFunction(LABELS, lambda x: (x % 2).astype(np.uint8), target=binary)
        + BalanceLabels(
            binary, SCALES, [MASK, UNLABELLED], slab=(1, -1, -1), clipmin=None, clipmax=None
        )
    )
    with gp.build(pipeline):
        batch = pipeline.request_batch(request_for({SCALES: TOTAL}))
    expected = K.balance_weights(
        (arrays[LABELS] % 2).astype(np.uint8),
        [arrays[MASK], arrays[UNLABELLED]],
        clipmin=None,
        clipmax=None,
        slab=(1, -1, -1),
    )
    np.testing.assert_array_equal(batch[SCALES].data, expected)


def test_balance_labels_reports_bad_labels():
    source, _ = make_source()
    pipeline = source + BalanceLabels(LABELS, SCALES)  # labels have ids up to 5
    with gp.build(pipeline):
        with pytest.raises(PipelineRequestError, match="BalanceLabels"):
            pipeline.request_batch(request_for({SCALES: TOTAL}))


# -------------------------------------------------------------------- exclude / relabel


def test_exclude_labels_node_with_ignore_mask_context():
    source, arrays = make_source()
    roi = gp.Roi(TOTAL.offset + VS * 3, VS * gp.Coordinate(4, 6, 6))
    node = ExcludeLabels(
        LABELS, [1, 2], ignore_mask=IGNORE, ignore_mask_erode=8, background_value=0
    )
    with gp.build(source + node) as p:
        batch = p.request_batch(request_for({LABELS: roi, IGNORE: roi}))
    # erode 8nm = 1 voxel in z (40nm) and 2 voxels in y, x (4nm)
    assert source.requests[-1][LABELS].roi == roi.grow(
        VS * gp.Coordinate(1, 2, 2), VS * gp.Coordinate(1, 2, 2)
    )
    whole_labels = K.exclude_labels(arrays[LABELS], [1, 2])
    whole_mask = K.include_mask(arrays[LABELS], [1, 2], 8, VS)
    np.testing.assert_array_equal(batch[LABELS].data, whole_labels[voxels(roi)])
    np.testing.assert_array_equal(batch[IGNORE].data, whole_mask[voxels(roi)])
    assert batch[IGNORE].data.dtype == np.uint8


def test_renumber_connected_components_node():
    source, arrays = make_source()
    roi = gp.Roi(TOTAL.offset + VS * 2, VS * gp.Coordinate(6, 8, 8))
    with gp.build(source + RenumberConnectedComponents(LABELS)) as p:
        batch = p.request_batch(request_for({LABELS: roi}))
    expected = K.relabel_connected_components(arrays[LABELS][voxels(roi)])
    np.testing.assert_array_equal(batch[LABELS].data, expected)
    assert batch[LABELS].data.dtype == np.uint64


# ---------------------------------------------------------------------------- distances


def test_add_boundary_distance_node():
    source, arrays = make_source()
    roi = gp.Roi(TOTAL.offset + VS * gp.Coordinate(3, 4, 4), VS * gp.Coordinate(4, 6, 6))
    node = AddBoundaryDistance(LABELS, DIST, max_distance=12)
    with gp.build(source + node) as p:
        assert p.spec[DIST].dtype == np.float32
        batch = p.request_batch(request_for({DIST: roi}))
    assert set(batch) == {DIST}
    assert source.requests[-1][LABELS].roi == roi.grow(
        VS * gp.Coordinate(1, 3, 3), VS * gp.Coordinate(1, 3, 3)
    )
    whole = K.signed_boundary_distance(arrays[LABELS], VS, 12)
    np.testing.assert_array_equal(batch[DIST].data, whole[voxels(roi)])
    assert batch[DIST].data.max() <= 12 and batch[DIST].data.min() >= -12
    with pytest.raises(ValueError, match="max_distance"):
        AddBoundaryDistance(LABELS, DIST, max_distance=0)
