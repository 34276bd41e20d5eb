"""Property tests of the label kernels against their definitions, written out voxel by voxel."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from gunpowder.transforms import labels as K

SETTINGS = settings(deadline=None)  # examples: the profile in conftest (GP_MAX_EXAMPLES)


@st.composite
def label_volumes(draw, dims=3, max_side=6, max_label=4, min_side=1):
    shape = tuple(draw(st.integers(min_side, max_side)) for _ in range(dims))
    dtype = draw(st.sampled_from([np.uint8, np.uint64, np.int32]))
    return draw(hnp.arrays(dtype, shape, elements=st.integers(0, max_label)))


@st.composite
def neighborhoods(draw, dims=3, max_offset=3, max_len=4):
    n = draw(st.integers(1, max_len))
    return [[draw(st.integers(-max_offset, max_offset)) for _ in range(dims)] for _ in range(n)]


@st.composite
def volumes_for(draw, neighborhood, max_side=5):
    """Labels (and two binary masks) big enough for the context of `neighborhood`."""
    neg, pos = K.affinity_context(neighborhood)
    out = tuple(draw(st.integers(1, max_side)) for _ in neg)
    shape = tuple(int(o + a + b) for o, a, b in zip(out, neg, pos))
    labels = draw(hnp.arrays(np.uint64, shape, elements=st.integers(0, 3)))
    mask = draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, 1)))
    unlabelled = draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, 1)))
    return out, labels, mask, unlabelled


def _pairs(out_shape, neighborhood):
    """(channel, output voxel, voxel p, neighbour p+n) in context-array coordinates."""
    neg, _ = K.affinity_context(neighborhood)
    for c, n in enumerate(neighborhood):
        for q in itertools.product(*[range(s) for s in out_shape]):
            p = tuple(int(a + b) for a, b in zip(q, neg))
            r = tuple(int(a + b) for a, b in zip(p, n))
            yield c, q, p, r


# -------------------------------------------------------------------------------- affinities


@SETTINGS
@given(st.data())
def test_affinities_match_definition(data):
    nh = data.draw(neighborhoods())
    out, labels, _, _ = data.draw(volumes_for(nh))
    affs = K.seg_to_affinities(labels, nh)
    assert affs.shape == (len(nh),) + out
    assert affs.dtype == np.uint8
    for c, q, p, r in _pairs(out, nh):
        expected = labels[p] == labels[r] and labels[p] != 0
        assert affs[(c,) + q] == expected, (nh[c], q)


def test_nearest_neighbour_sign_convention():
    labels = np.array([0, 1, 1, 2, 2, 2], dtype=np.uint64)
    # [-1] compares each voxel with its predecessor: output starts at voxel 1
    assert K.seg_to_affinities(labels, [[-1]]).tolist() == [[0, 1, 0, 1, 1]]
    # [+2] compares with the voxel two ahead: output ends two before the end
    assert K.seg_to_affinities(labels, [[2]]).tolist() == [[0, 0, 0, 1]]


@SETTINGS
@given(st.data())
def test_affinity_masks_match_definition(data):
    nh = data.draw(neighborhoods())
    out, labels, mask, unlabelled = data.draw(volumes_for(nh))
    use_mask = data.draw(st.booleans())
    use_unlabelled = data.draw(st.booleans())
    affs, amask = K.compute_affinities(
        labels,
        nh,
        labels_mask=mask if use_mask else None,
        unlabelled=unlabelled if use_unlabelled else None,
    )
    for c, q, p, r in _pairs(out, nh):
        labelled_p = not use_unlabelled or unlabelled[p] != 0
        labelled_r = not use_unlabelled or unlabelled[r] != 0
        aff = labels[p] == labels[r] != 0 and labelled_p and labelled_r
        known = not use_mask or (mask[p] != 0 and mask[r] != 0)
        m = known and (labelled_p or labelled_r)
        assert affs[(c,) + q] == aff
        assert amask[(c,) + q] == m


def test_affinities_reject_small_arrays_and_bad_offsets():
    with pytest.raises(ValueError, match="too small"):
        K.seg_to_affinities(np.ones((2, 2, 2), np.uint8), [[-3, 0, 0]])
    with pytest.raises(ValueError, match="whole voxels"):
        K.as_neighborhood([[0.5, 0, 0]])
    with pytest.raises(ValueError, match="non-empty"):
        K.as_neighborhood([])


# --------------------------------------------------------------------------- grow boundary


def _ball(dims, axes, radius):
    ranges = [range(-radius, radius + 1) if d in axes else range(1) for d in range(dims)]
    return [o for o in itertools.product(*ranges) if 0 < sum(map(abs, o)) <= radius]


def _grow_direct(labels, steps, background, mask, axes):
    out = labels.copy()
    known = np.ones(labels.shape, bool) if mask is None else mask != 0
    for p in itertools.product(*[range(s) for s in labels.shape]):
        if labels[p] == background or not known[p]:
            continue
        for o in _ball(labels.ndim, axes, steps):
            q = tuple(a + b for a, b in zip(p, o))
            if all(0 <= v < s for v, s in zip(q, labels.shape)):
                if known[q] and labels[q] != labels[p]:
                    out[p] = background
                    break
    return out


def _grow_by_erosion(labels, steps, background, mask, axes):
    """1.x's formulation: erode each label (masked voxels count as part of it)."""
    structure = np.zeros((3,) * labels.ndim, bool)
    structure[(1,) * labels.ndim] = True
    for a in axes:
        for v in (0, 2):
            idx = [1] * labels.ndim
            idx[a] = v
            structure[tuple(idx)] = True
    masked = np.zeros(labels.shape, bool) if mask is None else mask == 0
    keep = np.zeros(labels.shape, bool)
    for label in np.unique(labels):
        if label == background:
            continue
        region = (labels == label) | masked
        keep |= ndimage.binary_erosion(region, structure, iterations=steps, border_value=1)
    out = labels.copy()
    changed = ~keep & ~masked & (labels != background)
    out[changed] = background
    return out


@SETTINGS
@given(st.data())
def test_grow_boundary_matches_definition_and_1x_erosion(data):
    labels = data.draw(label_volumes(max_side=6, max_label=3))
    steps = data.draw(st.integers(1, 3))
    background = data.draw(st.sampled_from([0, 1]))
    axes = data.draw(st.sampled_from([(0, 1, 2), (1, 2), (0,)]))
    mask = None
    if data.draw(st.booleans()):
        mask = data.draw(hnp.arrays(np.uint8, labels.shape, elements=st.integers(0, 1)))
    grown = K.grow_boundary(labels, steps, background, mask, axes)
    assert grown.dtype == labels.dtype
    np.testing.assert_array_equal(grown, _grow_direct(labels, steps, background, mask, axes))
    np.testing.assert_array_equal(grown, _grow_by_erosion(labels, steps, background, mask, axes))


@SETTINGS
@given(st.data())
def test_after_grow_boundary_no_two_labels_touch(data):
    labels = data.draw(label_volumes(max_side=7, max_label=4))
    axes = data.draw(st.sampled_from([(0, 1, 2), (1, 2)]))
    mask = None
    if data.draw(st.booleans()):
        mask = data.draw(hnp.arrays(np.uint8, labels.shape, elements=st.integers(0, 1)))
    grown = K.grow_boundary(labels, 1, 0, mask, axes)
    known = np.ones(labels.shape, bool) if mask is None else mask != 0
    for axis in axes:
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(0, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        touching = (grown[a] != grown[b]) & (grown[a] != 0) & (grown[b] != 0) & known[a] & known[b]
        assert not touching.any()
    # only ever writes background, and only where there was a label
    changed = grown != labels
    assert np.all(grown[changed] == 0)


def test_grow_boundary_only_xy_leaves_z_alone():
    labels = np.zeros((2, 4, 4), np.uint32)
    labels[0] = 1
    labels[1] = 2  # the two labels only touch along z
    assert np.array_equal(K.grow_boundary(labels, 1, axes=(1, 2)), labels)
    assert not K.grow_boundary(labels, 1).any()


# ---------------------------------------------------------------------------- balancing


def _balance_direct(labels, masks, num_classes, clipmin, clipmax, slab):
    known = np.ones(labels.shape, bool)
    for m in masks:
        known &= m != 0
    slab = [s if s != -1 else n for s, n in zip(slab, labels.shape)]
    out = np.zeros(labels.shape, np.float64)
    starts = [range(0, n, s) for n, s in zip(labels.shape, slab)]
    for begin in itertools.product(*starts):
        sl = tuple(slice(b, b + s) for b, s in zip(begin, slab))
        lab, kn = labels[sl], known[sl]
        total = kn.sum()
        for c in range(num_classes):
            n_c = np.sum((lab == c) & kn)
            frac = n_c / total if total else 0.0
            frac = min(max(frac, clipmin), clipmax)
            if n_c:
                out[sl][(lab == c) & kn] = 1.0 / (num_classes * frac)
    return out


@SETTINGS
@given(st.data())
def test_balance_weights_reproduce_formula(data):
    num_classes = data.draw(st.integers(2, 4))
    shape = tuple(data.draw(st.integers(1, 6)) for _ in range(data.draw(st.integers(1, 4))))
    labels = data.draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, num_classes - 1)))
    masks = [
        data.draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, 1)))
        for _ in range(data.draw(st.integers(0, 2)))
    ]
    slab = tuple(data.draw(st.sampled_from([-1, 1, 2, 3])) for _ in shape)
    clipmin = data.draw(st.sampled_from([0.05, 0.2, 0.0]))
    clipmax = data.draw(st.sampled_from([0.95, 0.8, 1.0]))
    weights = K.balance_weights(labels, masks, num_classes, clipmin, clipmax, slab)
    assert weights.dtype == np.float32 and weights.shape == labels.shape
    expected = _balance_direct(labels, masks, num_classes, clipmin, clipmax, slab)
    np.testing.assert_allclose(weights, expected, rtol=1e-6)


def test_balance_weights_whole_array_and_errors():
    labels = np.array([0, 0, 0, 1], np.uint8)
    w = K.balance_weights(labels, clipmin=None, clipmax=None)
    np.testing.assert_allclose(w, [1 / (2 * 0.75)] * 3 + [1 / (2 * 0.25)])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        K.balance_weights(np.array([0, 3], np.uint8))
    # out-of-range labels outside the mask do not matter
    K.balance_weights(np.array([0, 3], np.uint8), [np.array([1, 0])])


# ----------------------------------------------------------------- exclude and relabel


@SETTINGS
@given(st.data())
def test_exclude_labels_and_include_mask(data):
    labels = data.draw(label_volumes(max_side=5, max_label=5))
    exclude = data.draw(st.lists(st.integers(0, 5), max_size=3))
    erode = data.draw(st.sampled_from([0, 4, 9]))
    vs = (4, 3, 2)
    out = K.exclude_labels(labels, exclude, background_value=7)
    excluded = np.isin(labels, exclude)
    assert np.all(out[excluded] == 7) and np.array_equal(out[~excluded], labels[~excluded])
    mask = K.include_mask(labels, exclude, erode, vs)
    kept = np.argwhere(~excluded) * np.array(vs)
    for p in itertools.product(*[range(s) for s in labels.shape]):
        if not excluded[p]:
            assert mask[p] == 1
        else:
            near = len(kept) and np.min(np.linalg.norm(kept - np.array(p) * vs, axis=1)) <= erode
            assert mask[p] == (1 if near else 0)


@SETTINGS
@given(label_volumes(max_side=6, max_label=3))
def test_relabel_connected_components_is_the_face_connected_partition(labels):
    out = K.relabel_connected_components(labels)
    assert out.dtype == labels.dtype
    assert np.array_equal(out == 0, labels == 0)
    ids = np.unique(out[out != 0])
    assert np.array_equal(ids, np.arange(1, len(ids) + 1))
    expected = 0
    for label in np.unique(labels[labels != 0]):
        components, n = ndimage.label(labels == label)
        expected += n
        for i in range(1, n + 1):
            # each component of one label maps to exactly one new id, used nowhere else
            new = np.unique(out[components == i])
            assert len(new) == 1
            assert np.array_equal(out == new[0], components == i)
    assert len(ids) == expected


def test_relabel_rejects_overflowing_dtype():
    labels = np.zeros((1, 600), np.uint8)
    labels[0, ::2] = 1  # 300 separate components
    with pytest.raises(ValueError, match="do not fit"):
        K.relabel_connected_components(labels)


# --------------------------------------------------------------------------- distances


@SETTINGS
@given(st.data())
def test_signed_boundary_distance_matches_brute_force(data):
    dims = data.draw(st.integers(1, 3))
    labels = data.draw(label_volumes(dims=dims, max_side=5, max_label=3))
    vs = tuple(data.draw(st.sampled_from([1, 2, 4, 40])) for _ in range(dims))
    max_distance = data.draw(st.sampled_from([3.0, 10.0, 100.0]))
    background = data.draw(st.sampled_from([0, 2]))
    d = K.signed_boundary_distance(labels, vs, max_distance, background)
    assert d.dtype == np.float32
    points = np.argwhere(np.ones(labels.shape, bool)) * np.array(vs, float)
    flat = labels.ravel()
    for i, p in enumerate(itertools.product(*[range(s) for s in labels.shape])):
        other = flat != labels[p]
        if labels[p] == background:
            other = flat != background
        dist = np.min(np.linalg.norm(points[other] - points[i], axis=1)) if other.any() else np.inf
        expected = min(dist, max_distance)
        expected = -expected if labels[p] == background else expected
        assert d[p] == pytest.approx(expected, rel=1e-5), p
