"""Specs, requests and batches: copies, equality, cropping, merging, shape checks."""

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gunpowder as gp
from gunpowder.testing import array_specs, arrays

RAW = gp.ArrayKey("RAW")
GT = gp.ArrayKey("GT_LABELS")


def test_keys_registry_and_identity():
    k = gp.ArrayKey("SPEC_TEST_KEY")
    assert gp.ArrayKeys.SPEC_TEST_KEY == k
    assert gp.ArrayKey("SPEC_TEST_KEY") == k and hash(gp.ArrayKey("SPEC_TEST_KEY")) == hash(k)
    assert pickle.loads(pickle.dumps(k)) == k
    with pytest.raises(AttributeError, match="does not exist"):
        _ = gp.ArrayKeys.NOT_A_KEY_YET


def test_array_checks_shape_against_roi():
    spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (80, 8, 8)), voxel_size=(40, 4, 4))
    gp.Array(np.zeros((2, 2, 2)), spec)
    gp.Array(np.zeros((3, 2, 2, 2)), spec)  # channels first
    with pytest.raises(ValueError, match="does not match its ROI"):
        gp.Array(np.zeros((2, 2, 3)), spec)


@given(array_specs(), st.data())
def test_array_crop_equals_numpy_slicing(spec, data):
    array = data.draw(arrays(spec))
    vs = spec.voxel_size
    shape = spec.roi.shape / vs
    begin = gp.Coordinate(data.draw(st.integers(0, s - 1)) for s in shape)
    size = gp.Coordinate(data.draw(st.integers(1, s - b)) for s, b in zip(shape, begin))
    roi = gp.Roi(spec.roi.offset + begin * vs, size * vs)
    cropped = array.crop(roi)
    expected = array.data[tuple(slice(b, b + s) for b, s in zip(begin, size))]
    assert np.array_equal(cropped.data, expected)
    assert cropped.spec.roi == roi and cropped.data.dtype == array.data.dtype


def test_request_copy_equality_and_update():
    r = gp.BatchRequest(random_seed=1)
    r.add(RAW, (40, 40, 40))
    c = r.copy()
    c[RAW].roi = c[RAW].roi.shift(gp.Coordinate(4, 4, 4))
    assert r[RAW].roi != c[RAW].roi
    assert r == r.with_seed(2)
    other = gp.BatchRequest()
    other[GT] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (4, 4, 4)))
    u = r.update_with(other)
    assert set(u) == {RAW, GT} and set(r) == {RAW}


def test_batch_mapping_crop_merge_total_roi():
    vs = gp.Coordinate(1, 1)
    a = gp.Array(
        np.arange(16).reshape(4, 4), gp.ArraySpec(roi=gp.Roi((0, 0), (4, 4)), voxel_size=vs)
    )
    b = gp.Array(np.ones((2, 2)), gp.ArraySpec(roi=gp.Roi((4, 4), (2, 2)), voxel_size=vs))
    batch = gp.Batch()
    batch[RAW] = a
    batch[GT] = b
    assert RAW in batch and set(batch.arrays) == {RAW, GT}
    assert batch.get_total_roi() == gp.Roi((0, 0), (6, 6))
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((1, 1), (2, 2)))
    cropped = batch.crop(request)
    assert list(cropped) == [RAW]
    assert np.array_equal(cropped[RAW].data, [[5, 6], [9, 10]])
    other = gp.Batch()
    other[RAW] = b
    merged = batch.merge(other)
    assert merged[RAW] is b and merged[GT] is b
    with pytest.raises(TypeError, match="only an Array"):
        batch[RAW] = np.zeros(3)


def test_array_spec_update_and_pickle():
    s = gp.ArraySpec(voxel_size=(40, 4, 4), interpolatable=True, dtype=np.uint8)
    t = s.update_with(gp.ArraySpec(roi=gp.Roi((0, 0, 0), (40, 4, 4))))
    assert t.roi is not None and t.dtype == np.uint8 and t.interpolatable
    assert pickle.loads(pickle.dumps(t)) == t
